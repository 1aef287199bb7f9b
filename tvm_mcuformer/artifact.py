"""The compiled artifact: a tar in the spirit of TVM's old Model Library Format.

Layout::

    metadata.json                 shapes, dtypes, memory report, op list
    codegen/host/include/*.h      mcuformer_model.h (the C API), mcuformer_math.h
    codegen/host/src/*.c          kernels, driver (weights + arena), math
    src/relax.txt                 the imported Relax module
    src/lowered.txt               the lowered Relax module (call_tir list)

The tar is written to a temporary file beside the target and renamed into
place, so a failed compile never leaves a partial artifact.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Artifact:
    """Files of an artifact (path inside the tar → text) and its metadata."""

    metadata: dict
    files: dict[str, str]

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".artifact-", suffix=".tar", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
                entries = {"metadata.json": json.dumps(self.metadata, indent=2), **self.files}
                for name, text in sorted(entries.items()):
                    data = text.encode()
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def read(cls, path: str | Path) -> Artifact:
        path = Path(path)
        try:
            with tarfile.open(path) as tar:
                files = {
                    m.name: tar.extractfile(m).read().decode()
                    for m in tar.getmembers()
                    if m.isfile()
                }
        except (OSError, tarfile.TarError) as err:
            raise ValueError(f"{path}: not a tvm-mcuformer artifact ({err})") from err
        if "metadata.json" not in files:
            raise ValueError(f"{path}: not a tvm-mcuformer artifact (no metadata.json)")
        return cls(json.loads(files.pop("metadata.json")), files)
