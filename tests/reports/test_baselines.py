"""The committed baselines: every table in their READMEs and every summary CSV is what the report makes
from the committed results, so no number there comes from anywhere else."""

from __future__ import annotations

import pytest

from memtasks.cli.sweeps import REPORT_END, REPORT_START
from memtasks.reports import aggregate, frontier, load_runs, markdown_report, write_csv
from memtasks.sweeps.config import Point, SweepConfig
from tests.helpers import ROOT

BASELINES = ROOT / "baselines"
SWEEPS = {"baseline.toml": (BASELINES, 768), "capacity/capacity.toml": (BASELINES / "capacity", 240)}


@pytest.mark.parametrize("config", sorted(SWEEPS))
def test_committed_tables_regenerate_from_the_committed_results(config, tmp_path):
    folder, count = SWEEPS[config]
    assert (BASELINES / config).is_file()
    runs, problems = load_runs(folder / "results.jsonl")
    assert (len(runs), problems) == (count, [])
    assert all(r.status == "completed" and r.history == [] for r in runs)
    # the committed results are exactly the points of the committed config, each measured with its own search
    # and step budget (the config's, or an override's)
    config_ = SweepConfig.load(BASELINES / config)
    points = {p.stem: p for p in config_.points()}
    assert sorted(Point(**r.extra["sweep_point"]).stem for r in runs) == sorted(points)
    for r in runs:
        point = points[Point(**r.extra["sweep_point"]).stem]
        assert r.search == point.search.to_dict() and len(r.trials) == len(point.search)
        assert r.protocol["max_steps"] == point.protocol.max_steps
    groups = aggregate(runs)
    rows = frontier(groups)
    readme = (folder / "README.md").read_text()
    section = readme[readme.index(REPORT_START) + len(REPORT_START):readme.index(REPORT_END)]
    assert section.strip() == markdown_report(groups, rows).strip()
    assert (folder / "report" / "report.md").read_text() == markdown_report(groups, rows)
    assert write_csv(groups, tmp_path / "summary.csv").read_bytes() == (folder / "report" / "summary.csv").read_bytes()


def test_the_long_budget_check_holds_exactly_its_configs_points():
    runs, problems = load_runs(BASELINES / "long_budget" / "results.jsonl")
    config = SweepConfig.load(BASELINES / "long_budget" / "long_budget.toml")
    assert problems == [] and all(r.status == "completed" for r in runs)
    assert sorted(Point(**r.extra["sweep_point"]).stem for r in runs) == sorted(p.stem for p in config.points())
    assert all(r.search == config.search_spec().to_dict() and r.protocol["max_steps"] == 20_000 for r in runs)


def test_every_small_set_reaches_its_ceiling():
    """Sets of 8 examples, and categorical sets of 32, carry a fraction of a bit per parameter: the committed
    baselines fit every one of them to the achievable ceiling (R² ≥ 0.999 of it for real targets)."""
    runs, _ = load_runs(BASELINES / "results.jsonl")
    small = [r for r in runs if r.task["n_examples"] == 8 or (r.task["n_examples"] == 32
                                                              and r.task["layout"]["y_type"] == "cat")]
    assert len(small) == 384
    missed = [(r.task["id"], r.cell["name"], r.task["n_examples"], r.extra["sweep_point"]["seed"]) for r in small
              if not (r.stop_reason == "ceiling" or (r.task["layout"]["y_type"] == "real"
                                                     and r.best["train"]["fraction_of_ceiling"] >= 0.999))]
    assert missed == []
