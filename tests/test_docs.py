"""Facts stated in more than one document agree with each other and with the files they describe."""

from __future__ import annotations

import json
import re

from tests.helpers import ROOT


def test_the_default_run_time_is_stated_once_over():
    pattern = r"about (\d+) s\s+on\s+a\s+2-core\s+CPU"
    readme = re.findall(pattern, (ROOT / "README.md").read_text())
    fitting = re.findall(pattern, (ROOT / "docs" / "fitting.md").read_text())
    assert readme and fitting and set(readme) == set(fitting), (readme, fitting)


def test_the_submission_format_doc_describes_entries_as_the_committed_files_hold_them():
    doc = (ROOT / "docs" / "leaderboard.md").read_text()
    (row,) = [line for line in doc.splitlines() if line.startswith("| `entries` |")]
    assert "a list" in row and "`key`" in row and "keyed" not in row
    for path in sorted((ROOT / "leaderboard").glob("*/submissions/*.json")):
        entries = json.loads(path.read_text())["entries"]
        assert isinstance(entries, list) and all(re.fullmatch(r"[\w-]+/seed\d+", e["key"]) for e in entries)
