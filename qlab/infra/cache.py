"""Content-addressed artifacts (trained weights, .tflite bytes) under data/cache/.

An entry is a payload file plus a JSON record of what produced it and the payload's SHA-256, both
written atomically, the record last. A truncated or corrupt entry is reported and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)
FORMAT = 1  # bump to invalidate every entry when the payload layout changes
REPO_ROOT = Path(__file__).resolve().parents[2]
_override: list[Path] = []  # set by use(); innermost last


def cache_dir() -> Path:
    """Returns the cache folder (maybe not there yet): `use()`'s, else $QLAB_CACHE, data/cache/
    of this checkout, ~/.cache/qlab."""
    if _override:
        return _override[-1]
    if os.environ.get("QLAB_CACHE"):
        return Path(os.environ["QLAB_CACHE"])
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / "data" / "cache"
    return Path.home() / ".cache" / "qlab"


def key(kind: str, config: dict) -> str:
    """Returns "<kind>-<20 hex digits of the SHA-256 of kind, FORMAT, TF version and config>".

    Raises ValueError for a kind that is not lowercase letters, digits and dashes (it names a file
    in the cache folder)."""
    if not isinstance(kind, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", kind):
        raise ValueError(f"a cache kind is lowercase letters, digits and dashes, got {kind!r}")
    record = {"kind": kind, "format": FORMAT, "tensorflow": version("tensorflow"), "config": config}
    text = json.dumps(record, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def write_atomic(path: Path, payload: bytes) -> None:
    """Writes `payload` so that readers see the old file or the new one, never half; mode 0666
    less the umask. Raises OSError if the folder cannot be written (the old file is kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _paths(name: str) -> tuple[Path, Path]:
    root = cache_dir()
    return root / f"{name}.bin", root / f"{name}.json"


def get(name: str) -> bytes | None:
    """Returns the payload of entry `name`, or None if absent; a damaged entry is logged,
    deleted, and reported as absent."""
    payload_path, record_path = _paths(name)
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text())
        payload = payload_path.read_bytes()
    except (OSError, ValueError):
        payload, record = None, {}
    if payload is None or hashlib.sha256(payload).hexdigest() != record.get("sha256"):
        log.warning("cache entry %s is corrupt or incomplete; rebuilding it", name)
        remove(name)
        return None
    return payload


def put(name: str, payload: bytes, config: dict | None = None) -> None:
    """Stores `payload` as entry `name`; raises OSError if the cache cannot be written."""
    payload_path, record_path = _paths(name)
    write_atomic(payload_path, payload)
    record = {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload), "config": config}
    write_atomic(record_path, json.dumps(record, indent=1, sort_keys=True, default=str).encode())


def remove(name: str) -> None:
    """Delete entry `name` (payload and record), if it exists."""
    for path in _paths(name):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def use(root: str | Path):
    """Uses `root` as the cache inside the block (e.g. a scratch folder to rebuild everything)."""
    _override.append(Path(root))
    try:
        yield Path(root)
    finally:
        _override.pop()


@contextlib.contextmanager
def scratch():
    """A fresh, empty cache for the block, deleted afterwards; the shared one is untouched."""
    with tempfile.TemporaryDirectory(prefix="qlab-cache-") as tmp, use(tmp):
        yield Path(tmp)


def cached(
    kind: str,
    config: dict,
    build: Callable[[], T],
    dump: Callable[[T], bytes] | None = None,
    load: Callable[[bytes], T] | None = None,
) -> T:
    """Returns the artifact for (`kind`, `config`), loaded from the cache or built and stored.

    `dump`/`load` convert to and from bytes (default: it is bytes); an entry `load` refuses with
    ValueError, KeyError or OSError is rebuilt. Raises OSError if the cache cannot be written, or
    whatever `build` raises.
    """
    name = key(kind, config)
    payload = get(name)
    if payload is not None:
        if load is None:
            return payload
        try:
            return load(payload)
        except (ValueError, KeyError, OSError):
            log.warning("cache entry %s does not fit what it is for; rebuilding it", name)
            remove(name)
    artifact = build()
    put(name, artifact if dump is None else dump(artifact), {"kind": kind, **config})
    return artifact
