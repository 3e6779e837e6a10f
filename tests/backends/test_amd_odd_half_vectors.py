"""16-bit float vectors of 5 to 7 lanes on AMD (a helper's search, sixtieth session): a whole-vector fpext or fptrunc
of <5 x half> (a cast, or the f32 that math on f16 is computed in) was merged by LLVM 22's AMDGPU backend with the
loads or stores beside it into an extending load or truncating store it cannot select: an assertion that killed the
process (SIGABRT), with no error to report. Such conversions now go lane by lane on AMD targets (NVIDIA's are whole
vectors, as before). Each compile runs in a child process, so that a regression fails this test, not the session."""
import subprocess
import sys
import textwrap

import pytest

from skc import ir
from skc.backends.lowering import _split_lanes

KERNEL = textwrap.dedent('''
    import os
    os.environ["SKC_CACHE"] = "0"
    import skc

    @skc.kernel(block=64)
    def k(x: skc.Ptr[skc.{t}], o: skc.Ptr[skc.{d}]):
        i = skc.thread_id(0)
        v = skc.vector({lanes})
        r = {expression}
        for j in skc.static_range({n}):
            o[i * {n} + j] = r[j]

    for target in ("gfx942", "gfx90a", "sm_90a"):
        llvm = k.compile(target=target).ir("llvm")
        print(target, "extractelement" in llvm)
''')


@pytest.mark.parametrize("t, d, n, expression", [
    ("f16", "f32", 5, "skc.cast(v, skc.f32)"),
    ("f16", "f16", 7, "skc.exp(v)"),
    ("f16", "f16", 5, "v // v"),
    ("f16", "i64", 6, "skc.cast(v, skc.i64)"),
    ("bf16", "f16", 5, "skc.cast(v, skc.f16)"),
    ("f32", "f16", 6, "skc.cast(v, skc.f16)"),
    ("i32", "bf16", 7, "skc.cast(v, skc.bf16)"),
])
def test_odd_half_vectors_compile_for_amd(tmp_path, t, d, n, expression):
    path = tmp_path / "odd.py"
    path.write_text(KERNEL.format(t=t, d=d, n=n, expression=expression,
                                  lanes=", ".join(f"x[i + {j}]" for j in range(n))))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gfx942 True" in done.stdout and "gfx90a True" in done.stdout


def test_only_amds_16_bit_vectors_of_5_to_7_lanes_split():
    class Amd:
        splits_odd_half_vectors = True

    half5, float5 = ir.VectorType(ir.f16, 5), ir.VectorType(ir.f32, 5)
    assert _split_lanes(Amd(), half5, float5) and _split_lanes(Amd(), float5, half5)
    assert _split_lanes(Amd(), ir.VectorType(ir.i32, 6), ir.VectorType(ir.bf16, 6))
    assert not _split_lanes(Amd(), ir.VectorType(ir.f16, 4), ir.VectorType(ir.f32, 4))
    assert not _split_lanes(Amd(), ir.VectorType(ir.f16, 3), ir.VectorType(ir.f32, 3))
    assert not _split_lanes(Amd(), ir.VectorType(ir.f32, 5), ir.VectorType(ir.f64, 5))
    assert not _split_lanes(object(), half5, float5) and not _split_lanes(Amd(), ir.f16, ir.f32)
