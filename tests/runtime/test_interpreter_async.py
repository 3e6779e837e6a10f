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
