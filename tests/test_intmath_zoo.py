"""The integer engine runs the zoo's CNNs bit for bit like LiteRT: depthwise conv, ADD, pooling,
CONCATENATION and MEAN, including the builtin kernels' vector loops and their scalar tails."""

import platform

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

import qlab  # noqa: F401
from qlab import artifacts, intmath
from qlab.conversion import to_tflite
from qlab.intmath import IntegerModelError, elementwise, fixedpoint, ops, pooling, simd
from qlab.intmath.litert import run_litert
from qlab.intmath.prepare import prepare
from qlab.tflite import flatbuffer
from qlab.tflite.runtime import KERNELS, Runtime
from qlab.training import data, fit

ZOO = {
    "digits_cnn": {"CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"},
    "mobilenet_mini": {"DEPTHWISE_CONV_2D", "MEAN"},
    "resnet_mini": {"ADD", "MEAN"},
    "inception_mini": {"MAX_POOL_2D", "CONCATENATION", "AVERAGE_POOL_2D"},
}
X86_KERNELS = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="the engine's builtin rules (vector loops of 8 or 16 lanes and their scalar tails) are "
    f"LiteRT's x86-64 kernels'; on {platform.machine()} LiteRT's own builtin kernels round "
    "otherwise",
)
"""For the tests that hold the engine to LiteRT's builtin kernels bit for bit."""


class ZooFiles(dict):
    """{name: (tflite, x_test, y_test)} for the zoo's CNNs, integer_only, each built when first
    asked for (so each test needs only its own model, and make test can run it beside test_zoo.py's;
    conftest.py)."""

    def __missing__(self, name):
        config = fit.TrainConfig(model=name)
        dataset = data.load(config.dataset)
        self[name] = (
            artifacts.quantized(config, "integer_only", progress=False),
            dataset.x_test,
            dataset.y_test,
        )
        return self[name]


@pytest.fixture(scope="module")
def zoo():
    return ZooFiles()


def assert_same(tflite, ours, theirs):
    assert ours.tensors.keys() == theirs.tensors.keys()
    table = intmath.compare(tflite, ours, theirs)
    assert table.different.sum() == 0, f"{ours.kernels} vs {theirs.kernels}:\n{table.to_string()}"
    for i, tensor in theirs.tensors.items():
        assert ours.tensors[i].dtype == tensor.dtype
        np.testing.assert_array_equal(ours.tensors[i], tensor)


# -- the zoo, on all 450 test images ---------------------------------------------------------------
@X86_KERNELS
@pytest.mark.parametrize("name", ZOO)
def test_every_tensor_of_a_zoo_cnn_matches_litert_builtin(zoo, name):
    tflite, x, y = zoo[name]
    engine = intmath.IntegerModel(tflite)
    assert ZOO[name] <= {step.op.name for step in engine.steps}
    q = engine.quantize_input(x)
    assert len(q) == 450
    ours, theirs = engine.run(q), run_litert(tflite, q, "builtin")
    assert_same(tflite, ours, theirs)
    accuracy = lambda run: np.mean(run.output.argmax(axis=1) == y)  # noqa: E731
    assert accuracy(ours) == accuracy(theirs) > 0.9
    # each op alone, fed LiteRT's own inputs (every input of ADD and CONCATENATION)
    assert_same(tflite, engine.run(q, inputs_from=theirs.tensors), theirs)


@pytest.mark.parametrize("name", ["mobilenet_mini", "resnet_mini", "inception_mini"])
def test_zoo_cnns_match_litert_reference_and_refuse_xnnpack(zoo, name):
    tflite, x, _ = zoo[name]
    q = intmath.IntegerModel(tflite).quantize_input(x)
    assert_same(
        tflite, intmath.run_integer(tflite, q, "reference"), run_litert(tflite, q, "reference")
    )
    with pytest.raises(
        IntegerModelError,
        match=r"follows the builtin and reference kernels' rules only .*'xnnpack'",
    ):
        intmath.IntegerModel(tflite, "xnnpack")


@pytest.mark.parametrize("name", ["resnet_mini"])
def test_float_shortcut_runs_the_new_ops_within_one_lsb(zoo, name):
    tflite, x, _ = zoo[name]
    engine = intmath.IntegerModel(tflite)
    q = engine.quantize_input(x)
    builtin = engine.run(q)
    local = intmath.compare(tflite, engine.run_float_shortcut(q, builtin.tensors), builtin)
    assert local.max_lsb.max() <= 1 and local.different.sum() > 0


# -- options the zoo does not use ------------------------------------------------------------------
@X86_KERNELS
def test_depth_multiplier_paddings_strides_pools_concat_and_keepdims_mean(calibration, digits):
    import tensorflow as tf
    import tf_keras as keras

    layers = keras.layers
    inputs = keras.Input(shape=data.IMAGE_SHAPE)
    x = layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    a = layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, activation="relu")(
        x
    )  # VALID, 12 channels
    b = layers.DepthwiseConv2D((2, 3), strides=2, padding="same", activation=tf.nn.relu6)(x)
    b = layers.MaxPooling2D(3, strides=2, padding="same")(
        layers.AveragePooling2D(3, 1, padding="same")(b)
    )
    c = layers.Conv2D(12, 1)(layers.AveragePooling2D(3, strides=2)(x))
    s = layers.Activation("relu")(layers.Add()([a, c]))
    pooled = [
        layers.Flatten()(layers.GlobalAveragePooling2D(keepdims=True)(s)),
        layers.GlobalAveragePooling2D()(b),
    ]
    outputs = layers.Dense(10, activation="softmax")(layers.Concatenate()(pooled))
    tflite = to_tflite.quantize(keras.Model(inputs, outputs), "integer_only", calibration)
    engine = intmath.IntegerModel(tflite)
    depthwise = [step.params for step in engine.steps if step.op.name == "DEPTHWISE_CONV_2D"]
    assert sorted((p["padding"], p["weights"].shape[3]) for p in depthwise) == [
        ("SAME", 6),
        ("VALID", 12),
    ]
    means = [step.params["spatial"] for step in engine.steps if step.op.name == "MEAN"]
    assert sorted(means) == [False, True]  # keep_dims (the builtin spatial path) and not
    q = engine.quantize_input(digits.x_test)
    for kernels in ("builtin", "reference"):
        assert_same(tflite, intmath.run_integer(tflite, q, kernels), run_litert(tflite, q, kernels))


# -- the builtin kernels' vector loops and scalar tails --------------------------------------------
def one_layer_model(layer, shape, seed=0):
    import tf_keras as keras

    inputs = keras.Input(shape=shape)
    rng = np.random.default_rng(seed)
    tflite = to_tflite.quantize(
        keras.Model(inputs, layer(inputs)),
        "integer_only",
        rng.normal(size=(64, *shape)).astype(np.float32),
    )
    return tflite, rng.integers(-128, 128, (3000, *shape)).astype(np.int8)


@X86_KERNELS
def test_depthwise_rounds_eight_channels_ties_up_and_the_rest_ties_away():
    import tf_keras as keras

    tflite, q = one_layer_model(
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (6, 6, 6)
    )
    engine = intmath.IntegerModel(tflite)
    step, p = engine.steps[0], engine.steps[0].params
    acc = engine.accumulate(step, q)
    litert = Runtime(tflite, kernels="builtin").invoke_raw(q)
    for lanes in (0, 12):  # all channels ties away / all ties up: each is wrong somewhere
        vector = simd.vector_part(12, lanes)
        alone = simd.multiply_by_quantized_multiplier_simd(acc, p["multiplier"], p["shift"], vector)
        assert np.any(np.clip(alone + p["output_zero_point"], -128, 127) != litert)
    for kernels in ("builtin", "reference"):
        np.testing.assert_array_equal(
            intmath.run_integer(tflite, q, kernels).output,
            Runtime(tflite, kernels=kernels).invoke_raw(q),
        )


@X86_KERNELS
@pytest.mark.parametrize("keepdims", [True, False])
def test_mean_matches_litert_and_keepdims_rounds_sixteen_channels_ties_up(keepdims):
    import tf_keras as keras

    tflite, q = one_layer_model(keras.layers.GlobalAveragePooling2D(keepdims=keepdims), (4, 4, 20))
    step = intmath.IntegerModel(tflite).steps[0]
    assert step.params["spatial"] == keepdims
    builtin = Runtime(tflite, kernels="builtin").invoke_raw(q)
    if keepdims:  # the spatial path's tail (channels 16..19) rounds ties away
        for lanes in (0, 1):
            assert np.any(
                pooling.mean_spatial(q, *step.params["spatial_rescale"], lanes) != builtin
            )
    for kernels in ("builtin", "reference"):
        np.testing.assert_array_equal(
            intmath.run_integer(tflite, q, kernels).output,
            Runtime(tflite, kernels=kernels).invoke_raw(q),
        )


def one_op_model(
    op_name: str, n: int, scales, zero_points, types=("INT8", "INT8", "INT8")
) -> bytes:
    """A .tflite of one ADD (two (n,) inputs) or QUANTIZE (one), written with LiteRT's schema."""
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, op_name)
    graph = schema.SubGraphT()
    graph.tensors = []
    for i, (scale, zero_point, kind) in enumerate(zip(scales, zero_points, types)):
        tensor = schema.TensorT()
        tensor.shape, tensor.type, tensor.buffer, tensor.name = (
            [n],
            getattr(schema.TensorType, kind),
            0,
            f"t{i}",
        )
        tensor.quantization = schema.QuantizationParametersT()
        tensor.quantization.scale, tensor.quantization.zeroPoint = [float(scale)], [int(zero_point)]
        graph.tensors.append(tensor)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, list(range(len(scales) - 1)), [len(scales) - 1]
    if op_name == "ADD":
        op.builtinOptionsType, op.builtinOptions = (
            schema.BuiltinOptions.AddOptions,
            schema.AddOptionsT(),
        )
    graph.operators, graph.inputs, graph.outputs = [op], op.inputs, op.outputs
    model = schema.ModelT()
    model.version, model.operatorCodes, model.buffers, model.subgraphs = (
        3,
        [code],
        [schema.BufferT()],
        [graph],
    )
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def invoke(tflite: bytes, kernels: str, *inputs) -> np.ndarray:
    interpreter = Interpreter(
        model_content=tflite, experimental_op_resolver_type=KERNELS[kernels], num_threads=1
    )
    interpreter.allocate_tensors()
    for detail, values in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], values)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@X86_KERNELS
def test_add_follows_the_vector_rule_then_the_scalar_rule_for_the_tail():
    scales, zero_points = np.float32([0.025307065, 0.061947815, 0.10566813]), (-121, 44, -48)
    # the one pair of int8 inputs on these grids where the two rules differ, first and last
    a = np.array([70] + list(range(-128, 128)) * 4 + [70], np.int8)
    b = np.array([-11] + list(range(127, -129, -1)) * 4 + [-11], np.int8)
    assert len(a) % 16 == 2  # the last two values go through the scalar tail
    tflite = one_op_model("ADD", len(a), scales, zero_points)
    step = prepare(flatbuffer.read(tflite), flatbuffer.read(tflite).ops[0])
    p = step.params
    vector, scalar = (
        elementwise.add(
            a, b, p["zero_points"], p["rescale"], p["output_zero_point"], -128, 127, lanes
        )
        for lanes in (len(a), 0)
    )
    assert vector[0] != scalar[0] and np.count_nonzero(vector != scalar) == 2
    for kernels in ("builtin", "reference"):
        litert = invoke(tflite, kernels, a, b)
        np.testing.assert_array_equal(ops.apply(step, [a, b], kernels), litert)
        assert (
            litert[0] == (vector[0] if kernels == "builtin" else scalar[0])
            and litert[-1] == scalar[-1]
        )


@X86_KERNELS
def test_requantizing_to_uint8_rounds_sixteen_values_ties_up_and_the_tail_ties_away():
    q = np.arange(120, -129, -1).astype(
        np.int8
    )  # 249 values: the last 9 (-120 .. -128) in the scalar tail
    tflite = one_op_model("QUANTIZE", len(q), np.float32([0.05, 0.2]), (2, 128), ("INT8", "UINT8"))
    runs = {
        kernels: intmath.run_integer(tflite, q, kernels).output
        for kernels in ("builtin", "reference")
    }
    for kernels, ours in runs.items():
        assert ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, invoke(tflite, kernels, q))
    # (q − 2) / 4 rounds two ways on some negative halves: up in the vector loop, away in its tail
    p = intmath.IntegerModel(tflite).steps[0].params
    up, away = (
        fixedpoint.multiply_by_quantized_multiplier(
            q.astype(np.int64) - 2, p["multiplier"], p["shift"], ties
        )
        for ties in ("up", "away")
    )
    assert np.array_equal(
        runs["builtin"] != runs["reference"], (up != away) & (np.arange(len(q)) < 240)
    )
    assert (up != away)[240:].any()


# -- what the engine refuses -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["inception_mini"])
def test_a_concatenation_that_would_requantize_is_refused(zoo, name):
    model = schema.ModelT.InitFromPackedBuf(bytearray(zoo[name][0]), 0)
    graph = model.subgraphs[0]
    concat = next(
        op
        for op in graph.operators
        if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.CONCATENATION
    )
    graph.tensors[concat.inputs[0]].quantization.scale = [0.1]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(
        IntegerModelError,
        match=r"CONCATENATION \(op \d+\) has inputs on other grids than its output",
    ):
        intmath.IntegerModel(bytes(builder.Output()))
