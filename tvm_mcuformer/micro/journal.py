"""The run journal: completed samples of an evaluation, appended as they finish.

``run --report R`` keeps ``R.partial`` (JSON lines) while it evaluates: a header line with a
fingerprint of what is evaluated (firmware, host runner, input frames), then one line per
completed sample (its index, device and host output bytes, counter value, stack high-water).
An interrupted or failed run leaves the journal behind; ``run --resume`` reads it back and
continues after the last completed sample, so the final report is the one an uninterrupted
run would have written. A torn last line (a kill in mid-write) is dropped on reading.
The journal is removed once the report is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

FORMAT = "mcuformer-run-journal/1"
FSYNC_EVERY = 50  # samples between fsyncs (each line is flushed at once)


@dataclass(frozen=True)
class SampleRecord:
    """What one completed sample contributed to the report."""

    index: int
    device: bytes
    host: bytes
    count: int
    stack: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "i": self.index,
                "device": base64.b64encode(self.device).decode(),
                "host": base64.b64encode(self.host).decode(),
                "count": self.count,
                "stack": self.stack,
            }
        )

    @classmethod
    def from_json(cls, line: str) -> SampleRecord:
        d = json.loads(line)
        return cls(
            int(d["i"]),
            base64.b64decode(d["device"]),
            base64.b64decode(d["host"]),
            int(d["count"]),
            int(d["stack"]),
        )


def journal_path(report: str | Path) -> Path:
    """Where the journal of a run writing ``report`` lives: ``REPORT.partial`` beside it."""
    report = Path(report)
    return report.with_name(report.name + ".partial")


def fingerprint(files: list[Path], frames: list[bytes]) -> str:
    """SHA-256 over the given files' contents and the input frames."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.read_bytes())
    for frame in frames:
        h.update(len(frame).to_bytes(8, "little"))
        h.update(frame)
    return h.hexdigest()


class RunJournal:
    """Append-only record of the samples of one evaluation (see the module docstring)."""

    def __init__(self, path: Path | None, key: str, n: int, done: list[SampleRecord]) -> None:
        """A journal at ``path`` (None: kept in memory only) holding ``done``."""
        self.path = path
        self.key = key
        self.n = n
        self.done = done
        self._file: IO[str] | None = None
        self._unsynced = 0

    @classmethod
    def open(cls, path: str | Path, key: str, n: int, resume: bool) -> RunJournal:
        """Open the journal at ``path`` for a run of ``n`` samples fingerprinted ``key``.

        Without ``resume`` an existing journal is an error (it holds an interrupted run); with
        it, the journal must belong to the same run, and its completed samples are returned in
        :attr:`done`. Raises ``ValueError`` naming the file and what to do.
        """
        path = Path(path)
        if not path.exists():
            return cls(path, key, n, [])
        if not resume:
            raise ValueError(
                f"{path} holds an interrupted run: pass --resume to continue it, or delete it"
            )
        lines = path.read_text(errors="replace").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("format") != FORMAT:
            raise ValueError(f"{path} is not a run journal: delete it and run without --resume")
        if header.get("key") != key or header.get("n") != n:
            raise ValueError(
                f"{path} was written for other firmware or inputs: delete it, or rerun the "
                "command that was interrupted"
            )
        done: list[SampleRecord] = []
        for line in lines[1:]:
            try:
                record = SampleRecord.from_json(line)
            except (ValueError, KeyError, TypeError):
                break  # a torn last line: the sample is run again
            if record.index != len(done):
                break
            done.append(record)
        journal = cls(path, key, n, done)
        journal._rewrite()  # drop a torn tail so appends continue on a clean line
        return journal

    def _header(self) -> str:
        return json.dumps({"format": FORMAT, "key": self.key, "n": self.n})

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(self._header() + "\n")
            for record in self.done:
                f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, record: SampleRecord) -> None:
        """Record one completed sample (flushed at once, fsynced every few samples)."""
        self.done.append(record)
        if self.path is None:
            return
        if self._file is None:
            fresh = not self.path.exists()
            if fresh:
                self._rewrite()  # the header and every record so far, this one included
            self._file = open(self.path, "a")
            if fresh:
                return
        self._file.write(record.to_json() + "\n")
        self._file.flush()
        self._unsynced += 1
        if self._unsynced >= FSYNC_EVERY:
            os.fsync(self._file.fileno())
            self._unsynced = 0

    def close(self) -> None:
        """Flush and close the file (kept for ``--resume``)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """Close and delete the journal (the report is written)."""
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
