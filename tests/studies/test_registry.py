"""The study registry: every study is registered once, has its command, and an unknown name is one clear error."""

from __future__ import annotations

import re

import pytest

from memtasks.studies import common, registry
from memtasks.studies.common import StudyError
from tests.helpers import run


def test_every_registered_study_is_a_command_of_memtasks_study():
    result = run("study", "--help")
    assert result.exit_code == 0, result.output
    listed = set(re.findall(r"^  ([a-z][\w-]*)\s", result.output, flags=re.MULTILINE))
    assert listed == set(registry.studies())
    for name, study in registry.studies().items():
        assert study.name == name and study.folder == common.STUDIES_FOLDER / name


def test_the_studies_default_to_the_committed_cells():
    studies = registry.studies()
    assert common.DEFAULT_CELLS == ("rnn", "irnn", "lstm", "gru", "ugrnn", "intersection", "nlstm", "mlp")
    assert set(common.DEFAULT_CELLS) <= set(common.BUILTIN_CELLS)
    assert studies["capacity"].default_cells == common.DEFAULT_CELLS
    assert studies["noise"].default_cells == studies["difficulty"].default_cells == ("rnn", "lstm", "gru", "mlp")
    assert studies["connectivity"].files == ("models",) and studies["connectivity"].collect is not None
    assert studies["noise"].keeps_history and not studies["capacity"].keeps_history


def test_an_unknown_study_is_one_clear_error():
    with pytest.raises(StudyError, match="unknown study 'nope'; the studies are capacity, connectivity"):
        registry.get("nope")
    result = run("study", "nope")
    assert result.exit_code == 2 and "No such command 'nope'" in result.output


def test_a_study_name_is_registered_once():
    capacity = registry.get("capacity")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(capacity)
    with pytest.raises(ValueError, match="has no collect"):
        registry.Study("x", capacity.configs, capacity.write_outputs, capacity.summary_lines, files=("models",))
