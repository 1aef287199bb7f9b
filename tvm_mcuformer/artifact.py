"""The compiled artifact: a tar in the spirit of TVM's old Model Library Format.

Layout::

    metadata.json                 shapes, dtypes, memory report, op list
    codegen/host/include/*.h      mcuformer_model.h (the C API), mcuformer_math.h
    codegen/host/src/*.c          kernels, driver (weights + arena), math
    src/relax.txt                 the imported Relax module
    src/lowered.txt               the lowered Relax module (call_tir list)
    memory_timeline.png           live arena bytes per kernel call

Members whose names end in one of :data:`BINARY_SUFFIXES` are bytes, all
others UTF-8 text. Every file is written to a temporary file beside the
target and renamed into place, so a failed compile never leaves a partial one.

This module owns metadata.json: :func:`model_metadata` writes it (the
compiler) and :class:`ModelInfo` reads what a firmware project needs from it
(I/O tensors, arena, stack, budget) — nothing reads those figures from C text.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .fileio import atomic_write
from .tensor_spec import DTYPE_BYTES, TensorSpec

BINARY_SUFFIXES = (".png",)
METADATA_FORMAT = "tvm-mcuformer-artifact"
METADATA_VERSION = 1
MODEL_HEADER = "codegen/host/include/mcuformer_model.h"
MODEL_SOURCES = "codegen/host/src/"


class ArtifactError(ValueError):
    """A file that is not a usable tvm-mcuformer artifact (the message says why and where)."""


def model_metadata(
    model: str,
    board: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    memory: dict,
    **sections: object,
) -> dict:
    """metadata.json of a compiled model; ``memory`` is the compiler's memory report
    (``planned_arena_bytes``, ``stack_reserve_bytes``, ``budget``, ...), ``sections`` any
    further top-level entries (``macs``, ``quantization``, ``ops``)."""
    metadata = {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "model": model,
        "board": board,
        "inputs": [t.to_json() for t in inputs],
        "outputs": [t.to_json() for t in outputs],
        "memory": memory,
        **sections,
    }
    ModelInfo.from_metadata(metadata, "metadata.json")  # what we write, we can read
    return metadata


def _tensor_specs(entries: object, key: str, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(entries, list) or not entries:
        raise ArtifactError(f"{where}: '{key}' must be a non-empty list of tensors")
    specs = []
    for i, entry in enumerate(entries):
        here = f"{where}: {key}[{i}]"
        if not isinstance(entry, dict):
            raise ArtifactError(f"{here} must be an object with name, shape and dtype")
        name, shape, dtype = entry.get("name"), entry.get("shape"), entry.get("dtype")
        if not isinstance(name, str) or not name:
            raise ArtifactError(f"{here} has no 'name'")
        if not (
            isinstance(shape, list)
            and shape
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
        ):
            raise ArtifactError(f"{here} ({name}): 'shape' must be a list of positive integers")
        if dtype not in DTYPE_BYTES:
            raise ArtifactError(
                f"{here} ({name}): dtype {dtype!r} unsupported; use one of {', '.join(DTYPE_BYTES)}"
            )
        scale = zero_point = None
        if "quant" in entry:
            quant = entry["quant"]
            if not (
                isinstance(quant, dict)
                and isinstance(quant.get("scale"), int | float)
                and quant["scale"] > 0
                and isinstance(quant.get("zero_point"), int)
            ):
                raise ArtifactError(
                    f'{here} ({name}): \'quant\' must be {{"scale": >0, "zero_point": int}}'
                )
            scale, zero_point = float(quant["scale"]), int(quant["zero_point"])
        specs.append(TensorSpec(name, tuple(shape), dtype, scale, zero_point))
    return tuple(specs)


def _size(memory: dict, key: str, where: str, required: bool = True) -> int | None:
    value = memory.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArtifactError(f"{where}: 'memory.{key}' must be a number of bytes, got {value!r}")
    return value


@dataclass(frozen=True)
class ModelInfo:
    """What a firmware project needs from metadata.json."""

    board: str | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    arena_bytes: int
    stack_reserve_bytes: int | None
    budget: dict[str, int]

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.inputs)

    @property
    def output_bytes(self) -> int:
        return sum(t.nbytes for t in self.outputs)

    @classmethod
    def from_metadata(cls, metadata: object, where: str) -> ModelInfo:
        """Validate ``metadata`` (the parsed metadata.json found at ``where``)."""
        if not isinstance(metadata, dict):
            raise ArtifactError(f"{where} must hold a JSON object")
        inputs = _tensor_specs(metadata.get("inputs"), "inputs", where)
        outputs = _tensor_specs(metadata.get("outputs"), "outputs", where)
        memory = metadata.get("memory")
        if not isinstance(memory, dict):
            raise ArtifactError(f"{where}: no 'memory' report; recompile the model")
        budget = memory.get("budget") or {}
        board = metadata.get("board")
        return cls(
            board if isinstance(board, str) else None,
            inputs,
            outputs,
            _size(memory, "planned_arena_bytes", where),
            _size(memory, "stack_reserve_bytes", where, required=False),
            {k: v for k, v in budget.items() if isinstance(v, int) and not isinstance(v, bool)},
        )


def _encode(content: str | bytes) -> bytes:
    return content if isinstance(content, bytes) else content.encode()


def _decode(name: str, data: bytes) -> str | bytes:
    return data if name.endswith(BINARY_SUFFIXES) else data.decode()


@dataclass
class Artifact:
    """Files of an artifact (path inside the tar → text or bytes) and its metadata."""

    metadata: dict
    files: dict[str, str | bytes]

    def write(self, path: str | Path) -> Path:
        """Write the tar to ``path`` atomically; return ``path``."""

        def fill(raw: BinaryIO) -> None:
            with tarfile.open(fileobj=raw, mode="w") as tar:
                entries = {"metadata.json": json.dumps(self.metadata, indent=2), **self.files}
                for name, content in sorted(entries.items()):
                    data = _encode(content)
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))

        return atomic_write(Path(path), fill)

    def extract(self, name: str, path: str | Path) -> Path:
        """Write the artifact's file ``name`` to ``path`` atomically; return ``path``."""
        data = _encode(self.files[name])
        return atomic_write(Path(path), lambda raw: raw.write(data))

    @property
    def info(self) -> ModelInfo:
        return ModelInfo.from_metadata(self.metadata, "metadata.json")

    @classmethod
    def read(cls, path: str | Path) -> Artifact:
        """Read and check an artifact; :class:`ArtifactError` says what is wrong with it."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(
                f"model artifact {path} not found: pass the .tar the compiler wrote"
            )
        try:
            with tarfile.open(path) as tar:
                files = {}
                for m in tar.getmembers():
                    name = PurePosixPath(m.name)
                    if name.is_absolute() or ".." in name.parts:
                        raise ArtifactError(f"{path}: unsafe member path {m.name!r}")
                    if m.isfile():
                        key = str(name).removeprefix("./")
                        files[key] = _decode(key, tar.extractfile(m).read())
        except (OSError, tarfile.TarError, UnicodeDecodeError) as err:
            raise ArtifactError(
                f"{path} is not a readable tar file ({err}): pass the compiler's artifact"
            ) from None
        if "metadata.json" not in files:
            raise ArtifactError(f"{path}: no metadata.json in the artifact")
        if MODEL_HEADER not in files:
            raise ArtifactError(f"{path}: no {MODEL_HEADER} in the artifact")
        if not any(
            n.startswith(MODEL_SOURCES) and n.endswith(".c") and "/" not in n[len(MODEL_SOURCES) :]
            for n in files
        ):
            raise ArtifactError(f"{path}: no model C sources in {MODEL_SOURCES}")
        try:
            metadata = json.loads(files.pop("metadata.json"))
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{path}:metadata.json is not valid JSON: {err}") from None
        ModelInfo.from_metadata(metadata, f"{path}:metadata.json")
        return cls(metadata, files)
