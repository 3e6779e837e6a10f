"""The compile driver: frontend -> tile IR passes -> backend -> loadable image, with the cache key.

It is the one place that runs the layers in order. A compile's result, `CompiledKernel`, keeps
every stage's text for inspection (`ir("tile")`, `ir("llvm")`, `ir("llvm-opt")`, `asm("ptx")`,
`asm("sass")`, `asm("gcn")`) and the facts a launcher needs (for AMD, the linked code object and
its metadata: `metadata["amdgpu"]`, `resources`). `SKC_DUMP_DIR` writes every stage of every
kernel compiled to that folder.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from typing import Optional

from . import frontend, ir
from .diagnostics import CompileError, SkcError, is_library_file
from .runtime import cache
from .runtime.signature import LaunchParam
from .target import Target
from .version import __version__

# The backends (llvmlite, nvJitLink, ld.lld wrappers) are imported inside the functions that use them: `import skc`
# must not load LLVM (measured: skc.backends with nvptx and amdgpu about 17 ms, ptx_tools 12 ms, amdgpu_link
# 11 ms, against about 90 ms for all of `import skc`), and the interpreter never needs them.

_log = logging.getLogger("skc.cache")

STAGES = ("tile-raw", "tile", "llvm", "llvm-opt")
ASSEMBLY = {"ptx": "NVIDIA", "sass": "NVIDIA", "gcn": "AMD"}   # each assembly, and whose targets have it


@dataclass
class CompiledKernel:
    """One kernel compiled for one specialization and target."""

    name: str
    target: Target
    block: tuple
    params: tuple                      # LaunchParam for each run-time parameter
    shared_bytes: int = 0
    stages: dict = field(default_factory=dict)   # stage name -> text
    binary: Optional[bytes] = None     # cubin (NVIDIA) or hsaco (AMD)
    module: Optional[ir.Module] = None  # the tile IR, kept for the interpreter
    metadata: dict = field(default_factory=dict)
    key: str = ""
    from_cache: bool = False

    def ir(self, stage: str = "tile") -> str:
        """The IR of a stage: 'tile-raw' (as the frontend made it), 'tile' (after passes), 'llvm', 'llvm-opt'."""
        if stage not in STAGES:
            raise SkcError(f"unknown IR stage {stage!r}; stages: {', '.join(STAGES)}")
        self._ensure(stage)
        return self.stages[stage]

    def asm(self, kind: str = "ptx") -> str:
        """Target assembly: 'ptx' and 'sass' (NVIDIA; sass needs nvdisasm), 'gcn' (AMD)."""
        if kind not in ASSEMBLY:
            raise SkcError(f"unknown assembly {kind!r}; choose from {', '.join(ASSEMBLY)}")
        if ASSEMBLY[kind].lower() != self.target.vendor:
            own = [name for name, vendor in ASSEMBLY.items() if vendor.lower() == self.target.vendor]
            raise SkcError(f"{kind} is {ASSEMBLY[kind]}'s assembly; {self.target.name} has "
                           f"{' and '.join(map(repr, own))}")
        if kind == "sass" and "sass" not in self.stages:
            from .backends.ptx_tools import disassemble

            self.stages["sass"] = disassemble(self._cubin())
        self._ensure(kind)
        return self.stages[kind]

    def _ensure(self, stage: str):
        if stage not in self.stages:
            raise SkcError(f"stage {stage!r} is not available for {self.name} on {self.target.name}")

    @property
    def cubin(self) -> bytes:
        """The sm_XX machine code (ptxas through nvJitLink), made on first use."""
        return self._cubin()

    def _cubin(self) -> bytes:
        if self.binary is None:
            from .backends.ptx_tools import link_ptx, parse_resources

            self.binary, log = link_ptx(self.stages["ptx"], self.target.name, self.name)
            self.metadata["ptxas"] = log
            self.metadata.setdefault("resources", _resources_dict(parse_resources(log).get(self.name)))
        return self.binary

    @property
    def resources(self) -> dict:
        """What the kernel uses of the machine. NVIDIA: registers, spills and stack as ptxas reports them
        (needs nvJitLink). AMD: registers (VGPRs), agprs, sgprs, lds_bytes, scratch_bytes and spills, from
        the code object's metadata (`metadata["amdgpu"]` holds all of it, kernel arguments included)."""
        if "resources" not in self.metadata and self.target.vendor == "nvidia":
            self._cubin()
        return self.metadata.get("resources") or {}

    def __repr__(self):
        return f"<CompiledKernel {self.name} for {self.target.name}, block={self.block}>"


def _resources_dict(resources) -> dict:
    if resources is None:
        return {}
    return {"registers": resources.registers, "stack_bytes": resources.stack_bytes,
            "spill_stores": resources.spill_stores, "spill_loads": resources.spill_loads}


def launch_params(spec: frontend.Specialization) -> tuple:
    params = []
    for p in spec.params:
        if p.kind == frontend.POINTER:
            params.append(LaunchParam(p.name, "pointer", p.type.elem))
        elif p.kind == frontend.SCALAR:
            params.append(LaunchParam(p.name, "scalar", p.type))
        elif p.kind == frontend.TENSORMAP:
            params.append(LaunchParam(p.name, "tensormap", None))
    return tuple(params)


# -- the cache key ----------------------------------------------------------------------------
# The environment variables a compile reads (besides those the Kernel turns into options, SKC_DEBUG and
# SKC_HANG_TIMEOUT): SKC_MAX_UNROLL decides whether a kernel compiles at all, so a kernel refused under a small
# limit must be refused in every process, not served from an entry that a process with a larger one wrote.
COMPILE_ENVIRONMENT = ("SKC_MAX_UNROLL",)


def cache_key_parts(fn, spec: frontend.Specialization, target: Target, options: dict) -> dict:
    """Everything that changes the code but the inlined functions, helpers and globals read (those are
    checked on load, see dependencies_current), each part named."""
    return {
        "skc": __version__,
        "skc_source": skc_source_digest(),
        "llvmlite": _llvmlite_version(),
        "numpy": _numpy_version(),
        "kernel": f"{fn.__module__}.{fn.__qualname__}",
        "source": frontend.source_digest(fn),
        "spec": repr(spec.key()),
        "target": target.key(),
        "options": repr(sorted(options.items())),
        "environment": {name: os.environ.get(name, "").strip() for name in COMPILE_ENVIRONMENT},
        "python": sys.version_info[:2],
    }


def cache_key(fn, spec: frontend.Specialization, target: Target, options: dict) -> str:
    """A digest of cache_key_parts."""
    parts = cache_key_parts(fn, spec, target, options)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


_SKC_ROOT = os.path.dirname(os.path.abspath(__file__))
_source_digest: list = []


def skc_source_digest() -> str:
    """SHA-256 over the contents of every .py file of the skc package (its path, then its bytes), once
    per process: any edit to any layer (a lowering, a block, a pass) gives new keys. Contents rather
    than (size, mtime): an edit that keeps the size within the clock's resolution, a checkout that
    restores old mtimes, or a copy that resets them would otherwise keep stale entries; the read is
    about 0.7 MB, a few milliseconds once per process (tests/runtime/test_cache_keys.py measures it)."""
    if not _source_digest:
        digest = hashlib.sha256()
        for relative, path in sorted(_package_sources(_SKC_ROOT, "")):
            with open(path, "rb") as f:
                digest.update(relative.encode() + b"\0" + f.read() + b"\0")
        _source_digest.append(digest.hexdigest())
    return _source_digest[0]


def _package_sources(folder: str, prefix: str):
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                yield from _package_sources(entry.path, prefix + entry.name + "/")
            elif entry.name.endswith(".py") and entry.is_file():
                yield prefix + entry.name, entry.path


def _source_stats() -> tuple:
    """(path, size, mtime) of every .py file of the skc package, as the file system has them now."""
    stats = []
    for relative, path in sorted(_package_sources(_SKC_ROOT, "")):
        try:
            info = os.stat(path)
            stats.append((relative, info.st_size, info.st_mtime_ns))
        except OSError:   # (removed meanwhile)
            stats.append((relative, None, None))
    return tuple(stats)


# skc's files as this process imported them (about 0.4 ms): the code it runs is theirs
_IMPORTED_SOURCES = _source_stats()
_CHANGED_WARNING: list = []


def skc_as_imported() -> bool:
    """Whether skc's files are still the ones this process imported (their sizes and times; about 0.4 ms). Edited,
    replaced or checked out since (a long-running notebook or server while skc is updated in place), the source digest
    read from the files names code this process does not run: an entry it stored under that digest held the old
    code's kernel for every later process of the new skc, and a winner it timed the old code's timing. Such a process
    keeps its compiled kernels and autotuning winners in memory alone, and says so once."""
    if _source_stats() == _IMPORTED_SOURCES:
        return True
    if not _CHANGED_WARNING:
        _CHANGED_WARNING.append(True)
        warnings.warn(f"skc's source files in {_SKC_ROOT} changed after this process imported skc: its compiled "
                      "kernels and autotuning winners are not read from or written to the disk cache (restart the "
                      "process to use it)", stacklevel=_callers_level())
    return False


def _callers_level() -> int:
    """warnings.warn's stacklevel, from the function that calls this one, of the first frame outside skc: the user's
    line that launched, compiled or tuned (a fixed level named skc's jit.py or autotune.py, by the path taken)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and is_library_file(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def _llvmlite_version() -> str:
    import llvmlite

    return llvmlite.__version__


def _numpy_version() -> str:
    import numpy

    return numpy.__version__


def dependencies_current(deps) -> bool:
    """Whether every function inlined, function run at compile time and global read when the entry was
    made is still the same. Anything malformed (a hand edit, an old format) counts as changed."""
    try:
        return _dependencies_current(deps)
    except (frontend.Unkeyable, TypeError, ValueError, AttributeError, KeyError, RecursionError):
        return False


def _dependencies_current(deps: dict) -> bool:
    if not isinstance(deps, dict) or set(deps) != {"functions", "globals", "helpers"}:
        return False
    for module, qualname, key in deps["functions"]:
        fn = resolve(module, qualname)
        if fn is None or frontend.inlined_function_key(fn, frontend.source_digest(fn)) != key:
            return False
    for module, qualname, key in deps["helpers"]:
        fn = resolve(module, qualname)
        if fn is None or frontend.value_key(fn) != key:
            return False
    for module, name, key in deps["globals"]:
        namespace = sys.modules.get(module)
        if namespace is None:
            return False
        if key == frontend.keying.ABSENT:   # (a builtin the module did not bind when compiled)
            if name in vars(namespace):
                return False
            continue
        if name not in vars(namespace) or frontend.dependency_key(vars(namespace)[name]) != key:
            return False
    return True


def resolve(module: str, qualname: str):
    """The object `qualname` names in the loaded module `module` as it is bound now, or None (not loaded, gone, or
    under `<locals>`)."""
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    obj = sys.modules.get(module)
    for part in qualname.split("."):
        if obj is None or part == "<locals>":
            return None
        obj = getattr(obj, part, None)
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
    obj = getattr(obj, "__skc_function__", obj)
    obj = getattr(obj, "__wrapped__", obj) if not hasattr(obj, "__code__") else obj
    return obj if isinstance(obj, types.FunctionType) else None


def _deps_record(deps) -> dict:
    return {"functions": sorted([m, q, k] for (m, q), k in deps.functions.items()),
            "helpers": sorted([m, q, k] for (m, q), k in deps.helpers.items()),
            "globals": sorted([m, n, k] for (m, n), k in deps.globals.items())}


# -- compiling ----------------------------------------------------------------------------------
def _verify_frontend_output(module):
    """The frontend's IR, verified. Names reach the places where run-time paths meet through variables the frontend
    merges; a value the program keeps elsewhere (a list, a dict, an object's attribute) does not, and where it was
    made inside a block that a run-time jump may leave (an unrolled loop's iteration, an if, an inlined function)
    and is read after it, the verifier finds it out of reach: said in the program's terms."""
    try:
        ir.verify(module)
    except ir.InvisibleOperand as error:
        raise CompileError(
            "this reads a value made on only some of the run-time paths that reach here (inside a loop iteration, an "
            "if, or a function that a run-time break, continue or return may leave), kept in a list, a dict or an "
            "object's attribute: skc merges the paths' variables only", error.loc,
            hint="assign the value to a variable on every path (a list's length must be the same on all of them), "
                 "or make the jump's condition known at compile time") from None


def compile_kernel(fn, spec: frontend.Specialization, target: Target, *, for_interpreter: bool = False,
                   options: Optional[dict] = None) -> CompiledKernel:
    """Compile fn for spec and target (through the disk cache unless for the interpreter)."""
    options = options or {}
    params = launch_params(spec)
    key = "" if for_interpreter else cache_key(fn, spec, target, options)
    on_disk = bool(key) and cache.cache_enabled() and skc_as_imported()   # (skc's files, checked once a compile)
    if on_disk:
        hit = _from_cache(key, frontend.symbol_name(fn.__name__), target, spec, params)
        if hit is not None:
            _dump(hit)   # (SKC_DUMP_DIR shows every kernel a run uses, from the cache too)
            return hit
    started = time.perf_counter()
    module, deps = frontend.compile_to_ir(fn, spec, target)
    kernel = CompiledKernel(frontend.symbol_name(fn.__name__), target, tuple(spec.block), params, key=key)
    kernel.stages["tile-raw"] = ir.print_module(module)
    _verify_frontend_output(module)
    ir.passes.run_pipeline(module)
    ir.verify(module)
    function = module.functions[0]
    kernel.shared_bytes = function.attrs.get("shared_bytes", 0)
    kernel.stages["tile"] = ir.print_module(module)
    # (an assertion's message names its file and line, which the key, the source text, does not hold)
    kernel.metadata["names_lines"] = any(op.name == "gpu.assert" and op.loc is not None for op in function.walk())
    if for_interpreter:
        kernel.module = module
    else:
        if options.get("debug") and target.vendor == "nvidia":
            _add_hang_guard(kernel, function, options)
        _run_backend(kernel, module, target)
    kernel.metadata["compile_seconds"] = time.perf_counter() - started
    kernel.metadata["deps"] = _deps_record(deps)
    kernel.metadata["uncached_reads"] = list(deps.unkeyable)  # why it is not on disk, if it is not
    # (in memory only) the module-level bindings the compile read, as read: a launch checks them (jit.py)
    kernel.metadata["bindings"] = frontend.keying.as_left(deps.bindings)
    kernel.metadata["unkeyed_bindings"] = frontend.keying.as_left(deps.unkeyed)
    _dump(kernel)
    if on_disk:
        if deps.unkeyable:
            # a value the code depends on has no exact key: a later process could not tell whether it
            # changed, so the kernel is compiled afresh each time rather than guessed from disk
            _log.debug("skc: %s is not stored in the disk cache: it reads values with no exact key: %s",
                       fn.__qualname__, "; ".join(deps.unkeyable))
            cache.discard(key)
        else:
            _to_cache(kernel)
    return kernel


def _add_hang_guard(kernel: CompiledKernel, function: ir.Function, options: dict):
    """Debug mode: the backend bounds every mbarrier wait (nvptx_debug.py); keep its site table for the runtime."""
    from .backends.nvptx_debug import DEFAULT_TIMEOUT_NS, hang_sites

    function.attrs["debug"] = True
    function.attrs["hang_timeout_ns"] = int(options.get("hang_timeout_ns", DEFAULT_TIMEOUT_NS))
    kernel.metadata["hang_sites"] = hang_sites(function)


def _run_backend(kernel: CompiledKernel, module: ir.Module, target: Target):
    from . import backends

    kernel.stages["llvm"] = backends.to_llvm(module, target)
    assembly = backends.compile_llvm(kernel.stages["llvm"], target)
    kernel.stages["llvm-opt"] = assembly.llvm_opt
    if target.vendor == "nvidia":
        # The cubin is made on demand (resources, SASS): a launch loads the PTX, which the driver
        # compiles once and keeps in its own cache.
        kernel.stages["ptx"] = assembly.asm
    else:
        kernel.stages["gcn"] = assembly.asm
        from .backends.amdgpu_link import link_code_object

        kernel.binary = link_code_object(assembly.obj)
        _record_amdgpu_metadata(kernel)


def _record_amdgpu_metadata(kernel: CompiledKernel):
    """The kernel's entry of the code object's metadata (from the GCN assembly), its explicit arguments
    (offsets and sizes: what the HIP launcher lays out; the runtime does not read backend formats) and
    its resources."""
    from .backends.amdgpu_link import explicit_arguments, kernel_metadata, kernel_resources

    found = kernel_metadata(kernel.stages["gcn"], kernel.name)
    kernel.metadata["amdgpu"] = found
    kernel.metadata["kernel_arguments"] = explicit_arguments(found)
    kernel.metadata["resources"] = kernel_resources(found)


_TEXT_FILES = {"tile-raw": "kernel.tile-raw", "tile": "kernel.tile", "llvm": "kernel.ll", "llvm-opt": "kernel.opt.ll",
               "ptx": "kernel.ptx", "gcn": "kernel.s"}


def _to_cache(kernel: CompiledKernel):
    files = {name: kernel.stages[stage].encode() for stage, name in _TEXT_FILES.items() if stage in kernel.stages}
    if kernel.binary is not None:
        files["kernel.bin"] = kernel.binary
    meta = {"name": kernel.name, "target": kernel.target.name, "shared_bytes": kernel.shared_bytes,
            "deps": kernel.metadata["deps"], "resources": kernel.metadata.get("resources", {})}
    if "hang_sites" in kernel.metadata:
        meta["hang_sites"] = kernel.metadata["hang_sites"]
    if "hang_sites" in kernel.metadata or kernel.metadata.get("names_lines"):
        # the hang-site table and the assertions' messages name files and lines, which the key (source text) does
        # not hold: where each function is now
        meta["locations"] = _locations(kernel.metadata["deps"])
    cache.store(kernel.key, meta, files)


def _locations(deps: dict) -> list:
    """[module, qualname, file, first line] of each function inlined, where it is defined now."""
    found = []
    for module, qualname, _ in deps["functions"]:
        fn = resolve(module, qualname)
        code = getattr(fn, "__code__", None)
        found.append([module, qualname, code.co_filename if code else "", code.co_firstlineno if code else 0])
    return found


_REQUIRED_FILES = {"nvidia": ("kernel.ptx",), "amd": ("kernel.s", "kernel.bin")}


def _from_cache(key: str, name: str, target: Target, spec, params) -> Optional[CompiledKernel]:
    """The cached kernel for key, or None: a miss, and the compile that follows rewrites the entry.
    An entry that does not hold what a kernel of this target needs is a miss, never an error."""
    entry = cache.load(key)
    if entry is None:
        return None
    meta = entry.meta
    if (meta.get("name") != name or meta.get("target") != target.name
            or any(f not in entry.files for f in _REQUIRED_FILES[target.vendor])
            or not isinstance(meta.get("shared_bytes"), int) or not isinstance(meta.get("resources", {}), dict)
            or not dependencies_current(meta.get("deps"))
            or (("hang_sites" in meta or "locations" in meta) and meta.get("locations") != _locations(meta["deps"]))):
        return None
    kernel = CompiledKernel(name, target, tuple(spec.block), params, meta["shared_bytes"], key=key, from_cache=True)
    try:
        for stage, file in _TEXT_FILES.items():
            if file in entry.files:
                kernel.stages[stage] = entry.files[file].decode()
    except UnicodeDecodeError:
        return None
    kernel.binary = entry.files.get("kernel.bin")
    kernel.metadata["deps"] = meta["deps"]
    if meta.get("resources"):   # (an entry stored before its cubin was made has none: made again on demand)
        kernel.metadata["resources"] = meta["resources"]
    if isinstance(meta.get("hang_sites"), dict):
        kernel.metadata["hang_sites"] = meta["hang_sites"]
    if target.vendor == "amd" and "gcn" in kernel.stages:
        _record_amdgpu_metadata(kernel)
    return kernel


def _dump(kernel: CompiledKernel):
    """Write the kernel's stages under SKC_DUMP_DIR, if set; a folder it cannot write is a warning (a debugging
    aid does not stop the program)."""
    folder = os.environ.get("SKC_DUMP_DIR")
    if not folder:
        return
    try:
        _dump_into(folder, kernel)
    except OSError as error:
        warnings.warn(f"SKC_DUMP_DIR={folder}: cannot write {kernel.name}'s stages there ({error})",
                      stacklevel=_callers_level())


def _dump_into(folder: str, kernel: CompiledKernel):
    # (a kernel for the interpreter has no cache key: its IR tells its specializations apart, each a folder)
    digest = kernel.key or hashlib.sha256(kernel.stages["tile-raw"].encode()).hexdigest()
    tag = digest[:10] if kernel.key else f"interp-{digest[:10]}"
    path = os.path.join(folder, f"{kernel.name}-{kernel.target.name}-{tag}")
    os.makedirs(path, exist_ok=True)
    for stage, text in kernel.stages.items():
        suffix = {"tile-raw": "tile-raw", "tile": "tile", "llvm": "ll", "llvm-opt": "opt.ll", "ptx": "ptx",
                  "gcn": "s", "sass": "sass"}[stage]
        with open(os.path.join(path, f"kernel.{suffix}"), "w") as f:
            f.write(text)
    if kernel.target.vendor == "amd" and kernel.binary is not None:
        with open(os.path.join(path, "kernel.hsaco"), "wb") as f:
            f.write(kernel.binary)
    if kernel.target.vendor == "nvidia" and kernel.binary is not None:
        try:
            with open(os.path.join(path, "kernel.sass"), "w") as f:
                f.write(kernel.asm("sass"))
        except SkcError:
            pass
