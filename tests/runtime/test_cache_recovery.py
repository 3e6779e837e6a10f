"""Cache entries that hold anything unexpected are misses that the next compile rewrites: never an
error, never a hang, never a permanent failure."""
import json
import os
import shutil
import stat
import threading

import pytest

import skc
from skc import compiler
from skc.runtime import cache
from skc.target import get_target


@skc.kernel(block=64)
def scaled(x: skc.Ptr[skc.f32], n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        x[i] = x[i] * 3.0


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("SKC_CACHE", raising=False)
    cache.set_cache_dir(tmp_path)
    yield tmp_path
    cache.set_cache_dir(None)


def compile_fresh():
    """A compile as a new process makes it: through the disk cache, past the kernel's in-memory one."""
    spec = scaled.specialize(scaled._abstract_arguments((), {}), (64, 1, 1))
    return compiler.compile_kernel(scaled.fn, spec, get_target("sm_90a"))


def _entry(root):
    manifests = list(root.rglob("manifest.json"))
    assert len(manifests) == 1, manifests
    return manifests[0].parent


def _edit_manifest(entry, change):
    path = entry / "manifest.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _drop_ptx(meta):
    del meta["files"]["kernel.ptx"]


DAMAGE = {
    "files_empty": lambda entry: _edit_manifest(entry, lambda m: m.update(files=[])),
    "files_null": lambda entry: _edit_manifest(entry, lambda m: m.update(files=None)),
    "files_not_names": lambda entry: _edit_manifest(entry, lambda m: m.update(files={"../../x": "0" * 64})),
    "deps_null": lambda entry: _edit_manifest(entry, lambda m: m.update(deps=None)),
    "deps_malformed": lambda entry: _edit_manifest(entry, lambda m: m.update(deps={"functions": [[1]]})),
    "deps_bad_rows": lambda entry: _edit_manifest(
        entry, lambda m: m.update(deps={"functions": [None], "helpers": [], "globals": [[1, 2]]})),
    "manifest_a_list": lambda entry: (entry / "manifest.json").write_text("[]"),
    "no_ptx": lambda entry: (_edit_manifest(entry, _drop_ptx), (entry / "kernel.ptx").unlink()),
    "shared_bytes_text": lambda entry: _edit_manifest(entry, lambda m: m.update(shared_bytes="0")),
    "entry_is_a_file": lambda entry: (shutil.rmtree(entry), entry.write_text("not a folder")),
    "shard_is_a_file": lambda entry: (shutil.rmtree(entry.parent), entry.parent.write_text("not a folder")),
    # (a FIFO there made every store fail at mkdir: that shard's kernels were compiled anew every time, no error)
    "shard_is_a_fifo": lambda entry: (shutil.rmtree(entry.parent), os.mkfifo(entry.parent)),
    "manifest_is_a_folder": lambda entry: ((entry / "manifest.json").unlink(), (entry / "manifest.json").mkdir()),
    "ptx_is_a_fifo": lambda entry: ((entry / "kernel.ptx").unlink(), os.mkfifo(entry / "kernel.ptx")),
    "manifest_is_a_fifo": lambda entry: ((entry / "manifest.json").unlink(), os.mkfifo(entry / "manifest.json")),
    "ptx_is_a_link": lambda entry: ((entry / "kernel.ptx").rename(entry / "elsewhere"),
                                    (entry / "kernel.ptx").symlink_to(entry / "elsewhere")),
}


def _compile_within(seconds: float):
    """compile_fresh(), failing (not hanging) if it blocks: a FIFO opened for reading waits for a writer."""
    result = {}

    def work():
        try:
            result["kernel"] = compile_fresh()
        except BaseException as e:  # reported below
            result["error"] = e

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the compile blocked on something in the cache entry"
    if "error" in result:
        raise result["error"]
    return result["kernel"]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_an_unexpected_entry_is_a_miss_and_is_rewritten(cache_dir, damage):
    if "fifo" in damage and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    first = compile_fresh()
    assert first.from_cache is False
    assert compile_fresh().from_cache is True
    DAMAGE[damage](_entry(cache_dir))
    again = _compile_within(60)
    assert again.from_cache is False
    assert again.asm("ptx") == first.asm("ptx")
    healed = _compile_within(60)
    assert healed.from_cache is True
    assert healed.asm("ptx") == first.asm("ptx")
    assert healed.ir("tile") == first.ir("tile")


def test_a_load_never_opens_anything_but_regular_files(cache_dir):
    key = "ef" * 32
    cache.store(key, {"name": "k"}, {"kernel.ptx": b"text"})
    entry = cache_dir / "ef" / key
    (entry / "kernel.ptx").unlink()
    os.mkfifo(entry / "kernel.ptx")
    assert cache.load(key) is None
    assert not entry.exists()  # the damaged entry is gone, so the next store starts clean
    cache.store(key, {"name": "k"}, {"kernel.ptx": b"text"})
    assert cache.load(key).files == {"kernel.ptx": b"text"}


@pytest.mark.skipif(not __import__("skc.backends.ptx_tools", fromlist=["x"]).have_nvjitlink(),
                    reason="nvJitLink is not installed")
def test_a_cached_kernel_reports_its_resources(cache_dir):
    """An entry stored before the kernel's cubin was made holds no resources; a kernel loaded from it makes the
    cubin when asked (it reported {} before: found in review, 2026-12-01)."""
    first = compile_fresh()
    expected = first.resources
    assert expected.get("registers"), expected
    again = compile_fresh()
    assert again.from_cache is True
    assert again.resources == expected



def test_a_manifest_edited_to_other_valid_fields_is_a_miss(cache_dir):
    """Its fields were read as they were: shared_bytes edited from 256 to 16 was served (a launch with too little
    dynamic shared memory); the manifest's own digest now tells."""
    first = compile_fresh()
    manifest = _entry(cache_dir) / "manifest.json"
    record = json.loads(manifest.read_text())
    record["shared_bytes"] = record["shared_bytes"] + 16
    manifest.write_text(json.dumps(record))
    again = compile_fresh()
    assert not again.from_cache and again.shared_bytes == first.shared_bytes
    assert compile_fresh().from_cache   # (written anew)


def test_an_entry_is_readable_as_a_folder_made_under_the_umask_is(cache_dir):
    """mkdtemp's 0700 folder was renamed into place as it was: a cache shared by users was unreadable to others."""
    compile_fresh()
    assert stat.S_IMODE(os.stat(_entry(cache_dir)).st_mode) == cache._FOLDER_MODE


def test_an_entry_under_another_keys_folder_is_a_miss(cache_dir):
    """A helper's search (sixtieth session): an entry copied or moved into another key's folder (a sync tool, a copy
    by hand) was served there: its manifest said which kernel and target, not which key. It now names its key."""
    key = compile_fresh().key
    entry = cache.load(key)
    assert entry is not None and entry.meta["key"] == key
    cache.store("f" * 64, entry.meta, entry.files)   # (written as the other key's: the manifest names that one)
    assert cache.load("f" * 64).meta["key"] == "f" * 64
    moved = cache_dir / "ee" / ("e" * 64)
    shutil.copytree(cache_dir / key[:2] / key, moved)
    assert cache.load("e" * 64) is None and not moved.exists()   # (a miss, and the entry removed)


def test_an_entry_file_too_large_to_be_a_kernels_is_a_miss(cache_dir, monkeypatch):
    """A damaged entry of a huge (sparse) file was read whole: MemoryError in every later process."""
    first = compile_fresh()
    monkeypatch.setattr(cache, "MAX_FILE_BYTES", 64)   # (the real bound is 1 GiB: a file past it stands in)
    assert cache.load(first.key) is None
    monkeypatch.undo()
    again = compile_fresh()
    assert not again.from_cache and again.asm("ptx") == first.asm("ptx")
    assert compile_fresh().from_cache


def test_a_memory_error_while_reading_an_entry_is_a_miss(cache_dir, monkeypatch):
    key = compile_fresh().key
    monkeypatch.setattr(cache, "read_regular", lambda path: (_ for _ in ()).throw(MemoryError()))
    assert cache.load(key) is None


def test_a_killed_stores_staging_folder_is_swept_by_a_later_store(cache_dir):
    """A process killed between a store's mkdtemp and its rename left the staging folder (a kernel's files, never
    read) in the shard for good. A store sweeps the shard's staging folders older than an hour; a young one, which
    another process may be writing, is left."""
    key_a, key_b = "ab" + "1" * 62, "ab" + "2" * 62
    shard = cache_dir / "ab"
    shard.mkdir()
    old, young = shard / f".{key_a[:8]}-killed", shard / f".{key_a[:8]}-writing"
    for folder in (old, young):
        folder.mkdir()
        (folder / "kernel.cubin").write_bytes(b"\0" * 64)
    hour_ago = os.path.getmtime(old) - cache.STAGING_LEFT_SECONDS - 5
    os.utime(old, (hour_ago, hour_ago))
    cache.store(key_b, {"kind": "test"}, {"code.bin": b"code"})
    assert not old.exists() and young.exists()
    assert cache.load(key_b).files == {"code.bin": b"code"}
    assert sorted(p.name for p in shard.iterdir()) == sorted([young.name, key_b])
