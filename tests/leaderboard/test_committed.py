"""The committed leaderboard: each suite's folder (``leaderboard/<suite>/``) holds the eight built-in cells'
submissions, valid and verified, and its pages rebuild from them byte for byte; the index names every suite."""

from __future__ import annotations

import pytest

from memtasks.leaderboard.site import build
from memtasks.leaderboard.suite import CURRENT_SUITE, SUITES
from tests.helpers import PUBLISHED_SUITES, ROOT

LEADERBOARD = ROOT / "leaderboard"
BUILTIN = {"rnn", "irnn", "lstm", "gru", "ugrnn", "intersection", "nlstm", "mlp"}
PUBLISHED = PUBLISHED_SUITES


def test_every_published_folder_is_a_suite_and_the_index_links_each_page_and_names_the_current_one():
    assert CURRENT_SUITE in PUBLISHED and set(PUBLISHED) <= set(SUITES), PUBLISHED
    index = (LEADERBOARD / "README.md").read_text()
    for suite in PUBLISHED:
        assert f"({suite}/index.html)" in index and f"({suite}/README.md)" in index, suite
    assert f"current suite is **{CURRENT_SUITE}**" in index


@pytest.mark.parametrize("suite", PUBLISHED)
def test_the_committed_pages_rebuild_byte_for_byte_from_valid_verified_submissions(tmp_path, suite):
    folder = LEADERBOARD / suite
    written = build(folder / "submissions", tmp_path)  # validates and verifies every submission, or raises
    for page in written:
        assert page.read_bytes() == (folder / page.name).read_bytes(), f"{suite}/{page.name} is stale: run " \
            f"memtasks leaderboard build --suite {suite}"
    html = (tmp_path / "index.html").read_text()
    assert html.count("✓ verified</span>") == 8 and "no weights</span>" not in html
    cells = {line.split("`")[1] for line in (tmp_path / "README.md").read_text().splitlines()
             if line.startswith("| ") and "`" in line and "verified" in line}
    assert cells == BUILTIN
