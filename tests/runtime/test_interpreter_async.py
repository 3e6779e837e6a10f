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
from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits
from skc.runtime.interpreter import Memory, TensorMapDescriptor, map_tensor_map, run
from skc.runtime.tma import TensorMap

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


@pytest.mark.parametrize("swizzle", [0, 32, 64, 128])
@pytest.mark.parametrize("coords", [(0, 0), (-8, 5), (40, -3), (-20, 12)])   # innermost first
def test_tma_load_places_the_box_by_the_swizzle_and_zero_fills_outside(swizzle, coords):
    cols = swizzle // 2 if swizzle else 24          # a row of the box fills the swizzle span (or 48 bytes)
    box, dst, shared_bytes = (12, cols), 2048, 4096
    tensor = RNG.integers(1, 60000, (20, 56)).astype(np.uint16)
    f = tma_load_kernel(box, swizzle, shared_bytes, dst)
    out = np.zeros(shared_bytes // 4, np.uint32)
    launch(f, (1, 1, 1), TensorMap(tensor, box=box, swizzle=swizzle), out, *coords)
    logical = expected_box(tensor, box, coords[::-1]).reshape(-1).view(np.uint8)
    image = np.zeros(shared_bytes, np.uint8)
    image[cute_swizzle(dst + np.arange(logical.size), swizzle)] = logical
    got = out.view(np.uint8)
    got[8:16] = 0   # the barrier's bytes (the interpreter keeps its state elsewhere)
    np.testing.assert_array_equal(got, image)
    if coords != (0, 0):
        assert (logical == 0).any()   # part of the box was outside the tensor


def test_tma_load_needs_aligned_shared_boxes_and_typed_tensor_maps():
    tensor = np.zeros((64, 64), np.uint16)
    f = tma_load_kernel((8, 64), 128, 4096, 512)
    with pytest.raises(InterpreterError, match="at offset 0x200, which is not 1024-byte aligned"):
        launch(f, (1, 1, 1), TensorMap(tensor, box=(8, 64), swizzle=128), np.zeros(1024, np.uint32), 0, 0)
    f = tma_load_kernel((8, 32), 64, 4096, 64)
    with pytest.raises(InterpreterError, match="at offset 0x40, which is not 128-byte aligned"):
        launch(f, (1, 1, 1), TensorMap(tensor, box=(8, 32), swizzle=64), np.zeros(1024, np.uint32), 0, 0)
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


@pytest.mark.parametrize("swizzle", [0, 32, 128])
@pytest.mark.parametrize("coords", [(0, 0), (40, -3), (-8, 15)])
def test_tma_store_unswizzles_the_box_and_skips_elements_outside_the_tensor(swizzle, coords):
    cols = swizzle // 2 if swizzle else 24
    box, src, shared_bytes = (12, cols), 1024, 3072
    image = RNG.integers(0, 256, shared_bytes).astype(np.uint8)
    tensor = np.full((20, 56), 0xDEAD, np.uint16)
    f = tma_store_kernel(box, swizzle, shared_bytes, src)
    launch(f, (1, 1, 1), TensorMap(tensor, box=box, swizzle=swizzle), image.view(np.uint32), *coords)
    nbytes = box[0] * box[1] * 2
    values = image[cute_swizzle(src + np.arange(nbytes), swizzle)].view(np.uint16).reshape(box)
    expected = np.full((20, 56), 0xDEAD, np.uint16)
    x, y = coords
    for r in range(box[0]):
        for c in range(box[1]):
            if 0 <= y + r < 20 and 0 <= x + c < 56:
                expected[y + r, x + c] = values[r, c]
    np.testing.assert_array_equal(tensor, expected)


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


def fragments(d: np.ndarray) -> np.ndarray:
    """d (64 x n) as the f32 accumulator fragments of a warpgroup (PTX ISA 9.7.15.5.1.1, figure of the m64nNk16 D
    matrix): in each 8-column block, thread t holds rows 16 (t // 32) + (t % 32) // 4 and 8 below it, columns
    2 (t % 4) and the next."""
    n = d.shape[1]
    out = np.empty((128, n // 2), np.float32)
    for t in range(128):
        warp, lane = divmod(t, 32)
        for block in range(n // 8):
            for half in range(2):
                for pair in range(2):
                    out[t, 4 * block + 2 * half + pair] = d[16 * warp + lane // 4 + 8 * half, 8 * block + 2 * (lane % 4)
                                                           + pair]
    return out


def wgmma_kernel(n: int, trans_a: int, trans_b: int, shared_bytes: int) -> ir.Function:
    half = n // 2
    loads = "".join(f"""  %ia{i} = arith.add %first_value, %c{i} : i32
  %pa{i} = ptr.offset %acc_in, %ia{i} {{elem = f32}} : ptr<global>
  %a{i} = mem.load %pa{i} : f32
""" for i in range(half))
    stores = "".join(f"""  %e{i} = vec.extract %d2 {{index = {i}}} : f32
  %po{i} = ptr.offset %out, %ia{i} {{elem = f32}} : ptr<global>
  mem.store %po{i}, %e{i}
""" for i in range(half))
    attrs = f'{{n = {n}, dtype = "bf16", trans_a = {trans_a}, trans_b = {trans_b}}}'
    return parse(f"""
kernel @k(%image: ptr<global>, %acc_in: ptr<global>, %out: ptr<global>, %da0: i64, %db0: i64, %da1: i64, %db1: i64) {{block = [128, 1, 1], shared_bytes = {shared_bytes}}} {{
  %tid = gpu.thread_id {{dim = 0}} : i32
  %smem = mem.shared {{offset = 0, bytes = {shared_bytes}}} : ptr<shared>
  %half = arith.constant {{value = {half}}} : i32
  %first_value = arith.mul %tid, %half : i32
""" + constants(*range(half)) + copy_loop("in", "image", "smem", shared_bytes // 4, 128) + f"""
  gpu.barrier
  fence.proxy_async
{loads}  %acc = vec.from {", ".join(f"%a{i}" for i in range(half))} : vec<{half}xf32>
  wgmma.fence
  %d1 = wgmma.mma %acc, %da0, %db0 {attrs} : vec<{half}xf32>
  %d2 = wgmma.mma %d1, %da1, %db1 {attrs} : vec<{half}xf32>
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
kernel @k(%d: i64) {block = [256, 1, 1], shared_bytes = 4096} {
  %tid = gpu.thread_id {dim = 0} : i32
""" + constants(0, 5, 64, 128) + """
  %zero = arith.constant {value = 0.0} : vec<4xf32>
  BODY
}
"""


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
  %r = wgmma.mma %zero, %d, %d2 {n = 8, dtype = "bf16"} : vec<4xf32>"""))
    with pytest.raises(InterpreterError, match="the B descriptor differs across the warpgroup .thread 0 has "
                                               "0x400004000010040, thread 127 0x400004000010041"):
        run(f, grid=1, block=(256, 1, 1), args=[descriptor(1024, 16, 1024, 128)])
    with pytest.raises(InterpreterError, match="has base offset 3"):
        run(f, grid=1, block=(256, 1, 1), args=[descriptor(1024, 16, 1024, 128) | 3 << 49])


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
    f = parse("""
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
    cluster.wait loc("sync.py":8:5)
  } {
  }
  cluster.arrive
  cluster.wait loc("sync.py":11:3)
}
""")
    with pytest.raises(DeadlockError) as info:
        run(f, grid=(2, 1, 1), block=(64, 1, 1), args=[])
    message = str(info.value)
    assert "deadlock in the cluster of blocks (0, 0, 0), (1, 0, 0)" in message
    assert ("block (1, 0, 0): threads 32-63 wait at the cluster barrier at sync.py:11 for arrival 2 of every thread; "
            "not arrived: block (0, 0, 0) threads 32-63") in message
