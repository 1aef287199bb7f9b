"""Results files of the benches: every one carries the date, the commit and the command.

    write_results(path, payload)  # adds {"date", "commit", "command"} and writes JSON

``commit`` is ``git rev-parse HEAD`` of the checkout, suffixed ``-dirty`` when
tracked files other than results files and Markdown differ from it (benches run
side by side rewrite results files), so a figure can be traced to the code that
made it.
"""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORED = (":!bench/results", ":!*.md")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def provenance() -> dict[str, str]:
    """``date`` (UTC, ISO 8601), ``commit`` and ``command`` of the running bench."""
    commit = _git("rev-parse", "HEAD")
    # Results files and prose do not change what a bench measures: only code makes it dirty.
    if _git("status", "--porcelain", "--untracked-files=no", "--", ".", *IGNORED):
        commit += "-dirty"
    script = _relative(str(Path(sys.argv[0]).resolve()))
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", script, *sys.argv[1:]])
    date = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    return {"date": date, "commit": commit, "command": command}


def _relative(arg: str) -> str:
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(ROOT):
        return str(path.relative_to(ROOT))
    return arg


def write_results(path: Path, payload: dict) -> Path:
    """Write ``payload`` with its provenance to ``path`` (JSON); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**provenance(), **payload}, indent=2) + "\n")
    return path
