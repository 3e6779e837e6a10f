"""The on-disk compile cache: one folder per key holding the compiled files and a manifest.

Entries are written to a temporary folder and renamed into place, so a reader never sees a
half-written one. The manifest records each file's SHA-256; an entry whose files are
missing or do not match (a crash, a full disk, a hand edit) is deleted and reported as a miss.
The folder is `SKC_CACHE_DIR`, else `~/.cache/skc`; `set_cache_dir` overrides both.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

MANIFEST = "manifest.json"
_override: list[Optional[str]] = [None]


def cache_dir() -> Path:
    root = _override[0] or os.environ.get("SKC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "skc")
    return Path(root)


def set_cache_dir(path) -> None:
    """Use `path` for the compile cache (None goes back to SKC_CACHE_DIR / ~/.cache/skc)."""
    _override[0] = str(path) if path is not None else None


def cache_enabled() -> bool:
    return os.environ.get("SKC_CACHE", "1") not in ("0", "off", "false")


@dataclass
class Entry:
    meta: dict
    files: dict  # name -> bytes


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry_path(key: str) -> Path:
    return cache_dir() / key[:2] / key


def load(key: str) -> Optional[Entry]:
    """The entry for key, or None when there is none or it is damaged (then it is removed)."""
    path = _entry_path(key)
    manifest = path / MANIFEST
    try:
        meta = json.loads(manifest.read_text())
        files = {}
        for name, digest in meta["files"].items():
            data = (path / name).read_bytes()
            if _digest(data) != digest:
                raise ValueError(f"{name} does not match its digest")
            files[name] = data
        return Entry(meta, files)
    except FileNotFoundError:
        if path.exists():
            _discard(path)
        return None
    except (OSError, ValueError, KeyError, TypeError):
        _discard(path)
        return None


def store(key: str, meta: dict, files: dict) -> None:
    """Write an entry atomically; failures (read-only disk, ...) are ignored: the cache is an optimization."""
    path = _entry_path(key)
    staging = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=path.parent))
        record = dict(meta)
        record["files"] = {}
        for name, data in files.items():
            (staging / name).write_bytes(data)
            record["files"][name] = _digest(data)
        (staging / MANIFEST).write_text(json.dumps(record, indent=1, sort_keys=True))
        if path.exists():
            _discard(path)
        os.rename(staging, path)
    except OSError:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _discard(path: Path):
    shutil.rmtree(path, ignore_errors=True)


def clear() -> None:
    shutil.rmtree(cache_dir(), ignore_errors=True)
