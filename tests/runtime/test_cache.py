"""The on-disk compile cache: hits in a new process, invalidation by any inlined source or global
the kernel read, and damaged entries recompiled rather than trusted."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from skc.backends import ptx_tools
from skc.runtime import cache

pytestmark = pytest.mark.skipif(not ptx_tools.have_nvjitlink(), reason="nvJitLink is not installed")

KERNEL_MODULE = textwrap.dedent('''
    import skc

    SCALE = {scale}

    @skc.func
    def helper(v):
        return v * {factor}

    @skc.kernel(block=64)
    def kernel(x: skc.Ptr[skc.f32], n: skc.i32):
        i = skc.thread_id(0)
        if i < n:
            x[i] = helper(x[i]) + SCALE
''')

RUNNER = textwrap.dedent('''
    import sys, time, json
    sys.path.insert(0, sys.argv[1])
    started = time.perf_counter()
    import skc
    import kernels
    imported = time.perf_counter()
    compiled = kernels.kernel.compile(target="sm_90a")
    done = time.perf_counter()
    print(json.dumps({"from_cache": compiled.from_cache, "seconds": done - imported,
                      "import_seconds": imported - started, "ptx": compiled.asm("ptx")}))
''')


def write_module(folder, factor=2.0, scale=1.0):
    (folder / "kernels.py").write_text(KERNEL_MODULE.format(factor=factor, scale=scale))
    for cached in (folder / "__pycache__",):
        if cached.exists():
            for f in cached.iterdir():
                f.unlink()


def compile_in_new_process(folder, cache_dir):
    env = dict(os.environ, SKC_CACHE_DIR=str(cache_dir), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", RUNNER, str(folder)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def workspace(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    return code, tmp_path / "cache"


def test_hit_in_a_new_process(workspace):
    code, cache_dir = workspace
    write_module(code)
    first = compile_in_new_process(code, cache_dir)
    second = compile_in_new_process(code, cache_dir)
    assert first["from_cache"] is False
    assert second["from_cache"] is True
    assert second["ptx"] == first["ptx"]


def test_changed_inlined_helper_invalidates(workspace):
    code, cache_dir = workspace
    write_module(code, factor=2.0)
    first = compile_in_new_process(code, cache_dir)
    write_module(code, factor=3.0)
    changed = compile_in_new_process(code, cache_dir)
    assert changed["from_cache"] is False
    assert changed["ptx"] != first["ptx"]
    assert "0f40400000" in changed["ptx"]  # 3.0 as a PTX float literal


def test_changed_global_invalidates(workspace):
    code, cache_dir = workspace
    write_module(code, scale=1.0)
    compile_in_new_process(code, cache_dir)
    write_module(code, scale=5.0)
    changed = compile_in_new_process(code, cache_dir)
    assert changed["from_cache"] is False
    assert "0f40A00000" in changed["ptx"]  # 5.0


def _only_entry(cache_dir):
    entries = [p for p in cache_dir.rglob("manifest.json")]
    assert len(entries) == 1, entries
    return entries[0].parent


@pytest.mark.parametrize("damage", ["truncate_ptx", "flip_byte", "drop_manifest", "garbage_manifest"])
def test_damaged_entry_is_recompiled(workspace, damage):
    code, cache_dir = workspace
    write_module(code)
    first = compile_in_new_process(code, cache_dir)
    entry = _only_entry(cache_dir)
    if damage == "truncate_ptx":
        ptx = entry / "kernel.ptx"
        ptx.write_bytes(ptx.read_bytes()[:100])
    elif damage == "flip_byte":
        binary = entry / "kernel.ll"
        data = bytearray(binary.read_bytes())
        data[len(data) // 2] ^= 0xFF
        binary.write_bytes(bytes(data))
    elif damage == "drop_manifest":
        (entry / "manifest.json").unlink()
    else:
        (entry / "manifest.json").write_text("{not json")
    again = compile_in_new_process(code, cache_dir)
    assert again["from_cache"] is False
    assert again["ptx"] == first["ptx"]
    third = compile_in_new_process(code, cache_dir)
    assert third["from_cache"] is True


def test_store_and_load_round_trip(tmp_path):
    cache.set_cache_dir(tmp_path)
    try:
        cache.store("ab" * 32, {"name": "k"}, {"a.txt": b"hello", "b.bin": bytes(range(256))})
        entry = cache.load("ab" * 32)
        assert entry.files == {"a.txt": b"hello", "b.bin": bytes(range(256))}
        assert entry.meta["name"] == "k"
        manifest = json.loads((tmp_path / "ab" / ("ab" * 32) / "manifest.json").read_text())
        assert set(manifest["files"]) == {"a.txt", "b.bin"}
        assert cache.load("cd" * 32) is None
    finally:
        cache.set_cache_dir(None)
