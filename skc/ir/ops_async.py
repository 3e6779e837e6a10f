"""Asynchronous and Hopper ops: mbarriers, proxy fences, TMA copies, wgmma, register
reallocation, clusters. Each models its PTX instruction (PTX ISA 8.0; sections cited)."""
from __future__ import annotations

from .core import BLOCKING, PURE, Op
from .types import Im2colTensorMapType, PointerType, ScalarType, TensorMapType, VectorType, i1, i16, i32, i64

SHARED = PointerType("shared")


def _shared_pointer(op: Op, value, what: str):
    if value.type is not SHARED:
        op.fail(f"{what} is {value.type}, expected ptr<shared>")


def _int32(op: Op, value, what: str):
    if value.type is not i32:
        op.fail(f"{what} is {value.type}, expected i32")


# -- mbarriers (PTX 9.7.12.15) --------------------------------------------------------------------
class MbarrierInitOp(Op):
    """`mbarrier.init %bar, %count`: make the 8-byte barrier at bar expect count arrivals per phase (phase 0)."""

    name = "mbarrier.init"
    num_operands = 2

    def verify(self):
        _shared_pointer(self, self.operands[0], "barrier")
        _int32(self, self.operands[1], "count")


MBARRIER_COUNT_LIMIT = (1 << 20) - 1   # PTX ISA 9.7.13.15.2: arrival counts are 1 .. 2**20 - 1


def _pending_groups(op: Op):
    pending = op.attrs["pending"]
    if not isinstance(pending, int) or isinstance(pending, bool) or pending < 0:
        op.fail(f"pending must be an int >= 0 (the groups left unfinished), found {pending!r}")


class MbarrierArriveOp(Op):
    """`mbarrier.arrive %bar {count}`: each running thread counts `count` (default 1) arrivals on bar."""

    name = "mbarrier.arrive"
    num_operands = 1

    def verify(self):
        _shared_pointer(self, self.operands[0], "barrier")
        count = self.attrs.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MBARRIER_COUNT_LIMIT:
            self.fail(f"count must be an int from 1 to {MBARRIER_COUNT_LIMIT}, found {count!r}")


class MbarrierArriveTxOp(Op):
    """`mbarrier.arrive_tx %bar, %bytes`: arrive once and expect `bytes` more of asynchronous transfer this phase."""

    name = "mbarrier.arrive_tx"
    num_operands = 2

    def verify(self):
        _shared_pointer(self, self.operands[0], "barrier")
        _int32(self, self.operands[1], "byte count")


class MbarrierExpectTxOp(Op):
    """`mbarrier.expect_tx %bar, %bytes`: expect `bytes` more of asynchronous transfer this phase, without arriving."""

    name = "mbarrier.expect_tx"
    num_operands = 2

    def verify(self):
        _shared_pointer(self, self.operands[0], "barrier")
        _int32(self, self.operands[1], "byte count")


class MbarrierArriveClusterOp(Op):
    """`mbarrier.arrive_cluster %bar, %cta`: arrive once on the barrier at bar's offset in block `cta` of the cluster."""

    name = "mbarrier.arrive_cluster"
    num_operands = 2

    def verify(self):
        _shared_pointer(self, self.operands[0], "barrier")
        _int32(self, self.operands[1], "cluster rank")


class MbarrierWaitOp(Op):
    """`mbarrier.wait %bar, %parity`: wait until the phase of bar with this parity (0 or 1) has completed."""

    name = "mbarrier.wait"
    num_operands = 2
    traits = frozenset({BLOCKING})

    def verify(self):
        _shared_pointer(self, self.operands[0], "barrier")
        _int32(self, self.operands[1], "parity")


class MbarrierTryWaitOp(Op):
    """`mbarrier.try_wait %bar, %parity`: whether the phase of bar with this parity has completed (waits a little)."""

    name = "mbarrier.try_wait"
    num_operands = 2
    num_results = 1
    traits = frozenset({BLOCKING})

    def verify(self):
        _shared_pointer(self, self.operands[0], "barrier")
        _int32(self, self.operands[1], "parity")
        if self.result.type is not i1:
            self.fail(f"result is {self.result.type}, expected i1")


class FenceProxyAsyncOp(Op):
    """`fence.proxy_async`: order this thread's shared-memory accesses before later async-proxy ones (TMA, wgmma)."""

    name = "fence.proxy_async"


class FenceAcqRelGpuOp(Op):
    """`fence.acq_rel_gpu`: order this thread's global-memory accesses before and after it for the whole GPU
    (PTX fence.acq_rel.gpu), e.g. partial sums before the counter that says they are complete."""

    name = "fence.acq_rel_gpu"


class FenceMbarrierInitOp(Op):
    """`fence.mbarrier_init`: make this thread's mbarrier.init visible to the whole cluster (release)."""

    name = "fence.mbarrier_init"


# -- cp.async (PTX 9.7.9.25.3) --------------------------------------------------------------------
CP_ASYNC_BYTES = (4, 8, 16)
GLOBAL = PointerType("global")


class CpAsyncOp(Op):
    """`cp.async %dst, %src [, %mask] {bytes}`: copy `bytes` (4, 8 or 16; both addresses aligned to them) from global src to shared dst without registers, asynchronously (cp.async.ca / .cg, src-size); a false mask reads nothing and fills dst with zeros. `cp.async.arrive` tells a barrier when this thread's copies have landed."""

    name = "cp.async"
    num_operands = None
    required_attrs = ("bytes",)

    def verify(self):
        if self.attrs["bytes"] not in CP_ASYNC_BYTES:
            self.fail(f"copies {self.attrs['bytes']} bytes; cp.async copies 4, 8 or 16")
        if not 2 <= len(self.operands) <= 3:
            self.fail(f"expected a destination, a source and an optional mask, found {len(self.operands)} operands")
        _shared_pointer(self, self.operands[0], "destination")
        if self.operands[1].type is not GLOBAL:
            self.fail(f"source is {self.operands[1].type}, expected ptr<global>")
        if len(self.operands) == 3 and self.operands[2].type is not i1:
            self.fail(f"mask is {self.operands[2].type}, expected i1")


class CpAsyncArriveOp(Op):
    """`cp.async.arrive %bar`: one arrival on bar once every cp.async this thread issued before has landed (cp.async.mbarrier.arrive.noinc: it counts against the arrivals the barrier expects)."""

    name = "cp.async.arrive"
    num_operands = 1

    def verify(self):
        _shared_pointer(self, self.operands[0], "barrier")


# -- TMA (PTX 9.7.9.25) ---------------------------------------------------------------------------
def _coordinates(op: Op, values, rank: int):
    if not 1 <= rank <= 5:
        op.fail(f"rank must be 1 to 5, found {rank}")
    if len(values) != rank:
        op.fail(f"a rank-{rank} copy takes {rank} coordinates, found {len(values)}")
    for i, value in enumerate(values):
        _int32(op, value, f"coordinate {i}")


class TmaLoadOp(Op):
    """`tma.load %dst, %bar, %tmap, %coords... [, %mask] {rank, multicast}`: copy the tensor map's box at coords (innermost first) into shared dst, completing its bytes on bar; with multicast, into every block of the cluster in the 16-bit mask."""

    name = "tma.load"
    num_operands = None
    required_attrs = ("rank",)

    def verify(self):
        rank, multicast = self.attrs["rank"], self.attrs.get("multicast", False)
        expected = 3 + rank + (1 if multicast else 0)
        if len(self.operands) != expected:
            self.fail(f"expected {expected} operands (dst, barrier, tensor map, {rank} coordinates"
                      f"{', mask' if multicast else ''}), found {len(self.operands)}")
        _shared_pointer(self, self.operands[0], "destination")
        _shared_pointer(self, self.operands[1], "barrier")
        if not isinstance(self.operands[2].type, TensorMapType):
            self.fail(f"tensor map is {self.operands[2].type}, expected tmap")
        if isinstance(self.operands[2].type, Im2colTensorMapType):
            self.fail(f"tensor map is {self.operands[2].type}: copy from an im2col map with tma.load_im2col")
        _coordinates(self, self.operands[3:3 + rank], rank)
        if multicast and self.operands[-1].type is not i16:
            self.fail(f"multicast mask is {self.operands[-1].type}, expected i16")


class TmaLoadIm2colOp(Op):
    """`tma.load_im2col %dst, %bar, %tmap, %coords..., %offsets... {rank}`: copy pixels x channels of an im2col map (PTX ISA 5.5.4) into shared dst, completing its bytes on bar: coords (i32, innermost first: c, w, h, n for rank 4) place the filter base and the first channel, the rank-2 offsets (i16, w first) the filter tap."""

    name = "tma.load_im2col"
    num_operands = None
    required_attrs = ("rank",)

    def verify(self):
        rank = self.attrs["rank"]
        if not 3 <= rank <= 5:
            self.fail(f"rank must be 3 to 5 (an im2col copy has spatial dimensions), found {rank}")
        expected = 3 + rank + rank - 2
        if len(self.operands) != expected:
            self.fail(f"expected {expected} operands (dst, barrier, tensor map, {rank} coordinates, {rank - 2} "
                      f"im2col offsets), found {len(self.operands)}")
        _shared_pointer(self, self.operands[0], "destination")
        _shared_pointer(self, self.operands[1], "barrier")
        t = self.operands[2].type   # an im2col map, or a bare tmap (its facts come with the descriptor)
        if not isinstance(t, TensorMapType) or (t.elem is not None and not isinstance(t, Im2colTensorMapType)):
            self.fail(f"tensor map is {t}, expected an im2col map (tmap_im2col<...>)")
        if isinstance(t, Im2colTensorMapType) and t.rank != rank:
            self.fail(f"a rank-{rank} copy from a rank-{t.rank} tensor map ({t})")
        _coordinates(self, self.operands[3:3 + rank], rank)
        for i, value in enumerate(self.operands[3 + rank:]):
            if value.type is not i16:
                self.fail(f"im2col offset {i} is {value.type}, expected i16")


class TmaStoreOp(Op):
    """`tma.store %tmap, %src, %coords... {rank}`: copy shared src to the tensor map's box at coords; elements outside the tensor are skipped."""

    name = "tma.store"
    num_operands = None
    required_attrs = ("rank",)

    def verify(self):
        rank = self.attrs["rank"]
        if len(self.operands) != 2 + rank:
            self.fail(f"expected {2 + rank} operands (tensor map, source, {rank} coordinates), "
                      f"found {len(self.operands)}")
        if not isinstance(self.operands[0].type, TensorMapType):
            self.fail(f"tensor map is {self.operands[0].type}, expected tmap")
        _shared_pointer(self, self.operands[1], "source")
        _coordinates(self, self.operands[2:], rank)


class TmaPrefetchOp(Op):
    """`tma.prefetch %tmap`: bring the tensor map's descriptor into the cache ahead of the copies that read it."""

    name = "tma.prefetch"
    num_operands = 1

    def verify(self):
        if not isinstance(self.operands[0].type, TensorMapType):
            self.fail(f"tensor map is {self.operands[0].type}, expected tmap")


class TmaCommitOp(Op):
    """`tma.commit`: close the group of this thread's TMA stores issued so far (cp.async.bulk.commit_group)."""

    name = "tma.commit"


class TmaWaitOp(Op):
    """`tma.wait {pending, read}`: wait until at most `pending` store groups are unfinished (read: until their sources were read)."""

    name = "tma.wait"
    traits = frozenset({BLOCKING})
    required_attrs = ("pending",)

    def verify(self):
        _pending_groups(self)


# -- wgmma (PTX 9.7.15) ---------------------------------------------------------------------------
WGMMA_TYPES = ("bf16", "f16")   # the 16-bit types (MFMA takes the same)
# Operand type -> k of one wgmma.mma_async: 32 bytes of K per instruction (PTX ISA 9.7.15.2, shapes .m64nNk16
# for .f16/.bf16, .m64nNk32 for .e4m3/.e5m2).
WGMMA_K = {"bf16": 16, "f16": 16, "f8e4m3": 32, "f8e5m2": 32}
WGMMA_FP8_TYPES = ("f8e4m3", "f8e5m2")


def wgmma_k(dtype: str) -> int:
    """The k of one wgmma for operands of type dtype (16 for f16/bf16, 32 for e4m3/e5m2)."""
    return WGMMA_K[dtype]


class WgmmaFenceOp(Op):
    """`wgmma.fence`: order register accesses of the warpgroup before the wgmma ops that follow."""

    name = "wgmma.fence"


class WgmmaCommitOp(Op):
    """`wgmma.commit`: close the group of the warpgroup's wgmma ops issued so far."""

    name = "wgmma.commit"


class WgmmaWaitOp(Op):
    """`wgmma.wait {pending}`: wait until at most `pending` wgmma groups of the warpgroup are unfinished."""

    name = "wgmma.wait"
    traits = frozenset({BLOCKING})
    required_attrs = ("pending",)

    def verify(self):
        _pending_groups(self)


def _verify_columns_and_accumulator(op: Op, acc):
    """A wgmma's n (8 to 256 in steps of 8) and its f32 accumulator of n/2 values per thread, in and out."""
    n = op.attrs["n"]
    if n % 8 or not 8 <= n <= 256:
        op.fail(f"n must be a multiple of 8 from 8 to 256, found {n}")
    expected = VectorType(ScalarType("f32"), n // 2)
    if acc.type is not expected or op.result.type is not expected:
        op.fail(f"accumulator is {acc.type} giving {op.result.type}, expected {expected}")


class WgmmaMmaOp(Op):
    """`wgmma.mma %acc, %desc_a, %desc_b {n, dtype, dtype_b?, trans_a, trans_b}`: the warpgroup's acc + A(64xk) B(kxn), A and B in shared memory by descriptor (k = 16 for f16/bf16, 32 for f8e4m3/f8e5m2, which may mix and must be K-major); acc is each thread's f32 fragment (n/2 values); zero_acc = 1: D = A B, acc ignored (PTX's scale-d = 0)."""

    name = "wgmma.mma"
    num_operands = 3
    num_results = 1
    required_attrs = ("n", "dtype")

    def verify(self):
        acc, desc_a, desc_b = self.operands
        _verify_columns_and_accumulator(self, acc)
        dtype = self.attrs["dtype"]
        if dtype not in WGMMA_K:
            self.fail(f"dtype must be one of {', '.join(WGMMA_K)}, found {dtype!r}")
        dtype_b = self.attrs.get("dtype_b", dtype)
        if dtype_b != dtype and not (dtype in WGMMA_FP8_TYPES and dtype_b in WGMMA_FP8_TYPES):
            self.fail(f"A is {dtype} and B {dtype_b}: only the fp8 types (f8e4m3, f8e5m2) may mix")
        for what, desc in (("A", desc_a), ("B", desc_b)):
            if desc.type is not i64:
                self.fail(f"{what} descriptor is {desc.type}, expected i64")
        if self.attrs.get("zero_acc", 0) not in (0, 1):
            self.fail(f"zero_acc must be 0 or 1, found {self.attrs['zero_acc']!r}")
        for flag in ("trans_a", "trans_b"):
            if self.attrs.get(flag, 0) not in (0, 1):
                self.fail(f"{flag} must be 0 or 1, found {self.attrs[flag]!r}")
            if self.attrs.get(flag, 0) and dtype in WGMMA_FP8_TYPES:
                self.fail(f"{flag} = 1 (MN-major) with {dtype}: wgmma reads fp8 operands K-major only "
                          "(PTX ISA 9.7.15.5.1.2: transpose is for .f16/.bf16); store the tile K-major")

    @property
    def k(self) -> int:
        return WGMMA_K[self.attrs["dtype"]]


class WgmmaMmaRegAOp(Op):
    """`wgmma.mma_rs %acc, %a, %desc_b {n, dtype, trans_b?}`: the warpgroup's acc + A(64x16) B(16xn), A from registers (each thread's 8 f16/bf16 values of the A fragment, PTX ISA 9.7.15.5.1.1: value i of thread t is row 16 (t / 32) + (t % 32) / 4 + 8 ((i / 2) % 2), column 2 (t % 4) + i % 2 + 8 (i / 4)) and B in shared memory by descriptor; acc is each thread's f32 fragment (n/2 values)."""

    name = "wgmma.mma_rs"
    num_operands = 3
    num_results = 1
    required_attrs = ("n", "dtype")

    def verify(self):
        acc, a, desc_b = self.operands
        _verify_columns_and_accumulator(self, acc)
        dtype = self.attrs["dtype"]
        if dtype not in WGMMA_TYPES:
            self.fail(f"dtype must be one of {', '.join(WGMMA_TYPES)} (A from registers), found {dtype!r}")
        fragment = VectorType(ScalarType(dtype), 8)
        if a.type is not fragment:
            self.fail(f"A fragment is {a.type}, expected {fragment} (8 values per thread for m64nNk16)")
        if desc_b.type is not i64:
            self.fail(f"B descriptor is {desc_b.type}, expected i64")
        if self.attrs.get("trans_b", 0) not in (0, 1):
            self.fail(f"trans_b must be 0 or 1, found {self.attrs['trans_b']!r}")
        if "trans_a" in self.attrs:
            self.fail("trans_a is not an attribute of the register-A form: A's layout is the register fragment's")

    @property
    def k(self) -> int:
        return WGMMA_K[self.attrs["dtype"]]


# -- registers, elections, clusters ---------------------------------------------------------------
class SetMaxNRegOp(Op):
    """`gpu.setmaxnreg {count, action}`: the warpgroup raises ('inc') or lowers ('dec') its registers per thread to count."""

    name = "gpu.setmaxnreg"
    required_attrs = ("count", "action")

    def verify(self):
        count = self.attrs["count"]
        if not (24 <= count <= 256 and count % 8 == 0):
            self.fail(f"count must be a multiple of 8 from 24 to 256, found {count}")
        if self.attrs["action"] not in ("inc", "dec"):
            self.fail(f"action must be 'inc' or 'dec', found {self.attrs['action']!r}")


class ElectOneOp(Op):
    """`gpu.elect_one`: true in exactly one running lane of each warp (the lowest), false elsewhere. The running lanes are those whose path led here, named on a GPU as a vote's are (gpu.vote)."""

    name = "gpu.elect_one"
    num_results = 1

    def verify(self):
        if self.result.type is not i1:
            self.fail(f"result is {self.result.type}, expected i1")


class ClusterIdOp(Op):
    """`cluster.id {dim}`: this block's cluster index in the grid along dim."""

    name = "cluster.id"
    num_results = 1
    traits = frozenset({PURE})
    required_attrs = ("dim",)


class ClusterRankOp(Op):
    """`cluster.rank`: this block's rank within its cluster (0 .. blocks per cluster - 1)."""

    name = "cluster.rank"
    num_results = 1
    traits = frozenset({PURE})


class ClusterArriveOp(Op):
    """`cluster.arrive`: this thread arrives at the cluster-wide barrier (release)."""

    name = "cluster.arrive"


class ClusterWaitOp(Op):
    """`cluster.wait`: wait until every thread of every block in the cluster has arrived (acquire)."""

    name = "cluster.wait"
    traits = frozenset({BLOCKING})


# -- MFMA (AMD CDNA2/CDNA3 matrix cores) ---------------------------------------------------------
MFMA_SHAPES = {(32, 32, 8): 16, (16, 16, 16): 4}  # (m, n, k) -> f32 accumulator values per lane (wave64)


class MfmaOp(Op):
    """`mfma.mma %acc, %a, %b {m, n, k, dtype}`: the wavefront's acc + A(m x k) B(k x n) from registers: each lane holds 4 A and 4 B values and m*n/64 accumulator values (CDNA3 ISA 7.1 layouts)."""

    name = "mfma.mma"
    num_operands = 3
    num_results = 1
    required_attrs = ("m", "n", "k", "dtype")

    def verify(self):
        acc, a, b = self.operands
        shape = (self.attrs["m"], self.attrs["n"], self.attrs["k"])
        if shape not in MFMA_SHAPES:
            self.fail(f"shape must be one of {', '.join('x'.join(map(str, s)) for s in MFMA_SHAPES)}, found "
                      f"{'x'.join(map(str, shape))}")
        dtype = self.attrs["dtype"]
        if dtype not in WGMMA_TYPES:
            self.fail(f"dtype must be one of {', '.join(WGMMA_TYPES)}, found {dtype!r}")
        operand = VectorType(ScalarType(dtype), 4)
        for what, value in (("A", a), ("B", b)):
            if value.type is not operand:
                self.fail(f"{what} is {value.type}, expected {operand}")
        expected = VectorType(ScalarType("f32"), MFMA_SHAPES[shape])
        if acc.type is not expected or self.result.type is not expected:
            self.fail(f"accumulator is {acc.type} giving {self.result.type}, expected {expected}")
