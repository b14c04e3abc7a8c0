"""The Collins et al. studies: their grids, their analysis on known numbers, and each end to end at a tiny size."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from memtasks.fitting.result import RunResult
from memtasks.studies import capacity, per_unit
from memtasks.studies.common import StudyError, sweep_name
from tests.helpers import ROOT, assert_bad_input, run, same_up_to_rounding


def test_the_capacity_grid_trains_to_convergence_and_checks_each_cells_peak():
    (main,) = capacity.configs()
    assert main.cells == ["rnn", "irnn", "lstm", "gru", "ugrnn", "intersection", "nlstm", "mlp"]
    assert len(main.params) >= 2 and main.seeds == [0, 1] and main.bits_per_param == list(capacity.BITS_PER_PARAM)
    assert main.protocol["rule"] == "doubling" and main.protocol["max_steps"] == capacity.MAX_STEPS
    assert main.protocol["min_steps"] == capacity.MIN_STEPS and main.search_spec().halving
    (scaled,) = capacity.configs(scale=4)
    assert scaled.protocol["max_steps"] == 4 * capacity.MAX_STEPS and scaled.seeds == list(range(8))
    assert scaled.name != main.name and capacity.configs(["gru"])[0].name == "study-capacity-gru"
    with pytest.raises(StudyError, match="scale must be a positive number"):
        capacity.configs(scale=0)


def _capacity_run(cell: str, params: int, size: float, bits: float, steps: int, converged: bool) -> RunResult:
    """A finished capacity run as the grid writes it, with only what the study reads."""
    return RunResult(
        memtasks_version="0", created="", task={"id": capacity.TASK, "kwargs": {}, "n_examples": 10},
        cell={"name": cell, "params_total": params}, protocol={"max_steps": steps}, search={}, status="completed",
        stop_reason="converged" if converged else "budget", steps=steps, evaluations=2,
        best={"step": steps, "train": {"bits": bits, "fraction_of_ceiling": 0.5}},  # type: ignore[typeddict-item]
        final=None, steps_to_ceiling={}, history=[], lr_history=[], trials=[], selected_trial=0, wall_time_s=0.0,
        train_time_s=0.0, eval_time_s=0.0, batched_with=1, environment={}, convergence={"converged": converged},
        extra={"sweep_point": {"params": params, "bits_per_param": size, "seed": 0}})


def test_the_budget_check_follows_each_cells_peak():
    """The check is chosen from the grid's results: each cell at the budget and size where it stored the most, with
    four times the cap, passes and min_steps; peaks that cells share are one sweep; after it, nothing more."""
    (grid,) = capacity.configs(["rnn", "gru", "lstm"])
    runs = [_capacity_run("rnn", 500, 2.0, 600, 64_000, True), _capacity_run("rnn", 1000, 2.0, 1300, 64_000, False),
            _capacity_run("gru", 500, 4.0, 700, 64_000, True), _capacity_run("gru", 1000, 1.0, 650, 64_000, True),
            _capacity_run("lstm", 1000, 2.0, 1500, 64_000, True)]
    runs += [_capacity_run("ugrnn", 1000, 2.0, 1500, 64_000, True), _capacity_run("ugrnn", 1000, 1.0, 900, 64_000, True)]
    # a peak is the size with the most bits over seeds; one seed short of converged keeps it from the check
    mixed = dataclasses.replace(_capacity_run("irnn", 500, 2.0, 650, 64_000, False), extra={"sweep_point": {
        "params": 500, "bits_per_param": 2.0, "seed": 1}})
    runs += [_capacity_run("irnn", 500, 2.0, 640, 64_000, True), mixed]
    checks = capacity.followup([grid], runs)  # rnn's and irnn's peaks are not converged: lower bounds, not re-run
    assert [(c.cells, c.params, c.bits_per_param) for c in checks] == [
        (["gru"], [500], [4.0]), (["lstm", "ugrnn"], [1000], [2.0])]
    for c in checks:
        assert c.name.startswith(grid.name + "-check-") and c.seeds == grid.seeds and c.search == grid.search
        for key in ("max_steps", "passes", "min_steps"):
            assert c.protocol[key] == capacity.CHECK_FACTOR * grid.protocol[key]
    assert capacity.followup([grid, *checks], runs) == []
    # the check's row compares each peak at both protocols
    longer = [_capacity_run("rnn", 1000, 2.0, 1313, 256_000, True)]
    (row,) = capacity.budget_check(capacity.points(runs + longer))
    assert (row["cell"], row["steps"], row["long_steps"]) == ("rnn", 64_000, 256_000)
    assert row["gain"] == pytest.approx(1.01) and (row["unconverged"], row["long_unconverged"]) == (1, 0)
    # the README's section: the checked peaks' verdict, and the peaks left out by name
    best = capacity.best_by_cell(capacity.capacity_by_budget(capacity.points(runs)))
    text = capacity._check_text([{**row, "cell": "lstm"}], best)
    assert "1 of 1 peaks moved by 2% or less" in text and "Not re-run: rnn, irnn," in text
    assert "stayed within that" in text and "rose by more" not in text and "fell by more" not in text
    moved = capacity._check_text([{**row, "cell": "lstm", "gain": 1.03}, {**row, "cell": "gru", "gain": 0.97}], best)
    assert "0 of 2 peaks moved by 2% or less" in moved and "rose by more" in moved and "fell by more" in moved
    assert "stayed within that" not in moved
    assert capacity._check_text([], best).startswith("The budget check was not run.")


def test_the_per_unit_grid_spans_a_quarter_to_four_times_the_units():
    configs = per_unit.configs()
    dims = {(c.hidden[0], c.task_kwargs["dim"]) for c in configs}
    assert {n for n, _ in dims} == set(per_unit.HIDDEN)
    for n in per_unit.HIDDEN:
        ratios = sorted(d / n for m, d in dims if m == n)
        assert ratios[0] == 0.25 and ratios[-1] == 4.0
    for c in configs:  # the encoder is as wide as the input: the hidden units are the only bottleneck
        assert c.embed_dim == c.task_kwargs["dim"] + 1 and c.tasks == [per_unit.TASK] and c.seq_len == [1]
    assert len({c.name for c in configs}) == len(configs)
    assert sweep_name("per-unit", ["rnn", "my.mod:cell"], 0.5) == "study-per-unit-x0.5-rnn-my.mod-cell"


@pytest.mark.parametrize("curve, expected", [
    ([(0.25, 1.0), (0.5, 0.99), (1.0, 0.95), (2.0, 0.5), (4.0, 0.25)], (2 ** (0.05 / 0.45), "=")),
    ([(0.25, 0.5), (0.5, 0.2)], (0.25, "<")),
    ([(0.25, 1.0), (4.0, 0.95)], (4.0, ">")),
    ([(1.0, 0.9), (2.0, 0.89)], (1.0, "=")),  # exactly at the level: the crossing is there
])
def test_the_recall_threshold_interpolates_in_log_dim(curve, expected):
    value, relation = per_unit.threshold(curve)
    assert relation == expected[1] and value == pytest.approx(expected[0])


def test_bits_per_real_is_the_gaussian_channel_capacity():
    assert per_unit.bits_per_real(0.75) == pytest.approx(1.0)  # 1/(1-R²) = 4: one bit
    assert per_unit.bits_per_real(-0.2) == 0.0 and per_unit.bits_per_real(1.0) == 8.0
    assert per_unit.bits_per_real(1 - 2 ** -20) == 8.0  # capped like every real target


def test_capacity_study_end_to_end_at_a_tiny_size(tmp_path):
    out = tmp_path / "capacity"
    result = run("study", "capacity", "--cells", "rnn", "--scale", "0.005", "--runs", str(tmp_path / "runs"),
                 "--out", str(out), "--workers", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "rnn:" in result.output and "bits/param" in result.output
    names = {p.name for p in out.iterdir()}
    assert {"results.jsonl", "study.json", "capacity.csv", "best.csv", "bits_vs_params.png",
            "bits_vs_params.json", "README.md"} <= names
    lines = (out / "results.jsonl").read_text().splitlines()
    grid = len(capacity.BUDGETS) * len(capacity.BITS_PER_PARAM)
    every = [RunResult.from_dict(json.loads(line)) for line in lines]
    runs = [r for r in every if r.protocol["max_steps"] == min(r.protocol["max_steps"] for r in every)]
    assert len(runs) == grid
    peak = capacity.best_by_cell(capacity.capacity_by_budget(capacity.points(runs)))[0]
    checked = not peak["peak_unconverged"]  # a converged peak is re-run with 4x the steps, a lower bound is not
    assert len(lines) == grid + checked  # the budgets x sizes x one seed, and the check at the peak
    study = json.loads((out / "study.json").read_text())
    assert study["study"] == "capacity" and study["wall_time_s"] > 0 and len(study["sweeps"]) == 1 + checked
    assert not checked or "-check-" in study["sweeps"][1]["name"]
    plotted = json.loads((out / "bits_vs_params.json").read_text())
    assert len(plotted["bits_vs_params"]["rnn"]["params"]) == len(capacity.BUDGETS)
    readme = (out / "README.md").read_text()
    assert "5 bits per parameter" in readme and "memtasks study capacity --cells rnn" in readme
    assert "Would more steps change it?" in readme and "| rnn |" in readme
    assert ("Not re-run: rnn" in readme) == (not checked)
    # the outputs are a pure function of results.jsonl and study.json
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run("study", "capacity", "--from", str(out))
    assert again.exit_code == 0, again.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # and the sweeps resume: a second run trains nothing and gives the same results
    rerun = run("study", "capacity", "--cells", "rnn", "--scale", "0.005", "--runs", str(tmp_path / "runs"),
                "--out", str(out), "--workers", "1", "--no-progress")
    assert rerun.exit_code == 0 and "0 to run" in rerun.stderr
    assert (out / "results.jsonl").read_bytes() == before["results.jsonl"]


def test_per_unit_study_end_to_end_at_a_tiny_size(tmp_path):
    out = tmp_path / "per-unit"
    result = run("study", "per-unit", "--cells", "gru", "--scale", "0.005", "--runs", str(tmp_path / "runs"),
                 "--out", str(out), "--workers", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "gru: R² < 0.9 at dim/N" in result.output
    names = {p.name for p in out.iterdir()}
    assert {"results.jsonl", "study.json", "recall.csv", "thresholds.csv", "recall_vs_dim.png",
            "recall_vs_dim.json", "README.md"} <= names
    rows = (out / "recall.csv").read_text().splitlines()
    assert len(rows) == 1 + len(per_unit.HIDDEN) * len(per_unit.RATIOS)
    curves = json.loads((out / "recall_vs_dim.json").read_text())
    assert curves["gru"]["dim_per_unit"] == list(per_unit.RATIOS)
    for r2, reals, x in zip(curves["gru"]["r2"], curves["gru"]["reals_per_unit"], per_unit.RATIOS):
        assert -10 < r2 <= 1 and reals == pytest.approx(x * max(r2, 0), abs=0.05) or math.isnan(r2)
    readme = (out / "README.md").read_text()
    assert "one real number per hidden unit" in readme and "| gru |" in readme


def test_a_study_of_another_size_never_writes_the_committed_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("study", "per-unit", "--cells", "gru", "--scale", "0.003", "--workers", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    out = tmp_path / "runs" / "studies" / "study-per-unit-x0.003-gru"
    assert (out / "README.md").is_file() and (out / "results.jsonl").is_file()
    assert not (tmp_path / "baselines").exists()


def test_bad_study_input_is_one_line(tmp_path):
    assert_bad_input(run("study", "capacity", "--scale", "0", "--out", str(tmp_path / "o")),
                     "scale must be a positive number")
    assert_bad_input(run("study", "per-unit", "--from", str(tmp_path / "missing")), "results.jsonl: no such file")
    assert_bad_input(run("study", "capacity", "--cells", "lstn", "--scale", "0.01", "--runs", str(tmp_path / "r"),
                         "--out", str(tmp_path / "o")), "unknown cell 'lstn'")
    assert_bad_input(run("study", "capacity", "--from", str(tmp_path), "--scale", "2"), "takes no --cells or --scale")
    assert_bad_input(run("study", "per-unit", "--cells", " , "), "--cells ' , ': give comma-separated cells")
    assert_bad_input(run("study", "capacity", "--workers", "0", "--scale", "0.01", "--runs", str(tmp_path / "r"),
                         "--out", str(tmp_path / "o")), "--workers must be a positive integer (1 or more), got 0")
    assert not (tmp_path / "r").exists()  # nothing ran


@pytest.mark.parametrize("study, files", [
    ("capacity", ("README.md", "capacity.csv", "best.csv", "bits_vs_params.json")),
    ("per-unit", ("README.md", "recall.csv", "thresholds.csv", "recall_vs_dim.json")),
    ("noise", ("README.md", "noise.csv", "curves.json", "fitting_time.json")),
    ("rnn-vs-mlp", ("README.md", "points.csv", "against_mlp.csv", "rnn_vs_mlp.json")),
    ("difficulty", ("README.md", "difficulty.csv", "per_example.csv", "histograms.json", "dispersion.json")),
    ("connectivity", ("README.md", "connectivity.csv", "heatmaps.json", "by_distance.json")),
])
def test_the_committed_studies_regenerate_from_their_results(study, files, tmp_path):
    """Every number in a committed study's README and tables comes from its committed results.jsonl (and, for
    connectivity, its committed models). Numbers are compared to float rounding: connectivity measures its
    gradients again, and those differ across CPU kinds in the last printed digit."""
    if study == "difficulty":
        pytest.importorskip("sklearn")  # its labels are regenerated from SeqDigits-v0
    folder = ROOT / "baselines" / "studies" / study
    result = run("study", study, "--from", str(folder), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    for name in files:
        want, got = (folder / name).read_text(), (tmp_path / name).read_text()
        if study == "connectivity":
            assert same_up_to_rounding(want, got) == [], name
        else:  # pure formatting of committed numbers: byte for byte
            assert got == want, name
    info = json.loads((folder / "study.json").read_text())
    assert info["command"] == f"memtasks study {study} --workers 2" and info["failed"] == 0
    assert info["wall_time_s"] < 3600  # each study within the hour on the 2-core machine it reports


def test_a_studys_followup_runs_after_its_sweeps_until_it_returns_none(tmp_path, monkeypatch):
    """Sweeps chosen from the results so far run after the study's own, one round at a time, join its results and
    its study.json, and resume like the rest."""
    from memtasks.studies import registry

    rounds = []

    def followup(done, results):
        rounds.append((len(done), len(results)))
        if len(done) == 3:
            return []
        last = done[-1]
        return [dataclasses.replace(last, name=f"{done[0].name}-round{len(done)}", params=[500], bits_per_param=[1.0],
                                    protocol={**last.protocol, "max_steps": 2 * last.protocol["max_steps"]})]

    study = dataclasses.replace(registry.get("capacity"), followup=followup)
    monkeypatch.setitem(registry._STUDIES, "capacity", study)
    args = ("study", "capacity", "--cells", "rnn", "--scale", "0.002", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress")
    result = run(*args)
    assert result.exit_code == 0, result.output
    grid = len(capacity.BUDGETS) * len(capacity.BITS_PER_PARAM)
    assert rounds == [(1, grid), (2, grid + 1), (3, grid + 2)]
    info = json.loads((tmp_path / "out" / "study.json").read_text())
    assert [s["name"].rsplit("-", 1)[-1] for s in info["sweeps"][1:]] == ["round1", "round2"]
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == grid + 2
    again = run(*args)
    assert again.exit_code == 0 and again.stderr.count(" 0 to run") == 3  # nothing trained twice
