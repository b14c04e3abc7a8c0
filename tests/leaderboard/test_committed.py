"""The committed leaderboard: the eight built-in cells' submissions are valid and verified, and the pages rebuild
from them byte for byte."""

from __future__ import annotations

from memtasks.leaderboard.site import build
from tests.helpers import ROOT

LEADERBOARD = ROOT / "leaderboard"
BUILTIN = {"rnn", "irnn", "lstm", "gru", "ugrnn", "intersection", "nlstm", "mlp"}


def test_the_committed_pages_rebuild_byte_for_byte_from_valid_verified_submissions(tmp_path):
    written = build(LEADERBOARD / "submissions", tmp_path)  # validates and verifies every submission, or raises
    for page in written:
        assert page.read_bytes() == (LEADERBOARD / page.name).read_bytes(), f"{page.name} is stale: run " \
            "memtasks leaderboard build"
    html = (tmp_path / "index.html").read_text()
    assert html.count("✓ verified</span>") == 8 and "no weights</span>" not in html
    cells = {line.split("`")[1] for line in (tmp_path / "README.md").read_text().splitlines()
             if line.startswith("| ") and "`" in line and "verified" in line}
    assert cells == BUILTIN
