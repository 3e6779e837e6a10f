"""The on-disk compile cache: one folder per key holding the compiled files and a manifest.

Entries are written to a temporary folder and renamed into place, so a reader never sees a
half-written one. The manifest records each file's SHA-256; an entry whose files are
missing or do not match (a crash, a full disk, a hand edit) is deleted and reported as a miss; so is one whose
manifest does not match its own digest (its fields, such as the shared memory a launch asks for, are read as
they are). Entries are readable by whoever may read a folder made under the process's umask.
The folder is `SKC_CACHE_DIR`, else `~/.cache/skc`; `set_cache_dir` overrides both.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

MANIFEST = "manifest.json"
_override: list[Optional[str]] = [None]


def cache_dir() -> Path:
    # (an empty or relative XDG_CACHE_HOME is unset, as the XDG spec says: not a folder `skc` wherever the process runs)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = _override[0] or os.environ.get("SKC_CACHE_DIR") or os.path.join(
        xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache"), "skc")
    return Path(root)


def set_cache_dir(path) -> None:
    """Use `path` for the compile cache (None goes back to SKC_CACHE_DIR / ~/.cache/skc)."""
    _override[0] = str(path) if path is not None else None


def cache_enabled() -> bool:
    """SKC_CACHE unset or anything but 0, off, false or no (any case): the compile cache and the autotuner's winners
    are kept on disk."""
    return os.environ.get("SKC_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


@dataclass
class Entry:
    meta: dict
    files: dict  # name -> bytes


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_digest(record: dict) -> str:
    """The digest of a manifest's fields but its own `digest`."""
    return _digest(json.dumps({k: v for k, v in record.items() if k != "digest"}, sort_keys=True).encode())


def _umask() -> int:
    mask = os.umask(0o022)   # (read once: setting it back at once)
    os.umask(mask)
    return mask


_FOLDER_MODE = 0o777 & ~_umask()   # what mkdir gives; mkdtemp's folders are 0700 (other users could not read)
FILE_MODE = _FOLDER_MODE & 0o666    # what open gives a new file; mkstemp's are 0600


def _entry_path(key: str) -> Path:
    return cache_dir() / key[:2] / key


def load(key: str) -> Optional[Entry]:
    """The entry for key, or None when there is none or anything in it is unexpected (then it is removed,
    so the compile that follows writes it anew). Only regular files are opened: a FIFO or a device in
    an entry must not block the compile."""
    path = _entry_path(key)
    try:
        meta = json.loads(read_regular(path / MANIFEST))
        if not isinstance(meta, dict):
            raise ValueError("the manifest is not an object")
        if meta.get("digest") != _record_digest(meta):
            raise ValueError("the manifest does not match its digest")
        if meta.get("key") != key:   # (an entry copied or moved under another key's folder: another kernel's code)
            raise ValueError("the manifest is another key's")
        listed = meta.get("files")
        if not isinstance(listed, dict) or not listed:
            raise ValueError("the manifest lists no files")
        files = {}
        for name, digest in listed.items():
            if not isinstance(name, str) or not isinstance(digest, str) or not _plain_name(name):
                raise ValueError(f"the manifest lists a bad file entry {name!r}")
            data = read_regular(path / name)
            if _digest(data) != digest:
                raise ValueError(f"{name} does not match its digest")
            files[name] = data
        return Entry(meta, files)
    except FileNotFoundError:
        if os.path.lexists(path):
            discard(key)
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, MemoryError):
        discard(key)
        return None


MAX_FILE_BYTES = 1 << 30   # what load reads of one file of an entry at most


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..", MANIFEST) and "/" not in name and "\\" not in name \
        and "\0" not in name


def read_regular(path: Path) -> bytes:
    """The bytes of path if it is a regular file (not a link, FIFO, device or folder); OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise OSError(f"{path} is not a regular file")
        if found.st_size > MAX_FILE_BYTES:   # (no kernel's code is that large: a damaged entry, read whole it failed)
            raise OSError(f"{path} holds {found.st_size} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def discard(key: str) -> None:
    """Remove the entry for key, whatever is in its place (a folder, a file, a link)."""
    _discard(_entry_path(key))


def store(key: str, meta: dict, files: dict) -> None:
    """Write an entry atomically; failures (read-only disk, ...) are ignored: the cache is an optimization."""
    path = _entry_path(key)
    staging = None
    try:
        if os.path.lexists(path.parent) and (path.parent.is_symlink() or not path.parent.is_dir()):
            path.parent.unlink()  # a plain file (a link, a FIFO: anything but a folder) where the shard folder belongs
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_staging(path.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=path.parent))
        record = dict(meta)
        record["key"] = key   # (load checks it: an entry under another key's folder is no hit)
        record["files"] = {}
        for name, data in files.items():
            (staging / name).write_bytes(data)
            record["files"][name] = _digest(data)
        record["digest"] = _record_digest(record)
        (staging / MANIFEST).write_text(json.dumps(record, indent=1, sort_keys=True))
        os.chmod(staging, _FOLDER_MODE)
        if os.path.lexists(path):
            _discard(path)
        os.rename(staging, path)
    except OSError:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


STAGING_LEFT_SECONDS = 3600   # a staging folder this old is a store's that was killed (a store takes milliseconds)


def _sweep_staging(shard: Path):
    """Remove the staging folders a store killed midway (the process ended between mkdtemp and the rename) left in
    a shard: they are never read, and each held a kernel's files. Ones younger than an hour are left to their
    writers."""
    try:
        names = [name for name in os.listdir(shard) if name.startswith(".")]
    except OSError:
        return
    for name in names:
        staging = shard / name
        try:
            old = os.lstat(staging).st_mtime < time.time() - STAGING_LEFT_SECONDS
        except OSError:
            continue
        if old:
            _discard(staging)


def _discard(path: Path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def clear() -> None:
    shutil.rmtree(cache_dir(), ignore_errors=True)
