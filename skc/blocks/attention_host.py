"""The host side of attention: `attention(q, k, v, ...)` reads the tensors' layouts (B, H, S, D) or (B, S, H, D)
as rank-4 strided views (no copy), picks a configuration and launches attention_kernel; calls over torch tensors on
a GPU keep a ready plan per set of facts (AttentionPlan)."""
from __future__ import annotations

import dataclasses
import math
import numbers
from contextlib import nullcontext

import numpy as np

import skc

from .attention_kernel import AttentionConfig, attention_kernel, padding_hint
from .host_plans import (TORCH_HOOKS, TORCH_TYPES, Bindings, MapsByAddress, StreamBuffers, address_functions, autocast,
                         capturing, check_has_data, check_no_overlap, check_own_memory, check_stream_given,
                         complex_or_date, differentiated, element_strides, facts_failed, kept_stand_in, on_stream,
                         outside_graph, refuse_host_options, refuse_lost_gradient, refuse_read_under_capture, remember,
                         require_arrays, tile_counter, torch_type, traced, traced_numbers, without_grad, write_into,
                         zeros_like)

LAYOUTS = ("bhsd", "bshd")

# Past this scale attention's softmax takes each exponent as (s - m)·c (AttentionConfig.exact_exponents), 4-5 % slower
# (benchmarks/NOTES.md, twenty-first session), not as one fma(s, c, -RN(m·c)), whose rounded reference passes exp2's
# range where |m·c| reaches about 2^31 (2^28 for fp16's P, 2^24 at lazy_rescale=15: the rounding's up to 16, or 1,
# times 2^lazy_rescale in P passes 65504): a scale of 1e10 gave rows of NaN or 0 on scores of about 50. Under it,
# one fma fails only for raw scores past about 2^28 / (16 log2 e), 1.2e7 (AttentionConfig(exact_exponents="far"), or
# "checked": the tiles that passed computed again by a second launch).
EXACT_EXPONENTS_SCALE = 16.0


_PLANS: dict = {}   # facts of a call over torch tensors on a GPU -> its AttentionPlan (host_plans.remember bounds it)


def attention(q, k, v, causal: bool = False, scale=None, out=None, *, layout: str = "bhsd", return_lse: bool = False,
              config: AttentionConfig = None, stream=None):
    """Scaled-dot-product attention forward, softmax(scale · Q Kᵀ [causal mask]) V, for bf16/f16 torch tensors
    (or, in the interpreter, numpy arrays: real values are rounded to bf16; ml_dtypes.bfloat16 ones are taken as they
    are, and give a bfloat16 out, as matmul's do) in the layout `torch.nn.functional.
    scaled_dot_product_attention` takes, (B, H, S, D) ("bhsd"), or (B, S, H, D) ("bshd"). K and V may have fewer
    heads than Q (grouped-query attention: their count must divide Q's) and another sequence length. The causal
    mask is torch's (top-left aligned: query i sees keys 0 .. i). Returns out (like q), and with return_lse the
    natural log-sum-exp of each row's scaled scores, (B, H, Sq) float32.

    Torch tensors on a GPU: their facts (shapes, strides, dtypes, devices) and the options key a ready plan, made
    and checked by the first call with them, so a call is one lookup and a launch (as matmul's). Inside a function
    torch.compile compiles, the call is torch.ops.skc.attention (attention_with_lse) in the graph (with out, config
    or stream, a graph break)."""
    if traced(q):
        numbers = traced_numbers(causal, scale, return_lse)
        causal, scale, return_lse = (causal, scale, return_lse) if numbers is None else numbers
        if out is None and config is None and stream is None and numbers is not None:
            from .. import torch as skc_torch

            _check_flags(causal, return_lse)   # (as eager: the operator took causal=2 as True)
            # (a flag computed from a tensor, bool(t.item()) under capture_scalar_outputs, is a SymBool, which the
            # operator's bool refused in the backend; a branch on it makes Dynamo guard on it, or break the graph)
            causal = True if causal else False
            operator = skc_torch.attention_with_lse if return_lse else skc_torch.attention
            return operator(q, k, v, causal, scale, layout)
        return outside_graph(attention, q, k, v, causal, scale, out, layout=layout, return_lse=return_lse,
                             config=config, stream=stream)
    _check_flags(causal, return_lse)
    if out is None and torch_type(type(q)) and TORCH_HOOKS[3]():   # (in a torch.autocast region: its dtype, as SDPA's)
        q, k, v = autocast(q, k, v)
    if torch_type(type(q)) and differentiated(q, k, v, out):
        return _differentiated(q, k, v, bool(causal), scale, out, layout, bool(return_lse), config, stream)
    device = skc.current_device()
    kind = type(q)
    if (device.kind == "cuda" and (kind in TORCH_TYPES or torch_type(kind)) and type(k) is kind and type(v) is kind
            and (out is None or type(out) is kind)):
        # (the scale keys by its value's bits, never as the object: a tensor would be kept alive, or go stale)
        # (and whether each is a lazily negated view: the same facts but other values, refused by the first call)
        try:
            key = (kind, device, q.shape, q.stride(), q.dtype, q.device, q.is_neg(),
                   k.shape, k.stride(), k.dtype, k.device, k.is_neg(),
                   v.shape, v.stride(), v.dtype, v.device, v.is_neg(),
                   out if out is None else (out.shape, out.stride(), out.dtype, out.device, out.is_neg()),
                   bool(causal), None if scale is None else _scale_value(scale).hex(), layout, bool(return_lse),
                   config)
        except (RuntimeError, NotImplementedError) as error:   # (a nested or sparse CSR tensor has no strides)
            facts_failed("attention", error, q=q, k=k, v=v, out=out)
        try:
            plan = _PLANS.get(key)
        except TypeError:   # (an unhashable layout or config: named as _Problem names it)
            _check_options(layout, config)
            raise
        if plan is not None:
            try:
                return plan(q, k, v, out, stream)
            except RuntimeError as error:   # (a torch.func transform's tensor, of a plan's facts, has no data pointer)
                facts_failed("attention", error, q=q, k=k, v=v, out=out)
        problem = _Problem(q, k, v, out, causal, scale, layout, return_lse, config)
        plan = _NoLaunch(problem) if problem.empty else AttentionPlan(q, k, v, out, layout, return_lse, problem)
        result = plan(q, k, v, out, stream)   # (kept once its first launch compiled and ran: a refusal keeps none)
        remember(_PLANS, key, plan)
        return result
    problem = _Problem(q, k, v, out, causal, scale, layout, return_lse, config)
    if problem.empty:
        return _NoLaunch(problem)(q, k, v, out, stream)
    host = isinstance(q, np.ndarray)
    views = problem.views
    if host:
        views = [_bf16_bits(x) for x in views]
        out_bits = np.zeros(views[0].shape, np.uint16)
        out_view = out_bits
    with on_stream(q, stream):   # (what the call makes, the launch's stream's memory; numpy's: no stream)
        if not host and out is None:
            out = q.new_empty(q.shape)
        lse = _new_lse(q, host, problem.lse_shape if return_lse else (1,))
        counter = tile_counter(q)
        flags = zeros_like(q, problem.flag_words, "int32")
    if not host:
        check_no_overlap("attention", out, **_read_while_written(q, k, v, out))
        out_view = _heads_view(out, layout, "out")
    boxes = problem.config.boxes()
    maps = [skc.TensorMap(x, boxes[name], dtype=skc.bf16 if host else None)
            for x, name in zip(views + [out_view], ("q", "k", "v", "o"))]
    # (a "checked" configuration's launch, then the one computing the flagged tiles again)
    for config, grid in problem.launches(not host and _own_view(q, out)):
        launch = attention_kernel[grid, config.threads]
        if stream is not None:
            launch(*maps, lse, counter, flags, *problem.scalars, config, stream=stream)
        else:
            launch(*maps, lse, counter, flags, *problem.scalars, config)
    if host:   # (bf16 bits for a uint16 out; bf16 values for an ml_dtypes bfloat16 out, or q of them with none)
        written = q if out is None else out
        result = out_bits if out is not None and out.dtype == np.uint16 else out_bits.view(written.dtype) if (
            _is_bf16(written)) else (out_bits.astype(np.uint32) << 16).view(np.float32)
        result = np.swapaxes(result, 1, 2) if layout == "bshd" else result
        if out is not None:   # the caller's array holds the result, as for tensors
            out[...] = result
        else:
            out = np.ascontiguousarray(result)
    return (out, lse) if return_lse else out


def _differentiated(q, k, v, causal, scale, out, layout, return_lse, config, stream):
    """attention where autograd follows the call (host_plans.differentiated): torch.ops.skc.attention (or
    attention_with_lse), whose derivative is registered (the kernel's result had none)."""
    from .. import torch as skc_torch

    refuse_host_options("attention", "torch.ops.skc.attention", out=out, config=config, stream=stream)
    numbers = traced_numbers(scale)
    if numbers is None:
        raise skc.LaunchError("attention: an operand requires grad, and torch.ops.skc.attention, which computes the "
                              "derivative, takes the scale as a number, not a tensor: pass scale.item(), or call "
                              "attention under torch.no_grad()")
    operator = skc_torch.attention_with_lse if return_lse else skc_torch.attention
    return operator(q, k, v, causal, *numbers, layout)


class _Problem:
    """One call's checked geometry: the (B, H, S, D) views of q, k and v, the configuration, the grid and the
    kernel's run-time scalars after the maps and the log-sum-exp (Sq, Skv, B, H, the group, the scale); or, for
    `empty` attention (no query row, or no key: _NoLaunch), what defines its result, with no launch to check."""

    def __init__(self, q, k, v, out, causal, scale, layout, return_lse, config):
        _check_options(layout, config)
        require_arrays("attention", ("out",), q=q, k=k, v=v, out=out)
        for name, x in (("q", q), ("k", k), ("v", v), ("out", out)):
            if not (x is None or isinstance(x, (np.ndarray, skc.DeviceArray)) or torch_type(type(x))):
                # (its host path reads torch's methods: new_empty, transpose, data_ptr)
                raise skc.LaunchError(f"attention takes torch tensors (or numpy arrays in the interpreter); {name} is "
                                      f"a {type(x).__name__}: view it as a torch tensor, torch.as_tensor({name}, "
                                      f"device='cuda') for an array exporting __cuda_array_interface__ or "
                                      f"torch.from_dlpack({name}) (neither copies)")
        host = isinstance(q, np.ndarray)
        operands = (q, k, v) + (() if out is None else (out,))
        if any(isinstance(x, np.ndarray) != host for x in operands):
            raise skc.LaunchError(f"attention: q, k, v (and out) must all be numpy arrays or all tensors; found "
                                  f"{', '.join(type(x).__name__ for x in operands)}")
        check_has_data("attention", q=q, k=k, v=v, out=out)
        self.views = views = [_heads_view(x, layout, name) for name, x in (("q", q), ("k", k), ("v", v))]
        (B, H, Sq, D), (Bk, Hkv, Skv, Dk) = views[0].shape, views[1].shape
        if tuple(views[2].shape) != (Bk, Hkv, Skv, Dk) or Bk != B or Dk != D:
            raise skc.LaunchError(f"attention: q, k, v must agree in batch and head_dim and k, v in shape; found "
                                  f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} ({layout})")
        # (B, H or Sq of 0: nothing to compute; Skv of 0: zeros, as torch's scaled_dot_product_attention gives, where
        # the kernel would wait for a key block forever: _NoLaunch either way. D: the head dimensions below.)
        self.empty = 0 in (B, H, Sq, Skv)
        if not D:   # (before the strides, which a head_dim of 0 leaves unchecked by TMA's rules)
            raise skc.LaunchError(f"attention runs head dimensions 64, 128 and 256; q, k, v ({tuple(q.shape)}, "
                                  f"{tuple(k.shape)}, {tuple(v.shape)}, {layout}) have 0")
        if H and not Hkv or Hkv and H % Hkv:
            raise skc.LaunchError(f"grouped-query attention needs K/V heads dividing Q heads: {H} and {Hkv}")
        dtype = "bf16" if host else _dtype_name(q, "q")
        if host and any(x.dtype.kind not in "fiu" and not _is_bf16(x) for x in (q, k, v)):
            # (numpy arrays hold real values, rounded to bf16, bf16 values (ml_dtypes) or bf16 bits as uint16)
            raise skc.LaunchError(f"attention over numpy arrays takes real values (rounded to bf16), ml_dtypes."
                                  f"bfloat16 values or bf16 bits as uint16, found {q.dtype}, {k.dtype}, {v.dtype}")
        if not host and (k.dtype != q.dtype or v.dtype != q.dtype):
            raise skc.LaunchError(f"attention: q, k and v must have one dtype, found {q.dtype}, {k.dtype}, {v.dtype}")
        if out is not None and host and (tuple(out.shape) != tuple(q.shape) or out.dtype.kind != "f"
                                         and out.dtype != np.uint16 and not _is_bf16(out)):
            raise skc.LaunchError(f"attention: out must be a float array of q's shape {tuple(q.shape)} (or "
                                  f"ml_dtypes.bfloat16, or uint16 for bf16 bits); found {tuple(out.shape)} of "
                                  f"{out.dtype}")
        if out is not None and host and not out.flags.writeable:
            raise skc.LaunchError("attention: out is a read-only array; pass a writeable one (or out=None)")
        if out is not None and not host and (tuple(out.shape) != tuple(q.shape) or out.dtype != q.dtype):
            raise skc.LaunchError(f"attention: out must be like q, {tuple(q.shape)} of {q.dtype}; found "
                                  f"{tuple(out.shape)} of {out.dtype}")
        check_own_memory("attention", out)
        for name, x in () if host or self.empty else (("q", q), ("k", k), ("v", v), ("out", out)):
            if x is None:
                continue
            strides = element_strides(x)
            if strides[-1] != 1:   # (numpy arrays are copied to the interpreter's)
                raise skc.LaunchError(f"attention: {name} (strides {strides}) is not contiguous along head_dim, "
                                      f"which TMA copies need: pass {name}.contiguous()")
            # (8 bf16 or f16 elements are 16 bytes; a dimension of one element has its stride made one)
            if any(size != 1 and stride % 8 for size, stride in zip(tuple(x.shape)[:-1], strides[:-1])):
                raise skc.LaunchError(f"attention: {name} (strides {strides}) has a stride that is no multiple of 16 "
                                      f"bytes, which TMA copies need: pass {name}.contiguous()")
            _check_start(name, skc.pointer_function(x)(x))
        target = skc.current_device().target
        # (else a CompileError deep in the pipeline's barriers; nothing to launch, nothing to refuse)
        if not self.empty and not (target.has("tma") and target.has("wgmma")):
            raise skc.LaunchError(f"attention loads with TMA and multiplies with wgmma (sm_90a, a Hopper GPU); "
                                  f"{target.name} has neither")
        if config is None:
            if D not in (64, 128, 256):
                raise skc.LaunchError(f"attention runs head dimensions 64, 128 and 256, found {D}: {padding_hint(D)}")
            config = default_config(D, dtype, bool(causal), bool(return_lse), problem=(B * H, Sq),
                                    multiprocessors=skc.current_device().multiprocessors)
        if config.head_dim != D:
            raise skc.LaunchError(f"the configuration is for head_dim {config.head_dim}, the tensors have {D}")
        if (config.causal, config.lse, config.dtype) != (bool(causal), bool(return_lse), dtype):
            raise skc.LaunchError(f"the configuration has causal={config.causal}, lse={config.lse} and dtype "
                                  f"{config.dtype}; the call asks causal={bool(causal)}, return_lse="
                                  f"{bool(return_lse)} on {dtype} tensors: make the configuration with the same")
        if config.flagged_only:
            raise skc.LaunchError("attention: a flagged_only configuration is the second launch of an "
                                  "exact_exponents=\"checked\" one, which attention() makes itself: pass the "
                                  "\"checked\" configuration")
        scale = 1.0 / math.sqrt(D) if scale is None else _scale_value(scale)
        # (a given config's too: else inf or 0; and "checked", which would flag every tile there)
        if scale > EXACT_EXPONENTS_SCALE and (not config.exact_exponents or config.checked):
            config = dataclasses.replace(config, exact_exponents=True)
        self.config = config
        self.scalars = (Sq, Skv, B, H, H // Hkv if Hkv else 1, scale)   # (no heads at all: empty)
        self.lse_shape, self.return_lse = (B, H, Sq), return_lse
        self.tiles = -(-Sq // config.block_m) * B * H
        self.flag_words = config.flag_words(self.tiles) if config.checked else 1

    def launches(self, in_place: bool) -> list:
        """(configuration, grid) of each launch: a "checked" configuration's, which flags the tiles whose rows passed
        one fma's range, then the one computing them again; where out is q's own view (`in_place`), "far"'s alone
        (the second launch would read Q where the first wrote O)."""
        configs = [self.config]
        if self.config.checked:
            configs = ([dataclasses.replace(self.config, exact_exponents="far")] if in_place else
                       [self.config, self.config.recomputing()])
        return [(c, c.grid(self.tiles, skc.current_device().multiprocessors)) for c in configs]


class AttentionPlan:
    """attention() over torch tensors of one set of facts on a GPU, ready: the checked geometry, each operand's
    tensor map encoded once per address (host_plans.MapsByAddress) and, for operands at addresses seen twice, a
    bound launch (host_plans.Bindings). It keeps addresses and geometry, never the caller's tensors (it keeps a
    stand-in for the log-sum-exp when none is asked for: the kernel does not write it then; another for the tile
    counter where the configuration takes none: host_plans.kept_stand_in; with cfg.fetch_tiles, a counter per
    launch stream)."""

    def __init__(self, q, k, v, out, layout, return_lse, problem: _Problem):
        import torch

        self.config, self.scalars = problem.config, problem.scalars
        self.flags = (StreamBuffers(lambda a, zeros, words=problem.flag_words: zeros(a, words, "int32"))
                      if problem.config.checked else kept_stand_in((1,), "int32"))
        self.return_lse, self.out_shape, self.lse_shape = bool(return_lse), tuple(q.shape), problem.lse_shape
        self.lse_dtype = torch.float32
        self.no_lse = kept_stand_in((1,), "float32")
        self.counters = StreamBuffers(tile_counter) if problem.config.fetch_tiles else None
        self.no_counter = None if self.counters is not None else kept_stand_in((1,), "int32")
        boxes = problem.config.boxes()
        self.maps = [MapsByAddress(lambda t, box=boxes[key], name=name: skc.TensorMap(_heads_view(t, layout, name),
                                                                                      box), first)
                     for key, name, first in zip(("q", "k", "v", "o"), ("q", "k", "v", "out"), (q, k, v, out))]
        # the launches of a call, each bound alike (two for a "checked" configuration), and where out is q's own view
        # (a "checked" configuration's "far" alone; any other's the same launch)
        self.launches = [Bindings(attention_kernel[grid, config.threads], config)
                         for config, grid in problem.launches(False)]
        self.in_place = ([Bindings(attention_kernel[grid, config.threads], config)
                          for config, grid in problem.launches(True)] if problem.config.checked else self.launches)
        self.bound = self.launches[0]
        # a launch's stream picks its tile counter (cfg.fetch_tiles) and its flags ("checked"): part of the key
        self.per_stream = self.counters is not None or problem.config.checked
        self.address = address_functions(5)   # q, k, v, out, lse

    def __call__(self, q, k, v, out, stream):
        # (what the call makes, the launch's stream's memory: host_plans.on_stream)
        with on_stream(q, stream) if out is None or self.return_lse else nullcontext():
            if out is None:
                out = q.new_empty(self.out_shape)
            lse = q.new_empty(self.lse_shape, dtype=self.lse_dtype) if self.return_lse else self.no_lse(q, stream)
        # a launch a CUDA graph captures is never bound: its counter, and a stand-in made under capture, are the
        # graph's memory for the call (StreamBuffers, kept_stand_in)
        captured = capturing(q)
        if self.per_stream:
            stream = skc.launch_stream(stream, q)
        address = self.address
        key = (address[0](q), address[1](k), address[2](v), address[3](out), address[4](lse),
               stream if self.per_stream else None)
        launches = self.launches if key[0] != key[3] else self.in_place   # (out at q's address: q's own view)
        bound = None if captured else [bindings.get(key) for bindings in launches]
        if bound and None not in bound:   # (checked when they were new)
            for launch in bound:
                launch(stream)
        else:
            # (the plan's key holds no address: a view of its facts at another offset is new here, and checked)
            for name, start in zip(("q", "k", "v", "out"), key):
                _check_start(name, start)
            check_no_overlap("attention", out, **_read_while_written(q, k, v, out))
            maps = self.maps
            counter = (self.no_counter if self.counters is None else self.counters)(q, stream)
            args = (maps[0](q), maps[1](k), maps[2](v), maps[3](out), lse, counter, self.flags(q, stream),
                    *self.scalars)
            for bindings in launches:
                if captured:
                    bindings.ready(args)(args, stream)
                else:
                    bindings.launch(key, args, stream)
        return (out, lse) if self.return_lse else out


def _check_start(name: str, address: int):
    """An operand must start on a 16-byte boundary, which TMA copies need: refused by name (the interpreter reads any
    address; the GPU's tensor map refused it with no operand named)."""
    if address % 16:
        raise skc.LaunchError(f"attention: {name} starts at {address:#x}, no multiple of 16 bytes, which TMA copies "
                              f"need: pass {name}.clone()")


class _NoLaunch:
    """Attention with nothing to compute: no query row (B, H or Sq of 0), out and the log-sum-exp empty; or no key
    (Skv of 0), each row a weighted sum of no values, zeros, with a log-sum-exp of -inf (the log of an empty sum), as
    torch's scaled_dot_product_attention and logsumexp give them. No launch: out (given or new) is filled in the
    launch's stream."""

    def __init__(self, problem: _Problem):
        self.lse_shape, self.return_lse = problem.lse_shape, bool(problem.return_lse)

    def __call__(self, q, k, v, out, stream):
        check_stream_given(stream)
        host = isinstance(q, np.ndarray)
        with on_stream(q, stream), without_grad(q):
            if out is None:   # (the host path returns float32 values in q's layout, bf16 ones for bf16 q)
                out = np.zeros(q.shape, q.dtype if _is_bf16(q) else np.float32) if host else q.new_zeros(q.shape)
            elif 0 not in tuple(out.shape):
                write_into(out, 0)
            if not self.return_lse:
                return out
            if host:
                return out, np.full(self.lse_shape, -np.inf, np.float32)
            import torch

            return out, q.new_full(self.lse_shape, -math.inf, dtype=torch.float32)


def _check_flags(causal, return_lse):
    for name, flag in (("causal", causal), ("return_lse", return_lse)):
        if type(flag) is not bool and not (isinstance(flag, (numbers.Integral, np.bool_)) and flag in (0, 1)):
            raise skc.LaunchError(f"attention: {name} is True or False, found {flag!r}")


def _check_options(layout, config):
    """The layout and the config are ones attention takes (a numpy string array passes `in LAYOUTS`)."""
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise skc.LaunchError(f"layout must be one of {', '.join(LAYOUTS)}, found {layout!r}")
    if config is not None and not isinstance(config, AttentionConfig):
        raise skc.LaunchError(f"attention's config is an AttentionConfig, found {type(config).__name__}")


def _read_while_written(q, k, v, out) -> dict:
    """The inputs that out must share no memory with: k and v (every query tile reads them), and q unless out is q's
    own view (each query tile reads its own rows before it stores them; a shifted view would read rows another tile
    already wrote)."""
    return dict(k=k, v=v) if _own_view(q, out) else dict(q=q, k=k, v=v)


def _own_view(q, out) -> bool:
    """Whether out is q's own view: one launch may read q's rows and then write them (out=q)."""
    return out is q or (out.data_ptr() == q.data_ptr() and tuple(out.shape) == tuple(q.shape)
                        and tuple(out.stride()) == tuple(q.stride()))


def _scale_value(scale) -> float:
    """scale as a float, or a LaunchError: the online softmax tracks each row's largest raw score, which is the
    largest scaled one only for a positive scale."""
    if type(scale) is not float:   # (a tensor: one autograd follows is refused)
        refuse_lost_gradient(scale, "attention", "scale", "scale q by it (attention(q * scale, k, v, scale=1.0))")
    try:
        if isinstance(scale, (str, bytes)) or complex_or_date(scale):   # (a complex one's real part was taken)
            raise TypeError
        refuse_read_under_capture(scale, "attention's scale", "scale")
        value = float(scale)
    except OverflowError:   # an int past float's range
        value = math.inf
    except (TypeError, ValueError, RuntimeError):   # (RuntimeError: torch's, for a tensor float() cannot take)
        raise skc.LaunchError(f"attention's scale must be a number, found {type(scale).__name__}") from None
    if not 0.0 < value < math.inf:
        raise skc.LaunchError(f"attention's scale must be positive and finite, found {value} (a score's weight "
                              "grows with it; for uniform weights average v instead)")
    if not _F32_TINY <= value <= _F32_MAX:   # (the kernel takes it as an f32)
        raise skc.LaunchError(f"attention's scale {value} is {'0' if value < _F32_TINY else 'infinite'} as the f32 "
                              f"the kernel computes with: pass a scale between {_F32_TINY:.3g} and {_F32_MAX:.3g}")
    return value


_F32_TINY, _F32_MAX = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)


def _heads_view(x, layout: str, name: str):
    """x (the operand `name`) as a (B, H, S, D) view, without a copy."""
    if len(x.shape) != 4:
        raise skc.LaunchError(f"attention takes 4-D tensors ({layout}), found {name} of shape {tuple(x.shape)}")
    if layout == "bhsd":
        return x
    return np.swapaxes(x, 1, 2) if isinstance(x, np.ndarray) else x.transpose(1, 2)


def _dtype_name(x, name: str) -> str:
    if isinstance(x, skc.DeviceArray):
        raise skc.LaunchError("attention takes torch tensors or numpy arrays (bfloat16 or float16), not skc arrays: "
                              "pass the torch tensor, or the numpy array, itself")
    dtype = str(x.dtype).replace("torch.", "")
    found = {"bfloat16": "bf16", "float16": "f16"}.get(dtype)
    if found is None:
        raise skc.LaunchError(f"attention runs on bfloat16 or float16 tensors, found {name} of {dtype}")
    return found


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """A host array of float values as bf16 bit patterns, rounded to nearest even (keeping the order of its
    strides: a (B, S, H, D) array stays one); uint16 arrays are taken as bf16 bits already. Either way a dense
    array, which TMA's rules on strides take (a reversed, broadcast or sliced view is copied, as floats are)."""
    if x.dtype == np.uint16:
        return x.copy(order="K")
    if _is_bf16(x):   # (ml_dtypes' bfloat16: its bits as they are)
        return x.view(np.uint16).copy(order="K")
    values = np.asarray(x, np.float32)
    bits = values.view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    # a NaN stays one: rounding would carry 0x7FFFFFFF's mantissa into its exponent (0x8000: -0.0). (As
    # skc.runtime.dtypes.float32_to_bf16_bits, which the blocks may not import, and which makes a C-contiguous copy.)
    return np.where(np.isnan(values), np.uint16(0x7FC0), rounded)


def _is_bf16(x) -> bool:
    """Whether x is a numpy array of ml_dtypes' bfloat16 (numpy's own dtypes have none; a void kind, "V", so the
    name tells it, as matmul's operand_dtype_name reads it)."""
    return isinstance(x, np.ndarray) and x.dtype.name == "bfloat16" and x.dtype.itemsize == 2


def _new_lse(q, host: bool, shape):
    if host:
        return np.zeros(shape, np.float32)
    import torch

    return q.new_empty(shape, dtype=torch.float32)


def default_config(D: int, dtype: str = "bf16", causal: bool = False, lse: bool = False, problem: tuple = None,
                   multiprocessors: int = None) -> AttentionConfig:
    """What attention() runs without a config, measured on the H200 (benchmarks/NOTES.md):
    for D <= 128, each warpgroup's softmax overlapped with its previous block's P·V, V three stages deep; for
    D = 64, the warpgroups taking turns at the tensor cores, with three of them on 192-row query tiles (1.07x of two)
    where not causal, in persistent blocks where a head has at most PERSISTENT_TILES_64 such tiles (1.02-1.47x on
    17 shapes, twenty-eighth session); causal, rows reduced in order (1.03-1.08x as fast as pairwise on eight
    shapes, twenty-seventh session) and, for a `problem` of (heads, query length) of many short tiles on
    `multiprocessors` SMs
    (`fetches_short_tiles`), persistent blocks taking their tiles from a counter; for D = 128, causal with the
    log-sum-exp, rows reduced pairwise; for D = 128 O rescaled only when a row's maximum moves past 2^2 in P (1.04x
    causal; past 2^8 before, as fast, but a key standing out later in a row then had its P rounded anywhere in its
    binade), and not causal, persistent blocks too (the next tile's loads overlap a tile's start and end: 1.10x at
    2048 keys, 1.05x at 4096, 1.02x at 16384, once the wgmma descriptors lived in uniform registers; before,
    persistent blocks spilled with lazy rescaling); causal without the log-sum-exp, persistent blocks taking their
    tiles from a counter, longest first (1.03x at 4096 keys, 1.01x at 8192; with pairwise reductions, as the
    log-sum-exp needs, 0.99x) where the tiles are very many or many and short (`fetches_tiles_of_128`), a tile a
    block where they are few or long (1.06-1.5x there, twenty-eighth session)."""
    fields = dict(block_n=128, overlap=True, value_stages=3) if D <= 128 else dict(block_n=64)
    if D == 64:
        fields.update(pingpong=True)
        if not causal:   # (causal: 0.9x, the diagonal's masks spill at 160 registers)
            fields.update(block_m=192, consumers=3,
                          persistent=problem is not None and -(-problem[1] // 192) <= PERSISTENT_TILES_64)
        elif problem is not None and fetches_short_tiles(*problem, multiprocessors):
            fields.update(persistent=True, fetch_tiles=True)
    if D == 128 and causal and lse:   # (rows reduced in order spill 4 bytes there; pairwise: 1.01x, no spill)
        fields.update(tree_reductions=True)
    if D == 128:
        fields.update(lazy_rescale=2.0)
        if not causal:
            fields.update(persistent=True)
        elif not lse and (problem is None or fetches_tiles_of_128(*problem, multiprocessors)):
            # (taking a fixed share of tiles that differ in length, 0.90x)
            fields.update(persistent=True, fetch_tiles=True)
    return AttentionConfig(head_dim=D, dtype=dtype, causal=causal, lse=lse, **fields)


# D = 64 without a causal mask runs persistent blocks (each a fixed share of the tiles: the next tile's loads overlap
# a tile's start and end) where a head has at most this many 192-row query tiles (3072 queries). Against cuDNN, end
# to end, persistent / a tile a block (benchmarks/NOTES.md, twenty-eighth session): 12 x 8 x 256 0.91-0.94 / 0.76-0.79,
# 5 x 32 / 8 x 259 1.10 / 0.88, 32 x 8 x 512 1.04-1.05 / 0.80, 16 x 16 x 1024 1.03-1.05 / 0.89-0.90, 2 x 16 x 2048
# 1.01-1.02 / 0.96, 24 x 16 / 4 x 200 0.88 / 0.59-0.60, 2 x 24 x 1536 1.24 / 1.12-1.13, 4 x 12 x 2500 1.13-1.14 /
# 1.11; level at 21-22 tiles (8 x 16 x 4096 1.08-1.15 / 1.09, 3 x 16 x 4000 1.25 / 1.25-1.27), slower past them
# (1 x 12 x 6000 1.38 / 1.42, 1 x 16 x 8192 1.03 / 1.05, 1 x 8 x 16384 1.02 / 1.03-1.06). A tile a block where
# the problem is unknown (the configuration the D = 64 row measures).
PERSISTENT_TILES_64 = 16


# Causal D = 64 takes persistent blocks fetching their tiles where the tiles (128 query rows of a head) are many,
# at least this many a multiprocessor, and short, at most SHORT_TILE_BLOCKS query blocks a head. Against cuDNN,
# end to end, rows reduced in order either way (benchmarks/NOTES.md, twenty-seventh session): 16 x 16 / 4 x 1024
# 0.97 against 0.79, 4 x 32 x 2048 0.98 against 0.87, 8 x 16 x 4096 1.01-1.04 against 0.96, 11 x 8 x 443 0.94-0.96
# against 0.88-0.90, 1 x 32 x 3000 0.95 against 0.94; with fewer tiles or longer rows slower: 1 x 16 x 1630 (208
# tiles) 0.84-0.86 against 0.96-0.98, 1 x 8 / 2 x 6208 (49 blocks a head) 0.88 against 1.02; 2 x 16 x 8192 level.
FETCH_TILES_PER_SM = 2
SHORT_TILE_BLOCKS = 32


def fetches_short_tiles(heads: int, queries: int, multiprocessors: int = None,
                        short: int = SHORT_TILE_BLOCKS) -> bool:
    """Whether `heads` heads (batch times query heads) of `queries` query rows make tiles many and short enough that
    persistent blocks taking them from a counter pay (causal D = 64; FETCH_TILES_PER_SM, at most `short` query
    blocks a head)."""
    blocks = -(-queries // 128)
    return multiprocessors is not None and heads * blocks >= FETCH_TILES_PER_SM * multiprocessors \
        and blocks <= short


# Causal D = 128 without the log-sum-exp fetches its tiles where they are many and short as for D = 64, with rows of at
# most SHORT_TILE_BLOCKS_128 query blocks, or very many, at least MANY_TILES_PER_SM a multiprocessor, of at most
# LONG_TILE_BLOCKS_128 (the causal rows, 4096 tiles of 32 blocks and 8192 of 64: 1.03x and 1.01x of a tile a
# block, fifteenth session); a tile a block otherwise. Against cuDNN, end to end, fetching / a tile a block
# (benchmarks/NOTES.md, twenty-eighth session): 1 x 8 x 3264 0.85 / 1.07, 1 x 32 / 4 x 514 0.84 / 0.98, 2 x 8 x 2000
# 0.96 / 1.02, 1 x 16 x 1500 0.86 / 1.00, 1 x 8 x 8192 1.01 / 1.12, 1 x 12 x 4096 0.99 / 1.10, 1 x 4 x 6000 0.81 / 1.22;
# many short tiles fetched: 2 x 32 / 8 x 700 0.97 / 0.92, 3 x 16 x 900 0.97 / 0.96; 4 x 8 x 1024 (256 tiles) level, 0.98
# / 0.97. Unseen, the rule's choice against the other: 1 x 16 x 8192 1.09 / 1.06, 2 x 12 x 2500 1.02 / 0.98, 1 x 24 x
# 3000 1.02 / 0.99, 6 x 16 x 1200 1.01 / 0.93, 1 x 40 / 8 x 2048 1.02 / 1.01, 2 x 8 x 5000 1.06 / 1.00, 3 x 8 x 3000
# 1.02 / 0.99, 8 x 16 x 4096 1.09-1.17 / 1.03-1.05; 1 x 16 x 16384 (2048 tiles of 128 blocks) fetched 1.07-1.09 against
# 1.11-1.12.
SHORT_TILE_BLOCKS_128 = 16
MANY_TILES_PER_SM = 8
LONG_TILE_BLOCKS_128 = 64


def fetches_tiles_of_128(heads: int, queries: int, multiprocessors: int = None) -> bool:
    """Whether causal head_dim 128 attention (without the log-sum-exp) over `heads` heads of `queries` query rows
    runs persistent blocks taking their tiles from a counter (SHORT_TILE_BLOCKS_128, MANY_TILES_PER_SM,
    LONG_TILE_BLOCKS_128); where the device is unknown, it does (the configuration the issue's rows measure)."""
    if multiprocessors is None:
        return True
    blocks = -(-queries // 128)
    many = heads * blocks >= MANY_TILES_PER_SM * multiprocessors and blocks <= LONG_TILE_BLOCKS_128
    return many or fetches_short_tiles(heads, queries, multiprocessors, SHORT_TILE_BLOCKS_128)


def compile_arguments(config: AttentionConfig) -> dict:
    """attention_kernel's arguments for `Kernel.compile` without data (skc compile, tests): rank-4 tensor-map
    types of the configuration's boxes, an f32 pointer for the log-sum-exp, i32 ones for the tile counter and the
    flags, the configuration and block size."""
    from skc import ir

    boxes = config.boxes()
    maps = {name: ir.TensorMapType(ir.ScalarType(config.dtype), boxes[name[0]], 128) for name in ("q", "k", "v", "o")}
    return dict(maps, lse=skc.Ptr[skc.f32], counter=skc.Ptr[skc.i32], flags=skc.Ptr[skc.i32], cfg=config,
                block=config.threads)
