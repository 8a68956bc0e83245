"""`make smoke`: qlab's core on a second Python version, in .venv-smoke (no extras: no Jupyter, no
pytest). Imports qlab, trains a one-epoch digits CNN in a scratch cache, converts it to float32 and
integer_only, and measures accuracy, latency and size of both on LiteRT. Prints what it measured and
each check, last `smoke: N passed, N failed`; exits non-zero if a check fails or anything raises.

Run it as `python tests/smoke.py` (not a pytest file: the smoke venv has no pytest)."""

import os
import platform
import sys
import tempfile
import time

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ log: fatal errors only
started = time.perf_counter()

from qlab.infra import quiet  # noqa: E402

with quiet.stderr():  # TensorFlow's start-up lines
    from qlab import artifacts
    from qlab.conversion import to_tflite
    from qlab.infra import cache
    from qlab.tflite import measure
    from qlab.training import data, fit

imported = time.perf_counter()


def run() -> tuple[dict, float]:
    """Train, convert, measure in a scratch cache.

    Returns:
        ({mode: qlab.tflite.measure.measure's row}, the time training ended).
    """
    with tempfile.TemporaryDirectory(prefix="qlab-smoke-") as scratch, cache.use(scratch):
        digits = data.load()
        model = artifacts.trained(fit.TrainConfig(epochs=1), digits, progress=False)  # trained here
        trained = time.perf_counter()
        files = {
            mode: to_tflite.quantize(model, mode, data.calibration(digits.x_train))
            for mode in ("float32", "integer_only")
        }
        return {
            mode: measure.measure(tflite, digits.x_test, digits.y_test, runs=50)
            for mode, tflite in files.items()
        }, trained


held_text = ""
try:
    with (
        quiet.stderr() as held
    ):  # TensorFlow's and LiteRT's notices (no CUDA, the XNNPACK delegate)
        try:
            rows, trained = run()
        finally:
            held_text = held.read()
except BaseException:
    sys.stderr.write(held_text)  # shown only when something failed
    raise

for mode, row in rows.items():
    print(
        f"{mode:13s} accuracy {100 * row['accuracy']:6.2f} %  latency {row['latency_us']:7.1f} µs "
        f"(median of {row['latency_runs']})  size {row['size_bytes']:,} bytes"
    )
float32, int8 = rows["float32"], rows["integer_only"]
checks = {
    "one epoch leaves the CNN well above chance (10 %)": float32["accuracy"] > 0.3,
    "int8 classifies like its float32 model (within 5 pp)": abs(
        int8["accuracy"] - float32["accuracy"]
    )
    < 0.05,
    "the int8 file is below 0.4x float32's (1-byte weights)": int8["size_bytes"]
    < 0.4 * float32["size_bytes"],
    "both files run on LiteRT and take time": int8["latency_us"] > 0 and float32["latency_us"] > 0,
}
for check, ok in checks.items():
    print(f"{'ok    ' if ok else 'FAILED'} {check}")
print(
    f"Python {platform.python_version()} ({sys.executable}): import {imported - started:.1f} s, "
    f"training {trained - imported:.1f} s, all {time.perf_counter() - started:.1f} s"
)
failed = sum(not ok for ok in checks.values())
print(f"smoke: {len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
