"""Command line of the architecture search: ``tvm-mcuformer search``.

:func:`register` adds the subcommand to the top-level parser; it sets
``func(args) -> int``. Bad input and an infeasible budget raise ``ValueError``
for the top-level ``main`` to print (exit status 2). Rerunning the same
command on the same ``-o`` folder resumes the search.

``--space`` picks the space preset (``default``: the small MNIST space;
``paper``: MCUFormer-size, 224/240 px, 1,000 classes); ``--image-size``,
``--patch-sizes``, ``--rank-ratios`` and ``--num-classes`` set its geometry and
outer-loop grid. ``--no-train`` runs the data-free memory search
(:mod:`~tvm_mcuformer.search.datafree`), which needs no dataset.
"""

from __future__ import annotations

import argparse
import sys

from tvm_mcuformer.boards import (
    BOARDS,
    DEFAULT_BOARD,
    ZEPHYR_BOARDS,
    budget_warnings,
    get_board,
    parse_size,
)
from tvm_mcuformer.fileio import check_output_dir

_SPACE_DEFAULTS = {  # image side, channels, classes when no dataset gives them
    "default": (28, 1, 10),
    "paper": (224, 3, 1000),
}


def _numbers(text: str, kind: type, flag: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise ValueError(f"{flag} {text!r}: give comma-separated numbers, e.g. {flag} 16,28,32")
    return values


def _space(args: argparse.Namespace):
    """(base space, rank ratios, patch sizes) from the flags and, if given, the dataset."""
    from tvm_mcuformer.search.run import default_patch_sizes
    from tvm_mcuformer.search.space import (
        DEFAULT_RANK_RATIOS,
        PAPER_RANK_RATIOS,
        SPACES,
        paper_patch_sizes,
    )

    side, chans, classes = _SPACE_DEFAULTS[args.space]
    if args.dataset:
        from tvm_mcuformer.data import dataset_info

        info = dataset_info(args.dataset)
        side, chans, classes = info.image_size[0], info.channels, info.num_classes
        for flag, given, actual in (
            ("--image-size", args.image_size, side),
            ("--num-classes", args.num_classes, classes),
        ):
            if given is not None and given != actual:
                raise ValueError(
                    f"{flag} {given} does not match dataset {args.dataset!r} ({actual}): "
                    f"drop {flag} or give a dataset of that geometry"
                )
    side = args.image_size or side
    classes = args.num_classes or classes
    if args.patch_sizes:
        patch_sizes = _numbers(args.patch_sizes, int, "--patch-sizes")
    elif args.space == "paper":
        patch_sizes = paper_patch_sizes(side)
    else:
        patch_sizes = default_patch_sizes(side)
    if args.rank_ratios:
        rank_ratios = _numbers(args.rank_ratios, float, "--rank-ratios")
    else:
        rank_ratios = PAPER_RANK_RATIOS if args.space == "paper" else DEFAULT_RANK_RATIOS
    spaces = [
        SPACES[args.space](rho, p, side, chans, classes) for rho in rank_ratios for p in patch_sizes
    ]  # builds (and so validates) every space of the grid
    return spaces[0], rank_ratios, patch_sizes


def _cmd_search(args: argparse.Namespace) -> int:
    from tvm_mcuformer.search.run import describe_subnet, run_search
    from tvm_mcuformer.search.space_evolution import read_state

    check_output_dir(args.output)
    read_state(args.output)  # a corrupt state file fails now, not after the data is loaded
    board = get_board(args.board)
    sram = parse_size(args.sram) if args.sram else board.sram_bytes
    flash = parse_size(args.flash) if args.flash else board.flash_bytes
    for warning in budget_warnings(board, sram, flash):
        print(warning, file=sys.stderr)
    if not args.no_train and not args.dataset:
        raise ValueError("search needs --dataset (or --no-train for the data-free memory search)")
    base, rank_ratios, patch_sizes = _space(args)
    if args.no_train:
        from tvm_mcuformer.search.datafree import datafree_search

        result = datafree_search(
            base,
            sram,
            flash,
            args.output,
            board=args.board,
            rank_ratios=rank_ratios,
            patch_sizes=patch_sizes,
            objective=args.objective,
            seed=args.seed,
        )
        best = result["best"]
        print(
            f"data-free search ({args.objective}): best subnet "
            f"{describe_subnet(best['architecture'])}"
        )
        print(
            f"  {best['params']} parameters, {best['macs']} MACs; peak SRAM "
            f"{best['peak_sram_bytes']} / {sram} B, flash {best['flash_bytes']} / {flash} B "
            f"(the compiler's planner)"
        )
        print(f"  wrote {best['paths']['pt2']} (compile it) and {best['paths']['pt']}")
        return 0
    preset = "quick" if args.quick else args.preset
    result = run_search(
        args.dataset,
        sram,
        flash,
        args.output,
        preset=preset,
        board=args.board,
        seed=args.seed,
        space=base,
        rank_ratios=rank_ratios,
        patch_sizes=patch_sizes,
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
    from tvm_mcuformer.search.datafree import OBJECTIVES
    from tvm_mcuformer.search.run import PRESETS
    from tvm_mcuformer.search.space import SPACES

    p = subparsers.add_parser(
        "search",
        help="memory-constrained architecture search (space evolution + evolutionary search)",
    )
    p.add_argument(
        "--dataset", help="digits, mnist5k or imagefolder:PATH (not needed with --no-train)"
    )
    p.add_argument("--sram", help="SRAM budget, e.g. 64KiB (default: the board's)")
    p.add_argument("--flash", help="flash budget, e.g. 1MiB (default: the board's)")
    p.add_argument("-o", "--output", required=True, help="output folder (rerun to resume)")
    p.add_argument(
        "--preset",
        default="full",
        choices=list(PRESETS),
        help="search effort: quick (CI-sized, minutes), standard (~10 min), full (default, "
        "MCUFormer's schedule with AutoFormer's evolution defaults, ~35 min on 2 cores)",
    )
    p.add_argument("--quick", action="store_true", help="same as --preset quick")
    p.add_argument("--board", default=DEFAULT_BOARD, choices=[*sorted(BOARDS), *ZEPHYR_BOARDS])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--space",
        default="default",
        choices=list(SPACES),
        help="space preset: default (MNIST-size) or paper (MCUFormer-size: embed up to 240, "
        "depth 4-14, rho on every linear; 224 px, 1,000 classes unless a dataset says otherwise)",
    )
    p.add_argument("--image-size", type=int, help="image side in pixels (default: the dataset's)")
    p.add_argument(
        "--patch-sizes",
        help="patch sizes the outer loop explores, e.g. 16,28,32 (default: paper: those of "
        "16,20,24,28,32 dividing the image side)",
    )
    p.add_argument("--rank-ratios", help="low-rank ratios rho to explore, e.g. 0.4,0.6,0.8,0.95")
    p.add_argument("--num-classes", type=int, help="classes (default: the dataset's)")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="data-free memory search: the highest-capacity subnet (--objective) that fits "
        "SRAM and flash per the compiler's planner; no dataset, no training",
    )
    p.add_argument(
        "--objective",
        default="macs",
        choices=OBJECTIVES,
        help="capacity proxy of --no-train: macs (default) or params; the other breaks ties",
    )
    p.set_defaults(func=_cmd_search)
