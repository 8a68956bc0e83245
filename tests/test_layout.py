"""The layout holds: small modules, data flowing one way, arithmetic at the bottom, a silent library
under a printing command line, and a docstring on every public definition."""

import ast
import io
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import house_style
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qlab", "qlab_workshop")
MODULES = {
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
    for package in PACKAGES
    for p in sorted((ROOT / package).rglob("*.py"))
}
TENSORFLOW = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "ai_edge_quantizer")
CLUSTER = ("dask", "distributed")  # the sweep engine's dask backend: loaded when a sweep asks

# the packages by job, bottom to top; a module may import its own layer and those below, never above
LAYERS = [
    ("bottom", ["qlab", "qlab.vocabulary", "qlab.arith"]),
    ("infrastructure", ["qlab.infra", "qlab.published"]),
    ("reading .tflite files", ["qlab.tflite"]),
    ("training and QAT", ["qlab.training"]),
    ("converting", ["qlab.conversion"]),
    ("artifacts", ["qlab.artifacts"]),
    ("integer engine", ["qlab.intmath"]),
    ("analysis", ["qlab.analysis"]),
    ("measuring", ["qlab.perf"]),
    ("studies", ["qlab.studies"]),
    ("plots", ["qlab.plots"]),
    ("workshop", ["qlab_workshop"]),
    ("commands", ["qlab.commands", "qlab.__main__"]),
]
ARITHMETIC = [
    "qlab.arith",
    "qlab.intmath.fixedpoint",
    "qlab.intmath.integer_ops",
    "qlab.intmath.float_ops",
    "qlab.analysis.grid",
]


def layer_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, f"{module} is in no layer"
    return best[0]


def tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text())


def top_level_imports(module: str) -> set[str]:
    found = set()
    for node in tree(module).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {
                f"{node.module}.{a.name}"
                for a in node.names
                if f"{node.module}.{a.name}" in MODULES
            }
    return {m for m in found if m.split(".")[0] in PACKAGES}


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for dep in top_level_imports(todo.pop()):
            if dep in MODULES and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def functions(node):
    """Every def in `node`, with the class it belongs to (or None)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield child, None
        elif isinstance(child, ast.ClassDef):
            for sub in ast.iter_child_nodes(child):
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield sub, child


def own_nodes(fn):
    """The nodes of a function's body, not descending into nested defs or classes."""
    todo = list(fn.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


@pytest.mark.parametrize("module", MODULES)
def test_modules_are_small(module):
    assert house_style.formatted_lines(MODULES[module]) <= house_style.MAX_FORMATTED_LINES


def test_no_function_is_too_complex():
    found = house_style.complexities(MODULES.values())
    over = {where: n for where, n in found.items() if n > house_style.MAX_COMPLEXITY}
    assert not over, f"split by job or dispatch through a table: {over}"


def test_docstrings_are_concise():
    for package in PACKAGES:
        ratio = house_style.docstring_ratio((ROOT / package).rglob("*.py"))
        assert ratio <= house_style.MAX_DOCSTRING_RATIO, f"{package}: {ratio:.3f}"


def test_every_package_is_in_a_layer_and_the_layers_are_in_order():
    for module in MODULES:
        layer_of(module)
    ranks = [layer_of(m) for _, prefixes in LAYERS for m in prefixes if m in MODULES]
    assert ranks == sorted(ranks)


def test_the_library_never_imports_the_workshop():
    for module in MODULES:
        if module.startswith("qlab.") and layer_of(module) < layer_of("qlab_workshop"):
            assert not [d for d in closure(module) if d.startswith("qlab_workshop")], module


def test_no_utils_and_no_star_imports():
    assert not [m for m in MODULES if m.split(".")[-1] in ("utils", "util", "helpers", "misc")]
    for module in MODULES:
        for node in ast.walk(tree(module)):
            if isinstance(node, ast.ImportFrom):
                assert all(a.name != "*" for a in node.names), module


@pytest.mark.parametrize("module", MODULES)
def test_imports_flow_down_the_layers(module):
    for dep in top_level_imports(module):
        if dep in MODULES:
            assert layer_of(dep) <= layer_of(module), f"{module} imports {dep}, a layer above it"


@pytest.mark.parametrize("module", ARITHMETIC)
def test_arithmetic_never_imports_the_runtime_or_tensorflow(module):
    deps = closure(module)
    assert "qlab.tflite.runtime" not in deps, deps
    assert not any(
        d.split(".")[-1] in ("models", "train", "quantize", "converter") for d in deps
    ), deps


def test_importing_the_arithmetic_loads_neither_runtime_nor_tensorflow():
    probe = (
        f"import sys, {', '.join(ARITHMETIC)}; "
        "print(sorted(m for m in ('qlab.tflite.runtime', 'ai_edge_litert.interpreter', "
        "'tensorflow', 'tf_keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_rounding_quantize_and_dequantize_are_defined_once():
    defined = {}
    for module in MODULES:
        for fn, cls in functions(tree(module)):
            if cls is None and fn.name in (
                "round_half_away",
                "round_half_even",
                "quantize",
                "dequantize",
            ):
                defined.setdefault(fn.name, []).append(module)
    assert defined.pop("round_half_away") == ["qlab.arith"] and defined.pop("round_half_even") == [
        "qlab.arith"
    ]
    # besides the arithmetic: the two tools' whole-file entries (the converter's, AEQ's)
    assert defined == {
        "quantize": ["qlab.arith", "qlab.conversion.aeq", "qlab.conversion.to_tflite"],
        "dequantize": ["qlab.arith"],
    }
    for module in MODULES:  # real = (q - zero_point) * scale is arith's alone
        if module != "qlab.arith":
            assert not re.search(r"-\s*[\w.]*zero_point[^)]*\)\s*\*\s*[\w.]*scale", code(module)), (
                module
            )


def code(module: str) -> str:
    """The module's source without strings and comments, one space between tokens."""
    tokens = tokenize.generate_tokens(io.StringIO(MODULES[module].read_text()).readline)
    return " ".join(t.string for t in tokens if t.type not in (tokenize.STRING, tokenize.COMMENT))


def test_imports_inside_functions_only_load_tensorflow_lazily():
    for module in MODULES:
        for fn, _ in functions(tree(module)):
            for node in own_nodes(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = (
                        [a.name for a in node.names]
                        if isinstance(node, ast.Import)
                        else [node.module]
                    )
                    for name in names:
                        lazy_tf = name.split(".")[0] in TENSORFLOW
                        lazy_cluster = (
                            module in ("qlab.studies.sweep", "qlab.studies.cluster")
                            and name.split(".")[0] in CLUSTER
                        )
                        lazy_command = module == "qlab.__main__" and name.startswith(
                            "qlab.commands"
                        )
                        # scikit-learn builds the built-in data sets; cached, they load without it
                        lazy_sklearn = (
                            module == "qlab.training.data" and name.split(".")[0] == "sklearn"
                        )
                        assert lazy_tf or lazy_cluster or lazy_command or lazy_sklearn, (
                            f"{module}.{fn.name} imports {name}"
                        )


def test_the_library_never_prints():
    for module in MODULES:
        if module == "qlab.__main__":
            continue
        for node in ast.walk(tree(module)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{module} prints"


def test_nothing_but_the_command_line_imports_the_commands():
    for module in MODULES:
        if not module.startswith("qlab.commands") and module != "qlab.__main__":
            assert not [d for d in top_level_imports(module) if d.startswith("qlab.commands")], (
                module
            )
    sources = [
        p.read_text()
        for p in (ROOT / "tests").glob("*.py")
        if p.name not in ("test_cli.py", "test_layout.py")
    ]
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        sources.append("".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]))
    for text in sources:
        assert not re.search(r"qlab\.commands|from qlab import .*\bcommands\b", text)


def _public(name: str) -> bool:
    return not name.startswith("_")


@pytest.mark.parametrize("module", MODULES)
def test_every_public_definition_says_what_it_returns_and_raises(module):
    module_tree = tree(module)
    assert ast.get_docstring(module_tree), f"{module} has no docstring"
    missing = []
    for node in ast.walk(module_tree):
        if isinstance(node, ast.ClassDef) and _public(node.name) and not ast.get_docstring(node):
            missing.append(f"class {node.name}: no docstring")
    for fn, cls in functions(module_tree):
        if not _public(fn.name) or (cls is not None and not _public(cls.name)):
            continue
        where = f"{cls.name}.{fn.name}" if cls else fn.name
        doc = ast.get_docstring(fn)
        if not doc:
            missing.append(f"{where}: no docstring")
            continue
        properties = any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)
        returns = any(isinstance(n, ast.Return) and n.value is not None for n in own_nodes(fn))
        predicate = isinstance(fn.returns, ast.Name) and fn.returns.id == "bool"
        if (
            returns
            and not properties
            and not predicate
            and "Returns" not in doc
            and "Yields" not in doc
        ):
            missing.append(f"{where}: no Returns")
        if (
            any(isinstance(n, ast.Raise) for n in own_nodes(fn))
            and "Raises" not in doc
            and "raise" not in doc.lower()
        ):
            missing.append(f"{where}: no Raises")
    assert not missing, "\n".join(missing)
