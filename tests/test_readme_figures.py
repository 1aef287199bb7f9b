"""README figures come from results files: every table is rendered from bench/results."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tables():
    spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "bench" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_equal_their_results_files():
    tables = _tables()
    text = (ROOT / "README.md").read_text()
    names = [m.group(2) for m in tables.BLOCK.finditer(text)]
    assert len(names) >= 4 and len(set(names)) == len(names), names
    assert tables.rendered_readme(text) == text, "README is stale: run bench/tables.py"


def test_every_readme_table_sits_in_a_results_block():
    text = (ROOT / "README.md").read_text()
    outside = _tables().BLOCK.sub("", text)
    assert not re.search(r"^\|.*\|$", outside, re.MULTILINE), "a table not from bench/results"


def test_results_files_say_when_and_how_they_were_made():
    files = sorted((ROOT / "bench" / "results").glob("*.json"))
    assert files
    for path in files:
        data = json.loads(path.read_text())
        assert {"date", "commit", "command"} <= data.keys(), path.name
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", data["commit"]), path.name
        assert data["command"].startswith(".venv/bin/python bench/"), path.name


def test_a_changed_figure_is_caught(tmp_path):
    tables = _tables()
    text = (ROOT / "README.md").read_text()
    tampered = text.replace("0.9594 ± 0.0060", "0.9694 ± 0.0060")
    assert tampered != text
    assert tables.rendered_readme(tampered) != tampered
