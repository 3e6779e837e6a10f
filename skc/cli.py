"""The `skc` command.

    skc compile PATH[::KERNEL] [--target sm_90a|gfx942] [--emit tile,llvm,ptx,sass|gcn] [-o DIR]
    skc run PATH [--device cuda|interpreter]
    skc run --example NAME [--device cuda|interpreter]
    skc info

`compile` compiles the kernels of a Python file from their annotations (parameters typed
`skc.Ptr[...]`, `skc.i32`, ...; constexprs need defaults or --const NAME=VALUE) and prints
or writes each stage; with -o, also the loadable image (.cubin once made, .hsaco for AMD).
A file whose kernels need more than annotations (unannotated parameters, configurations that
depend on the target) defines `compile_arguments(kernel_name, target)`: it returns the keyword
arguments of `Kernel.compile` for that kernel (argument values or types by parameter name,
`block`, `cluster`), or None to use the annotations; --block and --const override it.
`run` runs an example's `main()` on the GPU when one is present, otherwise in the interpreter,
and says which; `--example NAME` runs one of skc's examples (vector_add, softmax, sgemm, matmul, conv2d,
attention, gated_gemm, rmsnorm, layer_norm, prefix_sum, transpose) from the checkout's `examples/` or, in an
installed wheel, from the copy the wheel carries.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import os
import sys
import sysconfig
import time
import traceback

from .diagnostics import LocatedError, Location, SkcError, format_diagnostic, python_location
from .version import __version__

# The commands import the compiler, backends and runtime when they run, so `skc --help` and argument errors
# answer without loading LLVM or numpy (the same costs as in jit.py and compiler.py).

_EMIT_STAGES = {"tile-raw": "tile-raw", "tile": "tile", "llvm": "llvm", "llvm-opt": "llvm-opt",
                "ptx": "ptx", "sass": "sass", "gcn": "gcn"}
_SUFFIX = {"tile-raw": "tile-raw", "tile": "tile", "llvm": "ll", "llvm-opt": "opt.ll", "ptx": "ptx",
           "sass": "sass", "gcn": "s"}


def load_module(path: str, stops: str):
    """The user's file, imported as a module; `stops` says what is not done where its import fails (such as
    "nothing was compiled")."""
    if not os.path.exists(path):
        raise SkcError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise SkcError(f"{path} is not a file: name a Python file (path/to/kernels.py)")
    name = "_skc_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:   # (importlib takes only a Python suffix)
        raise SkcError(f"{path} is not a Python file: skc loads kernels from a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        spec.loader.exec_module(module)
    except SkcError:   # (one the file's own code met, such as a kernel's misuse: it names its place)
        raise
    except SyntaxError as error:   # the file's own mistake at its line, not a traceback through skc's loader
        sys.modules.pop(name, None)
        column = max((error.offset or 1) - 1, 0)
        raise LocatedError(f"{error.msg} (the file does not parse as Python)",
                           Location(error.filename or path, error.lineno or 1, column)) from None
    except (Exception, SystemExit) as error:   # likewise: the file's line, then its own frames below it
        sys.modules.pop(name, None)
        raise _failure_in_file(error, spec.origin, stops) from None
    return module


def _failure_in_file(error: BaseException, path: str, stops: str, during: str = "") -> SkcError:
    """An error at the line of the file whose import raised `error` (or exited), or, given `during`, the file's
    function skc called (compile_arguments, main); where it came from deeper (a function, a module the file imports),
    the traceback of the frames from that line on, none of skc's."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    loc = python_location(tb.tb_frame.f_code, tb.tb_lineno, tb.tb_lasti) if tb else None
    where = "" if loc else f"{path}: "
    hint = ""
    if isinstance(error, SystemExit):
        status, said = _exit_status(error)
        exited = f"the message {said!r}" if said is not None else f"status {status}"
        message = f"{where}the file exited with {exited} {f'in {during}' if during else 'as skc imported it'}, " \
                  f"so {stops}"
        hint = "" if during else ("skc imports the file as a module, whose __name__ is not '__main__': put the part "
                                  "that runs it as a script under `if __name__ == \"__main__\":`")
    else:
        try:
            said = str(error)
        except Exception:   # (an exception whose __str__ fails: as Python's own printer says it)
            said = "<exception str() failed>"
        said = f": {said}" if said else ""
        message = (f"{where}{type(error).__name__}{said}, raised "
                   f"{f'in {during}' if during else 'as skc imported the file'}, so {stops}")
        if isinstance(error, ModuleNotFoundError) and error.name:
            hint = (f"install the package that provides {error.name!r} into the Python that runs skc "
                    f"({sys.executable}), or correct the module's name")
    text = format_diagnostic("error", message, loc, hint)
    chained = error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__)
    if tb is not None and (tb.tb_next is not None or chained):   # (with the exceptions it was raised from, if any)
        frames = traceback.format_exception(type(error), error, tb)
        text += "\nthe file's traceback:\n" + "".join(frames).rstrip("\n")
    return SkcError(text)


def _exit_status(error: SystemExit) -> tuple:
    """(the process status, the message or None) of a sys.exit: its int (None: 0), or 1 and the message it printed,
    as Python gives them."""
    code = 0 if error.code is None else error.code
    return (code, None) if isinstance(code, int) else (1, code)


def _kernels(module, wanted):
    from .jit import Kernel

    found = {name: obj for name, obj in vars(module).items() if isinstance(obj, Kernel)}
    if wanted:
        if wanted not in found:
            raise SkcError(f"no kernel named {wanted!r} in {module.__file__}; kernels: {', '.join(found) or 'none'}")
        return {wanted: found[wanted]}
    if not found:
        raise SkcError(f"{module.__file__} defines no @skc.kernel")
    return found


def _constants(pairs):
    values = {}
    for pair in pairs or ():
        name, equals, text = pair.partition("=")
        if not equals or not name.strip():
            raise SkcError(f"--const {pair}: give a parameter's name and its value as NAME=VALUE, such as "
                           "--const BLOCK=128")
        name = name.strip()
        if text.strip().lower() in ("true", "false"):   # (the string "false" is true: `if FLAG:` took its branch)
            values[name] = text.strip().lower() == "true"
            continue
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text
    return values


def _constants_of(kernel, constants: dict) -> dict:
    """The --const values kernel takes: those named as its parameters (a file's kernels have parameters of their
    own, and each --const is for those that have it)."""
    names = {param.name for param in kernel.params}
    return {name: value for name, value in constants.items() if name in names}


def _check_constants_taken(path: str, kernels: dict, constants: dict):
    """Each --const names a parameter of one of the kernels compiled (a misspelling was "unknown arguments")."""
    taken = {param.name for kernel in kernels.values() for param in kernel.params}
    for name in constants:
        if name == "target":
            raise SkcError(f"{path}: the target comes from --target, not from compile_arguments or --const")
        if name not in taken:
            listed = "; ".join(f"{k}({', '.join(p.name for p in kernel.params)})" for k, kernel in kernels.items())
            raise SkcError(f"--const {name}=...: no kernel compiled from {path} has a parameter {name!r} "
                           f"(their parameters: {listed})")


def _compile_options(module, name: str, kernel, target, args, constants: dict) -> dict:
    """Kernel.compile's keyword arguments for kernel `name`: the module's compile_arguments(name, target) when
    it has one (target, a skc.Target: target.name is "sm_90a", ...), then --block and the --const values (`constants`)
    it takes."""
    hook = getattr(module, "compile_arguments", None)
    options = {}
    if hook is not None:
        _takes_kernel_and_target(hook, module.__file__, name, target)
        try:
            found = hook(name, target)
        except (Exception, SystemExit) as error:   # (the file's own mistake at its line, not a traceback through skc)
            raise _failure_in_file(error, module.__file__, "nothing was compiled",
                                  f"compile_arguments({name!r}, target)") from None
        if found is not None and not isinstance(found, dict):
            raise SkcError(f"{module.__file__}: compile_arguments({name!r}, {target.name!r}) must return a dict of "
                           f"Kernel.compile's keyword arguments or None, found {type(found).__name__}")
        options.update(found or {})
    if args.block is not None:
        try:
            options["block"] = tuple(int(b) for b in args.block.split(","))
        except ValueError:
            raise SkcError(f"--block {args.block}: give the block's size as integers separated by commas, such as "
                           "128 or 32,4") from None
    options.update(_constants_of(kernel, constants))
    if "target" in options:
        raise SkcError(f"{module.__file__}: the target comes from --target, not from compile_arguments or --const")
    return options


def _check_known(module, name: str, kernel, options: dict, target):
    """An error naming every parameter skc compile has no value or type for, and where to give them."""
    unknown = kernel.unknown_parameters(options)
    if unknown:
        listed = "; ".join(f"'{param}' ({what})" for param, what in unknown)
        example = ", ".join(f"{param!r}: {'skc.Ptr[skc.f32]' if 'skc.Ptr' in what else '...'}"
                            for param, what in unknown)
        has_hook = "its" if hasattr(module, "compile_arguments") else "a"
        raise SkcError(f"{module.__file__}: skc compile needs arguments for {name}: {listed}. Give them in {has_hook} "
                       f"compile_arguments(kernel_name, target), which returns Kernel.compile's keyword arguments "
                       f"for the kernel (here {{{example}}} when kernel_name == {name!r}, target {target.name}), or "
                       f"with --const NAME=VALUE for a value")


def _takes_kernel_and_target(hook, path: str, name: str, target):
    """An error naming the file's compile_arguments where skc cannot call it as compile_arguments(name, target)."""
    if not callable(hook):
        raise SkcError(f"{path}: compile_arguments is no function (found {type(hook).__name__}); skc compile calls "
                       "compile_arguments(kernel_name, target)")
    try:
        inspect.signature(hook).bind(name, target)
    except ValueError:   # (a callable whose signature Python cannot read: call it and see)
        pass
    except TypeError as error:
        raise SkcError(f"{path}: skc compile calls compile_arguments(kernel_name, target), which the file's "
                       f"cannot take ({error})") from None


def _output_folder(path: str):
    """-o's folder, made where it is missing; an error that names it where it cannot be."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise SkcError(f"-o {path}: a file of that name exists; -o names a folder for the stages' files")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise SkcError(f"-o {path}: cannot make the folder ({error.strerror})") from None


def cmd_compile(args) -> int:
    path, _, kernel_name = args.path.partition("::")
    module = load_module(path, "nothing was compiled")
    from .target import get_target

    target = get_target(args.target)
    # (an empty value is a value: --emit '' names no stage, -o '' no folder)
    emit = args.emit if args.emit is not None else ("tile,llvm,ptx" if target.vendor == "nvidia" else "tile,llvm,gcn")
    if args.output is not None and not args.output.strip():
        raise SkcError("-o '': give the folder to write the stages into (or leave -o out to print them)")
    stages = [s.strip() for s in emit.split(",") if s.strip()]
    if not stages:
        raise SkcError(f"--emit {emit!r} names no stage; choose from {', '.join(_EMIT_STAGES)}")
    for stage in stages:
        if stage not in _EMIT_STAGES:
            raise SkcError(f"unknown stage {stage!r} for --emit; choose from {', '.join(_EMIT_STAGES)}")
    kernels = _kernels(module, kernel_name)
    constants = _constants(args.const)
    _check_constants_taken(module.__file__, kernels, constants)
    for name, kernel in kernels.items():
        options = _compile_options(module, name, kernel, target, args, constants)
        _check_known(module, name, kernel, options, target)
        compiled = kernel.compile(target=target, **options)
        for stage in stages:
            text = compiled.asm(stage) if stage in ("ptx", "sass", "gcn") else compiled.ir(stage)
            if args.output:
                _output_folder(args.output)
                _write(os.path.join(args.output, f"{name}.{_SUFFIX[stage]}"), text)
            else:
                print(f"// ----- {name}: {stage} ({compiled.target.name}) -----")
                print(text)
        if args.output and compiled.binary is not None:
            suffix = "cubin" if compiled.target.vendor == "nvidia" else "hsaco"
            _write(os.path.join(args.output, f"{name}.{suffix}"), compiled.binary)
    return 0


def _write(path: str, content):
    try:
        with open(path, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
    except OSError as error:
        raise SkcError(f"-o: cannot write {path} ({error.strerror or error})") from None


def example_folders() -> list:
    """Where the examples are: the checkout's `examples/` (beside the package in a source tree or an
    editable install), then the wheel's copy in `<prefix>/share/skc/examples` (pyproject's data-files), whose
    prefix is the environment's or, for `pip install --user` (pip's choice where site-packages is not writable),
    the user base (~/.local)."""
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
    user = sysconfig.get_path("data", sysconfig.get_preferred_scheme("user"))
    installed = [os.path.join(prefix, "share", "skc", "examples")
                 for prefix in (sysconfig.get_path("data"), sys.prefix, user)]
    return [folder for folder in dict.fromkeys([checkout, *installed]) if os.path.isdir(folder)]


def example_path(name: str) -> str:
    """The file of the example called `name` (with or without .py)."""
    stem = name[:-3] if name.endswith(".py") else name
    if not stem or os.path.basename(stem) != stem or stem in (".", ".."):   # (a path ran a file outside the examples)
        raise SkcError(f"--example takes an example's name, such as vector_add, not {name!r}: pass a file as "
                       "skc run FILE.py")
    folders = example_folders()
    for folder in folders:
        path = os.path.join(folder, stem + ".py")
        if os.path.isfile(path):
            return path
    known = sorted({f[:-3] for folder in folders for f in os.listdir(folder) if f.endswith(".py")})
    raise SkcError(f"no example named {stem!r}; the examples are: {', '.join(known) or 'none found'} "
                   f"(or pass a file: skc run FILE.py)")


def _main_function(module, path: str):
    """The file's main(), which skc run calls with no arguments: an error naming what is missing where it is not
    a function or needs arguments."""
    main = getattr(module, "main", None)
    if main is None:
        raise SkcError(f"{path} has no main() to run")
    if not callable(main):
        raise SkcError(f"{path}: main is no function (found {type(main).__name__}); skc run calls main()")
    try:
        parameters = inspect.signature(main).parameters.values()
    except (TypeError, ValueError):   # (a callable whose signature Python cannot read: call it and see)
        return main
    needed = [p.name for p in parameters
              if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if needed:
        raise SkcError(f"{path}: main() needs arguments ({', '.join(needed)}); skc run calls main() with none: "
                       f"give them defaults")
    return main


def _failure(error: AssertionError) -> str:
    """What failed: the assertion's message, else (a bare `assert`) its line."""
    if str(error):
        return str(error)
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"assert at {frame.filename}:{frame.lineno}: {frame.line}"


def cmd_run(args) -> int:
    from .runtime.devices import current_device, set_device

    if (args.path is None) == (args.example is None):
        raise SkcError("skc run takes a file or --example NAME (one of them): skc run examples/vector_add.py, "
                       "or skc run --example vector_add")
    if args.example is not None:
        args.path = example_path(args.example)
    if args.device:
        set_device(args.device)
    device = current_device()
    module = load_module(args.path, "skc run did not call its main()")
    main = _main_function(module, args.path)
    # (SKC_DEVICE=auto, or blank, chooses nothing: the interpreter there means no GPU was found)
    chosen = args.device or os.environ.get("SKC_DEVICE", "").strip().lower() not in ("", "auto")
    where = "on the GPU" if not device.is_interpreter else "in the CPU interpreter (no GPU found)" \
        if not chosen else "in the CPU interpreter"
    started = time.perf_counter()
    try:
        summary = main()
    except AssertionError as e:
        print(f"{os.path.basename(args.path)}: FAILED {where} [{device} - {device.name}]: {_failure(e)}")
        return 1
    except SystemExit as e:   # (main() ending the script: its status is skc's, as it is python's for `python FILE`)
        status, said = _exit_status(e)
        print(f"{os.path.basename(args.path)}: main() exited with status {status} {where} "
              f"[{device} - {device.name}]{'' if said is None else f': {said}'}")
        return status
    except Exception as e:   # (the file's line and frames, not a traceback through skc's command line)
        print(f"{os.path.basename(args.path)}: FAILED {where} [{device} - {device.name}]:")
        print(_failure_in_file(e, module.__file__, "it did not finish", "main()"), file=sys.stderr)
        return 1
    if summary is False:   # (a main() that says its check failed)
        print(f"{os.path.basename(args.path)}: FAILED {where} [{device} - {device.name}]: main() returned False")
        return 1
    seconds = time.perf_counter() - started
    checked = "" if summary is None else f"; checked against numpy: {summary}"   # (a main() that says nothing)
    print(f"{os.path.basename(args.path)}: OK {where} [{device} - {device.name}] in {seconds:.2f} s{checked}")
    return 0


def cmd_info(args) -> int:
    from .backends.amdgpu_link import ld_lld_path
    from .backends.ptx_tools import nvdisasm_path, nvjitlink_version
    from .runtime.devices import current_device

    print(f"skc {__version__}")
    try:   # (a device that cannot be opened is what info is asked about: the tools are still shown)
        device = current_device()
        print(f"device: {device} ({device.name}), target {device.target.name}")
        failed = False
    except SkcError as error:
        print(f"device: none: {error}")
        failed = True
    print(f"nvJitLink: {nvjitlink_version()}; nvdisasm: {nvdisasm_path() or 'not found'}")
    missing = (f"not found (SKC_LD_LLD names {os.environ['SKC_LD_LLD']}, which is no ld.lld of version 16 or newer)"
               if os.environ.get("SKC_LD_LLD") else "not found (pip install ziglang)")
    print(f"ld.lld (AMD code objects): {ld_lld_path() or missing}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skc", description="skc, the structured kernel compiler")
    parser.add_argument("--version", action="version", version=f"skc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    compile_ = sub.add_parser("compile", help="compile the kernels of a file and print or write each stage")
    compile_.add_argument("path", help="FILE.py or FILE.py::KERNEL")
    compile_.add_argument("--target", default="sm_90a", help="sm_90a, sm_80, gfx942, gfx90a (default sm_90a)")
    compile_.add_argument("--emit", help="stages: tile-raw,tile,llvm,llvm-opt,ptx,sass,gcn (default tile,llvm and "
                                         "ptx for NVIDIA targets, gcn for AMD ones)")
    compile_.add_argument("-o", "--output", help="write each stage to this folder instead of printing it")
    compile_.add_argument("--block", help="threads per block, e.g. 256 or 128,2")
    compile_.add_argument("--const", action="append", metavar="NAME=VALUE", help="a constexpr argument")
    compile_.set_defaults(handler=cmd_compile)
    run = sub.add_parser("run", help="run an example's main() and check it against numpy")
    run.add_argument("path", nargs="?", help="FILE.py with a main()")
    run.add_argument("--example", metavar="NAME",
                     help="one of skc's examples: vector_add, softmax, sgemm, matmul, conv2d, attention, "
                          "gated_gemm, rmsnorm, layer_norm, prefix_sum, transpose")
    run.add_argument("--device", help="cuda, cuda:N or interpreter (default: a GPU when present)")
    run.set_defaults(handler=cmd_run)
    info = sub.add_parser("info", help="show the device and the tools skc found")
    info.set_defaults(handler=cmd_info)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.handler(args)
        sys.stdout.flush()   # (here, so that a reader gone by now is met below, not at the interpreter's exit)
        return status
    except SkcError as e:
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:   # (Ctrl-C: the shell's status for it, 128 + SIGINT, without skc's frames)
        print("skc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # the reader left (skc compile ... | head): stop without a traceback, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # (Python's note on SIGPIPE)
        return 1


if __name__ == "__main__":
    sys.exit(main())
