"""The ``tvm-mcuformer`` command line: a thin layer over the Python API.

Subcommands: ``compile`` (like ``tvmc compile``), ``micro create|build|flash``
and ``run`` (like ``tvmc micro`` / ``tvmc run``), ``search`` (memory-constrained
architecture search) and ``demo``.

:func:`main` is the one error boundary: every expected failure prints one line
``tvm-mcuformer <cmd>: error: ...`` on stderr and exits 2 for bad user input
(``ValueError``, path errors, an error with ``exit_status = 2``) or 1 for a tool or
device failure (``RuntimeError``, other OS errors, ``exit_status = 1``); Ctrl-C
prints ``interrupted`` and exits 130, SIGTERM exits 143 after the same cleanup
(temporary folders removed, processes stopped). Any other exception is reported as
an internal error in one line. ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
import warnings
from typing import NoReturn

from .boards import BOARDS, DEFAULT_BOARD, ZEPHYR_BOARDS, budget_warnings, get_board, parse_size
from .fileio import check_output_dir, check_output_file

# The arena planners (planner.ALGORITHMS; a literal so that start-up imports no TVM; a test
# checks they agree).
PLANNERS = ("best", "greedy_by_size", "greedy_by_conflicts", "greedy_by_start")


def _cmd_compile(args: argparse.Namespace) -> int:
    from .compiler import CompileOptions, compile_model
    from .frontend import import_model
    from .quantize import QuantConfig

    output = check_output_file(args.output, "artifact")
    check_output_file(output.with_name(f"{output.stem}.memory.png"), "memory plot")
    sram = parse_size(args.sram) if args.sram else None
    flash = parse_size(args.flash) if args.flash else None
    for warning in budget_warnings(get_board(args.board), sram, flash):
        print(warning, file=sys.stderr)
    opts = CompileOptions(
        board=args.board,
        sram_bytes=sram,
        flash_bytes=flash,
        planner=args.planner,
        quantize=args.quantize,
        token_overwrite=not args.no_token_overwrite,
        decompose_patch=not args.no_decompose_patch,
        patch_field=args.patch_field,
        attention=args.attention,
        io_in_arena=not args.io_outside_arena,
        quant=QuantConfig(calibration=args.calib_method, ln_iterations=args.ln_iterations),
    )
    model = import_model(args.model)
    if args.quantize == "int8" and args.calib:
        from .data.calibration import load_calibration

        opts.calibration = load_calibration(args.calib, model.inputs[0].shape, args.calib_samples)
    artifact = compile_model(model, opts)
    path = artifact.write(output)
    plot = artifact.extract("memory_timeline.png", path.with_name(f"{path.stem}.memory.png"))
    mem = artifact.metadata["memory"]
    print(f"wrote {path}")
    print(
        f"  SRAM needed {mem['required_sram_bytes']} / {mem['budget']['sram_bytes']} B "
        f"(arena + I/O + stack), planner {mem['planner']}; memory report:"
    )
    for label, key in (
        ("planned arena", "planned_arena_bytes"),
        ("liveness lower bound", "lower_bound_bytes"),
        ("TVM static plan", "tvm_static_plan_bytes"),
        ("naive (no reuse)", "naive_bytes"),
        ("paper M", "paper_m_bytes"),
        ("weights (flash)", "weight_bytes"),
    ):
        print(f"    {label:<21} {mem[key]:>10} B")
    print(f"  memory timeline: {plot} (also memory_timeline.png in the artifact)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    check_output_dir(args.out)
    run_demo(
        args.out,
        board=args.board,
        epochs=args.epochs,
        limit=args.limit,
        quantize=args.quantize,
        search=not args.no_search,
    )
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (its subcommand parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tvm-mcuformer", description="Deploy Vision Transformers on microcontrollers."
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the traceback of a failure (anywhere)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="compile a model to a C artifact (.tar)")
    p.add_argument("model", help="model file: .pt2 (torch.export), .onnx or .tflite")
    p.add_argument("-o", "--output", required=True, help="artifact path (.tar)")
    p.add_argument("--board", default=DEFAULT_BOARD, choices=[*sorted(BOARDS), *ZEPHYR_BOARDS])
    p.add_argument("--sram", help="SRAM budget, e.g. 320KiB (default: the board's)")
    p.add_argument("--flash", help="flash budget, e.g. 1MiB (default: the board's)")
    p.add_argument("--planner", default="best", choices=PLANNERS, help="arena planner algorithm")
    p.add_argument(
        "--quantize", default="int8", choices=["int8", "none"], help="int8 (default) or float"
    )
    p.add_argument(
        "--calib",
        help="calibration data: digits, mnist5k, imagefolder:PATH or FILE.npz "
        "(not needed for a fully-int8 .tflite: its own scales are used)",
    )
    p.add_argument("--calib-samples", type=int, default=256, help="calibration images (256)")
    p.add_argument("--calib-method", default="minmax", choices=["minmax", "percentile"])
    p.add_argument("--ln-iterations", type=int, default=3, help="LayerNorm Newton steps (3)")
    p.add_argument(
        "--no-token-overwrite", action="store_true", help="never write outputs over inputs"
    )
    p.add_argument(
        "--no-decompose-patch", action="store_true", help="keep the patch-embedding conv whole"
    )
    p.add_argument("--patch-field", type=int, default=4, help="sub-convolution field (4)")
    p.add_argument(
        "--attention",
        default="rowwise",
        help="rowwise: fused, q/k/v read in place, one query row at a time (default); "
        "all_heads: fused, every head's scores; unfused: head split/merge copies",
    )
    p.add_argument(
        "--io-outside-arena",
        action="store_true",
        help="keep the model input and output in buffers of their own, not in the arena",
    )
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("demo", help="search, train, compile, deploy and evaluate a ViT on MNIST-5k")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--board", default=DEFAULT_BOARD, choices=[b for b in BOARDS if b != "host"])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: tuned)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only N test images")
    p.add_argument("--quantize", default="int8", choices=["int8", "none"])
    p.add_argument(
        "--no-search",
        action="store_true",
        help="skip the quick architecture search and deploy the hand-set demo ViT",
    )
    p.set_defaults(func=_cmd_demo)

    from .micro.cli import register as register_micro
    from .search.cli import register as register_search

    register_micro(sub)
    register_search(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that cleanup runs as for Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


# Exceptions that are the user's to fix (exit 2) unless they carry their own exit_status.
_USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def describe_error(err: BaseException) -> tuple[int, str]:
    """Exit status and one-line message for a failure that reached the command line."""
    status = getattr(err, "exit_status", None)
    if status is None:
        status = 2 if isinstance(err, _USER_ERRORS) else 1
    if isinstance(err, OSError) and err.strerror:
        where = err.filename if err.filename is not None else ""
        text = f"{err.strerror}: {where}" if where else err.strerror
        if isinstance(err, IsADirectoryError):
            text += " (give a file path)"
        elif isinstance(err, NotADirectoryError | FileExistsError):
            text += " (a file is in the way of a folder: choose another path)"
        elif isinstance(err, PermissionError):
            text += " (choose a writable location)"
    elif isinstance(err, ValueError | RuntimeError):
        text = str(err)
    else:
        text = f"internal error ({type(err).__name__}: {err}); rerun with --verbose and report it"
    return status, text or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv  # accepted anywhere on the line
    argv = [a for a in argv if a != "--verbose"]
    if not verbose:  # third-party deprecation chatter is not the user's to act on
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed on one line
        return done.code if isinstance(done.code, int) else 2
    command = args.command
    in_main_thread = threading.current_thread() is threading.main_thread()
    # Restored on return: a caller (a test, a notebook) keeps its own handlers, and the
    # children it starts later do not inherit an ignored SIGINT.
    previous = (
        (signal.signal(signal.SIGTERM, _terminate), signal.getsignal(signal.SIGINT))
        if in_main_thread
        else None
    )
    try:
        return args.func(args)
    except KeyboardInterrupt as err:
        if in_main_thread:  # the cleanup has run: a repeated signal must not kill the exit
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if verbose:
            traceback.print_exc()
        sigterm = isinstance(err, Terminated)
        print(
            f"tvm-mcuformer {command}: interrupted{' (SIGTERM)' if sigterm else ''}",
            file=sys.stderr,
        )
        return 143 if sigterm else 130
    except Exception as err:
        if verbose:
            traceback.print_exc()
        status, text = describe_error(err)
        print(f"tvm-mcuformer {command}: error: {text}", file=sys.stderr)
        return status
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])


if __name__ == "__main__":
    sys.exit(main())
