"""All-or-nothing file writes: a temporary file beside the target, fsync, rename.

Every file the tools write (artifacts, reports, checkpoints, search state) goes
through :func:`atomic_write`, so a failure or a kill never leaves a partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | Path, fill: Callable[[IO], None], binary: bool = True) -> Path:
    """Create ``path`` with ``fill(file)``; the file appears complete or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(obj: object, path: str | Path) -> Path:
    """:func:`atomic_write` of ``obj`` as indented JSON."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=1), binary=False)
