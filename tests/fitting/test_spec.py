"""One measurement spec from the command line to the engine, one numeric path per cell, and a validator that
loads no training code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import memtasks
from memtasks.fitting.engine import Trial, TrialRun, train_trials
from memtasks.fitting.protocol import Protocol, Search
from memtasks.fitting.spec import MeasurementSpec, resolve
from memtasks.models.cells import BUILTIN_CELLS
from memtasks.models.registry import cell_spec, register_cell
from memtasks.sweeps.config import Point
from tests.helpers import ROOT

SPEC = MeasurementSpec(task="Seq2Vec-CatCat-v0", cell="gru", n_examples=24, seq_len=4, seed=1, hidden=6,
                       embed_dim=5, task_kwargs={"n_test": 8}, protocol=Protocol(max_steps=30, eval_every=10),
                       search=Search(lrs=(0.01, 0.03)))


def test_a_spec_round_trips_through_its_dict_and_reads_the_stored_form():
    assert Point is MeasurementSpec
    assert MeasurementSpec.from_dict(SPEC.to_dict()) == SPEC
    stored = {**SPEC.to_dict(), "protocol": {"max_steps": 30, "eval_every": 10, "patience": 8}}  # a default, spelt out
    assert MeasurementSpec.from_dict(stored) == SPEC and MeasurementSpec.from_dict(stored).shape == SPEC.shape
    assert SPEC.to_dict()["protocol"] == {"max_steps": 30, "eval_every": 10}
    assert json.loads(json.dumps(SPEC.to_dict())) == SPEC.to_dict()


def test_resolving_a_size_in_bits_per_parameter_counts_the_model_first():
    spec = MeasurementSpec(task="Seq2Vec-CatCat-v0", cell="lstm", bits_per_param=2.0, seq_len=5, params=500,
                           task_kwargs={"n_test": 4})
    m = resolve(spec)
    # 4 classes, one scored step: 2 bits per example, so 2 bits per parameter is one example per parameter
    assert m.task.spec.kwargs["n_examples"] == round(2.0 * m.params_total / 2.0) == m.params_total
    assert abs(m.params_total - 500) < 50 and m.task.spec.kwargs["seq_len"] == 5


def _run_in_process(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_same_spec_and_grouping_give_bit_identical_results_in_two_processes():
    code = ("import json, memtasks.fitting.spec as s, memtasks.fitting.trainer as t\n"
            f"spec = s.MeasurementSpec.from_dict({SPEC.to_dict()!r})\n"
            "other = s.MeasurementSpec.from_dict({**spec.to_dict(), 'seed': 2})\n"
            "out = []\n"
            "t.measure([s.resolve(spec), s.resolve(other)], lambda m, r, _: out.append(r.to_dict()))\n"
            "for r in out:\n"
            "    for e in r['history']:\n"
            "        e.pop('time_s')  # wall clock: the one thing that may differ\n"
            "print(json.dumps([[r['history'], r['trials']] for r in out]))\n")
    first, second = _run_in_process(code), _run_in_process(code)
    assert first == second
    histories = json.loads(first)
    assert len(histories) == 2 and histories[0][0][0]["step"] == 10
    assert histories[0][0] != histories[1][0]  # two seeds: a real difference, not one run printed twice


@pytest.mark.parametrize("cell", list(BUILTIN_CELLS))
def test_a_trial_alone_and_in_a_group_agrees_over_its_first_30_steps(cell):
    """One numeric path per cell: a built-in cell trains through its batched kernel however many trials there are,
    so a trial alone (K = 1) and in a group of three follows the same arithmetic, to float rounding."""
    task_id = "NextStep-CatCat-v0"
    made = [memtasks.make(task_id, seq_len=4, n_examples=n, n_test=8, seed=s) for s, n in ((0, 24), (1, 24), (2, 40))]
    trials = [Trial(t.train, t.test, seed=k, lr=1e-2, batch_size=8, key=k) for k, t in enumerate(made)]
    protocol = Protocol(max_steps=30, eval_every=1)

    def train(group: list[Trial]) -> dict[int, TrialRun]:
        runs: dict[int, TrialRun] = {}
        train_trials(group, cell_spec(cell), 6, embed_dim=5, cell_kwargs={}, protocol=protocol,
                     on_done=lambda r: runs.__setitem__(r.trial.key, r))
        return runs

    together, alone = train(trials)[0], train(trials[:1])[0]
    assert (together.batched_with, alone.batched_with) == (3, 1)
    assert [e["step"] for e in together.history] == [e["step"] for e in alone.history] == list(range(1, 31))
    for x, y in zip(together.history, alone.history, strict=True):
        assert x["train"]["loss"] == pytest.approx(y["train"]["loss"], rel=1e-5, abs=1e-6)
        assert x["test"]["loss"] == pytest.approx(y["test"]["loss"], rel=1e-5, abs=1e-6)


def test_a_kernel_belongs_to_its_registration_not_to_a_name():
    spec = cell_spec("lstm")
    assert spec.kernel is not None and all(cell_spec(c).kernel is not None for c in BUILTIN_CELLS)
    try:
        replaced = register_cell("lstm", BUILTIN_CELLS["gru"][0], "a GRU under another name", override=True)
        assert replaced.kernel is None  # never the old LSTM kernel over a GRU's weights
        task = memtasks.make("Seq2Vec-CatCat-v0", seq_len=3, n_examples=8, n_test=0)
        result = memtasks.fit(task, "lstm", hidden=4, protocol=Protocol(max_steps=2), search=Search(lrs=(0.01,)))
        assert result.cell["batched"] is False and result.status == "completed"
    finally:
        register_cell("lstm", spec.factory, spec.description, override=True, source="builtin", kernel=spec.kernel)
    assert cell_spec("lstm").kernel is spec.kernel


def test_validating_a_submission_loads_no_training_code():
    submission = ROOT / "leaderboard" / "core-v0" / "submissions" / "rnn.json"
    code = ("import sys\nfrom memtasks.leaderboard.validate import validate_file\n"
            f"report = validate_file({str(submission)!r})\n"
            "assert report.ok, report.problems\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('lightning', 'pytorch_lightning')) or m in "
            "('memtasks.fitting.engine', 'memtasks.fitting.trainer', 'memtasks.fitting.optim'))\n"
            "print(loaded)\n")
    assert _run_in_process(code).strip() == "[]"


def test_the_validate_command_starts_without_lightning():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "memtasks.cli", "leaderboard", "validate",
                           "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and "Usage:" in proc.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line]
    assert "memtasks.cli" in imported and not [m for m in imported if m.startswith("lightning")]
