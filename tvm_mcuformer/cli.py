"""The ``tvm-mcuformer`` command line: a thin layer over the Python API.

Subcommands: ``compile`` (like ``tvmc compile``), ``micro create|build|flash``
and ``run`` (like ``tvmc micro`` / ``tvmc run``), ``search`` (memory-constrained
architecture search) and ``demo``.
Errors in user input print one clear line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .boards import BOARDS, DEFAULT_BOARD, ZEPHYR_BOARDS, parse_size

# The arena planners (planner.ALGORITHMS; a literal so that start-up imports no TVM; a test
# checks they agree).
PLANNERS = ("best", "greedy_by_size", "greedy_by_conflicts", "greedy_by_start")


def _cmd_compile(args: argparse.Namespace) -> int:
    from .compiler import CompileOptions, compile_model
    from .frontend import import_model
    from .quantize import QuantConfig

    opts = CompileOptions(
        board=args.board,
        sram_bytes=parse_size(args.sram) if args.sram else None,
        flash_bytes=parse_size(args.flash) if args.flash else None,
        planner=args.planner,
        quantize=args.quantize,
        token_overwrite=not args.no_token_overwrite,
        decompose_patch=not args.no_decompose_patch,
        patch_field=args.patch_field,
        quant=QuantConfig(calibration=args.calib_method, ln_iterations=args.ln_iterations),
    )
    model = import_model(args.model)
    if args.quantize == "int8" and args.calib:
        from .data.calibration import load_calibration

        opts.calibration = load_calibration(args.calib, model.inputs[0].shape, args.calib_samples)
    artifact = compile_model(model, opts)
    path = artifact.write(args.output)
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

    run_demo(
        args.out,
        board=args.board,
        epochs=args.epochs,
        limit=args.limit,
        quantize=args.quantize,
        search=not args.no_search,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tvm-mcuformer", description="Deploy Vision Transformers on microcontrollers."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="compile a model to a C artifact (.tar)")
    p.add_argument("model", help="model file: torch.export program (.pt2) or ONNX (.onnx)")
    p.add_argument("-o", "--output", required=True, help="artifact path (.tar)")
    p.add_argument("--board", default=DEFAULT_BOARD, choices=[*sorted(BOARDS), *ZEPHYR_BOARDS])
    p.add_argument("--sram", help="SRAM budget, e.g. 320KiB (default: the board's)")
    p.add_argument("--flash", help="flash budget, e.g. 1MiB (default: the board's)")
    p.add_argument("--planner", default="best", choices=PLANNERS, help="arena planner algorithm")
    p.add_argument(
        "--quantize", default="int8", choices=["int8", "none"], help="int8 (default) or float"
    )
    p.add_argument(
        "--calib", help="calibration data: digits, mnist5k, imagefolder:PATH or FILE.npz"
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"tvm-mcuformer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"tvm-mcuformer {args.command}: failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
