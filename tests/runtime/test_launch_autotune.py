"""skc.autotune: the fastest config per device and key, kept on disk (JSON in the cache dir) so a fresh tuner (a
second process) reads the winner without timing; configs that fail to compile are skipped with a note; the GEMM
tunes only when asked (autotune=True or SKC_AUTOTUNE=1) and otherwise never times anything."""
import json
import os
import stat

import numpy as np
import pytest

import skc
from skc.autotune import Autotuner, describe
from skc.blocks import matmul_host, matmul_tuning
from skc.runtime import devices, fake_cuda
from skc.runtime.fake_cuda import FakeTensor


@pytest.fixture
def cache(tmp_path):
    skc.set_cache_dir(tmp_path)
    yield tmp_path
    skc.set_cache_dir(None)


class Timer:
    """A stub timer: runs the candidate once and reports the time `times` gives its config."""

    def __init__(self, times):
        self.times, self.timed = times, []

    def __call__(self, run):
        run()
        self.timed.append(self.last)
        return self.times[self.last]


def tuner_of(timer, configs=({"tile": 1}, {"tile": 2}, {"tile": 3}), ran=None):
    def launch(n, tile):
        timer.last = tile
        if ran is not None:
            ran.append((n, tile))
    return Autotuner(launch, configs, key=lambda n: n // 100, name="tests.scale", timer=timer,
                     device_name=lambda: "fake device")


def test_the_winner_round_trips_through_the_cache_file(cache):
    timer, ran = Timer({1: 3.0, 2: 1.0, 3: 2.0}), []
    tuner = tuner_of(timer, ran=ran)
    tuner(1234)
    assert ran[-1] == (1234, 2) and timer.timed == [1, 2, 3]
    stored = json.loads((cache / "autotune" / "tests.scale.json").read_text())
    assert stored["winners"]["fake device"]["12"]["config"] == {"tile": 2}
    assert stored["winners"]["fake device"]["12"]["ms"] == 1.0
    tuner(1299)  # the same key: no timing
    assert timer.timed == [1, 2, 3] and ran[-1] == (1299, 2)


def test_a_second_process_reads_the_winner_without_timing(cache):
    tuner_of(Timer({1: 3.0, 2: 1.0, 3: 2.0}))(500)
    def refuse(run):
        raise AssertionError("timed again")
    ran = []
    fresh = tuner_of(refuse, ran=ran)  # a new object, as in a new process: only the file is shared
    fresh(555)
    assert ran == [(555, 2)]
    # another key (or device) is tuned and added to the same file
    other = Timer({1: 0.5, 2: 1.0, 3: 2.0})
    tuner_of(other)(9000)
    winners = json.loads((cache / "autotune" / "tests.scale.json").read_text())["winners"]["fake device"]
    assert winners["5"]["config"] == {"tile": 2} and winners["90"]["config"] == {"tile": 1}


def test_a_stored_winner_that_is_no_longer_a_candidate_is_tuned_again(cache):
    tuner_of(Timer({1: 3.0, 2: 1.0, 3: 2.0}))(500)
    timer = Timer({1: 3.0, 3: 2.0})
    ran = []
    tuner_of(timer, configs=({"tile": 1}, {"tile": 3}), ran=ran)(500)
    assert timer.timed == [1, 3] and ran[-1] == (500, 3)


def test_a_corrupt_cache_file_is_a_miss(cache):
    (cache / "autotune").mkdir()
    (cache / "autotune" / "tests.scale.json").write_text("{not json")
    timer = Timer({1: 3.0, 2: 1.0, 3: 2.0})
    tuner_of(timer)(100)
    assert timer.timed == [1, 2, 3]
    assert json.loads((cache / "autotune" / "tests.scale.json").read_text())["winners"]["fake device"]["1"]


def test_the_winners_file_is_readable_as_a_file_made_under_the_umask(cache):
    mask = os.umask(0o022)
    try:
        tuner_of(Timer({1: 3.0, 2: 1.0, 3: 2.0}))(100)
    finally:
        os.umask(mask)
    path = cache / "autotune" / "tests.scale.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask   # was 0600, mkstemp's: other users retuned
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []


def test_a_winners_file_that_cannot_be_written_leaves_no_temporary_file(cache, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(json, "dump", fail)
    with pytest.warns(UserWarning, match="could not keep the autotuning result"):
        tuner_of(Timer({1: 3.0, 2: 1.0, 3: 2.0}))(100)
    assert [p.name for p in (cache / "autotune").iterdir()] == ["tests.scale.lock"]   # (was: a .tmp file left)


def test_a_cache_file_nested_too_deep_to_read_is_a_miss(cache):
    (cache / "autotune").mkdir()
    (cache / "autotune" / "tests.scale.json").write_text("[" * 100_000 + "]" * 100_000)
    timer = Timer({1: 3.0, 2: 1.0, 3: 2.0})
    tuner_of(timer)(100)   # was: RecursionError from json.loads
    assert timer.timed == [1, 2, 3]


@pytest.mark.parametrize("setting", ["0", "off", "No", " FALSE "])
def test_skc_cache_off_keeps_no_winners_on_disk(cache, monkeypatch, setting):
    """SKC_CACHE=0 turns the on-disk cache off (docs/cli.md), the winners file with it: none is read or written, and
    the winner lives in the process."""
    tuner_of(Timer({1: 3.0, 2: 1.0, 3: 2.0}))(500)   # (a winner on disk from before)
    monkeypatch.setenv("SKC_CACHE", setting)
    timer = Timer({1: 1.0, 2: 3.0, 3: 2.0})
    tuner = tuner_of(timer)
    tuner(500)
    tuner(777)
    assert timer.timed == [1, 2, 3, 1, 2, 3]   # (the file's winner for key 5 not read; 7 not found there either)
    tuner(501)
    assert timer.timed == [1, 2, 3, 1, 2, 3]   # (in the process)
    stored = json.loads((cache / "autotune" / "tests.scale.json").read_text())
    assert list(stored["winners"]["fake device"]) == ["5"] and stored["winners"]["fake device"]["5"]["config"] == {
        "tile": 2}


def test_describe_names_dataclass_configs_by_their_fields():
    config = skc.blocks.MatmulConfig(tile_n=256, cluster_m=2)
    described = describe({"config": config})
    assert described["config"]["__type__"] == "MatmulConfig" and described["config"]["tile_n"] == 256
    assert json.loads(json.dumps(described)) == described


# -- a real kernel in the interpreter, timed with the host clock; one config does not compile ---------------------
@skc.kernel
def scale(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n: skc.i32, BLOCK: skc.constexpr):
    if BLOCK > 64:
        BLOCK_IS_TOO_BIG_FOR_THIS_KERNEL  # noqa: B018, F821  (a compile-time error for that config only)
    i = skc.block_id(0) * BLOCK + skc.thread_id(0)
    if i < n:
        out[i] = 2.0 * x[i]


def test_configs_that_fail_to_compile_are_skipped_with_a_note(cache, monkeypatch):
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])

    @skc.autotune(configs=[{"BLOCK": 128}, {"BLOCK": 32}, {"BLOCK": 64}], key=lambda x, out, n: n, warmup=1,
                  repeats=1)
    def launch(x, out, n, BLOCK):
        scale.interpret[skc.cdiv(n, BLOCK), BLOCK](x, out, n, BLOCK)

    x = np.arange(100, dtype=np.float32)
    out = np.zeros_like(x)
    with pytest.warns(UserWarning, match=r"config \{'BLOCK': 128\} skipped"):
        launch(x, out, 100)
    np.testing.assert_array_equal(out, 2 * x)
    assert len(launch.notes) == 1 and "BLOCK_IS_TOO_BIG_FOR_THIS_KERNEL" in launch.notes[0]
    timings = {json.dumps(c): ms for c, ms in next(iter(launch.timings.values()))}
    assert timings[json.dumps({"BLOCK": 128})] is None
    assert launch.best[next(iter(launch.best))]["BLOCK"] in (32, 64)


def test_every_config_failing_is_an_error(cache):
    def launch(n, tile):
        raise skc.LaunchError(f"tile {tile} does not fit")
    tuner = Autotuner(launch, [{"tile": 1}, {"tile": 2}], name="tests.failing", timer=lambda run: run() or 1.0,
                      device_name=lambda: "fake")
    with pytest.warns(UserWarning), pytest.raises(skc.SkcError, match="every config failed"):
        tuner(1)


# -- the GEMM ---------------------------------------------------------------------------------------------------
@pytest.fixture
def fake(cache):
    matmul_host._PLANS.clear()
    matmul_tuning._TUNERS.clear()
    with fake_cuda.installed() as driver:
        yield driver
    matmul_host._PLANS.clear()
    matmul_tuning._TUNERS.clear()


def test_matmul_tunes_only_when_asked_and_a_fresh_process_reads_the_winner(fake, monkeypatch):
    import skc.autotune as autotune_module

    timed = []

    def stub_time_ms(run, warmup, repeats):
        run()
        timed.append(fake.launches[-1]["block"])
        return 100.0 - len(timed)  # the last candidate wins

    monkeypatch.setattr(autotune_module, "time_ms", stub_time_ms)
    a, b, out = FakeTensor((2048, 1024)), FakeTensor((1024, 2048)), FakeTensor((2048, 2048))
    for off in ("false", "Off", "0", " no "):   # (SKC_AUTOTUNE=false tuned: anything but empty or 0 was on)
        monkeypatch.setenv("SKC_AUTOTUNE", off)
        skc.blocks.matmul(a, b, out)
        matmul_host._PLANS.clear()
    monkeypatch.delenv("SKC_AUTOTUNE", raising=False)
    skc.blocks.matmul(a, b, out)
    assert timed == []  # by default nothing is timed
    target = skc.current_device().target
    problem = (2048, 2048, 1024, "f16", True, False)
    expected = matmul_tuning.candidates(target, problem, skc.blocks.EpilogueSpec())
    assert len(expected) >= 3
    skc.blocks.matmul(a, b, out, autotune=True)
    assert len(timed) == len(expected)
    tuned = [p for key, p in matmul_host._PLANS.items() if key[-1] is True]
    assert tuned and tuned[0].cfg == expected[-1]
    # a fresh process: new tuners and plans, the winner read from the file, nothing timed
    matmul_host._PLANS.clear()
    matmul_tuning._TUNERS.clear()
    monkeypatch.setenv("SKC_AUTOTUNE", "1")
    skc.blocks.matmul(a, b, out)
    assert len(timed) == len(expected)
    (plan,) = matmul_host._PLANS.values()
    assert plan.cfg == expected[-1]


def test_tuning_under_a_cuda_graphs_capture_is_refused_before_anything_runs(fake, monkeypatch):
    """Timing a config launches it and waits for its events: under a capture of the stream it times on, the first
    launch was recorded into the graph, the wait refused by the driver (which ends the capture), and each config
    skipped for it, so the error blamed the configs ('every config failed'). It is refused by name before any launch;
    a winner timed before the capture runs under it, untimed."""
    import skc.autotune as autotune_module

    timed = []

    def stub_time_ms(run, warmup, repeats):
        run()
        timed.append(fake.launches[-1]["block"])
        return 10.0 - len(timed)

    monkeypatch.setattr(autotune_module, "time_ms", stub_time_ms)
    a, b, out = FakeTensor((2048, 1024)), FakeTensor((1024, 2048)), FakeTensor((2048, 2048))
    fake.capturing.add(0)   # (the stream it times on: the default one, with no torch tensors)
    with pytest.raises(skc.SkcError, match="skc.blocks.matmul: the first call of key .* times each config, which a "
                                           "CUDA graph capturing the stream cannot hold"):
        skc.blocks.matmul(a, b, out, autotune=True)
    assert timed == [] and fake.launches == []
    fake.capturing.clear()
    skc.blocks.matmul(a, b, out, autotune=True)   # (timed once, outside the capture)
    count, launches = len(timed), len(fake.launches)
    fake.capturing.add(0)
    matmul_host._PLANS.clear()
    skc.blocks.matmul(a, b, out, autotune=True)   # (the winner kept: one launch, nothing timed)
    assert len(timed) == count and len(fake.launches) == launches + 1


def test_the_tuning_table_gives_known_problems_their_config(fake, monkeypatch):
    target = skc.current_device().target
    monkeypatch.setitem(matmul_host.TUNED, (target.name, 500, 512, 256, "f16"), {"tile_n": 64, "stages": 3})
    skc.blocks.matmul(FakeTensor((500, 256)), FakeTensor((256, 512)), FakeTensor((500, 512)))
    (plan,) = matmul_host._PLANS.values()
    assert (plan.cfg.tile_n, plan.cfg.stages) == (64, 3)
    assert fake.launches[-1]["block"] == (plan.cfg.threads, 1, 1)


def test_autotuning_rows_not_128_byte_aligned_tries_the_clusters_that_share_them(fake, monkeypatch):
    """Operands whose rows start at no multiple of 128 bytes from each other: the default first (in a cluster), the
    clustered tiles among the candidates, a tuner key of their own (the aligned problem's winner is not theirs)."""
    import skc.autotune as autotune_module

    timed = []

    def stub_time_ms(run, warmup, repeats):
        run()
        timed.append(1)
        return 100.0 - len(timed)  # the last candidate wins

    monkeypatch.setattr(autotune_module, "time_ms", stub_time_ms)
    target = skc.current_device().target
    problem = (3000, 3000, 3000, "f16", True, False)
    aligned = matmul_tuning.candidates(target, problem, skc.blocks.EpilogueSpec())
    unaligned = matmul_tuning.candidates(target, problem, skc.blocks.EpilogueSpec(), unaligned=(True, True))
    assert (unaligned[0].tile_m, unaligned[0].tile_n, unaligned[0].cluster_n) == (192, 192, 2)
    assert aligned[0].cluster == 1 and len(unaligned) > len(aligned)
    assert {(c.tile_m, c.tile_n, c.cluster_m, c.cluster_n) for c in unaligned} >= {(192, 192, 1, 2), (192, 192, 2, 1),
                                                                                   (128, 192, 2, 1)}
    a, b, out = FakeTensor((3000, 3000)), FakeTensor((3000, 3000)), FakeTensor((3000, 3000))
    skc.blocks.matmul(a, b, out, autotune=True)
    assert len(timed) == len(unaligned)
    tuned = [p for key, p in matmul_host._PLANS.items() if key[-1] is True]
    assert tuned and tuned[0].cfg == unaligned[-1]
    # the same problem in rows 3072 elements apart (128-byte aligned): tuned again, as an aligned problem
    a, b = (FakeTensor((3000, 3000), strides=(3072, 1), address=FakeTensor((3000, 3072)).address) for _ in "ab")
    skc.blocks.matmul(a, b, out, autotune=True)
    assert len(timed) == len(unaligned) + len(aligned)
