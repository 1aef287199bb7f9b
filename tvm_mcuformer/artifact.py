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
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .fileio import atomic_write

BINARY_SUFFIXES = (".png",)


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

    @classmethod
    def read(cls, path: str | Path) -> Artifact:
        path = Path(path)
        try:
            with tarfile.open(path) as tar:
                files = {
                    m.name: _decode(m.name, tar.extractfile(m).read())
                    for m in tar.getmembers()
                    if m.isfile()
                }
        except (OSError, tarfile.TarError) as err:
            raise ValueError(f"{path}: not a tvm-mcuformer artifact ({err})") from err
        if "metadata.json" not in files:
            raise ValueError(f"{path}: not a tvm-mcuformer artifact (no metadata.json)")
        return cls(json.loads(files.pop("metadata.json")), files)
