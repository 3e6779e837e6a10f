"""NVIDIA's tools from their pip wheels: nvJitLink (PTX to cubin, with ptxas's resource report)
and nvdisasm (cubin to SASS). Both are optional; without nvJitLink the driver compiles PTX at
load time."""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from ..diagnostics import CompileError, DeviceError


@dataclass(frozen=True)
class Resources:
    """ptxas's report for one kernel."""

    registers: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int
    shared_bytes: int = 0

    @property
    def spills(self) -> int:
        return self.spill_stores + self.spill_loads


@functools.lru_cache(maxsize=None)
def _nvjitlink():
    try:
        from cuda.bindings import nvjitlink

        nvjitlink.version()
        return nvjitlink
    except Exception:
        return None


def have_nvjitlink() -> bool:
    return _nvjitlink() is not None


def nvjitlink_version() -> str:
    lib = _nvjitlink()
    return ".".join(map(str, lib.version())) if lib else "none"


def _log(lib, handle, kind: str) -> str:
    size = getattr(lib, f"get_{kind}_log_size")(handle)
    buffer = bytearray(size)
    getattr(lib, f"get_{kind}_log")(handle, buffer)
    return bytes(buffer).rstrip(b"\0").decode(errors="replace")


def _wheel_tool(name: str):
    """A tool from NVIDIA's pip wheels (nvidia/cu13/bin/...), else from PATH; None when neither."""
    try:
        import nvidia

        for base in nvidia.__path__:
            for sub in ("cu13", "cu12", f"cuda_{name}"):
                candidate = os.path.join(base, sub, "bin", name)
                if os.access(candidate, os.X_OK):
                    return candidate
    except ImportError:
        pass
    return shutil.which(name)


@functools.lru_cache(maxsize=None)
def ptxas_path():
    """ptxas (the nvidia-cuda-nvcc wheel's, else PATH's); None when neither."""
    return _wheel_tool("ptxas")


def link_ptx(ptx: str, arch: str, name: str = "kernel") -> tuple[bytes, str]:
    """PTX to a cubin for `arch` (e.g. 'sm_90a'); gives the cubin and ptxas's resource log.

    ptxas itself is preferred where installed: compiling a whole program, it honours setmaxnreg, which
    nvJitLink's separate-compilation mode ignores (ptxas C7504); the driver, loading PTX, honours it too."""
    tool = ptxas_path()
    if tool is not None:
        return _run_ptxas(tool, ptx, arch, name)
    lib = _nvjitlink()
    if lib is None:
        raise DeviceError("neither ptxas nor nvJitLink is installed; install skc's 'nvidia' extra "
                          "(pip install 'skc[nvidia]')")
    options = [f"-arch={arch}", "-O3", "-Xptxas=-v"]
    handle = lib.create(len(options), options)
    try:
        data = ptx.encode()
        try:
            lib.add_data(handle, lib.InputType.PTX, data, len(data), name)
            lib.complete(handle)
        except Exception as e:
            raise CompileError(f"ptxas rejected the PTX of {name} for {arch}: {e}\n{_log(lib, handle, 'error')}",
                               hint="this is an skc bug unless the kernel uses skc.asm") from None
        size = lib.get_linked_cubin_size(handle)
        cubin = bytearray(size)
        lib.get_linked_cubin(handle, cubin)
        return bytes(cubin), _log(lib, handle, "info")
    finally:
        lib.destroy(handle)


def _run_ptxas(tool: str, ptx: str, arch: str, name: str) -> tuple[bytes, str]:
    with tempfile.TemporaryDirectory() as folder:
        source, output = os.path.join(folder, "kernel.ptx"), os.path.join(folder, "kernel.cubin")
        with open(source, "w") as f:
            f.write(ptx)
        result = subprocess.run([tool, f"-arch={arch}", "-O3", "-v", source, "-o", output],
                                capture_output=True, text=True)
        if result.returncode:
            raise CompileError(f"ptxas rejected the PTX of {name} for {arch}:\n{result.stderr.strip()}",
                               hint="this is an skc bug unless the kernel uses skc.asm")
        with open(output, "rb") as f:
            return f.read(), result.stderr + result.stdout


_REPORT = re.compile(r"Function properties for (\S+)\n.*?(\d+) bytes stack frame, (\d+) bytes spill stores, "
                     r"(\d+) bytes spill loads\n.*?Used (\d+) registers(?:.*?(\d+) bytes smem)?", re.S)


def parse_resources(log: str) -> dict:
    """Kernel name -> Resources, from ptxas's -v report."""
    found = {}
    for m in _REPORT.finditer(log):
        name, stack, stores, loads, registers, smem = m.groups()
        found[name] = Resources(int(registers), int(stack), int(stores), int(loads), int(smem or 0))
    return found


@functools.lru_cache(maxsize=None)
def nvdisasm_path():
    """nvdisasm (the nvidia-cuda-nvdisasm wheel's, else PATH's); None when neither."""
    return _wheel_tool("nvdisasm")


def disassemble(cubin: bytes) -> str:
    """The SASS of a cubin (nvdisasm -c)."""
    tool = nvdisasm_path()
    if tool is None:
        raise DeviceError("nvdisasm is not installed; install skc's 'nvidia' extra (pip install 'skc[nvidia]')")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        result = subprocess.run([tool, "-c", f.name], capture_output=True, text=True)
    if result.returncode:
        raise DeviceError(f"nvdisasm failed: {result.stderr.strip()}")
    return result.stdout
