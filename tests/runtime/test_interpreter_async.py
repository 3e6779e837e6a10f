"""The interpreter on Hopper's asynchronous ops (skc/ir/ops_async.py): mbarrier phases and
transaction counts, deadlocks and spin loops, TMA loads and stores (bounds, swizzles,
multicast), wgmma against numpy with its exact fragment layout, warpgroup rules, clusters, and
warp-specialized pipelines and GEMMs from IR text."""
from __future__ import annotations

import time

import numpy as np
import pytest

from skc import ir
from skc.diagnostics import DeadlockError, InterpreterError, LaunchError
from skc.runtime.dtypes import float32_to_bf16_bits
from skc.runtime.interpreter import Memory, TensorMapDescriptor, map_tensor_map, run
from skc.runtime.tma import TensorMap
from helpers import wgmma_fragments as fragments

RNG = np.random.default_rng(90)


# -- helpers ------------------------------------------------------------------------------------
def parse(text: str) -> ir.Function:
    function = ir.parse_module(text).function()
    ir.verify(function)
    return function


def launch(function, grid, *args, memory=None):
    """Run with numpy arrays mapped into memory (written in place); TensorMaps and numbers passed as they are."""
    memory = memory or Memory()
    values = [memory.map_array(a, name=f"arg{i}") if isinstance(a, np.ndarray) else a for i, a in enumerate(args)]
    run(function, grid=grid, block=tuple(function.attrs["block"]), args=values, memory=memory)
    return memory


def cute_swizzle(offsets, swizzle_bytes: int):
    """CUTLASS's Swizzle<B, 4, 3> (B = 3, 2, 1 for 128B, 64B, 32B): offset ^ ((offset & yyy) >> 3), where yyy
    holds the B bits from bit 7 up (cute/swizzle.hpp)."""
    bits = {0: 0, 32: 1, 64: 2, 128: 3}[swizzle_bytes]
    yyy = ((1 << bits) - 1) << 7
    return offsets ^ ((offsets & yyy) >> 3)


def constants(*values, type="i32") -> str:
    return "".join(f"  %c{v} = arith.constant {{value = {v}}} : {type}\n" for v in values)


def copy_loop(label: str, src: str, dst: str, words: int, threads: int) -> str:
    """IR copying `words` u32 from pointer src to pointer dst, thread t taking words t, t + threads, ..."""
    return f"""
  %{label}_n = arith.constant {{value = {words}}} : i32
  %{label}_step = arith.constant {{value = {threads}}} : i32
  scf.for %tid, %{label}_n, %{label}_step {{label = "{label}"}} {{ ^(%{label}_i: i32)
    %{label}_s = ptr.offset %{src}, %{label}_i {{elem = u32}} : {'ptr<shared>' if src == 'smem' else 'ptr<global>'}
    %{label}_v = mem.load %{label}_s : u32
    %{label}_d = ptr.offset %{dst}, %{label}_i {{elem = u32}} : {'ptr<shared>' if dst == 'smem' else 'ptr<global>'}
    mem.store %{label}_d, %{label}_v
  }}
"""


def bf16(values) -> np.ndarray:
    return float32_to_bf16_bits(np.asarray(values, np.float32))


# -- mbarriers ----------------------------------------------------------------------------------
PHASES = """
kernel @k(%t: tmap<f32, 8x8, swizzle=0>, %out: ptr<global>) {block = [1, 1, 1], shared_bytes = 384} {
  %bar = mem.shared {offset = 0, bytes = 8} : ptr<shared>
  %box = mem.shared {offset = 128, bytes = 256} : ptr<shared>
""" + constants(0, 1, 2, 3, 200, 56) + """
  mbarrier.init %bar, %c3
  %r0 = mbarrier.try_wait %bar, %c1 : i1
  %r1 = mbarrier.try_wait %bar, %c0 : i1
  mbarrier.arrive %bar {count = 2}
  %r2 = mbarrier.try_wait %bar, %c0 : i1
  mbarrier.expect_tx %bar, %c200
  mbarrier.arrive %bar
  %r3 = mbarrier.try_wait %bar, %c0 : i1
  mbarrier.expect_tx %bar, %c56
  %r4 = mbarrier.try_wait %bar, %c0 : i1
  tma.load %box, %bar, %t, %c0, %c0 {rank = 2}
  %r5 = mbarrier.try_wait %bar, %c0 : i1
  %r6 = mbarrier.try_wait %bar, %c1 : i1
  tma.load %box, %bar, %t, %c0, %c0 {rank = 2}
  %r7 = mbarrier.try_wait %bar, %c1 : i1
  mbarrier.arrive %bar {count = 2}
  %r8 = mbarrier.try_wait %bar, %c1 : i1
  %bytes = arith.constant {value = 256} : i32
  mbarrier.arrive_tx %bar, %bytes
  %r9 = mbarrier.try_wait %bar, %c1 : i1
  %r10 = mbarrier.try_wait %bar, %c0 : i1
""" + "".join(f"""  %i{i} = arith.constant {{value = {i}}} : i32
  %o{i} = ptr.offset %out, %i{i} {{elem = i32}} : ptr<global>
  %w{i} = arith.cast %r{i} : i32
  mem.store %o{i}, %w{i}
""" for i in range(11)) + "}\n"


def test_mbarrier_phases_parities_and_transaction_bytes():
    """Phase 0 needs 3 arrivals and 256 bytes expected in two parts; phase 1 gets its bytes before they are
    expected (the tx-count goes negative) and completes on the last of its arrivals."""
    f = parse(PHASES)
    out = np.full(11, -1, np.int32)
    launch(f, (1, 1, 1), TensorMap(np.ones((8, 8), np.float32), box=(8, 8), swizzle=0), out)
    assert out.tolist() == [
        1,  # a fresh barrier has "completed" the phase of parity 1: the producer's first wait passes
        0,  # phase 0 is not complete
        0,  # 2 of 3 arrivals
        0,  # 3 of 3 arrivals, but 200 bytes expected
        0,  # 256 bytes expected
        1,  # the TMA copy completed 256 bytes: phase 0 done
        0,  # phase 1 (parity 1) is running
        0,  # 256 bytes completed before anyone expected them: tx-count -256
        0,  # 2 of 3 arrivals
        1,  # arrive_tx: expects 256 (tx-count 0) and arrives: phase 1 done
        0,  # phase 2 (parity 0) is running
    ]


DEADLOCK = """
kernel @k(%out: ptr<global>) {block = [64, 1, 1], shared_bytes = 1056} {
  %tid = gpu.thread_id {dim = 0} : i32
  %pad = mem.shared {offset = 0, bytes = 1024} : ptr<shared>
  %bars = mem.shared {offset = 1024, bytes = 32, name = "full_barriers"} : ptr<shared>
""" + constants(0, 1, 3) + """
  %bar = ptr.offset %bars, %c3 {elem = i64} : ptr<shared>
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  scf.if %first {
    mbarrier.init %bar, %c1
    fence.mbarrier_init
  } {
  }
  gpu.barrier
  mbarrier.wait %bar, %c0 loc("consumer.py":42:9)
  %o = ptr.offset %out, %tid {elem = i32} : ptr<global>
  mem.store %o, %tid
}
"""


def test_waiting_on_a_barrier_nobody_arrives_on_is_a_deadlock_naming_it():
    f = parse(DEADLOCK)
    out = np.full(64, -1, np.int32)
    start = time.perf_counter()
    with pytest.raises(DeadlockError) as info:
        launch(f, (1, 1, 1), out)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert message.startswith("consumer.py:42:10: error: deadlock in block (0, 0, 0)")
    assert ("threads 0-63 (warps 0-1) wait in mbarrier.wait at consumer.py:42 for the phase of parity 0 of the "
            "mbarrier at shared offset 0x418 (byte 24 of shared buffer 'full_barriers', 32 bytes at offset 1024)"
            in message)
    assert "0 phases completed, the current phase (parity 0) has 1 of 1 arrivals and 0 transaction bytes" in message
    assert "hint: a phase completes when" in message
    assert (out == -1).all()


def test_using_a_barrier_that_was_never_initialized_names_the_line():
    f = parse("""
kernel @k() {block = [32, 1, 1], shared_bytes = 64} {
  %bar = mem.shared {offset = 16, bytes = 8} : ptr<shared>
  mbarrier.arrive %bar loc("producer.py":7:5)
}
""")
    with pytest.raises(InterpreterError) as info:
        run(f, grid=1, block=(32, 1, 1), args=[])
    message = str(info.value)
    assert message.startswith("producer.py:7:6: error: mbarrier.arrive on the mbarrier at shared offset 0x10")
    assert "never initialized" in message and "thread (0, 0, 0)" in message


def test_barrier_addresses_must_be_8_byte_aligned_and_inside_shared_memory():
    f = parse("""
kernel @k() {block = [1, 1, 1], shared_bytes = 64} {
  %bar = mem.shared {offset = 4, bytes = 8} : ptr<shared>
  %c1 = arith.constant {value = 1} : i32
  mbarrier.init %bar, %c1
}
""")
    with pytest.raises(InterpreterError, match="misaligned 8-byte mbarrier.init at address 0x4"):
        run(f, grid=1, block=(1, 1, 1), args=[])


PING_PONG = """
kernel @k(%out: ptr<global>, %rounds: i32, %end: i32) {block = [64, 1, 1], shared_bytes = 256} {
  %spins = var.alloc : var<i32>
  %tid = gpu.thread_id {dim = 0} : i32
  %full = mem.shared {offset = 0, bytes = 8} : ptr<shared>
  %empty = mem.shared {offset = 8, bytes = 8} : ptr<shared>
  %data = mem.shared {offset = 128, bytes = 128} : ptr<shared>
""" + constants(0, 1, 32, 1000) + """
  var.store %spins, %c0
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  scf.if %first {
    mbarrier.init %full, %c32
    mbarrier.init %empty, %c32
  } {
  }
  gpu.barrier
  %consumer = arith.cmp %tid, %c32 {pred = "lt"} : i1
  scf.if %consumer {
    scf.for %c0, %rounds, %c1 {label = "C"} { ^(%r: i32)
      %parity = arith.and %r, %c1 : i32
      scf.loop {label = "spin"} {
        %ok = mbarrier.try_wait %full, %parity : i1
        scf.if %ok {
          scf.break {label = "spin"}
        } {
        }
        %n = var.load %spins : i32
        %n1 = arith.add %n, %c1 : i32
        var.store %spins, %n1
      }
      %src = ptr.offset %data, %tid {elem = i32} : ptr<shared>
      %v = mem.load %src : i32
      %row = arith.mul %r, %c32 : i32
      %i = arith.add %row, %tid : i32
      %dst = ptr.offset %out, %i {elem = i32} : ptr<global>
      mem.store %dst, %v
      mbarrier.arrive %empty
    }
    %total = var.load %spins : i32
    %count_slot = ptr.offset %out, %tid {elem = i32} : ptr<global>
    %at_end = ptr.offset %count_slot, %end {elem = i32} : ptr<global>
    mem.store %at_end, %total
  } {
    %lane = arith.sub %tid, %c32 : i32
    scf.for %c0, %rounds, %c1 {label = "P"} { ^(%q: i32)
      %bit = arith.and %q, %c1 : i32
      %empty_parity = arith.xor %bit, %c1 : i32
      mbarrier.wait %empty, %empty_parity
      %value = arith.mul %q, %c1000 : i32
      %w = arith.add %value, %lane : i32
      %slot = ptr.offset %data, %lane {elem = i32} : ptr<shared>
      mem.store %slot, %w
      mbarrier.arrive %full
    }
  }
}
"""


CP_ASYNC = """
kernel @k(%src: ptr<global>, %out: ptr<global>, %n: i32, %shift: i32) {block = [32, 1, 1], shared_bytes = 256} {
  %tid = gpu.thread_id {dim = 0} : i32
  %bar = mem.shared {offset = 0, bytes = 8} : ptr<shared>
  %buf = mem.shared {offset = 128, bytes = 128} : ptr<shared>
""" + constants(0, 32) + """
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  scf.if %first {
    mbarrier.init %bar, %c32
  } {
  }
  gpu.barrier
  %word = arith.add %tid, %shift : i32
  %from = ptr.offset %src, %word {elem = u32} : ptr<global>
  %to = ptr.offset %buf, %tid {elem = u32} : ptr<shared>
  %inside = arith.cmp %tid, %n {pred = "lt"} : i1
  cp.async %to, %from, %inside {bytes = 4}
  cp.async.arrive %bar
  mbarrier.wait %bar, %c0
  %v = mem.load %to : u32
  %dst = ptr.offset %out, %tid {elem = u32} : ptr<global>
  mem.store %dst, %v
}
"""


def test_cp_async_copies_without_registers_zero_fills_masked_lanes_and_arrives_once_landed():
    """Each of 32 threads copies 4 bytes by cp.async (lanes past n read nothing and write zeros) and arrives on a
    barrier of 32 arrivals once its copy landed; then reads the shared word back."""
    f = parse(CP_ASYNC)
    src = np.arange(80, dtype=np.uint16)
    out = np.full(32, 0xFFFFFFFF, np.uint32)
    launch(f, (1, 1, 1), src, out, 20, 0)
    expected = src[:64].view(np.uint32).copy()
    expected[20:] = 0
    np.testing.assert_array_equal(out, expected)


def test_cp_async_needs_sources_aligned_to_its_size():
    """A 4-byte copy from an address 2 bytes past a word faults, as on the GPU (cp.async's source is aligned to the
    copy's size): what the vector loader's copies of rows of odd length avoid."""
    f = parse(CP_ASYNC.replace("%word = arith.add %tid, %shift : i32", "%w2 = arith.add %tid, %tid : i32\n"
                               "  %word = arith.add %w2, %shift : i32")
              .replace("%from = ptr.offset %src, %word {elem = u32}", "%from = ptr.offset %src, %word {elem = u16}"))
    src = np.arange(80, dtype=np.uint16)
    out = np.zeros(32, np.uint32)
    launch(f, (1, 1, 1), src, out, 32, 0)
    np.testing.assert_array_equal(out, src[:64].view(np.uint32))
    with pytest.raises(InterpreterError, match="misaligned 4-byte cp.async read"):
        launch(f, (1, 1, 1), src, out, 32, 1)


def test_try_wait_spin_loop_waits_for_its_producer():
    """The consumer warp runs first and spins on `full` until the producer warp fills each round."""
    rounds = 5
    f = parse(PING_PONG)
    out = np.full(rounds * 32 + 32, -1, np.int32)
    launch(f, (1, 1, 1), out, rounds, rounds * 32)
    expected = [1000 * r + lane for r in range(rounds) for lane in range(32)]
    assert out[:rounds * 32].tolist() == expected
    assert (out[rounds * 32:] == rounds).all()   # every round, try_wait said no once before the producer came


def test_try_wait_spin_loop_that_can_never_succeed_is_a_deadlock():
    f = parse("""
kernel @k() {block = [64, 1, 1], shared_bytes = 64} {
  %tid = gpu.thread_id {dim = 0} : i32
  %full = mem.shared {offset = 0, bytes = 8} : ptr<shared>
  %empty = mem.shared {offset = 8, bytes = 8} : ptr<shared>
""" + constants(0, 1, 32) + """
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  scf.if %first {
    mbarrier.init %full, %c1
    mbarrier.init %empty, %c1
  } {
  }
  gpu.barrier
  %consumer = arith.cmp %tid, %c32 {pred = "lt"} : i1
  scf.if %consumer {
    scf.loop {label = "spin"} {
      %ok = mbarrier.try_wait %full, %c0 : i1 loc("spin.py":3:7)
      scf.if %ok {
        scf.break {label = "spin"}
      } {
      }
    }
    mbarrier.arrive %empty
  } {
    mbarrier.wait %empty, %c0 loc("spin.py":9:5)
    mbarrier.arrive %full
  }
}
""")
    start = time.perf_counter()
    with pytest.raises(DeadlockError) as info:
        run(f, grid=1, block=(64, 1, 1), args=[])
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "error: deadlock in block (0, 0, 0)" in message
    assert ("threads 0-31 (warp 0) spin in mbarrier.try_wait at spin.py:3 for the phase of parity 0 of the mbarrier "
            "at shared offset 0x0") in message
    assert ("threads 32-63 (warp 1) wait in mbarrier.wait at spin.py:9 for the phase of parity 0 of the mbarrier at "
            "shared offset 0x8") in message
    assert "has 1 of 1 arrivals and 0 transaction bytes pending" in message


def test_a_spin_loop_that_gives_up_is_not_a_deadlock():
    """try_wait 300 times on a barrier nobody arrives on, then arrive on it oneself: the loop ends and so does the
    kernel (the scheduler reports spinning as a deadlock only after SPIN_ROUNDS rounds without progress)."""
    from skc.runtime.interpreter.scheduler import SPIN_ROUNDS

    f = parse("""
kernel @k(%out: ptr<global>) {block = [32, 1, 1], shared_bytes = 64} {
  %tries = var.alloc : var<i32>
  %bar = mem.shared {offset = 0, bytes = 8} : ptr<shared>
""" + constants(0, 1, 300) + """
  mbarrier.init %bar, %c1
  var.store %tries, %c0
  scf.for %c0, %c300, %c1 {label = "spin"} { ^(%i: i32)
    %ok = mbarrier.try_wait %bar, %c0 : i1
    scf.if %ok {
      scf.break {label = "spin"}
    } {
    }
    %n = var.load %tries : i32
    %n1 = arith.add %n, %c1 : i32
    var.store %tries, %n1
  }
  %first = gpu.elect_one : i1
  scf.if %first {
    mbarrier.arrive %bar
  } {
  }
  mbarrier.wait %bar, %c0
  %tid = gpu.thread_id {dim = 0} : i32
  %o = ptr.offset %out, %tid {elem = i32} : ptr<global>
  %total = var.load %tries : i32
  mem.store %o, %total
}
""")
    assert 300 < SPIN_ROUNDS
    out = np.zeros(32, np.int32)
    launch(f, (1, 1, 1), out)
    assert (out == 300).all()


# -- TMA loads ----------------------------------------------------------------------------------
def tma_load_kernel(box, swizzle: int, shared_bytes: int, dst: int) -> ir.Function:
    rows, cols = box
    return parse(f"""
kernel @k(%t: tmap<u16, {rows}x{cols}, swizzle={swizzle}>, %out: ptr<global>, %x: i32, %y: i32) {{block = [64, 1, 1], shared_bytes = {shared_bytes}}} {{
  %tid = gpu.thread_id {{dim = 0}} : i32
  %smem = mem.shared {{offset = 0, bytes = {shared_bytes}}} : ptr<shared>
  %bar = mem.shared {{offset = 8, bytes = 8}} : ptr<shared>
  %dst_offset = arith.constant {{value = {dst}}} : i32
  %dst = ptr.offset %smem, %dst_offset {{elem = u8}} : ptr<shared>
  %bytes = arith.constant {{value = {rows * cols * 2}}} : i32
""" + constants(0, 1) + """
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  scf.if %first {
    mbarrier.init %bar, %c1
    fence.mbarrier_init
  } {
  }
  gpu.barrier
  scf.if %first {
    mbarrier.arrive_tx %bar, %bytes
    tma.load %dst, %bar, %t, %x, %y {rank = 2}
  } {
  }
  mbarrier.wait %bar, %c0
""" + copy_loop("out", "smem", "out", shared_bytes // 4, 64) + "}\n")


def expected_box(tensor, box, origin, fill=0):
    """The box of `tensor` at origin (outermost first), `fill` outside the tensor."""
    out = np.full(box, fill, tensor.dtype)
    rows = np.arange(origin[0], origin[0] + box[0])
    cols = np.arange(origin[1], origin[1] + box[1])
    inside_r = (rows >= 0) & (rows < tensor.shape[0])
    inside_c = (cols >= 0) & (cols < tensor.shape[1])
    out[np.ix_(inside_r, inside_c)] = tensor[np.ix_(rows[inside_r], cols[inside_c])]
    return out


def box_image(logical: np.ndarray, row: int, swizzle: int, dst: int, nbytes: int) -> np.ndarray:
    """Shared memory after a TMA load of a box (row-major bytes `logical`, rows of `row` bytes) to dst: rows `pitch`
    bytes apart, the pitch being the swizzle span when there is one (rows narrower than it are padded, as an H100
    does), each byte where the swizzle sends it."""
    pitch = max(row, swizzle)
    rows = logical.size // row
    offsets = (np.arange(rows)[:, None] * pitch + np.arange(row)).reshape(-1)
    image = np.zeros(nbytes, np.uint8)
    image[cute_swizzle(dst + offsets, swizzle)] = logical
    return image


BOXES = [(0, 24), (32, 16), (64, 32), (128, 64), (128, 32), (128, 16), (64, 16), (32, 8)]   # (swizzle, columns)


@pytest.mark.parametrize("swizzle, cols", BOXES)
@pytest.mark.parametrize("coords", [(0, 0), (-8, 5), (40, -3), (-24, 12)])   # innermost first
def test_tma_load_places_the_box_by_the_swizzle_and_zero_fills_outside(swizzle, cols, coords):
    box, dst, shared_bytes = (12, cols), 2048, 4096
    tensor = RNG.integers(1, 60000, (20, 56)).astype(np.uint16)
    f = tma_load_kernel(box, swizzle, shared_bytes, dst)
    out = np.zeros(shared_bytes // 4, np.uint32)
    launch(f, (1, 1, 1), TensorMap(tensor, box=box, swizzle=swizzle), out, *coords)
    logical = expected_box(tensor, box, coords[::-1]).reshape(-1).view(np.uint8)
    got = out.view(np.uint8)
    got[8:16] = 0   # the barrier's bytes (the interpreter keeps its state elsewhere)
    np.testing.assert_array_equal(got, box_image(logical, cols * 2, swizzle, dst, shared_bytes))
    if coords != (0, 0):
        assert (logical == 0).any()   # part of the box was outside the tensor


def test_tma_coordinates_the_gpu_faults_on_are_errors():
    """Measured on an H100: an innermost coordinate that is not a multiple of 16 bytes, and a negative coordinate
    of a store, raise an illegal-instruction fault."""
    tensor = np.zeros((20, 56), np.uint16)
    load = tma_load_kernel((12, 24), 0, 4096, 2048)
    with pytest.raises(InterpreterError, match="innermost coordinate -20: its byte offset -40 is not a multiple of 16"):
        launch(load, (1, 1, 1), TensorMap(tensor, box=(12, 24), swizzle=0), np.zeros(1024, np.uint32), -20, 0)
    store = tma_store_kernel((12, 24), 0, 3072, 1024)
    image = np.zeros(768, np.uint32)
    with pytest.raises(InterpreterError, match="innermost coordinate 4: its byte offset 8 is not a multiple of 16"):
        launch(store, (1, 1, 1), TensorMap(tensor, box=(12, 24), swizzle=0), image, 4, 0)
    with pytest.raises(InterpreterError, match=r"tma.store of a box that starts before the tensor \(coordinates "
                                               r"\[0, -1\], innermost first\)"):
        launch(store, (1, 1, 1), TensorMap(tensor, box=(12, 24), swizzle=0), image, 0, -1)


def test_tma_load_needs_aligned_shared_boxes_and_typed_tensor_maps():
    tensor = np.zeros((64, 64), np.uint16)
    f = tma_load_kernel((8, 64), 128, 4096, 512)
    with pytest.raises(InterpreterError, match="at offset 0x200, which is not 1024-byte aligned"):
        launch(f, (1, 1, 1), TensorMap(tensor, box=(8, 64), swizzle=128), np.zeros(1024, np.uint32), 0, 0)
    f = tma_load_kernel((8, 32), 64, 4096, 64)
    with pytest.raises(InterpreterError, match="at offset 0x40, which is not 128-byte aligned"):
        launch(f, (1, 1, 1), TensorMap(tensor, box=(8, 32), swizzle=64), np.zeros(1024, np.uint32), 0, 0)
    f = tma_load_kernel((8, 32), 0, 4096, 0)
    with pytest.raises(InterpreterError, match="tma.load writes shared bytes in 0x0..0x1ff, over the mbarrier at "
                                               "shared offset 0x8"):
        launch(f, (1, 1, 1), TensorMap(tensor, box=(8, 32), swizzle=0), np.zeros(1024, np.uint32), 0, 0)
    bare = parse("""
kernel @k(%t: tmap) {block = [1, 1, 1], shared_bytes = 2048} {
  %dst = mem.shared {offset = 1024, bytes = 1024} : ptr<shared>
  %bar = mem.shared {offset = 0, bytes = 8} : ptr<shared>
  %c0 = arith.constant {value = 0} : i32
  tma.load %dst, %bar, %t, %c0, %c0 {rank = 2} loc("load.py":5:3)
}
""")
    memory = Memory()
    descriptor = map_tensor_map(TensorMap(tensor, box=(8, 64), swizzle=128), memory, "t")
    with pytest.raises(InterpreterError) as info:
        run(bare, grid=1, block=(1, 1, 1), args=[descriptor], memory=memory)
    assert str(info.value).startswith("load.py:5:4: error: tma.load of a tensor map typed bare 'tmap'")


def test_tensor_map_arguments_must_match_the_parameter_type():
    f = tma_load_kernel((8, 64), 128, 4096, 1024)
    with pytest.raises(LaunchError, match="is a tensor map of tmap<u16, 8x32, swizzle=64> but the kernel was compiled "
                                          r"for tmap<u16, 8x64, swizzle=128>"):
        launch(f, (1, 1, 1), TensorMap(np.zeros((8, 64), np.uint16), box=(8, 32), swizzle=64),
               np.zeros(1024, np.uint32), 0, 0)


MULTICAST = """
kernel @k(%t: tmap<u16, 8x64, swizzle=128>, %out: ptr<global>) {block = [32, 1, 1], shared_bytes = 4096, cluster = [2, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %smem = mem.shared {offset = 0, bytes = 4096} : ptr<shared>
  %bar = mem.shared {offset = 0, bytes = 8} : ptr<shared>
  %first_box = mem.shared {offset = 1024, bytes = 1024} : ptr<shared>
  %second_box = mem.shared {offset = 2048, bytes = 1024} : ptr<shared>
  %rank = cluster.rank : i32
  %all = arith.constant {value = 3} : i16
  %only_0 = arith.constant {value = 1} : i16
""" + constants(0, 1, 8, 1024, 2048) + """
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  scf.if %first {
    mbarrier.init %bar, %c1
    fence.mbarrier_init
  } {
  }
  cluster.arrive
  cluster.wait
  %is0 = arith.cmp %rank, %c0 {pred = "eq"} : i1
  scf.if %first {
    %expected = arith.select %is0, %c2048, %c1024 : i32
    mbarrier.arrive_tx %bar, %expected
    scf.if %is0 {
      tma.load %first_box, %bar, %t, %c0, %c8, %all {rank = 2, multicast = true}
    } {
      tma.load %second_box, %bar, %t, %c0, %c0, %only_0 {rank = 2, multicast = true}
    }
  } {
  }
  mbarrier.wait %bar, %c0
  %base = arith.mul %rank, %c1024 : i32
  %mine = ptr.offset %out, %base {elem = u32} : ptr<global>
""" + copy_loop("out", "smem", "mine", 1024, 32) + """
  cluster.arrive
  cluster.wait
}
"""


def test_tma_multicast_writes_every_block_of_the_mask_and_completes_their_barriers():
    """Rank 0 multicasts rows 8-15 to both blocks; rank 1 sends rows 0-7 to rank 0 alone."""
    f = parse(MULTICAST)
    tensor = RNG.integers(1, 60000, (16, 64)).astype(np.uint16)
    out = np.zeros(2 * 1024, np.uint32)
    launch(f, (2, 1, 1), TensorMap(tensor, box=(8, 64), swizzle=128), out)
    images = out.view(np.uint8).reshape(2, 4096).copy()
    images[:, :8] = 0

    def placed(rows, dst):
        image = np.zeros(4096, np.uint8)
        logical = tensor[rows].reshape(-1).view(np.uint8)
        image[cute_swizzle(dst + np.arange(logical.size), 128)] = logical
        return image

    np.testing.assert_array_equal(images[0], placed(slice(8, 16), 1024) + placed(slice(0, 8), 2048))
    np.testing.assert_array_equal(images[1], placed(slice(8, 16), 1024))


# -- TMA stores ---------------------------------------------------------------------------------
def tma_store_kernel(box, swizzle: int, shared_bytes: int, src: int) -> ir.Function:
    rows, cols = box
    return parse(f"""
kernel @k(%t: tmap<u16, {rows}x{cols}, swizzle={swizzle}>, %image: ptr<global>, %x: i32, %y: i32) {{block = [64, 1, 1], shared_bytes = {shared_bytes}}} {{
  %tid = gpu.thread_id {{dim = 0}} : i32
  %smem = mem.shared {{offset = 0, bytes = {shared_bytes}}} : ptr<shared>
  %src_offset = arith.constant {{value = {src}}} : i32
  %src = ptr.offset %smem, %src_offset {{elem = u8}} : ptr<shared>
  %c0 = arith.constant {{value = 0}} : i32
""" + copy_loop("in", "image", "smem", shared_bytes // 4, 64) + """
  fence.proxy_async
  gpu.barrier
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  scf.if %first {
    tma.store %t, %src, %x, %y {rank = 2}
    tma.commit
    tma.wait {pending = 0}
  } {
  }
}
""")


@pytest.mark.parametrize("swizzle, cols", [(0, 24), (32, 16), (128, 64), (128, 32)])
@pytest.mark.parametrize("coords", [(0, 0), (40, 10), (16, 15), (56, 0)])
def test_tma_store_unswizzles_the_box_and_skips_elements_outside_the_tensor(swizzle, cols, coords):
    box, src, shared_bytes = (12, cols), 1024, 3072
    image = RNG.integers(0, 256, shared_bytes).astype(np.uint8)
    tensor = np.full((20, 56), 0xDEAD, np.uint16)
    f = tma_store_kernel(box, swizzle, shared_bytes, src)
    launch(f, (1, 1, 1), TensorMap(tensor, box=box, swizzle=swizzle), image.view(np.uint32), *coords)
    pitch = max(cols * 2, swizzle)
    offsets = (np.arange(box[0])[:, None] * pitch + np.arange(cols * 2)).reshape(-1)
    values = image[cute_swizzle(src + offsets, swizzle)].view(np.uint16).reshape(box)
    expected = np.full((20, 56), 0xDEAD, np.uint16)
    x, y = coords
    for r in range(box[0]):
        for c in range(box[1]):
            if 0 <= y + r < 20 and 0 <= x + c < 56:
                expected[y + r, x + c] = values[r, c]
    np.testing.assert_array_equal(tensor, expected)
    if coords == (56, 0):
        assert (tensor == 0xDEAD).all()   # a box wholly past the end writes nothing


def store_then_write_kernel(first: int, second: int, write: int, pending: int, atomic: bool = False) -> ir.Function:
    """Thread 0 stores the box at shared offset `first` (one bulk group), then the box at `second` (a second group),
    waits until `pending` groups are left unread, and writes a word at shared offset `write` (a store, or an
    atomic add)."""
    write_op = '%old = mem.atomic %where, %v {op = "add"} : u32' if atomic else "mem.store %where, %v"
    return parse(f"""
kernel @k(%t: tmap<u16, 8x64, swizzle=128>) {{block = [1, 1, 1], shared_bytes = 4096}} {{
  %smem = mem.shared {{offset = 0, bytes = 4096}} : ptr<shared>
  %c0 = arith.constant {{value = 0}} : i32
  %first_offset = arith.constant {{value = {first}}} : i32
  %first = ptr.offset %smem, %first_offset {{elem = u8}} : ptr<shared>
  %second_offset = arith.constant {{value = {second}}} : i32
  %second = ptr.offset %smem, %second_offset {{elem = u8}} : ptr<shared>
  %write_offset = arith.constant {{value = {write}}} : i32
  %where = ptr.offset %smem, %write_offset {{elem = u8}} : ptr<shared>
  fence.proxy_async
  tma.store %t, %first, %c0, %c0 {{rank = 2}}
  tma.commit
  tma.store %t, %second, %c0, %c0 {{rank = 2}}
  tma.commit
  tma.wait {{pending = {pending}, read = true}}
  %v = arith.constant {{value = 7}} : u32
  {write_op}
  tma.wait {{pending = 0, read = true}}
}}
""")


@pytest.mark.parametrize("write, pending, racing", [
    (1024 + 64, 2, True),    # both stores may still read: writing the first's source races
    (1024 + 64, 1, False),   # the first group was read
    (2048 + 8, 1, True),     # the second group may still read its source
    (2048 + 8, 0, False),    # both read
    (3072, 2, False),        # memory no store reads
])
def test_writing_the_source_of_a_tma_store_in_flight_is_an_error(write, pending, racing):
    """On the GPU the copy engine reads a TMA store's shared source at some time before a wait for its bulk group:
    a write there before that wait may change what is stored. The interpreter, whose copies happen at once, names
    the race (a 64-column chunk stored from a 128-byte-row buffer of half the rows it needs caught this)."""
    f = store_then_write_kernel(1024, 2048, write, pending)
    tensor = np.zeros((8, 64), np.uint16)
    atomic = store_then_write_kernel(1024, 2048, write, pending, atomic=True)   # an atomic there races too
    if racing:
        with pytest.raises(InterpreterError, match="a store writes shared memory that a TMA store issued earlier may "
                                                   "still be reading"):
            launch(f, (1, 1, 1), TensorMap(tensor, box=(8, 64), swizzle=128))
        with pytest.raises(InterpreterError, match="an atomic writes shared memory that a TMA store"):
            launch(atomic, (1, 1, 1), TensorMap(tensor, box=(8, 64), swizzle=128))
    else:
        launch(f, (1, 1, 1), TensorMap(tensor, box=(8, 64), swizzle=128))
        launch(atomic, (1, 1, 1), TensorMap(tensor, box=(8, 64), swizzle=128))


def test_interpreter_launcher_maps_tensor_maps_over_padded_rows():
    """A tensor map over a view with padded rows (row stride 64 of 56 columns): the store lands in the parent
    array, padding untouched; the launcher passes a TensorMapDescriptor of the mapped array."""
    from skc.runtime.launcher import InterpreterLauncher, LaunchParam

    f = tma_store_kernel((12, 64), 128, 3072, 1024)
    parent = np.full((20, 64), 7, np.uint16)
    view = parent[:, :56]
    image = RNG.integers(0, 256, 3072).astype(np.uint8)
    params = (LaunchParam("t", "tensormap"), LaunchParam("image", "pointer", ir.u32),
              LaunchParam("x", "scalar", ir.i32), LaunchParam("y", "scalar", ir.i32))
    InterpreterLauncher(f, params, "sm_90a", (64, 1, 1))([TensorMap(view, box=(12, 64), swizzle=128), image.view(
        np.uint32), 0, 10], (1, 1, 1))
    values = image[cute_swizzle(1024 + np.arange(12 * 64 * 2), 128)].view(np.uint16).reshape(12, 64)
    expected = np.full((20, 64), 7, np.uint16)
    expected[10:20, :56] = values[:10, :56]
    np.testing.assert_array_equal(parent, expected)
    descriptor = map_tensor_map(TensorMap(view, box=(12, 64), swizzle=128), Memory(), "t")
    assert isinstance(descriptor, TensorMapDescriptor)
    assert descriptor.shape == (20, 56) and descriptor.strides == (64, 1) and str(descriptor.spec) == \
        "tmap<u16, 12x64, swizzle=128>"


# -- wgmma ----------------------------------------------------------------------------------------
SWIZZLE_MODE = {0: 0, 128: 1, 64: 2, 32: 3}   # descriptor bits 62-63


def descriptor(start: int, lbo: int, sbo: int, swizzle: int) -> int:
    return (start >> 4) | (lbo >> 4) << 16 | (sbo >> 4) << 32 | SWIZZLE_MODE[swizzle] << 62


def junk(shape) -> np.ndarray:
    """bf16 bits of values no test product uses: a wrongly placed read shows up in the sums."""
    return bf16(RNG.choice([1024.0, -4096.0, 65536.0], shape))


def operand_layout(values: np.ndarray, major: str, swizzle: int, base: int):
    """Lay out an operand (rows x K: A as m x k, B as n x k) as a tile the way a TMA box or CUTLASS's canonical
    GMMA atoms would, by reshaping, not by the interpreter's address formulas. Gives (image bytes at base,
    one descriptor per 16-wide k slice)."""
    rows, depth = values.shape
    bits = bf16(values)
    if major == "K" and swizzle:            # row r of an atom is S bytes; atoms of S/2 k-columns follow each other
        width = swizzle // 2
        atoms = -(-depth // width)
        tile = junk((rows, atoms * width))
        tile[:, :depth] = bits
        data = tile.reshape(rows, atoms, width).transpose(1, 0, 2)
        starts = [base + (k0 // width) * rows * swizzle + (k0 % width) * 2 for k0 in range(0, depth, 16)]
        lbo, sbo = 16, 8 * swizzle
    elif major == "K":                      # 8x16-byte core matrices: k-chunks outermost, then 8-row groups
        data = bits.reshape(rows // 8, 8, depth // 8, 8).transpose(2, 0, 1, 3)
        lbo, sbo = (rows // 8) * 128, 128
        starts = [base + (k0 // 8) * lbo for k0 in range(0, depth, 16)]
    elif swizzle:                           # k-rows of S bytes along M/N; atoms of S/2 rows follow each other
        width = swizzle // 2
        atoms = -(-rows // width)
        tile = junk((depth, atoms * width))
        tile[:, :rows] = bits.T
        data = tile.reshape(depth, atoms, width).transpose(1, 0, 2)
        lbo, sbo = depth * swizzle, 8 * swizzle
        starts = [base + (k0 // 8) * sbo for k0 in range(0, depth, 16)]
    else:                                   # 8(k)x8(mn) core matrices: k-groups outermost, then M/N chunks
        data = bits.T.reshape(depth // 8, 8, rows // 8, 8).transpose(0, 2, 1, 3)
        lbo, sbo = (rows // 8) * 128, 128
        starts = [base + (k0 // 8) * lbo for k0 in range(0, depth, 16)]
    logical = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return logical, [descriptor(start, lbo, sbo, swizzle) for start in starts]


def place(image: np.ndarray, logical: np.ndarray, base: int, swizzle: int):
    image[cute_swizzle(base + np.arange(logical.size), swizzle)] = logical


def wgmma_kernel(n: int, trans_a: int, trans_b: int, shared_bytes: int) -> ir.Function:
    half = n // 2
    loads = "".join(f"""  %ia{i} = arith.add %first_value, %c{i} : i32
  %pa{i} = ptr.offset %acc_in, %ia{i} {{elem = f32}} : ptr<global>
  %v{i} = mem.load %pa{i} : f32
""" for i in range(half))
    stores = "".join(f"""  %e{i} = vec.extract %d2 {{index = {i}}} : f32
  %po{i} = ptr.offset %out, %ia{i} {{elem = f32}} : ptr<global>
  mem.store %po{i}, %e{i}
""" for i in range(half))
    attrs = f'{{n = {n}, dtype = "bf16", trans_a = {trans_a}, trans_b = {trans_b}}}'
    return parse(f"""
kernel @k(%image: ptr<global>, %acc_in: ptr<global>, %out: ptr<global>, %da0: i64, %db0: i64, %da1: i64, %db1: i64) {{block = [128, 1, 1], shared_bytes = {shared_bytes}}} {{
  // The descriptors' start addresses are offsets in the kernel's shared memory; the base is added here.
  %tid = gpu.thread_id {{dim = 0}} : i32
  %smem = mem.shared {{offset = 0, bytes = {shared_bytes}}} : ptr<shared>
  %half = arith.constant {{value = {half}}} : i32
  %first_value = arith.mul %tid, %half : i32
""" + constants(*range(half)) + copy_loop("in", "image", "smem", shared_bytes // 4, 128) + f"""
  fence.proxy_async
  gpu.barrier
  %base = ptr.to_int %smem : i64
  %c4_64 = arith.constant {{value = 4}} : i64
  %base_field = arith.shr %base, %c4_64 : i64
  %a0 = arith.add %da0, %base_field : i64
  %b0 = arith.add %db0, %base_field : i64
  %a1 = arith.add %da1, %base_field : i64
  %b1 = arith.add %db1, %base_field : i64
{loads}  %acc = vec.from {", ".join(f"%v{i}" for i in range(half))} : vec<{half}xf32>
  wgmma.fence
  %d1 = wgmma.mma %acc, %a0, %b0 {attrs} : vec<{half}xf32>
  %d2 = wgmma.mma %d1, %a1, %b1 {attrs} : vec<{half}xf32>
  wgmma.commit
  wgmma.wait {{pending = 0}}
{stores}}}
""")


LAYOUTS = [("K", 128, "K", 128), ("K", 128, "MN", 128), ("MN", 128, "K", 128), ("K", 0, "K", 0),
           ("MN", 0, "MN", 0), ("K", 64, "MN", 32), ("MN", 64, "K", 32)]


@pytest.mark.parametrize("n", [8, 64, 256])
@pytest.mark.parametrize("a_major, a_swizzle, b_major, b_swizzle", LAYOUTS)
def test_wgmma_against_numpy_in_its_fragment_layout(n, a_major, a_swizzle, b_major, b_swizzle):
    """Two k16 steps, D = acc + A[:, :16] B[:16] + A[:, 16:] B[16:], with A and B in shared memory laid out as
    K-major (trans 0) or MN-major (trans 1), swizzled or not; small integers make every sum exact."""
    a = RNG.integers(-3, 4, (64, 32)).astype(np.float32)
    b = RNG.integers(-3, 4, (32, n)).astype(np.float32)
    acc = RNG.integers(-100, 100, (64, n)).astype(np.float32)
    a_bytes, (da0, da1) = operand_layout(a, a_major, a_swizzle, 1024)
    b_base = 1024 + -(-a_bytes.size // 1024) * 1024
    b_bytes, (db0, db1) = operand_layout(b.T, b_major, b_swizzle, b_base)
    shared_bytes = b_base + -(-b_bytes.size // 1024) * 1024
    image = np.zeros(shared_bytes, np.uint8)
    place(image, a_bytes, 1024, a_swizzle)
    place(image, b_bytes, b_base, b_swizzle)
    f = wgmma_kernel(n, int(a_major == "MN"), int(b_major == "MN"), shared_bytes)
    out = np.full((128, n // 2), np.nan, np.float32)
    launch(f, (1, 1, 1), image.view(np.uint32), fragments(acc), out, da0, db0, da1, db1)
    np.testing.assert_array_equal(out, fragments(acc + a @ b))


def test_wgmma_rounds_each_k16_sum_once_to_f32_then_accumulates_in_f32():
    """1 + 2**-24 + 2**-24 is 1 in f32 when added one at a time, but the two products sum exactly to 2**-23 first."""
    a = np.zeros((64, 16), np.float32)
    a[:, 0] = a[:, 1] = 2.0 ** -12
    b = np.zeros((16, 8), np.float32)
    b[0], b[1] = 2.0 ** -12, 2.0 ** -12
    a_bytes, (da,) = operand_layout(a, "K", 128, 1024)
    b_bytes, (db,) = operand_layout(b.T, "K", 128, 2048 + 1024 * 8)
    image = np.zeros(2048 + 1024 * 9, np.uint8)
    place(image, a_bytes, 1024, 128)
    place(image, b_bytes, 2048 + 1024 * 8, 128)
    f = wgmma_kernel(8, 0, 0, image.size)
    out = np.zeros((128, 4), np.float32)
    launch(f, (1, 1, 1), image.view(np.uint32), np.ones((128, 4), np.float32), out, da, db, da, db)
    assert (out == np.float32(1 + 2 * 2.0 ** -23)).all()


WARPGROUP_OPS = """
kernel @k(%d: i64) {block = [256, 1, 1], shared_bytes = 16384} {
  %tid = gpu.thread_id {dim = 0} : i32
""" + constants(0, 5, 64, 128) + """
  %zero = arith.constant {value = 0.0} : vec<4xf32>
  BODY
}
"""


def wgmma_then_write_kernel(pending: int, write: str) -> ir.Function:
    """One warpgroup issues two wgmma groups (A0 B, then A1 B), waits until `pending` groups are left, and thread 0
    writes a word of tile `write` (a0, a1, b or spare) before waiting for all."""
    return parse(f"""
kernel @k(%out: ptr<global>) {{block = [128, 1, 1], shared_bytes = 4608}} {{
  %tid = gpu.thread_id {{dim = 0}} : i32
  %smem = mem.shared {{offset = 0, bytes = 4608}} : ptr<shared>
  %base = ptr.to_int %smem : i64
  %c4_64 = arith.constant {{value = 4}} : i64
  %field = arith.shr %base, %c4_64 : i64
  // K-major, no swizzle: 8x16-byte core matrices, LBO 128 bytes (k halves), SBO 256 bytes (8-row groups): A0 at 0
  // and A1 at 2048 (64 rows, 2048 bytes each), B at 4096 (8 rows, 256 bytes), a spare word at 4352
  %layout = arith.constant {{value = {(8 << 16) | (16 << 32)}}} : i64
  %d = arith.add %layout, %field : i64
  %a1_start = arith.constant {{value = {2048 >> 4}}} : i64
  %b_start = arith.constant {{value = {4096 >> 4}}} : i64
  %da1 = arith.add %d, %a1_start : i64
  %db = arith.add %d, %b_start : i64
  %z = arith.constant {{value = 0.0}} : f32
  %acc = vec.from %z, %z, %z, %z : vec<4xf32>
  fence.proxy_async
  gpu.barrier
  wgmma.fence
  %d1 = wgmma.mma %acc, %d, %db {{n = 8, dtype = "bf16", trans_a = 0, trans_b = 0}} : vec<4xf32>
  wgmma.commit
  %d2 = wgmma.mma %d1, %da1, %db {{n = 8, dtype = "bf16", trans_a = 0, trans_b = 0}} : vec<4xf32>
  wgmma.commit
  wgmma.wait {{pending = {pending}}}
  %c0 = arith.constant {{value = 0}} : i32
  %first = arith.cmp %tid, %c0 {{pred = "eq"}} : i1
  scf.if %first {{
    %offset = arith.constant {{value = {dict(a0=16, a1=2048 + 16, b=4096 + 16, spare=4352)[write]}}} : i32
    %where = ptr.offset %smem, %offset {{elem = u8}} : ptr<shared>
    %v = arith.constant {{value = 7}} : u32
    mem.store %where, %v
  }} {{
  }}
  wgmma.wait {{pending = 0}}
  %e = vec.extract %d2 {{index = 0}} : f32
  %o = ptr.offset %out, %tid {{elem = f32}} : ptr<global>
  mem.store %o, %e
}}
""")


@pytest.mark.parametrize("pending, write, racing", [
    (2, "a0", True),      # neither group was waited for: the first still reads A0
    (1, "a0", False),     # the first group completed
    (1, "a1", True),      # the second group may still read A1 ...
    (1, "b", True),       # ... and B
    (0, "a1", False),     # both completed
    (2, "spare", False),  # memory no wgmma reads
])
def test_writing_an_operand_of_a_wgmma_in_flight_is_an_error(pending, write, racing):
    """wgmma.mma_async reads its shared operands asynchronously until a wgmma.wait_group retires its group (PTX ISA
    9.7.15.4, 9.7.15.7.3): a write there before that wait (a stage released to the producer too early) may change
    what the tensor cores multiply. The interpreter, which multiplies when the wgmma is issued, names the race."""
    f = wgmma_then_write_kernel(pending, write)
    out = np.zeros(128, np.float32)
    if racing:
        with pytest.raises(InterpreterError, match="a store writes shared memory that a wgmma issued earlier may "
                                                   "still be reading"):
            launch(f, (1, 1, 1), out)
    else:
        launch(f, (1, 1, 1), out)


def wgmma_then_read_kernel(pending: int, read: str, commit_second: bool = True, branch: bool = False) -> ir.Function:
    """A warpgroup issues two wgmma groups (the second committed or not), waits until `pending` groups are left and
    reads element 0 of `read` (d1, d2, or d2 through a variable, `kept`) before waiting for all. `branch`: the block
    has two warpgroups, and the first alone does all that, inside a branch (its variable's store then merges)."""
    body = f"""
  %slot = var.alloc : var<vec<4xf32>>
  wgmma.fence
  %d1 = wgmma.mma %acc, %d, %d {{n = 8, dtype = "bf16", trans_a = 0, trans_b = 0}} : vec<4xf32>
  wgmma.commit
  %d2 = wgmma.mma %d1, %d, %d {{n = 8, dtype = "bf16", trans_a = 0, trans_b = 0}} : vec<4xf32>
  var.store %slot, %d2
  {"wgmma.commit" if commit_second else ""}
  wgmma.wait {{pending = {pending}}}
  %kept = var.load %slot : vec<4xf32>
  %e = vec.extract %{read} {{index = 0}} : f32 loc("reads.py":7:5)
  %o = ptr.offset %out, %tid {{elem = f32}} : ptr<global>
  mem.store %o, %e
  wgmma.commit
  wgmma.wait {{pending = 0}}"""
    if branch:
        body = f"""
  %c128 = arith.constant {{value = 128}} : i32
  %first = arith.cmp %tid, %c128 {{pred = "lt"}} : i1
  scf.if %first {{{body}
  }} {{
  }}"""
    return parse(f"""
kernel @k(%out: ptr<global>) {{block = [{256 if branch else 128}, 1, 1], shared_bytes = 4096}} {{
  %tid = gpu.thread_id {{dim = 0}} : i32
  %smem = mem.shared {{offset = 0, bytes = 4096}} : ptr<shared>
  %base = ptr.to_int %smem : i64
  %c4_64 = arith.constant {{value = 4}} : i64
  %field = arith.shr %base, %c4_64 : i64
  %layout = arith.constant {{value = {(8 << 16) | (16 << 32)}}} : i64
  %d = arith.add %layout, %field : i64
  %z = arith.constant {{value = 0.0}} : f32
  %acc = vec.from %z, %z, %z, %z : vec<4xf32>{body}
}}
""")


@pytest.mark.parametrize("pending, read, commit_second, branch, racing", [
    (0, "d2", True, False, False),    # both groups retired
    (1, "d1", True, False, False),    # the first retired
    (1, "d2", True, False, True),     # the second may still be written ...
    (1, "kept", True, False, True),   # ... also through a variable it was stored into
    (1, "kept", True, True, True),    # ... by some of the block's threads (a merged value)
    (0, "kept", True, True, False),
    (2, "d1", True, False, True),     # neither retired
    (0, "d2", False, False, True),    # the second was never committed: no wait retires it
])
def test_reading_an_accumulator_of_a_wgmma_in_flight_is_an_error(pending, read, commit_second, branch, racing):
    """The tensor cores write a wgmma's accumulator registers until a wgmma.wait_group retires its group (PTX ISA
    9.7.15.7.3): a read before that (an epilogue that waits for one group too few) gets undefined values on the GPU.
    The interpreter, which has the result at issue, names the read; another wgmma may take it as its accumulator."""
    f = wgmma_then_read_kernel(pending, read, commit_second, branch)
    out = np.zeros(256 if branch else 128, np.float32)
    if racing:
        with pytest.raises(InterpreterError) as info:
            launch(f, (1, 1, 1), out)
        assert str(info.value).startswith("reads.py:7:6: error: vec.extract reads the accumulator of a wgmma that no "
                                          "wgmma.wait has retired (warpgroup 0)")
        assert "skc.hopper.wgmma_wait(pending)" in str(info.value)
    else:
        launch(f, (1, 1, 1), out)
        assert (out == 0).all()


FENCE_CASES = {
    # a wgmma chain on one accumulator after a fence: ordered without another
    "chained": ("""
  wgmma.fence
  %r1 = wgmma.mma %zero, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32>
  %r2 = wgmma.mma %r1, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32>""", None),
    "no fence": ("""
  %r1 = wgmma.mma %zero, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32> loc("mma.py":3:5)""",
                 "wgmma.mma is the first wgmma of warpgroup 0 and no wgmma.fence came before it"),
    # the accumulator written by an ordinary instruction after the fence
    "written after the fence": ("""
  wgmma.fence
  %acc = arith.add %zero, %zero : vec<4xf32>
  %r1 = wgmma.mma %acc, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32> loc("mma.py":3:5)""",
                                "wgmma.mma uses registers (its accumulator) that another instruction of thread 0 read "
                                "or wrote after the warpgroup's last wgmma.fence"),
    # zero_acc (scale-d = 0): the operand is no register of the wgmma (the backend passes only the result's), so
    # writing it after the fence needs no other; the first wgmma of the warpgroup still needs one
    "zero_acc written after the fence": ("""
  wgmma.fence
  %acc = arith.add %zero, %zero : vec<4xf32>
  %r1 = wgmma.mma %acc, %d, %d {n = 8, dtype = "bf16", zero_acc = 1} : vec<4xf32>
  %r2 = wgmma.mma %r1, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32>""", None),
    "zero_acc with no fence": ("""
  %r1 = wgmma.mma %zero, %d, %d {n = 8, dtype = "bf16", zero_acc = 1} : vec<4xf32> loc("mma.py":3:5)""",
                               "wgmma.mma is the first wgmma of warpgroup 0 and no wgmma.fence came before it"),
    "zero_acc, its result written after the fence": ("""
  wgmma.fence
  %r1 = wgmma.mma %zero, %d, %d {n = 8, dtype = "bf16", zero_acc = 1} : vec<4xf32>
  wgmma.commit
  wgmma.wait {pending = 0}
  %acc = arith.add %r1, %r1 : vec<4xf32>
  %r2 = wgmma.mma %acc, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32> loc("mma.py":3:5)""",
                                                     "wgmma.mma uses registers (its accumulator) that another "
                                                     "instruction of thread 0"),
    "written before the fence": ("""
  %acc = arith.add %zero, %zero : vec<4xf32>
  wgmma.fence
  %r1 = wgmma.mma %acc, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32>""", None),
    # a retired result read, then accumulated into: a fence must come between (through a variable too)
    "read, then accumulated": ("""
  %slot = var.alloc : var<vec<4xf32>>
  wgmma.fence
  %r1 = wgmma.mma %zero, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32>
  var.store %slot, %r1
  wgmma.commit
  wgmma.wait {pending = 0}
  %e = vec.extract %r1 {index = 0} : f32
  %kept = var.load %slot : vec<4xf32>
  %r2 = wgmma.mma %kept, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32> loc("mma.py":3:5)""",
                               "wgmma.mma uses registers (its accumulator) that another instruction of thread 0"),
    "read, fenced, then accumulated": ("""
  wgmma.fence
  %r1 = wgmma.mma %zero, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32>
  wgmma.commit
  wgmma.wait {pending = 0}
  %e = vec.extract %r1 {index = 0} : f32
  wgmma.fence
  %r2 = wgmma.mma %r1, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32>""", None),
    # only the second warpgroup's threads touch the accumulator after the fence: the first warpgroup's wgmma is
    # ordered, the second's is not
    "written by one warpgroup": ("""
  %slot = var.alloc : var<vec<4xf32>>
  var.store %slot, %zero
  wgmma.fence
  %high = arith.cmp %tid, %c128 {pred = "ge"} : i1
  scf.if %high {
    %doubled = arith.add %zero, %zero : vec<4xf32>
    var.store %slot, %doubled
  } {
  }
  %acc = var.load %slot : vec<4xf32>
  %r1 = wgmma.mma %acc, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32> loc("mma.py":3:5)""",
                                 "wgmma.mma uses registers (its accumulator) that another instruction of thread 128"),
}


@pytest.mark.parametrize("case", FENCE_CASES)
def test_a_wgmma_needs_a_fence_after_other_accesses_of_its_registers(case):
    """PTX ISA 9.7.15.7.1: a warpgroup runs wgmma.fence before its first wgmma and between another instruction's
    access of registers a wgmma uses (its accumulator or A fragment) and that wgmma; on the GPU the wgmma may
    otherwise run before the access lands. wgmma ops chained on one accumulator need none between them."""
    body, expected = FENCE_CASES[case]
    f = parse(WARPGROUP_OPS.replace("BODY", body))
    args = [descriptor(1024, 16, 1024, 128)]
    if expected is None:
        run(f, grid=1, block=(256, 1, 1), args=args)
        return
    with pytest.raises(InterpreterError) as info:
        run(f, grid=1, block=(256, 1, 1), args=args)
    assert str(info.value).startswith(f"mma.py:3:6: error: {expected}")
    assert "skc.hopper.wgmma_fence()" in str(info.value)


def test_a_register_a_fragment_written_after_the_fence_is_an_error():
    """The A fragment of the register-A form is one of the wgmma's registers: written after the fence, the wgmma
    may read it before the write lands."""
    body = """
  %h = arith.constant {value = 1.0} : bf16
  wgmma.fence
  %a = vec.from %h, %h, %h, %h, %h, %h, %h, %h : vec<8xbf16>
  %r1 = wgmma.mma_rs %zero, %a, %d {n = 8, dtype = "bf16"} : vec<4xf32> loc("mma.py":3:5)"""
    with pytest.raises(InterpreterError) as info:
        run(parse(WARPGROUP_OPS.replace("BODY", body)), grid=1, block=(256, 1, 1), args=[descriptor(1024, 16, 1024, 128)])
    assert str(info.value).startswith("mma.py:3:6: error: wgmma.mma_rs uses registers (its accumulator or A fragment) "
                                      "that another instruction of thread 0")
    fenced = body.replace("  wgmma.fence\n", "").replace("vec<8xbf16>\n", "vec<8xbf16>\n  wgmma.fence\n")
    run(parse(WARPGROUP_OPS.replace("BODY", fenced)), grid=1, block=(256, 1, 1), args=[descriptor(1024, 16, 1024, 128)])


def test_wgmma_with_an_inactive_lane_in_its_warpgroup_is_an_error():
    f = parse(WARPGROUP_OPS.replace("BODY", """
  %not5 = arith.cmp %tid, %c5 {pred = "ne"} : i1
  %high = arith.cmp %tid, %c128 {pred = "ge"} : i1
  %run = arith.or %not5, %high : i1
  scf.if %run {
    %r = wgmma.mma %zero, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32> loc("mma.py":12:5)
  } {
  }"""))
    with pytest.raises(InterpreterError) as info:
        run(f, grid=1, block=(256, 1, 1), args=[descriptor(1024, 16, 1024, 128)])
    message = str(info.value)
    assert message.startswith("mma.py:12:6: error: wgmma.mma must be executed by all 128 threads of a warpgroup: "
                              "warpgroup 0 (threads 0-127) runs it without threads 5")


def test_wgmma_descriptors_must_be_uniform_and_have_no_base_offset():
    f = parse(WARPGROUP_OPS.replace("BODY", """
  %wide = arith.cast %tid : i64
  %c127 = arith.constant {value = 127} : i64
  %mostly = arith.div %wide, %c127 : i64
  %d2 = arith.add %d, %mostly : i64
  wgmma.fence
  %r = wgmma.mma %zero, %d, %d2 {n = 8, dtype = "bf16"} : vec<4xf32>"""))
    desc = descriptor(1024, 16, 1024, 128)
    with pytest.raises(InterpreterError, match=f"the B descriptor differs across the warpgroup .thread 0 has "
                                               f"{desc:#x}, thread 127 {desc + 1:#x}"):
        run(f, grid=1, block=(256, 1, 1), args=[desc])
    uniform = parse(WARPGROUP_OPS.replace("BODY", """
  wgmma.fence
  %r = wgmma.mma %zero, %d, %d {n = 8, dtype = "bf16"} : vec<4xf32>"""))
    run(uniform, grid=1, block=(256, 1, 1), args=[desc])
    with pytest.raises(InterpreterError, match="the A descriptor 0x4006004000010040 has base offset 3"):
        run(uniform, grid=1, block=(256, 1, 1), args=[desc | 3 << 49])


def test_setmaxnreg_runs_in_whole_warpgroups_only():
    whole = parse(WARPGROUP_OPS.replace("BODY", """
  %consumer = arith.cmp %tid, %c128 {pred = "ge"} : i1
  scf.if %consumer {
    gpu.setmaxnreg {count = 232, action = "inc"}
  } {
    gpu.setmaxnreg {count = 40, action = "dec"}
  }"""))
    run(whole, grid=1, block=(256, 1, 1), args=[0])
    partial = parse(WARPGROUP_OPS.replace("BODY", """
  %low = arith.cmp %tid, %c64 {pred = "lt"} : i1
  scf.if %low {
    gpu.setmaxnreg {count = 40, action = "dec"} loc("roles.py":4:5)
  } {
  }"""))
    with pytest.raises(InterpreterError) as info:
        run(partial, grid=1, block=(256, 1, 1), args=[0])
    assert str(info.value).startswith("roles.py:4:6: error: gpu.setmaxnreg must be executed by all 128 threads of a "
                                      "warpgroup: warpgroup 0 (threads 0-127) runs it without threads 64-127")


def test_elect_one_picks_the_lowest_active_lane_of_each_warp():
    f = parse("""
kernel @k(%out: ptr<global>) {block = [96, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
""" + constants(0, 3) + """
  %r = arith.rem %tid, %c3 : i32
  %some = arith.cmp %r, %c0 {pred = "ne"} : i1
  scf.if %some {
    %e = gpu.elect_one : i1
    %v = arith.cast %e : i32
    %o = ptr.offset %out, %tid {elem = i32} : ptr<global>
    mem.store %o, %v
  } {
  }
}
""")
    out = np.full(96, -1, np.int32)
    launch(f, (1, 1, 1), out)
    assert np.flatnonzero(out == 1).tolist() == [1, 32, 64]
    assert (out[np.arange(96) % 3 == 0] == -1).all()


# -- MFMA (AMD) -----------------------------------------------------------------------------------
def mfma_kernel(m: int, n: int, k: int, dtype: str) -> ir.Function:
    count = m * n // 64
    loads = "".join(f"""  %ci{i} = arith.constant {{value = {i}}} : i32
  %ai{i} = arith.add %first_acc, %ci{i} : i32
  %pa{i} = ptr.offset %acc_in, %ai{i} {{elem = f32}} : ptr<global>
  %v{i} = mem.load %pa{i} : f32
""" for i in range(count))
    stores = "".join(f"""  %e{i} = vec.extract %d {{index = {i}}} : f32
  %po{i} = ptr.offset %out, %ai{i} {{elem = f32}} : ptr<global>
  mem.store %po{i}, %e{i}
""" for i in range(count))
    return parse(f"""
kernel @k(%a: ptr<global>, %b: ptr<global>, %acc_in: ptr<global>, %out: ptr<global>) {{block = [128, 1, 1]}} {{
  %tid = gpu.thread_id {{dim = 0}} : i32
  %count = arith.constant {{value = {count}}} : i32
  %c4 = arith.constant {{value = 4}} : i32
  %first_acc = arith.mul %tid, %count : i32
  %first_op = arith.mul %tid, %c4 : i32
  %pa = ptr.offset %a, %first_op {{elem = {dtype}}} : ptr<global>
  %va = mem.load %pa : vec<4x{dtype}>
  %pb = ptr.offset %b, %first_op {{elem = {dtype}}} : ptr<global>
  %vb = mem.load %pb : vec<4x{dtype}>
{loads}  %acc = vec.from {", ".join(f"%v{i}" for i in range(count))} : vec<{count}xf32>
  %d = mfma.mma %acc, %va, %vb {{m = {m}, n = {n}, k = {k}, dtype = "{dtype}"}} : vec<{count}xf32>
{stores}}}
""")


def mfma_registers(m: int, a: np.ndarray, b: np.ndarray, d: np.ndarray):
    """A, B and D of one wavefront in its registers, entry by entry from the AMD Matrix Instruction Calculator's
    tables (cdna3, --register-layout): A[i][kk] in lane i + m (kk // 4), value kk % 4; B[kk][j] in lane
    j + m (kk // 4), value kk % 4; D[i][j] in lane j + 32 ((i // 4) % 2), value 4 (i // 8) + i % 4 (32x32x8)
    or lane j + 16 (i // 4), value i % 4 (16x16x16)."""
    n, k = d.shape[1], a.shape[1]
    ra, rb, rd = np.zeros((64, 4), a.dtype), np.zeros((64, 4), b.dtype), np.zeros((64, m * n // 64), np.float32)
    for i in range(m):
        for kk in range(k):
            ra[i + m * (kk // 4), kk % 4] = a[i, kk]
    for kk in range(k):
        for j in range(n):
            rb[j + m * (kk // 4), kk % 4] = b[kk, j]
    for i in range(m):
        for j in range(n):
            if m == 32:
                rd[j + 32 * ((i // 4) % 2), 4 * (i // 8) + i % 4] = d[i, j]
            else:
                rd[j + 16 * (i // 4), i % 4] = d[i, j]
    return ra, rb, rd


@pytest.mark.parametrize("shape", [(32, 32, 8), (16, 16, 16)])
@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_mfma_against_numpy_in_the_register_layouts_of_cdna(shape, dtype):
    m, n, k = shape
    f = mfma_kernel(m, n, k, dtype)
    regs = []
    for wave in range(2):
        a = RNG.integers(-4, 5, (m, k)).astype(np.float32)
        b = RNG.integers(-4, 5, (k, n)).astype(np.float32)
        acc = RNG.integers(-50, 50, (m, n)).astype(np.float32)
        regs.append((mfma_registers(m, a, b, acc), mfma_registers(m, a, b, acc + a @ b)[2]))
    as_bits = (lambda x: bf16(x)) if dtype == "bf16" else (lambda x: x.astype(np.float16))
    a_in = np.concatenate([as_bits(r[0][0]) for r in regs])
    b_in = np.concatenate([as_bits(r[0][1]) for r in regs])
    acc_in = np.concatenate([r[0][2] for r in regs])
    out = np.full_like(acc_in, np.nan)
    memory = Memory()
    args = [memory.map_array(x, name=name) for x, name in ((a_in, "a"), (b_in, "b"), (acc_in, "acc"), (out, "out"))]
    run(f, grid=1, block=(128, 1, 1), args=args, memory=memory, target="gfx942")
    np.testing.assert_array_equal(out, np.concatenate([r[1] for r in regs]))


def test_mfma_needs_whole_wavefronts_of_64():
    f = mfma_kernel(16, 16, 16, "bf16")
    memory = Memory()
    args = [memory.allocate(4096) for _ in range(4)]
    with pytest.raises(InterpreterError, match="mfma.mma needs wavefronts of 64 lanes; the target sm_90a"):
        run(f, grid=1, block=(128, 1, 1), args=args, memory=memory, target="sm_90a")


# -- clusters -----------------------------------------------------------------------------------
def test_cluster_ids_ranks_and_the_cluster_barrier():
    """Each block writes its slot, syncs the cluster, then reads the slot of the next block of its cluster."""
    f = parse("""
kernel @k(%slots: ptr<global>, %out: ptr<global>) {block = [64, 1, 1], cluster = [2, 2, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %bx = gpu.block_id {dim = 0} : i32
  %by = gpu.block_id {dim = 1} : i32
  %gx = gpu.grid_dim {dim = 0} : i32
  %rank = cluster.rank : i32
  %cx = cluster.id {dim = 0} : i32
  %cy = cluster.id {dim = 1} : i32
""" + constants(0, 1, 3, 4, 10, 100) + """
  %row = arith.mul %by, %gx : i32
  %block = arith.add %row, %bx : i32
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  %cluster = arith.mul %cy, %c10 : i32
  %cluster_index = arith.add %cluster, %cx : i32
  scf.if %first {
    %mine = ptr.offset %slots, %block {elem = i32} : ptr<global>
    %v = arith.add %block, %c100 : i32
    mem.store %mine, %v
  } {
  }
  cluster.arrive
  cluster.wait
  scf.if %first {
    %next_rank = arith.add %rank, %c1 : i32
    %wrapped = arith.and %next_rank, %c3 : i32
    %nx = arith.and %wrapped, %c1 : i32
    %ny = arith.shr %wrapped, %c1 : i32
    %base_x = arith.sub %bx, %rank : i32
    %rx = arith.and %rank, %c1 : i32
    %x0 = arith.sub %bx, %rx : i32
    %ry = arith.shr %rank, %c1 : i32
    %y0 = arith.sub %by, %ry : i32
    %px = arith.add %x0, %nx : i32
    %py = arith.add %y0, %ny : i32
    %prow = arith.mul %py, %gx : i32
    %peer = arith.add %prow, %px : i32
    %src = ptr.offset %slots, %peer {elem = i32} : ptr<global>
    %seen = mem.load %src : i32
    %base = arith.mul %block, %c4 : i32
    %o0 = ptr.offset %out, %base {elem = i32} : ptr<global>
    mem.store %o0, %rank
    %o1 = ptr.offset %o0, %c1 {elem = i32} : ptr<global>
    mem.store %o1, %cluster_index
    %o2 = ptr.offset %o1, %c1 {elem = i32} : ptr<global>
    mem.store %o2, %seen
  } {
  }
}
""")
    slots = np.zeros(8, np.int32)
    out = np.full((8, 4), -1, np.int32)
    launch(f, (4, 2, 1), slots, out)
    for by in range(2):
        for bx in range(4):
            rank = (bx % 2) + 2 * (by % 2)
            peer_rank = (rank + 1) % 4
            peer = (by - by % 2 + peer_rank // 2) * 4 + (bx - bx % 2 + peer_rank % 2)
            assert out[by * 4 + bx, :3].tolist() == [rank, 10 * (by // 2) + bx // 2, 100 + peer]
    with pytest.raises(LaunchError, match=r"runs in clusters of \(2, 2, 1\) blocks; the grid \(3, 2, 1\) is not"):
        launch(f, (3, 2, 1), slots, np.zeros((6, 4), np.int32))


def test_cluster_barrier_counts_exited_threads_and_reports_the_missing_ones():
    """Threads that returned count as arrived (PTX: the wait is for all non-exited threads of the cluster); threads
    stuck elsewhere are named."""
    exiting = parse("""
kernel @k() {block = [64, 1, 1], cluster = [2, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %rank = cluster.rank : i32
""" + constants(0, 1, 32) + """
  %low = arith.cmp %tid, %c32 {pred = "lt"} : i1
  scf.if %low {
    func.return
  } {
  }
  %r1 = arith.cmp %rank, %c1 {pred = "eq"} : i1
  scf.if %r1 {
    cluster.arrive
    cluster.wait
  } {
  }
  cluster.arrive
  cluster.wait
}
""")
    run(exiting, grid=(2, 1, 1), block=(64, 1, 1), args=[])   # block 0 ends while block 1 waits for its 2nd arrival
    stuck = parse("""
kernel @k() {block = [64, 1, 1], cluster = [2, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %rank = cluster.rank : i32
""" + constants(0, 1, 32) + """
  %low = arith.cmp %tid, %c32 {pred = "lt"} : i1
  scf.if %low {
    func.return
  } {
  }
  %r0 = arith.cmp %rank, %c0 {pred = "eq"} : i1
  scf.if %r0 {
    gpu.barrier {id = 1, threads = 64}
  } {
  }
  cluster.arrive
  cluster.wait loc("sync.py":11:3)
}
""")
    with pytest.raises(DeadlockError) as info:
        run(stuck, grid=(2, 1, 1), block=(64, 1, 1), args=[])
    message = str(info.value)
    assert "deadlock in the cluster of blocks (0, 0, 0), (1, 0, 0)" in message
    assert ("block (1, 0, 0): threads 32-63 wait at the cluster barrier at sync.py:11 for arrival 1 of every thread; "
            "not arrived: block (0, 0, 0) threads 32-63\n") in message
    assert "block (0, 0, 0): threads 32-63 wait at named barrier 1 (64 threads)" in message


# -- warp-specialized pipelines -----------------------------------------------------------------------
PIPELINE = """
kernel @pipe(%t: tmap<f32, 8x32, swizzle=128>, %out: ptr<global>, %tiles: i32) {block = [256, 1, 1], shared_bytes = 3072} {
  %tid = gpu.thread_id {dim = 0} : i32
  %full = mem.shared {offset = 0, bytes = 16, name = "full"} : ptr<shared>
  %empty = mem.shared {offset = 16, bytes = 16, name = "empty"} : ptr<shared>
  %stages = mem.shared {offset = 1024, bytes = 2048, name = "stages"} : ptr<shared>
""" + constants(0, 1, 2, 4, 7, 8, 32, 128, 256, 1024) + """
  %full1 = ptr.offset %full, %c1 {elem = i64} : ptr<shared>
  %empty1 = ptr.offset %empty, %c1 {elem = i64} : ptr<shared>
  %first = arith.cmp %tid, %c0 {pred = "eq"} : i1
  scf.if %first {
    mbarrier.init %full, %c1
    mbarrier.init %full1, %c1
    mbarrier.init %empty, %c128
    mbarrier.init %empty1, %c128
    fence.mbarrier_init
  } {
  }
  gpu.barrier
  %producer = arith.cmp %tid, %c128 {pred = "lt"} : i1
  scf.if %producer {
    %elected = gpu.elect_one : i1
    %warp0 = arith.cmp %tid, %c32 {pred = "lt"} : i1
    %leader = arith.and %elected, %warp0 : i1
    scf.if %leader {
      scf.for %c0, %tiles, %c1 {label = "P"} { ^(%i: i32)
        %s = arith.and %i, %c1 : i32
        %round = arith.shr %i, %c1 : i32
        %phase = arith.and %round, %c1 : i32
        %empty_phase = arith.xor %phase, %c1 : i32
        %full_s = ptr.offset %full, %s {elem = i64} : ptr<shared>
        %empty_s = ptr.offset %empty, %s {elem = i64} : ptr<shared>
        mbarrier.wait %empty_s, %empty_phase
        mbarrier.arrive_tx %full_s, %c1024
        %offset = arith.mul %s, %c1024 : i32
        %dst = ptr.offset %stages, %offset {elem = u8} : ptr<shared>
        %y = arith.mul %i, %c8 : i32
        tma.load %dst, %full_s, %t, %c0, %y {rank = 2}
      }
    } {
    }
  } {
    %c = arith.sub %tid, %c128 : i32
    scf.for %c0, %tiles, %c1 {label = "C"} { ^(%j: i32)
      %cs = arith.and %j, %c1 : i32
      %cround = arith.shr %j, %c1 : i32
      %cphase = arith.and %cround, %c1 : i32
      %cfull = ptr.offset %full, %cs {elem = i64} : ptr<shared>
      %cempty = ptr.offset %empty, %cs {elem = i64} : ptr<shared>
      mbarrier.wait %cfull, %cphase
      %stage = arith.mul %cs, %c1024 : i32
      %tile = arith.mul %j, %c256 : i32
""" + "".join(f"""      %idx{k} = arith.add %c2x, %c{k} : i32
      %l{k} = arith.mul %idx{k}, %c4 : i32
      %row{k} = arith.shr %l{k}, %c7 : i32
      %bits{k} = arith.and %row{k}, %c7 : i32
      %xor{k} = arith.shl %bits{k}, %c4 : i32
      %p{k} = arith.xor %l{k}, %xor{k} : i32
      %at{k} = arith.add %stage, %p{k} : i32
      %src{k} = ptr.offset %stages, %at{k} {{elem = u8}} : ptr<shared>
      %v{k} = mem.load %src{k} : f32
      %g{k} = arith.add %tile, %idx{k} : i32
      %dst{k} = ptr.offset %out, %g{k} {{elem = f32}} : ptr<global>
      mem.store %dst{k}, %v{k}
""" for k in range(2)) + """      mbarrier.arrive %cempty
    }
  }
}
"""


def test_two_stage_producer_consumer_pipeline_moves_every_tile():
    """One elected producer lane fills a ring of 2 swizzled stages with TMA (full barriers, expect-tx), 128
    consumer threads wait for each stage, read it through the swizzle and release it (empty barriers)."""
    f = parse(PIPELINE.replace("%c = arith.sub %tid, %c128 : i32",
                               "%c = arith.sub %tid, %c128 : i32\n    %c2x = arith.mul %c, %c2 : i32"))
    tiles = 7
    tensor = RNG.standard_normal((tiles * 8, 32)).astype(np.float32)
    out = np.full(tiles * 256, np.nan, np.float32)
    launch(f, (1, 1, 1), TensorMap(tensor, box=(8, 32), swizzle=128), out, tiles)
    np.testing.assert_array_equal(out, tensor.reshape(-1))


def gemm_ir(cluster: int) -> str:
    """A warp-specialized bf16 GEMM, C (f32) = A B^T with A m x k and B n x k (both K-major): warpgroup 0 produces
    (one elected lane: TMA loads of 128x64 A and 64x64 B tiles into 2 stages, 128B swizzle), warpgroups 1 and 2
    consume (try_wait spin on `full`, 4 wgmma m64n64k16 each per stage, release `empty`), then stage C in shared
    memory and store it with TMA. With a cluster of 2 along M, each block loads half of the B tile and multicasts
    it to both; consumers release the stage in both blocks."""
    b_rows = 64 // cluster
    stage_bytes = 128 * 64 * 2 + 64 * 64 * 2
    consumers = 2 * cluster
    high = (16 >> 4) << 16 | (1024 >> 4) << 32 | 1 << 62       # LBO 16 (unused), SBO 1024, 128B swizzle
    fragment = ("".join(f"""    %e{i} = vec.extract %acc_out {{index = {i}}} : f32
    %fi{i} = arith.add %frag, %fo{i} : i32
    %fp{i} = ptr.offset %cstage, %fi{i} {{elem = f32}} : ptr<shared>
    mem.store %fp{i}, %e{i}
""" for i in range(32)))
    offsets = [8 * ((i % 4) // 2) * 64 + 8 * (i // 4) + i % 2 for i in range(32)]   # row * 64 + column, value i
    fragment_offsets = "".join(f"  %fo{i} = arith.constant {{value = {offset}}} : i32\n"
                               for i, offset in enumerate(offsets))
    mmas = "".join(f"""      %a_at{kk} = arith.add %a_base, %c{kk * 32}_64 : i64
      %a_enc{kk} = arith.shr %a_at{kk}, %c4_64 : i64
      %a_field{kk} = arith.and %a_enc{kk}, %c16383_64 : i64
      %da{kk} = arith.or %a_field{kk}, %high : i64
      %b_at{kk} = arith.add %b_base, %c{kk * 32}_64 : i64
      %b_enc{kk} = arith.shr %b_at{kk}, %c4_64 : i64
      %b_field{kk} = arith.and %b_enc{kk}, %c16383_64 : i64
      %db{kk} = arith.or %b_field{kk}, %high : i64
      %acc{kk + 1} = wgmma.mma %acc{kk}, %da{kk}, %db{kk} {{n = 64, dtype = "bf16"}} : vec<32xf32>
""" for kk in range(4))
    if cluster == 1:
        b_load = "tma.load %b_dst, %full_s, %b, %k0, %n0 {rank = 2}"
        release = "mbarrier.arrive %cempty"
        sync = "gpu.barrier"
        b_offset, b_row = "%b_stage_off", "%bn0"
    else:
        b_load = "tma.load %b_dst, %full_s, %b, %k0, %n0, %everyone {rank = 2, multicast = true}"
        release = "mbarrier.arrive_cluster %cempty, %c0\n          mbarrier.arrive_cluster %cempty, %c1"
        sync = "cluster.arrive\n  cluster.wait"
        b_offset, b_row = "%b_half_off", "%bn_half"
    return f"""
kernel @gemm(%a: tmap<bf16, 128x64, swizzle=128>, %b: tmap<bf16, {b_rows}x64, swizzle=128>, %c: tmap<f32, 128x64, swizzle=0>, %ktiles: i32) {{block = [384, 1, 1], shared_bytes = 82944, cluster = [{cluster}, 1, 1]}} {{
  %acc_slot = var.alloc : var<vec<32xf32>>
  %tid = gpu.thread_id {{dim = 0}} : i32
  %bm = gpu.block_id {{dim = 0}} : i32
  %bn = gpu.block_id {{dim = 1}} : i32
  %rank = cluster.rank : i32
  %full = mem.shared {{offset = 0, bytes = 16, name = "full"}} : ptr<shared>
  %empty = mem.shared {{offset = 16, bytes = 16, name = "empty"}} : ptr<shared>
  %a_smem = mem.shared {{offset = 1024, bytes = 32768, name = "a_stages"}} : ptr<shared>
  %b_smem = mem.shared {{offset = 33792, bytes = 16384, name = "b_stages"}} : ptr<shared>
  %c_smem = mem.shared {{offset = 50176, bytes = 32768, name = "c_stage"}} : ptr<shared>
  %everyone = arith.constant {{value = 3}} : i16
  %stage_bytes = arith.constant {{value = {stage_bytes}}} : i32
  %consumers = arith.constant {{value = {consumers}}} : i32
  %high = arith.constant {{value = {high}}} : i64
""" + constants(0, 1, 2, 4, 16, 32, 64, 128, 4096, 8192, 16384) + "".join(
        f"  %c{v}_64 = arith.constant {{value = {v}}} : i64\n" for v in (0, 4, 32, 64, 96, 16383)) \
        + fragment_offsets + f"""
  %full1 = ptr.offset %full, %c1 {{elem = i64}} : ptr<shared>
  %empty1 = ptr.offset %empty, %c1 {{elem = i64}} : ptr<shared>
  %first = arith.cmp %tid, %c0 {{pred = "eq"}} : i1
  scf.if %first {{
    mbarrier.init %full, %c1
    mbarrier.init %full1, %c1
    mbarrier.init %empty, %consumers
    mbarrier.init %empty1, %consumers
    fence.mbarrier_init
  }} {{
  }}
  {sync}
  %wg = arith.div %tid, %c128 : i32
  %is_producer = arith.cmp %wg, %c0 {{pred = "eq"}} : i1
  scf.if %is_producer {{
    gpu.setmaxnreg {{count = 40, action = "dec"}}
    %elected = gpu.elect_one : i1
    %warp0 = arith.cmp %tid, %c32 {{pred = "lt"}} : i1
    %leader = arith.and %elected, %warp0 : i1
    scf.if %leader {{
      %m0 = arith.mul %bm, %c128 : i32
      %bn0 = arith.mul %bn, %c64 : i32
      %rank_rows = arith.mul %rank, %c32 : i32
      %bn_half = arith.add %bn0, %rank_rows : i32
      scf.for %c0, %ktiles, %c1 {{label = "produce"}} {{ ^(%kt: i32)
        %s = arith.and %kt, %c1 : i32
        %round = arith.shr %kt, %c1 : i32
        %phase = arith.and %round, %c1 : i32
        %empty_phase = arith.xor %phase, %c1 : i32
        %full_s = ptr.offset %full, %s {{elem = i64}} : ptr<shared>
        %empty_s = ptr.offset %empty, %s {{elem = i64}} : ptr<shared>
        mbarrier.wait %empty_s, %empty_phase
        mbarrier.arrive_tx %full_s, %stage_bytes
        %a_off = arith.mul %s, %c16384 : i32
        %a_dst = ptr.offset %a_smem, %a_off {{elem = u8}} : ptr<shared>
        %k0 = arith.mul %kt, %c64 : i32
        tma.load %a_dst, %full_s, %a, %k0, %m0 {{rank = 2}}
        %b_stage_off = arith.mul %s, %c8192 : i32
        %rank_off = arith.mul %rank, %c4096 : i32
        %b_half_off = arith.add %b_stage_off, %rank_off : i32
        %b_dst = ptr.offset %b_smem, {b_offset} {{elem = u8}} : ptr<shared>
        %n0 = arith.add {b_row}, %c0 : i32
        {b_load}
      }}
    }} {{
    }}
  }} {{
    gpu.setmaxnreg {{count = 232, action = "inc"}}
    %cwg = arith.sub %wg, %c1 : i32
    %t = arith.rem %tid, %c128 : i32
    %zeros = arith.constant {{value = 0.0}} : vec<32xf32>
    var.store %acc_slot, %zeros
    %a_rows = arith.mul %cwg, %c8192 : i32
    scf.for %c0, %ktiles, %c1 {{label = "consume"}} {{ ^(%j: i32)
      %cs = arith.and %j, %c1 : i32
      %cround = arith.shr %j, %c1 : i32
      %cphase = arith.and %cround, %c1 : i32
      %cfull = ptr.offset %full, %cs {{elem = i64}} : ptr<shared>
      %cempty = ptr.offset %empty, %cs {{elem = i64}} : ptr<shared>
      scf.loop {{label = "spin"}} {{
        %ready = mbarrier.try_wait %cfull, %cphase : i1
        scf.if %ready {{
          scf.break {{label = "spin"}}
        }} {{
        }}
      }}
      %ca_off = arith.mul %cs, %c16384 : i32
      %ca_rows = arith.add %ca_off, %a_rows : i32
      %ca = ptr.offset %a_smem, %ca_rows {{elem = u8}} : ptr<shared>
      %a_base = ptr.to_int %ca : i64
      %cb_off = arith.mul %cs, %c8192 : i32
      %cb = ptr.offset %b_smem, %cb_off {{elem = u8}} : ptr<shared>
      %b_base = ptr.to_int %cb : i64
      wgmma.fence
      %acc0 = var.load %acc_slot : vec<32xf32>
{mmas}      wgmma.commit
      wgmma.wait {{pending = 0}}
      var.store %acc_slot, %acc4
      %releaser = arith.cmp %t, %c0 {{pred = "eq"}} : i1
      scf.if %releaser {{
          {release}
      }} {{
      }}
    }}
    %acc_out = var.load %acc_slot : vec<32xf32>
    %warp = arith.div %t, %c32 : i32
    %lane = arith.rem %t, %c32 : i32
    %quad = arith.div %lane, %c4 : i32
    %pair = arith.rem %lane, %c4 : i32
    %wrow = arith.mul %warp, %c16 : i32
    %row_in = arith.add %wrow, %quad : i32
    %wg_rows = arith.mul %cwg, %c64 : i32
    %row = arith.add %row_in, %wg_rows : i32
    %row_start = arith.mul %row, %c64 : i32
    %col = arith.mul %pair, %c2 : i32
    %frag = arith.add %row_start, %col : i32
    %cstage = ptr.offset %c_smem, %c0 {{elem = u8}} : ptr<shared>
{fragment}    fence.proxy_async
    gpu.barrier {{id = 1, threads = 256}}
    %storer = arith.cmp %tid, %c128 {{pred = "eq"}} : i1
    scf.if %storer {{
      %cm0 = arith.mul %bm, %c128 : i32
      %cn0 = arith.mul %bn, %c64 : i32
      tma.store %c, %c_smem, %cn0, %cm0 {{rank = 2}}
      tma.commit
      tma.wait {{pending = 0}}
    }} {{
    }}
  }}
  {sync}
}}
"""


@pytest.mark.parametrize("cluster", [1, 2])
def test_warp_specialized_gemm_with_tma_wgmma_and_tma_store_matches_numpy(cluster):
    m, n, k = 256, 128, 320
    a = RNG.integers(-2, 3, (m, k)).astype(np.float32)
    b = RNG.integers(-2, 3, (n, k)).astype(np.float32)
    f = parse(gemm_ir(cluster))
    c = np.full((m, n), np.nan, np.float32)
    args = [TensorMap(bf16(a), box=(128, 64), swizzle=128, dtype="bf16"),
            TensorMap(bf16(b), box=(64 // cluster, 64), swizzle=128, dtype="bf16"),
            TensorMap(c, box=(128, 64), swizzle=0), k // 64]
    start = time.perf_counter()
    run(f, grid=(m // 128, n // 64, 1), block=(384, 1, 1), args=args)
    assert time.perf_counter() - start < 10
    np.testing.assert_array_equal(c, a @ b.T)



@pytest.mark.parametrize("shape, config", [
    ((200, 136, 72), {}),                                      # partial tiles: TMA zero fill and clipped stores
    ((256, 192, 256), {"a_k_major": False, "b_k_major": True}),  # MN-major A and K-major B
    ((512, 256, 192), {"cluster_m": 2}),                       # clusters of 2, B multicast
    ((200, 136, 72), {"loader": "vector"}),                    # the vector loader instead of TMA
    ((256, 192, 128), {"loader": "vector", "a_k_major": False, "b_k_major": True}),
])
def test_the_warp_specialized_gemm_of_skc_blocks_runs_in_the_interpreter(monkeypatch, shape, config):
    """skc.blocks.matmul (the frontend's GEMM from the building blocks: TMA producer, wgmma consumers,
    mbarrier pipeline, TMA-store epilogue) on the interpreter device, against numpy, exactly."""
    torch = pytest.importorskip("torch")
    import skc
    from skc.runtime import devices

    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    m, n, k = shape
    a_stored = RNG.integers(-2, 3, (m, k) if config.get("a_k_major", True) else (k, m)).astype(np.float32)
    b_stored = RNG.integers(-2, 3, (n, k) if config.get("b_k_major", False) else (k, n)).astype(np.float32)
    a = torch.from_numpy(a_stored).to(torch.bfloat16)
    b = torch.from_numpy(b_stored).to(torch.bfloat16)
    a = a if config.get("a_k_major", True) else a.t()
    b = b.t() if config.get("b_k_major", False) else b
    out = torch.full((m, n), float("nan"), dtype=torch.bfloat16)
    skc.blocks.matmul(a, b, out=out, config=skc.blocks.MatmulConfig(**config))
    expected = a.float().numpy() @ b.float().numpy()
    np.testing.assert_array_equal(out.float().numpy(), expected)

# -- the interpreter covers the IR -----------------------------------------------------------------
def test_every_async_op_has_a_handler_and_blocking_ones_can_wait():
    from skc.ir import ops_async
    from skc.runtime.interpreter import plan

    names = {op.name for op in vars(ops_async).values()
             if isinstance(op, type) and issubclass(op, ir.Op) and op is not ir.Op and "name" in op.__dict__}
    handled = set(plan.PURE) | set(plan.EFFECTS) | set(plan.CONTROL)
    assert "mbarrier.wait" in names and sorted(names - handled) == []
    assert sorted(set(ir.OPS) - handled) == []
    blocking = {name for name in names if ir.OPS[name]((), ()).has(ir.BLOCKING)}
    # Copies and MMAs complete when issued: their waits never block; every other blocking op can.
    assert blocking - plan.GENERATORS == {"tma.wait", "wgmma.wait"}
