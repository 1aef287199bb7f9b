"""Create and load micro projects from a compiled model artifact.

An artifact is a tar file holding ``metadata.json``, ``codegen/host/include/mcuformer_model.h``
and the model's C in ``codegen/host/src/*.c``. :func:`create_project` turns it into a project
directory::

    PROJECT/project.json          platform, board, float ABI, stack size, SRAM/flash budget,
                                  model sizes
    PROJECT/metadata.json         the artifact's metadata, unchanged
    PROJECT/model/{include,src}/  the model's C
    PROJECT/core/                 firmware core (protocol loop) and platform.h
    PROJECT/platform/host/        host reference platform (build/host_runner)
    PROJECT/Makefile              builds build/host_runner (and build/firmware.elf on bare metal)
    bare metal: platform/baremetal/ (startup, QEMU platform) and linker.ld enforcing the budget
    zephyr:     CMakeLists.txt, prj.conf, boards/*.overlay, src/platform_zephyr.c

The project is written to a temporary directory next to PROJECT and renamed into place, so a
failure leaves nothing behind. :func:`load_project` reads a project back.
"""

from __future__ import annotations

import json
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tvm_mcuformer.artifact import Artifact, ArtifactError, ModelInfo
from tvm_mcuformer.boards import (
    DEFAULT_BOARD,
    DEFAULT_STACK_RESERVE,
    ZEPHYR_BOARDS,
    Board,
    get_board,
)
from tvm_mcuformer.micro import MicroError
from tvm_mcuformer.tensor_spec import TensorSpec

PLATFORMS = ("baremetal", "zephyr")
FLOAT_ABIS = ("hard", "soft")
DEFAULT_ZEPHYR_BOARD = "nucleo_f746zg"
PROJECT_FORMAT = 2
QEMU_REGION_BYTES = 4 * 1024 * 1024  # RAM QEMU maps at 0x0 and at 0x20000000 on mps2 boards

TEMPLATES = Path(__file__).parent / "templates"
ZEPHYR_TEMPLATE = Path(__file__).resolve().parents[2] / "zephyr_project"

_MODEL_DIRS = (("codegen/host/include/", "include/"), ("codegen/host/src/", "src/"))


@dataclass(frozen=True)
class Project:
    """A created project, as :func:`load_project` reads it."""

    root: Path
    platform: str
    board: str
    float_abi: str
    stack_bytes: int
    sram_bytes: int  # budget the linker script holds the image to
    flash_bytes: int
    input_bytes: int
    output_bytes: int
    arena_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict

    @property
    def firmware(self) -> Path:
        return self.root / "build" / "firmware.elf"

    @property
    def host_runner(self) -> Path:
        return self.root / "build" / "host_runner"

    @property
    def budget(self) -> dict[str, int]:
        return {"sram_bytes": self.sram_bytes, "flash_bytes": self.flash_bytes}

    @property
    def qemu_board(self) -> Board | None:
        """The QEMU board of a bare-metal project, None for a Zephyr one."""
        return get_board(self.board) if self.platform == "baremetal" else None


def zephyr_boards() -> list[str]:
    """Zephyr boards the template (``zephyr_project/`` of the checkout) has an overlay for."""
    if not (ZEPHYR_TEMPLATE / "CMakeLists.txt").is_file():
        raise MicroError(
            f"Zephyr application template not found at {ZEPHYR_TEMPLATE}: "
            "run from a checkout of tvm-mcuformer (it is not part of the wheel)"
        )
    return sorted(p.stem for p in (ZEPHYR_TEMPLATE / "boards").glob("*.overlay"))


@dataclass(frozen=True)
class _Artifact:
    metadata: dict
    info: ModelInfo
    files: dict[str, bytes]  # path under model/ -> contents


def _read_artifact(path: Path) -> _Artifact:
    """The artifact's model files (as they go under ``model/``) and its checked metadata."""
    try:
        art = Artifact.read(path)
    except ArtifactError as err:
        raise MicroError(str(err)) from None
    files = {}
    for name, data in art.files.items():
        for prefix, dest in _MODEL_DIRS:
            if name.startswith(prefix):
                raw = data if isinstance(data, bytes) else data.encode()
                files[dest + name[len(prefix) :]] = raw
    return _Artifact(art.metadata, art.info, files)


def _resolve_board(platform: str, board: str | None, metadata: dict) -> str:
    """The project's board name; Zephyr names must have an overlay and map to a preset."""
    if platform == "zephyr":
        name = board or DEFAULT_ZEPHYR_BOARD
        if name not in zephyr_boards():
            raise MicroError(
                f"no Zephyr overlay for board {name!r}: choose one of {', '.join(zephyr_boards())}"
                f" or add {ZEPHYR_TEMPLATE / 'boards' / (name + '.overlay')}"
            )
        if name not in ZEPHYR_BOARDS:
            raise MicroError(
                f"Zephyr board {name!r} has no budget preset: add it to "
                "tvm_mcuformer.boards.ZEPHYR_BOARDS"
            )
        return name
    name = board or metadata.get("board") or DEFAULT_BOARD
    try:
        spec = get_board(name)
    except ValueError as e:
        raise MicroError(str(e)) from None
    if spec.qemu_machine is None or spec.cpu is None:
        raise MicroError(f"board {name!r} is not a Cortex-M board QEMU emulates: pick mps2-an500")
    return name


def _check_emulated_budget(board: str, budget: dict[str, int]) -> None:
    for key, size in budget.items():
        if size > QEMU_REGION_BYTES:
            what = key.split("_")[0]
            raise MicroError(
                f"board {board!r}: {what} budget {size} B exceeds the 4 MiB QEMU maps for it: "
                f"pass a smaller --{what}"
            )


def _target_arch(board: Board, float_abi: str) -> str:
    flags = f"-mcpu={board.cpu} -mthumb -mfloat-abi={float_abi}"
    if float_abi == "hard":
        if board.fpu is None:
            raise MicroError(f"board {board.name!r} has no FPU: use --float-abi soft")
        flags += f" -mfpu={board.fpu}"
    return flags


def _render(template: str, **values: object) -> str:
    return string.Template((TEMPLATES / template).read_text()).substitute(values)


def memory_budget(
    board: str, metadata: dict, sram_bytes: int | None = None, flash_bytes: int | None = None
) -> dict[str, int]:
    """SRAM/flash the firmware may use: ``sram_bytes``/``flash_bytes`` when given, else the
    budget the model was compiled for (metadata ``memory.budget``) when ``board`` is the
    artifact's board, else the board's.

    ``tvm-mcuformer compile --sram/--flash`` may set a budget other than the board's; the
    project then holds the image to it, so a model compiled for a larger budget still links.
    """
    spec = get_board(board)
    compiled = {}
    if metadata.get("board") in (None, spec.name):
        compiled = metadata.get("memory", {}).get("budget", {})
    budget = {
        "sram_bytes": sram_bytes or compiled.get("sram_bytes") or spec.sram_bytes,
        "flash_bytes": flash_bytes or compiled.get("flash_bytes") or spec.flash_bytes,
    }
    for key, value in budget.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MicroError(f"{key.split('_')[0]} budget {value!r}: give a positive byte count")
    return budget


def _write_baremetal(
    root: Path, board: Board, budget: dict[str, int], float_abi: str, stack_bytes: int
) -> None:
    shutil.copytree(
        TEMPLATES / "baremetal",
        root / "platform" / "baremetal",
        ignore=shutil.ignore_patterns("*.in"),
    )
    (root / "linker.ld").write_text(
        _render(
            "baremetal/linker.ld.in",
            board=board.name,
            sram_bytes=budget["sram_bytes"],
            flash_bytes=budget["flash_bytes"],
            stack_bytes=stack_bytes,
        )
    )
    (root / "Makefile").write_text(
        _render(
            "Makefile.in",
            platform="baremetal",
            board=board.name,
            firmware_note=" and build/firmware.elf (arm-none-eabi-gcc)",
            target_arch=_target_arch(board, float_abi),
        )
    )


def _write_zephyr(root: Path, board: str, float_abi: str, stack_bytes: int) -> None:
    for item in ("CMakeLists.txt", "prj.conf", "boards", "src"):
        src = ZEPHYR_TEMPLATE / item
        if src.is_dir():
            shutil.copytree(src, root / item)
        else:
            shutil.copy2(src, root / item)
    fpu = "CONFIG_FPU=y\nCONFIG_FP_HARDABI=y\n" if float_abi == "hard" else "CONFIG_FPU=n\n"
    with open(root / "prj.conf", "a") as conf:
        conf.write(
            f"\n# Set by tvm-mcuformer micro create (board {board}, {float_abi} float)\n"
            f"CONFIG_MAIN_STACK_SIZE={stack_bytes}\n{fpu}"
        )
    (root / "Makefile").write_text(
        _render(
            "Makefile.in",
            platform="zephyr",
            board=board,
            firmware_note=" (the firmware is built by west)",
            target_arch="",
        )
    )


def _populate(
    root: Path,
    art: _Artifact,
    platform: str,
    board: str,
    float_abi: str,
    stack_bytes: int,
    budget: dict[str, int],
    artifact: Path,
) -> None:
    for rel, data in art.files.items():
        dest = root / "model" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    shutil.copytree(TEMPLATES / "core", root / "core")
    shutil.copytree(TEMPLATES / "host", root / "platform" / "host")
    if platform == "baremetal":
        _write_baremetal(root, get_board(board), budget, float_abi, stack_bytes)
    else:
        _write_zephyr(root, board, float_abi, stack_bytes)
    (root / "metadata.json").write_text(json.dumps(art.metadata, indent=2) + "\n")
    config = {
        "format": PROJECT_FORMAT,
        "platform": platform,
        "board": board,
        "float_abi": float_abi,
        "stack_bytes": stack_bytes,
        **budget,
        "artifact": str(artifact.resolve()),
    }
    (root / "project.json").write_text(json.dumps(config, indent=2) + "\n")


def create_project(
    project_dir: str | Path,
    artifact: str | Path,
    platform: str,
    board: str | None = None,
    float_abi: str = "hard",
    stack_bytes: int | None = None,
    force: bool = False,
    sram_bytes: int | None = None,
    flash_bytes: int | None = None,
) -> Project:
    """Create ``project_dir`` for ``artifact`` on ``platform`` ("baremetal" or "zephyr").

    ``board`` defaults to the artifact's metadata board (else mps2-an500) on bare metal and to
    nucleo_f746zg on Zephyr. ``stack_bytes`` defaults to the stack the compiler budgeted
    (metadata ``memory.stack_reserve_bytes``), else ``boards.DEFAULT_STACK_RESERVE``.
    ``sram_bytes``/``flash_bytes`` (the budget the linker script enforces) default as
    :func:`memory_budget` says. An existing non-empty ``project_dir`` is refused unless
    ``force``, which replaces it. Raises
    :class:`MicroError` on bad input, leaving no partial output.
    """
    root = Path(project_dir)
    artifact = Path(artifact)
    if platform not in PLATFORMS:
        raise MicroError(f"unknown platform {platform!r}: choose one of {', '.join(PLATFORMS)}")
    if float_abi not in FLOAT_ABIS:
        raise MicroError(f"unknown float ABI {float_abi!r}: choose one of {', '.join(FLOAT_ABIS)}")
    if root.exists() and not root.is_dir():
        raise MicroError(f"project path {root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise MicroError(
            f"project directory {root} exists and is not empty: pass --force to replace it"
        )
    art = _read_artifact(artifact)
    if stack_bytes is None:
        stack_bytes = art.info.stack_reserve_bytes or DEFAULT_STACK_RESERVE
    if not isinstance(stack_bytes, int) or stack_bytes < 1024 or stack_bytes % 8:
        raise MicroError(f"stack size {stack_bytes} B: use a multiple of 8 bytes, at least 1 KiB")
    board = _resolve_board(platform, board, art.metadata)
    budget = memory_budget(board, art.metadata, sram_bytes, flash_bytes)
    if platform == "baremetal":
        _target_arch(get_board(board), float_abi)
        _check_emulated_budget(board, budget)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _populate(staging, art, platform, board, float_abi, stack_bytes, budget, artifact)
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
            root.rename(old / "project")
            staging.rename(root)
            shutil.rmtree(old)
        else:
            staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_project(root)


def load_project(project_dir: str | Path) -> Project:
    """Read the project at ``project_dir``; raise :class:`MicroError` if it is not one."""
    root = Path(project_dir)
    config_path = root / "project.json"
    if not config_path.is_file():
        raise MicroError(f"{root} is not a micro project (no project.json): run `micro create`")
    try:
        config = json.loads(config_path.read_text())
        metadata = json.loads((root / "metadata.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MicroError(f"{root}: cannot read project files ({e}): recreate the project") from None
    if config.get("format") != PROJECT_FORMAT:
        raise MicroError(f"{config_path}: unsupported project format, recreate the project")
    try:
        info = ModelInfo.from_metadata(metadata, str(root / "metadata.json"))
    except ArtifactError as err:
        raise MicroError(str(err)) from None
    return Project(
        root=root,
        platform=config["platform"],
        board=config["board"],
        float_abi=config["float_abi"],
        stack_bytes=config["stack_bytes"],
        sram_bytes=config["sram_bytes"],
        flash_bytes=config["flash_bytes"],
        input_bytes=info.input_bytes,
        output_bytes=info.output_bytes,
        arena_bytes=info.arena_bytes,
        inputs=info.inputs,
        outputs=info.outputs,
        metadata=metadata,
    )
