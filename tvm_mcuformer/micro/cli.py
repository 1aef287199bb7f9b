"""Command line of the micro stage: ``micro create|build|flash`` and ``run``.

:func:`register` adds both subcommands to the top-level ``tvm-mcuformer`` parser; each sets
``func(args) -> int`` (exit status); failures raise :class:`~tvm_mcuformer.micro.MicroError`
(a ``RuntimeError``) or ``ValueError`` for the top-level ``main`` to print.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np

from tvm_mcuformer.boards import DEFAULT_STACK_RESERVE, parse_size
from tvm_mcuformer.fileio import atomic_write, check_output_dir, check_output_file
from tvm_mcuformer.micro import MicroError
from tvm_mcuformer.micro.build import build_project, flash_project
from tvm_mcuformer.micro.evaluate import evaluate
from tvm_mcuformer.micro.journal import journal_path
from tvm_mcuformer.micro.profile_plot import plot_profile
from tvm_mcuformer.micro.project import (
    FLOAT_ABIS,
    PLATFORMS,
    create_project,
)
from tvm_mcuformer.micro.transport import DEFAULT_TIMEOUT

DATASETS = ("digits", "mnist5k")


def _create(args: argparse.Namespace) -> int:
    check_output_dir(args.project, "project folder")
    project = create_project(
        args.project,
        args.artifact,
        args.platform,
        board=args.board,
        float_abi=args.float_abi,
        stack_bytes=parse_size(args.stack_size) if args.stack_size else None,
        force=args.force,
        sram_bytes=parse_size(args.sram) if args.sram else None,
        flash_bytes=parse_size(args.flash) if args.flash else None,
    )
    print(
        f"created {project.platform} project {project.root} for board {project.board} "
        f"(budget {project.sram_bytes} B SRAM, {project.flash_bytes} B flash)"
    )
    return 0


def _build(args: argparse.Namespace) -> int:
    result = build_project(args.project, jobs=args.jobs)
    print(f"built {result.firmware} and {result.host_runner}")
    return 0


def _flash(args: argparse.Namespace) -> int:
    info = flash_project(args.project, port=args.port, timeout=args.timeout)
    if info is None:
        print(f"flashed {args.project} (pass --port to check the board answers)")
    else:
        print(
            f"firmware answered: input {info.input_bytes} B, output {info.output_bytes} B, "
            f"arena {info.arena_bytes} B, stack {info.stack_bytes} B, counter {info.counter}"
        )
    return 0


def _load_inputs(args: argparse.Namespace) -> tuple[dict[str, np.ndarray] | np.ndarray, object]:
    if args.dataset:
        try:
            from tvm_mcuformer.data import load_split
        except ImportError as e:
            raise MicroError(f"--dataset needs tvm_mcuformer.data ({e}): use --inputs") from None
        x, y = load_split(args.dataset, "test")
        return x, y
    if args.inputs.is_dir():
        raise MicroError(f"--inputs {args.inputs} is a directory: give an .npz file")
    if not args.inputs.is_file():
        raise MicroError(f"--inputs {args.inputs} not found: give an .npz file")
    try:
        with np.load(args.inputs, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, AttributeError, TypeError, zipfile.BadZipFile) as e:
        raise MicroError(
            f"--inputs {args.inputs} is not a readable .npz file ({type(e).__name__}): "
            "save it with numpy.savez"
        ) from None
    labels = arrays.pop("labels", None)
    if not arrays:
        raise MicroError(f"--inputs {args.inputs} holds no input arrays")
    return (next(iter(arrays.values())) if len(arrays) == 1 else arrays), labels


def _run(args: argparse.Namespace) -> int:
    check_output_file(args.report, "--report")
    if args.outputs:
        check_output_file(args.outputs, "--outputs")
    journal = journal_path(args.report)
    inputs, labels = _load_inputs(args)
    report = evaluate(
        args.project,
        inputs,
        labels,
        limit=args.limit,
        progress=not args.quiet,
        port=args.port,
        baud=args.baud,
        timeout=args.timeout,
        journal=journal,
        resume=args.resume,
    )
    outputs = report.pop("outputs")
    if args.outputs:
        atomic_write(args.outputs, lambda f: np.savez(f, **outputs), binary=True)
    atomic_write(args.report, lambda f: json.dump(report, f, indent=2), binary=False)
    journal.unlink(missing_ok=True)
    acc, lat = report["accuracy"], report["latency"]
    counter = lat["counter"]
    per_inference = (
        f", {lat[f'{counter}_per_inference']:.0f} {counter}/inference" if counter else ""
    )
    top1 = "" if acc["device_top1"] is None else f", top-1 {acc['device_top1']:.4f}"
    print(
        f"{report['board']}: {acc['n']} samples{top1}, device == host: "
        f"{acc['device_equals_host']}{per_inference}, peak SRAM "
        f"{report['memory']['measured']['peak_sram_bytes']} B; report {args.report}"
    )
    if args.profile:
        print(profile_table(lat))
        plot = plot_profile(lat, Path(args.report).with_suffix(".profile.png"))
        if plot is not None:
            print(f"per-op plot: {plot}")
    return 0


def _positive(kind: type) -> object:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive finite number")
        return value

    parse.__name__ = kind.__name__
    return parse


def profile_table(latency: dict) -> str:
    """The per-op breakdown of a report's ``latency`` as a text table (``run --profile``)."""
    rows = latency.get("per_op") or []
    counter = latency.get("counter")
    if not rows or counter is None:
        return "no per-op profile: the device counts nothing (host build?)"
    total = sum(r["count"] for r in rows) or 1
    width = max(len(str(r["kernel"])) for r in rows)
    lines = [f"{'#':>4}  {'kernel':<{width}}  {counter:>12}  share"]
    for r in rows:
        lines.append(
            f"{r['call']:>4}  {str(r['kernel']):<{width}}  {r['count']:>12,}  "
            f"{100 * r['count'] / total:5.1f}%"
        )
    return "\n".join(lines)


def _device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", help="serial port of a Zephyr board (e.g. /dev/ttyACM0)")
    parser.add_argument(
        "--baud", type=_positive(int), default=115200, help="UART baud rate (board)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each reply (default {DEFAULT_TIMEOUT:g})",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``micro`` and ``run`` subcommands to ``subparsers``."""
    micro = subparsers.add_parser("micro", help="create, build and flash firmware projects")
    commands = micro.add_subparsers(dest="micro_command", required=True)

    create = commands.add_parser("create", help="create a firmware project from a model artifact")
    create.add_argument("project", type=Path, help="project directory to create")
    create.add_argument("artifact", type=Path, help="model artifact (.tar) from the compiler")
    create.add_argument("platform", choices=PLATFORMS)
    create.add_argument(
        "--board", help="board (default: the artifact's, else mps2-an500; zephyr: nucleo_f746zg)"
    )
    create.add_argument("--float-abi", choices=FLOAT_ABIS, default="hard")
    create.add_argument(
        "--stack-size",
        help="stack reserved for core and model, counted in the SRAM budget (default: the "
        f"compiler's stack_reserve_bytes, else {DEFAULT_STACK_RESERVE // 1024}KiB)",
    )
    for what, example in (("sram", "320KiB"), ("flash", "1MiB")):
        create.add_argument(
            f"--{what}",
            help=f"{what} budget the linker script enforces, e.g. {example} (default: the budget "
            "the artifact was compiled for, else the board's)",
        )
    create.add_argument("--force", action="store_true", help="replace an existing project")
    create.set_defaults(func=_create)

    build = commands.add_parser("build", help="build build/firmware.elf and build/host_runner")
    build.add_argument("project", type=Path)
    build.add_argument(
        "-j", "--jobs", type=_positive(int), help="parallel compile jobs (default: all CPUs)"
    )
    build.set_defaults(func=_build)

    flash = commands.add_parser("flash", help="put the firmware on its device and check it answers")
    flash.add_argument("project", type=Path)
    _device_options(flash)
    flash.set_defaults(func=_flash)

    run = subparsers.add_parser("run", help="evaluate a built project on its device vs. the host")
    run.add_argument("project", type=Path)
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=DATASETS, help="test split of a built-in dataset")
    source.add_argument(
        "--inputs",
        type=Path,
        help=".npz of arrays keyed by input name (or one array), optional 'labels'",
    )
    run.add_argument("--limit", type=_positive(int), help="run only the first N samples")
    run.add_argument("--outputs", type=Path, help="save device outputs (.npz keyed by output name)")
    run.add_argument("--report", type=Path, required=True, help="report JSON to write")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from REPORT.partial (kept while a run is going)",
    )
    run.add_argument(
        "--profile",
        action="store_true",
        help="print the per-op latency (counter per kernel call) and plot it (REPORT.profile.png)",
    )
    _device_options(run)
    run.set_defaults(func=_run)
