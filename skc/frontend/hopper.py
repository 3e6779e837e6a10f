"""Hopper builtins (sm_90a): mbarriers, proxy fences, TMA copies, wgmma, register reallocation,
elections and clusters. Thin wrappers over the IR's async ops; the building blocks in
skc.blocks compose them into pipelines, loaders and MMA ops."""
from __future__ import annotations


from .. import ir
from ..target import launch_dims
from . import semantics
from .builtins import compile_time_int
from .markers import skc_builtin
from .context import current
from .dtypes import PtrType
from .values import Dyn, RValue

SHARED = ir.PointerType("shared")


def _require(feature: str, what: str):
    target = current().target
    if not target.has(feature):
        raise semantics.error(f"{what} needs a target with {feature} (sm_90a); the kernel compiles for {target.name}")


def _shared_address(pointer) -> ir.Value:
    pointer = getattr(pointer, "ptr", pointer)  # an Array gives its base pointer
    v = semantics.to_rvalue(pointer)
    if not (isinstance(v.type, PtrType) and v.type.space == "shared"):
        raise semantics.error(f"expected a shared-memory pointer, found {v.type}")
    return v.value


def _i32(value) -> ir.Value:
    return semantics.cast(value, ir.i32).value


def _emit(name: str, operands=(), attrs=None, result=None):
    builder = current().builder
    if result is None:
        builder.create(name, operands, (), attrs)
        return None
    return RValue(builder.value(name, operands, result, **(attrs or {})), result)


# -- mbarriers -------------------------------------------------------------------------------------
@skc_builtin
def mbarrier_init(barrier, count):
    _require("mbarrier", "mbarrier_init")
    _emit("mbarrier.init", (_shared_address(barrier), _i32(count)))


@skc_builtin
def mbarrier_arrive(barrier, count: int = 1):
    """`count` arrivals of each running thread on `barrier` (a compile-time int, 1 to 2**20 - 1: PTX ISA
    9.7.13.15.2, the range of an mbarrier's counts)."""
    count = compile_time_int(count, "the arrival count of mbarrier_arrive", 1, ir.ops_async.MBARRIER_COUNT_LIMIT)
    _emit("mbarrier.arrive", (_shared_address(barrier),), {"count": count} if count != 1 else None)


@skc_builtin
def mbarrier_arrive_tx(barrier, nbytes):
    _emit("mbarrier.arrive_tx", (_shared_address(barrier), _i32(nbytes)))


@skc_builtin
def mbarrier_expect_tx(barrier, nbytes):
    _emit("mbarrier.expect_tx", (_shared_address(barrier), _i32(nbytes)))


@skc_builtin
def mbarrier_arrive_cluster(barrier, cta):
    _emit("mbarrier.arrive_cluster", (_shared_address(barrier), _i32(cta)))


@skc_builtin
def mbarrier_wait(barrier, parity):
    _emit("mbarrier.wait", (_shared_address(barrier), _i32(parity)))


@skc_builtin
def mbarrier_try_wait(barrier, parity):
    return _emit("mbarrier.try_wait", (_shared_address(barrier), _i32(parity)), result=ir.i1)


@skc_builtin
def fence_proxy_async():
    _emit("fence.proxy_async")


@skc_builtin
def fence_acq_rel_gpu():
    _emit("fence.acq_rel_gpu")


@skc_builtin
def fence_mbarrier_init():
    _emit("fence.mbarrier_init")


# -- cp.async --------------------------------------------------------------------------------------
@skc_builtin
def cp_async(destination, source, nbytes: int, mask=None):
    """Copy `nbytes` (4, 8 or 16) from global `source` to shared `destination`, both aligned to nbytes, without
    registers; a false `mask` reads nothing and writes zeros. The copy lands later: `cp_async_arrive(barrier)` arrives
    on a barrier once this thread's copies have."""
    _require("mbarrier", "cp_async")
    if nbytes not in ir.ops_async.CP_ASYNC_BYTES:
        raise semantics.error(f"cp_async copies 4, 8 or 16 bytes, not {nbytes!r}")
    src = semantics.to_rvalue(getattr(source, "ptr", source))   # (an Array gives its base pointer)
    if not (isinstance(src.type, PtrType) and src.type.space == "global"):
        raise semantics.error(f"cp_async copies from a global pointer, found {src.type}")
    operands = [_shared_address(destination), src.value]
    if mask is not None and mask is not True:
        operands.append(semantics.to_bool(mask).value)
    _emit("cp.async", operands, {"bytes": nbytes})


@skc_builtin
def cp_async_arrive(barrier):
    """One arrival on `barrier` once every cp_async this thread issued before has landed (it counts against the
    arrivals the barrier expects)."""
    _require("mbarrier", "cp_async_arrive")
    _emit("cp.async.arrive", (_shared_address(barrier),))


# -- TMA -------------------------------------------------------------------------------------------
def _tensor_map(tmap) -> RValue:
    v = semantics.to_rvalue(tmap)
    if not isinstance(v.type, ir.TensorMapType) or v.type.elem is None:
        raise semantics.error(f"expected a tensor map parameter (skc.TensorMap), found {v.type}")
    return v


@skc_builtin
def tma_load(destination, barrier, tmap, coordinates, multicast_mask=None):
    """Copy the box at `coordinates` (outermost first, like the tensor's shape) into shared memory,
    completing its bytes on `barrier`; with a mask, into every block of the cluster it names."""
    _require("tma", "tma_load")
    t = _tensor_map(tmap)
    coords = tuple(coordinates)
    if len(coords) != t.type.rank:
        raise semantics.error(f"the tensor map has {t.type.rank} dimensions, {len(coords)} coordinates given")
    operands = [_shared_address(destination), _shared_address(barrier), t.value]
    operands += [_i32(c) for c in reversed(coords)]  # PTX coordinates are innermost first
    attrs = {"rank": t.type.rank}
    if multicast_mask is not None:
        operands.append(semantics.cast(multicast_mask, ir.i16).value)
        attrs["multicast"] = True
    _emit("tma.load", operands, attrs)


@skc_builtin
def tma_load_im2col(destination, barrier, tmap, coordinates, offsets):
    """Copy pixels x channels of an im2col tensor map (skc.Im2colTensorMap) into shared memory, completing
    its bytes on `barrier`: `coordinates` (outermost first: n, h, w, c) place the filter base of the first
    pixel and the first channel, `offsets` (outermost first: the filter tap's h, w) are added to it."""
    _require("tma", "tma_load_im2col")
    t = _tensor_map(tmap)
    if not isinstance(t.type, ir.Im2colTensorMapType):
        raise semantics.error(f"tma_load_im2col copies from an im2col map (skc.Im2colTensorMap), found {t.type}")
    coords, offsets = tuple(coordinates), tuple(offsets)
    if len(coords) != t.type.rank or len(offsets) != t.type.rank - 2:
        raise semantics.error(f"the im2col map has {t.type.rank} dimensions: give {t.type.rank} coordinates and "
                              f"{t.type.rank - 2} offsets, found {len(coords)} and {len(offsets)}")
    operands = [_shared_address(destination), _shared_address(barrier), t.value]
    operands += [_i32(c) for c in reversed(coords)]  # PTX coordinates are innermost first
    operands += [semantics.cast(o, ir.i16).value for o in reversed(offsets)]
    _emit("tma.load_im2col", operands, {"rank": t.type.rank})


@skc_builtin
def tma_store(tmap, source, coordinates):
    _require("tma", "tma_store")
    t = _tensor_map(tmap)
    coords = tuple(coordinates)
    if len(coords) != t.type.rank:
        raise semantics.error(f"the tensor map has {t.type.rank} dimensions, {len(coords)} coordinates given")
    _emit("tma.store", [t.value, _shared_address(source)] + [_i32(c) for c in reversed(coords)],
          {"rank": t.type.rank})


@skc_builtin
def tma_prefetch(tmap):
    """Fetch a tensor map's descriptor ahead of its first copy (one thread, once: the first copy waits less)."""
    _require("tma", "tma_prefetch")
    _emit("tma.prefetch", [_tensor_map(tmap).value])


@skc_builtin
def tma_commit():
    _emit("tma.commit")


@skc_builtin
def tma_wait(pending: int = 0, read: bool = False):
    """Wait until at most `pending` (a compile-time int >= 0) of this thread's committed groups of TMA stores are
    unfinished (read: until their shared sources were read)."""
    pending = compile_time_int(pending, "the groups tma_wait leaves pending", 0)
    _emit("tma.wait", (), {"pending": pending, "read": bool(read)})


# -- wgmma -----------------------------------------------------------------------------------------
@skc_builtin
def wgmma_fence():
    _emit("wgmma.fence")


@skc_builtin
def wgmma_commit():
    _emit("wgmma.commit")


@skc_builtin
def wgmma_wait(pending: int = 0):
    """Wait until at most `pending` (a compile-time int >= 0) of the warpgroup's committed wgmma groups are
    unfinished."""
    pending = compile_time_int(pending, "the groups wgmma_wait leaves pending", 0)
    _emit("wgmma.wait", (), {"pending": pending})


@skc_builtin
def wgmma(accumulator, descriptor_a, descriptor_b, n: int, dtype, trans_a: int = 0, trans_b: int = 0, dtype_b=None,
          zero_acc: bool = False):
    """One wgmma (m64nNk16 for f16/bf16, m64nNk32 for f8e4m3/f8e5m2; dtype_b for a B of the other fp8 type):
    the warpgroup's accumulator fragment plus A·B from shared memory (zero_acc: A·B alone, the fragment's values
    unread, so no register needs zeroing first)."""
    _require("wgmma", "wgmma")
    acc = semantics.to_rvalue(accumulator)
    attrs = {"n": int(n), "dtype": _type_name(dtype), "trans_a": int(trans_a), "trans_b": int(trans_b)}
    if dtype_b is not None and _type_name(dtype_b) != attrs["dtype"]:
        attrs["dtype_b"] = _type_name(dtype_b)
    if zero_acc:
        attrs["zero_acc"] = 1
    return _emit("wgmma.mma", (acc.value, semantics.cast(descriptor_a, ir.i64).value,
                               semantics.cast(descriptor_b, ir.i64).value), attrs, result=acc.type)


@skc_builtin
def wgmma_rs(accumulator, fragment_a, descriptor_b, n: int, dtype, trans_b: int = 0):
    """One m64nNk16 wgmma with A from registers (f16/bf16): the warpgroup's accumulator fragment plus A·B, A
    as each thread's 8-value fragment (a vector of `dtype`), B from shared memory by descriptor."""
    _require("wgmma", "wgmma_rs")
    acc = semantics.to_rvalue(accumulator)
    a = semantics.to_rvalue(fragment_a)
    attrs = {"n": int(n), "dtype": _type_name(dtype), "trans_b": int(trans_b)}
    return _emit("wgmma.mma_rs", (acc.value, a.value, semantics.cast(descriptor_b, ir.i64).value), attrs,
                 result=acc.type)


def _type_name(dtype) -> str:
    return dtype.ir.name if hasattr(dtype, "ir") else str(dtype)


# -- registers, elections, clusters ----------------------------------------------------------------
@skc_builtin
def setmaxnreg(count: int, increase: bool):
    _require("setmaxnreg", "setmaxnreg")
    _emit("gpu.setmaxnreg", (), {"count": int(count), "action": "inc" if increase else "dec"})


@skc_builtin
def elect_one():
    """True in one running lane of each warp."""
    return _emit("gpu.elect_one", result=ir.i1)


@skc_builtin
def cluster_rank():
    return _emit("cluster.rank", result=ir.i32)


@skc_builtin
def cluster_id(dim: int = 0):
    return _emit("cluster.id", (), {"dim": dim}, result=ir.i32)


@skc_builtin
def cluster_sync():
    """Every thread of every block in the cluster waits for all the others."""
    _emit("cluster.arrive")
    _emit("cluster.wait")


@skc_builtin
def shared_address(pointer):
    """The 32-bit shared-memory address of a pointer (for matrix descriptors)."""
    value = _shared_address(pointer)
    return RValue(current().builder.value("ptr.to_int", (value,), ir.u32), ir.u32)


@skc_builtin
def kernel_attributes(min_blocks: int = None, cluster=None):
    """Facts about the kernel that blocks decide: blocks per SM to plan registers for (setmaxnreg needs a
    register cap at entry: min_blocks=1), and the cluster shape (x, y, z): where the launch gives one too
    (@skc.kernel(cluster=...) or compile(cluster=...)), the same (two shapes are a compile error here)."""
    cg = current()
    if min_blocks is not None:
        cg.function.attrs["min_blocks"] = int(min_blocks)
    if cluster is not None:
        shape = _cluster_shape(cluster)
        launched = cg.launch_cluster
        if launched != (1, 1, 1) and shape != launched:
            # (the launch's clusters are the ones the kernel runs in: the blocks after this line would count on others)
            said, here = _dims_text(launched), _dims_text(shape)
            raise semantics.error(
                f"the kernel is launched in clusters of {_shape(launched)} (@skc.kernel(cluster={said}) or "
                f"compile(cluster={said})) and says clusters of {_shape(shape)} here",
                hint=f"say the kernel's clusters once: keep one of cluster={said} and cluster={here} (two equal ones "
                     "may stay)")
        if shape != (1, 1, 1):
            _require("cluster", "a cluster launch")
            cg.function.attrs["cluster"] = shape
        cg.cluster = shape


def _cluster_shape(cluster) -> tuple:
    """kernel_attributes' cluster as (x, y, z), by the rule @skc.kernel's cluster and a launch's grid follow; else a
    CompileError at the call (2.5 or True is no count of blocks, a string no shape)."""
    try:
        return launch_dims(cluster)
    except ValueError:
        raise semantics.error(f"kernel_attributes' cluster must be an int or 1 to 3 positive ints, found {cluster!r}",
                              hint="say the cluster's blocks along x, y and z: cluster=(2, 1, 1)") from None


def _shape(dims: tuple) -> str:
    return "x".join(map(str, dims))


def _dims_text(dims: tuple) -> str:
    return f"({', '.join(map(str, dims))})"   # (numpy's integers as 4, not np.int64(4))


def is_runtime(value) -> bool:
    return isinstance(value, Dyn)
