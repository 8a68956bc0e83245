"""Solutions to the checked exercises of notebook 13 (ai-edge-quantizer and mixed precision).

- `keep_in_float(recipe, scope)`: append one rule for that op's scope, `algorithm_key`
  "no_quantize"; it must come after the `.*` rule, since AEQ applies the last rule that matches.
- `cheapest_within(table, float_accuracy, tolerance_pp)`: the rows within the tolerance
  (100 × (accuracy − float_accuracy) ≥ −tolerance_pp), then the smallest file, the more accurate
  of equal sizes.
- `ranking(table, way)`: quantize_one ranks by the file's output error, largest first (the error the
  layer adds alone); float_one by the error the float layer removes, all-int8's minus the file's,
  so the smallest output error first.

`MISTAKES` holds the typical wrong answers: the float rule put first, the recipe unchanged, int16
instead of float; the smallest file whatever its accuracy, the tolerance read as a fraction, the
most accurate file; rankings in the wrong direction, float_one ranked like quantize_one.
"""

FLOAT_RULE = {
    "operation": "*",
    "algorithm_key": "no_quantize",
    "op_config": {"compute_precision": "FLOAT"},
}


def keep_in_float(recipe, scope):
    """The recipe with one more rule, last, that leaves the op matching `scope` in float."""
    return recipe + [{"regex": scope, **FLOAT_RULE}]


def cheapest_within(table, float_accuracy, tolerance_pp):
    """The smallest row within `tolerance_pp` of float accuracy (ties: the more accurate)."""
    ok = table[100 * (table.accuracy - float_accuracy) >= -tolerance_pp - 1e-9]
    return ok.sort_values(["size_bytes", "accuracy"], ascending=[True, False]).iloc[0]


def ranking(table, way):
    """The layers of `way`, most sensitive first."""
    part = table[table.setting == way]
    return list(part.sort_values("output_mse", ascending=(way == "float_one")).layer)


def _int16_rule(recipe, scope):
    """Wrong: the op's activations in 16 bits, not float."""
    rule = {**recipe[0], "regex": scope}
    rule["op_config"] = {
        **rule["op_config"],
        "activation_tensor_config": {
            **rule["op_config"]["activation_tensor_config"],
            "num_bits": 16,
            "symmetric": True,
        },
    }
    return recipe + [rule]


SOLUTIONS = {
    "check_keep_in_float": keep_in_float,
    "check_cheapest": cheapest_within,
    "check_sensitivity_ranking": ranking,
}

MISTAKES = {
    "check_keep_in_float": [
        lambda recipe, scope: (
            [{"regex": scope, **FLOAT_RULE}] + recipe
        ),  # first: the `.*` rule wins
        lambda recipe, scope: recipe,  # nothing added
        _int16_rule,
    ],
    "check_cheapest": [
        lambda t, f, tol: t.sort_values("size_bytes").iloc[
            0
        ],  # the smallest, whatever its accuracy
        lambda t, f, tol: (
            t[t.accuracy - f >= -tol].sort_values("size_bytes").iloc[0]
        ),  # tolerance as a fraction
        lambda t, f, tol: t.sort_values(["accuracy", "size_bytes"], ascending=[False, True]).iloc[
            0
        ],  # most accurate
        lambda t, f, tol: (
            t[100 * (t.accuracy - f) >= -tol].sort_values("size_bytes", kind="stable").iloc[0]
        ),  # ties
    ],
    "check_sensitivity_ranking": [
        lambda t, way: list(
            t[t.setting == way].sort_values("output_mse").layer
        ),  # ascending for both
        lambda t, way: list(
            t[t.setting == way].sort_values("output_mse", ascending=False).layer
        ),  # like quantize_one
        lambda t, way: list(
            t[t.setting == way].sort_values("accuracy", kind="stable").layer
        ),  # by accuracy
    ],
}
