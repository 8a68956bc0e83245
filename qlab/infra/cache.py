"""Content-addressed artifacts (trained weights, .tflite bytes) under data/cache/.

An entry is a payload file plus a small JSON record of what produced it and the
payload's SHA-256. Both are written atomically (temp file + rename), the record last,
so an entry is either whole or absent. On read the hash is checked: a truncated or
corrupt entry is reported, deleted and rebuilt, never loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)
FORMAT = 1  # bump to invalidate every entry when the payload layout changes
REPO_ROOT = Path(__file__).resolve().parents[1]
_override: list[Path] = []  # set by use(); innermost last


def cache_dir() -> Path:
    """The folder in use: see use(); else $QLAB_CACHE, data/cache/ of this checkout, ~/.cache/qlab.

    Returns:
        the cache folder's path (it may not exist yet).
    """
    if _override:
        return _override[-1]
    if os.environ.get("QLAB_CACHE"):
        return Path(os.environ["QLAB_CACHE"])
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / "data" / "cache"
    return Path.home() / ".cache" / "qlab"


def key(kind: str, config: dict) -> str:
    """A stable name for the artifact of `kind` built from `config`, under this TensorFlow.

    Returns:
        "<kind>-<20 hex digits of the SHA-256 of kind, FORMAT, TF version and config>".
    """
    record = {"kind": kind, "format": FORMAT, "tensorflow": version("tensorflow"), "config": config}
    text = json.dumps(record, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def write_atomic(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` so that readers see the old file or the new one, never half.

    The file gets the usual permissions (0666 less the umask), as `open` would give it.

    Raises:
        OSError: the folder cannot be created or written; the old file is left as it was.
    """
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
    """The payload of entry `name` if it is whole and matches its recorded hash.

    Returns:
        the payload bytes, or None if the entry is absent; a damaged entry is logged (warning),
        deleted, and reported as absent.
    """
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
    """Store `payload` as entry `name`; the record (written last) makes it visible.

    Raises:
        OSError: the cache folder cannot be written.
    """
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
    """Use `root` as the cache inside the block, e.g. a scratch folder to rebuild everything once."""
    _override.append(Path(root))
    try:
        yield Path(root)
    finally:
        _override.pop()


@contextlib.contextmanager
def scratch():
    """A fresh, empty cache for the block, deleted afterwards: nothing is read from or written
    to the shared one, and each artifact is still built only once inside the block."""
    with tempfile.TemporaryDirectory(prefix="qlab-cache-") as tmp, use(tmp):
        yield Path(tmp)


def cached(
    kind: str,
    config: dict,
    build: Callable[[], T],
    dump: Callable[[T], bytes] | None = None,
    load: Callable[[bytes], T] | None = None,
) -> T:
    """The artifact for (`kind`, `config`): from the cache if whole, else built and stored.

    Args:
        build: makes the artifact.
        dump: the artifact as bytes to store (default: it is bytes already).
        load: the artifact from stored bytes (default: the bytes themselves). If it raises
            ValueError, KeyError or OSError, the entry is stale: it is deleted and rebuilt.

    Returns:
        the artifact, loaded or built.

    Raises:
        OSError: the cache folder cannot be written; whatever `build` raises.
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
