"""All-or-nothing file writes, and output paths checked before any work.

Every file the tools write (artifacts, reports, checkpoints, search state) goes
through :func:`atomic_write` (a temporary file beside the target, fsync, rename),
so a failure or a kill never leaves a partial file; the file gets the usual
permissions (0666 less the umask), not the temporary file's 0600.
:func:`check_output_file` and :func:`check_output_dir` raise ``ValueError`` with
one line naming the path and what to do, before a command spends time on work
whose result it could not write.
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
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` must be a directory we can create files in."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise ValueError(f"{what} {path}: {base} is a file, not a directory: choose another path")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as err:
        raise ValueError(
            f"{what} {path}: cannot write in {base} ({err.strerror}): choose a writable location"
        ) from None


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """Raise ``ValueError`` unless ``path`` can be written as a file; return it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory: give a file path")
    _check_writable_parent(path, what)
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Raise ``ValueError`` unless ``path`` is, or can be created as, a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a directory: give a folder path")
    if path.is_dir():
        _check_writable_parent(path / "x", what)
    else:
        _check_writable_parent(path, what)
    return path


def write_json_atomic(obj: object, path: str | Path) -> Path:
    """:func:`atomic_write` of ``obj`` as indented JSON."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=1), binary=False)
