"""`consumer.acquire(n)` for n from a compile-time size (the stages a row takes): n = 1 gives a StageLease, which is
its own `stage(0)`, so a consumer written over `run.stage(i)` runs for one stage as for several. Before, n = 1 failed
("'StageLease' object has no attribute 'stage'"): examples/rmsnorm.py at rows of 512 columns or fewer."""
import numpy as np
import pytest

import skc
from skc.blocks import InputTilePipeline, OperandLayout, TilePayload, TmaLoader, WarpRoles
from helpers import line_of

COLUMNS = 64   # a stage: 8 rows of 64 f16


@skc.kernel
def copy_rows(source: skc.TensorMap, out: skc.Ptr[skc.f32], steps: skc.constexpr, wrong: skc.constexpr = False):
    """out = the 8 x (steps · 64) source, through runs of `steps` stages: each row read from run.stage(i)."""
    payload = TilePayload(x=OperandLayout(8, COLUMNS))
    load = TmaLoader(payload, x=source)
    with InputTilePipeline(payload, steps, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for k in range(steps):
                        with producer.acquire() as stage:
                            load(stage, k, x=0)
        else:
            with pipe.consumer() as consumer:
                with consumer.acquire(steps) as run:
                    t = skc.thread_id(0) % 128
                    for i in skc.static_range(steps):
                        for e in range(t, 8 * COLUMNS, 128):
                            row, column = e // COLUMNS, e % COLUMNS
                            out[row * steps * COLUMNS + i * COLUMNS + column] = skc.f32(
                                run.stage(i).x.load(row, column, skc.f16))
                    if wrong:
                        out[0] = skc.f32(run.stage(1).x.load(0, 0, skc.f16))   # marker: past


@pytest.mark.parametrize("steps", [1, 3])
def test_a_run_of_one_stage_reads_as_a_run(hopper_interpreter, steps):
    values = np.arange(8 * steps * COLUMNS, dtype=np.float32).reshape(8, steps * COLUMNS) % 2048
    out = skc.to_device(np.full(values.shape, np.nan, np.float32))
    copy_rows[1, 256](skc.TensorMap(skc.to_device(values, dtype=skc.f16), box=(8, COLUMNS)), out, steps)
    np.testing.assert_array_equal(out.numpy(), values)


def test_a_run_of_one_has_no_second_stage(hopper_interpreter):
    source = skc.TensorMap(skc.to_device(np.zeros((8, COLUMNS), np.float32), dtype=skc.f16), box=(8, COLUMNS))
    with pytest.raises(skc.CompileError) as info:
        copy_rows.compile(source, skc.to_device(np.zeros(1, np.float32)), 1, True, target="sm_90a", block=256)
    assert f":{line_of(copy_rows, 'marker: past')}:" in str(info.value)
    assert "this lease holds 1 stage (acquire() or acquire(1)); stage(1) is none of them" in str(info.value)
