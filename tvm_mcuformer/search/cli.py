"""Command line of the architecture search: ``tvm-mcuformer search``.

:func:`register` adds the subcommand to the top-level parser; it sets
``func(args) -> int``. Bad input and an infeasible budget raise ``ValueError``
for the top-level ``main`` to print (exit status 2). Rerunning the same
command on the same ``-o`` folder resumes the search.
"""

from __future__ import annotations

import argparse

from tvm_mcuformer.boards import BOARDS, DEFAULT_BOARD, ZEPHYR_BOARDS, get_board, parse_size


def _cmd_search(args: argparse.Namespace) -> int:
    from tvm_mcuformer.search.run import describe_subnet, run_search

    board = get_board(args.board)
    sram = parse_size(args.sram) if args.sram else board.sram_bytes
    flash = parse_size(args.flash) if args.flash else board.flash_bytes
    preset = "quick" if args.quick else args.preset
    result = run_search(
        args.dataset, sram, flash, args.output, preset=preset, board=args.board, seed=args.seed
    )
    best, winner = result["best"], result["winner"]
    print(
        f"search on {args.dataset}: {len(result['rounds'])} space-evolution round(s), winning "
        f"space {winner['space']} (S={winner['S']:.4f}); {len(result['candidates'])} "
        "candidates within budget"
    )
    print(f"  best subnet: {describe_subnet(best['architecture'])}")
    print(
        f"  validation top-1 {best['accuracy']:.4f}, test top-1 {best['test_top1']:.4f}; "
        f"peak SRAM {best['peak_sram_bytes']} / {sram} B, flash {best['flash_bytes']} / {flash} B"
    )
    print(f"  wrote {best['paths']['pt2']}, {best['paths']['pt']}, {best['paths']['pareto']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``search`` to ``subparsers`` (those of the ``tvm-mcuformer`` parser)."""
    p = subparsers.add_parser(
        "search",
        help="memory-constrained architecture search (space evolution + evolutionary search)",
    )
    p.add_argument("--dataset", required=True, help="digits, mnist5k or imagefolder:PATH")
    p.add_argument("--sram", help="SRAM budget, e.g. 64KiB (default: the board's)")
    p.add_argument("--flash", help="flash budget, e.g. 1MiB (default: the board's)")
    p.add_argument("-o", "--output", required=True, help="output folder (rerun to resume)")
    p.add_argument(
        "--preset",
        default="full",
        choices=["quick", "standard", "full"],
        help="search effort: quick (CI-sized, minutes), standard (~10 min), full (default, "
        "MCUFormer's schedule with AutoFormer's evolution defaults, ~35 min on 2 cores)",
    )
    p.add_argument("--quick", action="store_true", help="same as --preset quick")
    p.add_argument("--board", default=DEFAULT_BOARD, choices=[*sorted(BOARDS), *ZEPHYR_BOARDS])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_search)
