"""AMD code objects: linking LLVM's relocatable object into a loadable `.hsaco` with ld.lld (a system
one, or the LLD inside the `ziglang` pip wheel), reading the kernels' metadata (registers, LDS, scratch,
kernel-argument layout) from the GCN assembly's `.amdgpu_metadata` block, and disassembling a code
object with llvm-objdump where one is installed (optional: nothing in skc needs it)."""
from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from typing import Optional

from ..diagnostics import DeviceError, SkcError

MINIMUM_VERSION = 16  # the oldest LLVM whose ld.lld links LLVM 22's code object v5 (and knows gfx940)
INSTALL_HINT = ("install the ziglang wheel, which carries LLD: pip install ziglang (in skc's amd and test extras), "
                "or LLVM's linker, version 16 or newer (apt-get install lld-16), or set SKC_LD_LLD to an ld.lld")


@functools.lru_cache(maxsize=None)
def _tool_version(*command: str) -> int:
    """The LLVM major version of a tool ('Debian LLD 16.0.6', 'LLVM version 16.0.6'); 0 when unknown."""
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    found = re.search(r"(?:LLD|LLVM version)\s+(\d+)\.", done.stdout)
    return int(found.group(1)) if found else 0


def _candidates(tool: str) -> list:
    """Every `tool` and `tool-NN` on PATH, and /usr/lib/llvm-NN/bin/tool (Debian's layout)."""
    found = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found += glob.glob(os.path.join(folder, tool)) + glob.glob(os.path.join(folder, f"{tool}-[0-9]*"))
    found += glob.glob(f"/usr/lib/llvm-*/bin/{tool}")
    unique = {}  # one path per program (the first found keeps its name: lld picks its flavor from it)
    for path in found:
        if os.access(path, os.X_OK):
            unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def find_tool(tool: str, env: str) -> tuple:
    """(path, LLVM major version) of the newest `tool` (tool, tool-NN on PATH, /usr/lib/llvm-NN/bin/tool)
    of version 16 or newer; the path in environment variable `env` wins. (None, newest version seen) if none."""
    chosen = os.environ.get(env)
    if chosen:   # (a program that says it is LLVM's of version 16 or newer: /bin/true or a folder is none)
        path = chosen if os.path.exists(chosen) else shutil.which(chosen)
        runnable = path is not None and os.path.isfile(path) and os.access(path, os.X_OK)
        version = _tool_version(path) if runnable else 0
        return (path if version >= MINIMUM_VERSION else None), version
    ranked = sorted(((_tool_version(path), path) for path in _candidates(tool)), reverse=True)
    if ranked and ranked[0][0] >= MINIMUM_VERSION:
        return ranked[0][1], ranked[0][0]
    return None, ranked[0][0] if ranked else 0


def _ziglang_ld_lld() -> tuple:
    """(command, LLD major version) of the LLD inside the `ziglang` wheel (`zig ld.lld ...`, which is what
    `python -m ziglang ld.lld` runs), found without importing the package; (None, 0) without the wheel."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.origin:
        return None, 0
    folder = os.path.dirname(spec.origin)
    for name in ("zig", "zig.exe"):
        zig = os.path.join(folder, name)
        if os.access(zig, os.X_OK):
            command = (zig, "ld.lld")
            return command, _tool_version(*command)
    return None, 0


def ld_lld_command() -> tuple:
    """(command, LLVM major version) of the ld.lld that links code objects, a tuple of argv words to which
    the linker's own arguments are appended: SKC_LD_LLD when set, else the newest system ld.lld of version
    16 or newer, else the ziglang wheel's LLD. (None, newest version seen) when there is none."""
    path, newest = find_tool("ld.lld", "SKC_LD_LLD")
    if path is not None:
        return (path,), newest
    if os.environ.get("SKC_LD_LLD"):
        return None, newest  # the user's choice does not exist: say so rather than link with another
    command, version = _ziglang_ld_lld()
    if command is not None and version >= MINIMUM_VERSION:
        return command, version
    return None, max(newest, version)


def ld_lld_path() -> Optional[str]:
    """The ld.lld command as one line of text (what `skc info` shows), or None."""
    command = ld_lld_command()[0]
    return " ".join(command) if command else None


def objdump_path() -> Optional[str]:
    return find_tool("llvm-objdump", "SKC_LLVM_OBJDUMP")[0]


def link_code_object(obj: bytes) -> bytes:
    """The loadable code object (.hsaco) of an AMDGPU relocatable object: `ld.lld -shared`."""
    lld, newest = ld_lld_command()
    if lld is None:
        chosen = os.environ.get("SKC_LD_LLD")
        if chosen:
            raise DeviceError(f"linking an AMD code object needs ld.lld: SKC_LD_LLD names {chosen}, which is no "
                              "ld.lld of version 16 or newer; point it at one, or unset it to use the ziglang wheel's")
        seen = f" (only version {newest}, too old)" if newest else ""
        raise DeviceError(f"linking an AMD code object needs ld.lld, which was not found{seen}; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="skc-hsaco-") as folder:
        source, output = os.path.join(folder, "kernel.o"), os.path.join(folder, "kernel.hsaco")
        with open(source, "wb") as f:
            f.write(obj)
        try:
            done = subprocess.run([*lld, "-shared", source, "-o", output], capture_output=True, text=True)
        except OSError as error:   # (gone or made unrunnable since it was found)
            raise DeviceError(f"{' '.join(lld)} could not be run to link the AMD code object: {error}") from None
        if done.returncode != 0 or not os.path.exists(output):
            said = done.stderr.strip() or "it wrote no code object"
            raise DeviceError(f"{' '.join(lld)} could not link the AMD code object:\n{said}")
        with open(output, "rb") as f:
            return f.read()


def disassemble(code_object: bytes, cpu: str) -> str:
    """llvm-objdump's disassembly of a code object. LLVM 16 predates gfx942's name; its gfx940 has
    the same instruction encodings, so objdumps older than 17 disassemble gfx942 as gfx940."""
    objdump, version = find_tool("llvm-objdump", "SKC_LLVM_OBJDUMP")
    if objdump is None:
        raise DeviceError("disassembling an AMD code object needs llvm-objdump 16 or newer, which was not found; "
                          "install it: apt-get install llvm-16 (Debian/Ubuntu), or set SKC_LLVM_OBJDUMP")
    if cpu in ("gfx941", "gfx942") and version < 17:
        cpu = "gfx940"
    with tempfile.TemporaryDirectory(prefix="skc-dis-") as folder:
        path = os.path.join(folder, "kernel.hsaco")
        with open(path, "wb") as f:
            f.write(code_object)
        done = subprocess.run([objdump, "-d", "--triple=amdgcn-amd-amdhsa", f"--mcpu={cpu}", path],
                              capture_output=True, text=True)
    if done.returncode != 0 or "error" in done.stderr or "not a recognized processor" in done.stderr:
        raise DeviceError(f"{objdump} could not disassemble the code object:\n{done.stderr.strip()}")
    return done.stdout


# -- metadata ------------------------------------------------------------------------------------
def code_object_metadata(gcn: str) -> dict:
    """The `.amdgpu_metadata` document of GCN assembly (LLVM AMDGPUUsage, "Code Object V3+ Metadata"):
    {'amdhsa.kernels': [{'.name': ..., '.args': [{'.offset': 0, '.size': 8, '.value_kind': ...}, ...],
    '.vgpr_count': ..., ...}], 'amdhsa.target': ..., 'amdhsa.version': [1, 2]}.

    The document is the YAML that LLVM's msgpack-to-YAML writer prints: block mappings and sequences,
    plain scalars and flow sequences; that subset is all this reads (no YAML library needed)."""
    found = re.search(r"^\s*\.amdgpu_metadata\s*$(.*?)^\s*\.end_amdgpu_metadata", gcn, re.M | re.S)
    if found is None:
        raise SkcError("the GCN assembly has no .amdgpu_metadata block")
    tokens = _tokens(found.group(1))
    if not tokens:
        return {}
    value, _ = _parse_node(tokens, 0)
    return value


def kernel_metadata(gcn: str, name: str) -> dict:
    """The metadata of one kernel of the code object."""
    for kernel in code_object_metadata(gcn).get("amdhsa.kernels", []):
        if kernel.get(".name") == name:
            return kernel
    raise SkcError(f"the code object's metadata lists no kernel named {name!r}")


def kernel_resources(kernel: dict) -> dict:
    """What the kernel uses of the machine, named as for NVIDIA where the two agree."""
    return {"registers": kernel.get(".vgpr_count", 0), "agprs": kernel.get(".agpr_count", 0),
            "sgprs": kernel.get(".sgpr_count", 0), "lds_bytes": kernel.get(".group_segment_fixed_size", 0),
            "scratch_bytes": kernel.get(".private_segment_fixed_size", 0),
            "spill_vgprs": kernel.get(".vgpr_spill_count", 0), "spill_sgprs": kernel.get(".sgpr_spill_count", 0),
            "dynamic_stack": kernel.get(".uses_dynamic_stack", False)}


def explicit_arguments(kernel: dict) -> list:
    """The kernel's own arguments (not the runtime's hidden_* ones), in order: dicts of .offset, .size,
    .value_kind (global_buffer, by_value) and more."""
    return [arg for arg in kernel.get(".args", []) if not str(arg.get(".value_kind", "")).startswith("hidden_")]


_ITEM = "-"


def _tokens(document: str) -> list:
    """(indent, text) per line; a sequence item "- rest" becomes (indent, '-') and (indent + 2, rest)."""
    tokens = []
    for line in document.splitlines():
        text = line.strip()
        if not text or text in ("---", "...") or text.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        while text == _ITEM or text.startswith("- "):
            tokens.append((indent, _ITEM))
            text, indent = text[2:].strip(), indent + 2
        if text:
            tokens.append((indent, text))
    return tokens


def _parse_node(tokens: list, i: int):
    """The value starting at tokens[i] (a sequence, a mapping or a scalar); give it and the next token."""
    indent, text = tokens[i]
    if text == _ITEM:
        items = []
        while i < len(tokens) and tokens[i] == (indent, _ITEM):
            i += 1
            if i < len(tokens) and tokens[i][0] > indent:
                item, i = _parse_node(tokens, i)
            else:
                item = None
            items.append(item)
        return items, i
    if _key_value(text) is None:
        return _scalar(text), i + 1
    mapping = {}
    while i < len(tokens) and tokens[i][0] == indent and tokens[i][1] != _ITEM:
        key, value = _key_value(tokens[i][1])
        i += 1
        if value:
            mapping[key] = _scalar(value)
        elif i < len(tokens) and (tokens[i][0] > indent or tokens[i] == (indent, _ITEM)):
            mapping[key], i = _parse_node(tokens, i)  # the block below (a sequence may sit at the key's indent)
        else:
            mapping[key] = None
    return mapping, i


def _key_value(text: str):
    """(key, value text) of "key: value" or "key:", or None for a plain scalar."""
    if text[0] in "'\"[":
        return None
    found = re.match(r"^([^\s:][^:]*):(?:\s+(.*))?$", text)
    if found is None:
        return None
    return found.group(1).strip(), (found.group(2) or "").strip()


def _scalar(text: str):
    text = text.strip()
    if text.startswith("!"):  # a YAML tag such as "!str n": the value follows it
        text = text.split(None, 1)[1] if " " in text else ""
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(part) for part in inner.split(",")] if inner else []
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return int(text, 16)
    return text
