"""Cache entries are written atomically and verified on read; damage is rebuilt, never loaded."""

import json

import numpy as np
import pytest

from qlab import artifacts
from qlab.infra import cache
from qlab.training import data, fit


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("QLAB_CACHE", str(tmp_path))
    return tmp_path


def test_roundtrip_and_no_temp_files_left(root):
    cache.put("thing", b"payload", {"a": 1})
    assert cache.get("thing") == b"payload"
    assert sorted(p.name for p in root.iterdir()) == ["thing.bin", "thing.json"]
    record = json.loads((root / "thing.json").read_text())
    assert record["size"] == 7 and record["config"] == {"a": 1}


@pytest.mark.parametrize(
    "damage", ["truncate", "flip", "drop_payload", "bad_record", "empty_record"]
)
def test_damaged_entry_is_rebuilt(root, damage, caplog):
    builds = []

    def build():
        builds.append(1)
        return b"0123456789" * 10

    assert cache.cached("k", {"x": 1}, build) == b"0123456789" * 10
    name = cache.key("k", {"x": 1})
    payload, record = root / f"{name}.bin", root / f"{name}.json"
    if damage == "truncate":
        payload.write_bytes(payload.read_bytes()[:37])
    elif damage == "flip":
        payload.write_bytes(b"X" + payload.read_bytes()[1:])
    elif damage == "drop_payload":
        payload.unlink()
    elif damage == "bad_record":
        record.write_text("{not json")
    else:
        record.write_text("")
    assert cache.cached("k", {"x": 1}, build) == b"0123456789" * 10
    assert len(builds) == 2
    assert "rebuilding" in caplog.text
    assert cache.cached("k", {"x": 1}, build) and len(builds) == 2  # whole again: served


def test_half_written_entry_without_record_is_invisible(root):
    (root / f"{cache.key('k', {})}.bin").write_bytes(b"half")
    assert cache.cached("k", {}, lambda: b"whole") == b"whole"


def test_failed_write_leaves_old_file(root, monkeypatch):
    target = root / "file"
    cache.write_atomic(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cache.os, "replace", broken_replace)
    with pytest.raises(OSError):
        cache.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in root.iterdir()] == ["file"]


def test_keys_separate_configs():
    assert cache.key("model", {"seed": 0}) != cache.key("model", {"seed": 1})
    assert cache.key("model", {"seed": 0}) == cache.key("model", {"seed": 0})
    assert cache.key("model", {"seed": 0}) != cache.key("tflite", {"seed": 0})


def test_cut_off_model_entry_is_retrained_to_the_same_weights(root, digits):
    config = fit.TrainConfig(epochs=1, seed=7)
    first = artifacts.trained(config, digits, progress=False)
    name = cache.key(
        "model",
        {
            **config.key(),
            "data": data.fingerprint(digits.x_train, digits.y_train),
        },
    )
    path = root / f"{name}.bin"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    again = artifacts.trained(config, digits, progress=False)
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_quantized_is_served_from_cache(root, digits, calibration):
    config = fit.TrainConfig(epochs=1, seed=7)
    a = artifacts.quantized(config, "integer_only", calibration, digits, progress=False)
    entries = len(list(root.glob("tflite-*.bin")))
    b = artifacts.quantized(config, "integer_only", calibration, digits, progress=False)
    assert a == b and entries == 1 == len(list(root.glob("tflite-*.bin")))


@pytest.mark.parametrize("kind", ["../escaped", "a/b", "", "Model", "x y", 3])
def test_a_kind_that_is_not_a_plain_name_is_refused(kind):
    with pytest.raises(ValueError, match="lowercase letters, digits and dashes"):
        cache.key(kind, {})
