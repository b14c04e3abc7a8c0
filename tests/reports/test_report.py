"""Reports: loading result folders and JSON Lines, aggregation over seeds, the capacity frontier, CSV,
plots and Markdown, on a grid of known values derived from two real tiny runs."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
from rich.console import Console

import memtasks
from memtasks.errors import MemtasksError
from memtasks.fitting.protocol import Search
from memtasks.fitting.result import RunResult
from memtasks.reports import (
    STATS,
    GroupKey,
    aggregate,
    frontier,
    load_runs,
    markdown_report,
    report_data,
    rich_tables,
    write_csv,
    write_plots,
)
from memtasks.reports.aggregate import search_label

CAT, REAL = "Seq2Vec-CatCat-v0", "Seq2Vec-RealReal-v0"
CELLS = ("rnn", "gru")  # registry order: rnn first, although "gru" sorts first alphabetically
SIZES = (16, 32, 64)
SEEDS = (0, 1, 2)
PARAMS = {"rnn": 300, "gru": 900}
CEILING = {CAT: 0.95, REAL: 0.9}  # achievable accuracy / R²
#: Training fraction of the achievable ceiling per (setting, cell, n_examples), one value per seed.
FRACTION = {
    (CAT, "rnn"): {16: [1.0, 1.0, 1.0], 32: [1.0, 0.99, 0.985], 64: [0.9, 0.85, 0.8]},  # frontier 32
    (CAT, "gru"): {16: [1.0, 1.0, 1.0], 32: [0.97, 0.98, 0.99], 64: [1.0, 1.0, 0.995]},  # 64 (32 is not)
    (REAL, "rnn"): {16: [0.5, 0.6, 0.7], 32: [0.4, 0.45, 0.5], 64: [0.1, 0.15, 0.2]},  # nothing; most bits at 32
    (REAL, "gru"): {16: [0.999, 0.995, 0.99], 32: [0.9, 0.92, 0.94], 64: [0.6, 0.7, 0.8]},  # 16
}
FRONTIER = {(CAT, "rnn"): 32, (CAT, "gru"): 64, (REAL, "rnn"): None, (REAL, "gru"): 16}


def value(stat: str, task_id: str, cell: str, n: int, seed: int) -> float:
    """The known value of one statistic of one run of the grid."""
    f = FRACTION[(task_id, cell)][n][seed]
    bits = 2.0 * n * f
    return {"ceiling": CEILING[task_id], "fit": f * CEILING[task_id], "fraction": f, "bits": bits,
            "bits_per_param": bits / PARAMS[cell], "params_total": PARAMS[cell], "steps": 10 + 3 * seed + n % 7,
            "wall_time_s": 0.5 * (seed + 1) + n / 100, "test": 0.1 * seed - 0.05}[stat]


def known(stat: str, task_id: str, cell: str, n: int) -> np.ndarray:
    return np.array([value(stat, task_id, cell, n, s) for s in SEEDS])


def variant(base: RunResult, task_id: str, cell: str, n: int, seed: int) -> RunResult:
    """A copy of a real run carrying the grid's known values."""
    r = copy.deepcopy(base)
    metric = "r2" if task_id == REAL else "accuracy"
    r.task["kwargs"].update(n_examples=n, seed=seed)
    r.task["n_examples"] = n
    r.task["ceiling"][metric] = CEILING[task_id]
    r.cell.update(name=cell, params_total=PARAMS[cell])
    r.protocol["seed"] = seed
    v = {s: value(s, task_id, cell, n, seed) for s in STATS}
    r.best["train"].update({metric: v["fit"], "fraction_of_ceiling": v["fraction"], "bits": v["bits"],
                            "bits_per_param": v["bits_per_param"]})
    r.best["test"][metric] = v["test"]
    r.best["bits_per_param"] = v["bits_per_param"]
    r.steps, r.wall_time_s = int(v["steps"]), v["wall_time_s"]
    r.stop_reason = "ceiling" if v["fraction"] == 1.0 else "plateau"  # the budget stops none unless a test says so
    r.convergence = None  # judged by its stop, as a result from before the doubling test (a test may add evidence)
    return r


#: The search of every run of the grid, and its label in the reports.
LR = 0.002


@pytest.fixture(scope="module")
def base_runs() -> dict[str, RunResult]:
    """One real ten-step run per setting (one trial): the schema comes from the harness, not from this file."""
    proto = memtasks.Protocol(max_steps=10, eval_every=5)
    return {t: memtasks.fit(memtasks.make(t, seq_len=4, n_examples=16, n_test=4), "rnn", hidden=4, protocol=proto,
                            search=Search(lrs=(LR,))) for t in (CAT, REAL)}


@pytest.fixture(scope="module")
def grid(base_runs) -> list[RunResult]:
    """2 settings × 2 cells × 3 sizes × 3 seeds, plus one run interrupted before its first evaluation."""
    runs = [variant(base_runs[t], t, c, n, s) for t in (CAT, REAL) for c in CELLS for n in SIZES for s in SEEDS]
    stopped = variant(base_runs[CAT], CAT, "rnn", 16, 0)
    stopped.protocol["seed"] = stopped.task["kwargs"]["seed"] = 3
    stopped.status = stopped.stop_reason = "interrupted"
    stopped.best = stopped.final = None
    stopped.steps = stopped.evaluations = 0
    stopped.history, stopped.steps_to_ceiling = [], {"50%": None, "90%": None, "100%": None}
    return runs + [stopped]


@pytest.fixture
def folder(tmp_path, grid):
    d = tmp_path / "runs" / "demo"
    d.mkdir(parents=True)
    for i, r in enumerate(grid):
        r.save(d / f"{i:03d}.json")
    (d / "sweep.json").write_text(json.dumps({"name": "demo", "tasks": [CAT, REAL], "seeds": list(SEEDS)}))
    return d


def group_of(groups, task_id, cell, n):
    (g,) = [g for g in groups if (g.key.task_id, g.key.cell, g.key.n_examples) == (task_id, cell, n)]
    return g


# ----- loading ------------------------------------------------------------------------------------


def test_load_runs_reports_corrupt_and_foreign_files_and_ignores_sweep_json(folder, grid):
    (folder / "broken.json").write_text('{"schema_version": 1, "task": ')
    (folder / "foreign.json").write_text(json.dumps({"hello": "world"}))
    (folder / "notes.txt").write_text("not read")
    runs, problems = load_runs(folder)
    assert len(runs) == len(grid)
    assert sorted(r.to_json() for r in runs) == sorted(r.to_json() for r in grid)
    assert len(problems) == 2
    assert any("broken.json" in p and "not valid JSON" in p for p in problems)
    assert any("foreign.json" in p for p in problems)
    assert not any("sweep.json" in p for p in problems)
    assert all("\n" not in p for p in problems)
    one, none = load_runs(folder / "000.json")
    assert len(one) == 1 and none == [] and one[0].to_json() == grid[0].to_json()
    with pytest.raises(MemtasksError, match="expected a results folder"):
        load_runs(folder / "notes.txt")


def test_load_runs_reads_json_lines_with_history_stripped(tmp_path, grid, folder):
    lines = []
    for r in grid:
        d = r.to_dict()
        d["history"] = []
        lines.append(json.dumps(d))
    lines.insert(3, "{truncated")
    baseline = tmp_path / "baseline.jsonl"
    baseline.write_text("\n".join(lines) + "\n\n")
    runs, problems = load_runs(baseline)
    assert len(runs) == len(grid) and all(r.history == [] for r in runs)
    assert problems == [p for p in problems if "baseline.jsonl:4" in p] and len(problems) == 1
    # The same results aggregate to the same report as the sweep folder they came from.
    from_folder, _ = load_runs(folder)
    assert markdown_report(*_report(runs)) == markdown_report(*_report(from_folder))


def test_a_run_in_both_a_folder_and_its_baseline_counts_once(folder, grid):
    (folder / "baseline.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in grid[:5]))
    runs, problems = load_runs(folder)
    assert len(runs) == len(grid)
    assert len(problems) == 5 and all("the same run as" in p for p in problems)


def test_load_runs_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MemtasksError, match="no results found"):
        load_runs(empty)
    with pytest.raises(MemtasksError, match="no such file or folder"):
        load_runs(tmp_path / "missing")
    (empty / "sweep.json").write_text("{}")
    (empty / "bad.json").write_text("[1, 2]")
    with pytest.raises(MemtasksError, match=r"1 file\(s\) or line\(s\) skipped.*bad.json"):
        load_runs(empty)


# ----- aggregation and frontier -------------------------------------------------------------------


def _report(runs, threshold=0.99):
    groups = aggregate(runs)
    return groups, frontier(groups, threshold)


def test_aggregate_means_and_stds_match_numpy(grid):
    groups = aggregate(grid)
    assert len(groups) == 2 * 2 * 3
    for task_id, cell in FRACTION:
        for n in SIZES:
            g = group_of(groups, task_id, cell, n)
            assert g.n_measured == 3 and g.sources == ["random"] and g.varied == []
            for stat in STATS:
                v = known(stat, task_id, cell, n)
                assert g.mean[stat] == pytest.approx(np.mean(v), rel=1e-12, abs=1e-12), (task_id, cell, n, stat)
                assert g.std[stat] == pytest.approx(np.std(v), rel=1e-9, abs=1e-12), (task_id, cell, n, stat)
    g = group_of(groups, CAT, "rnn", 16)
    assert (g.n_runs, g.seeds, g.statuses) == (4, [0, 1, 2, 3], {"completed": 3, "interrupted": 1})
    assert not g.completed and group_of(groups, CAT, "rnn", 32).completed
    assert g.key.y_type == "cat" and group_of(groups, REAL, "gru", 64).key.y_type == "real"


def test_groups_sort_by_setting_and_cell_registry_then_numbers(grid, base_runs):
    groups = aggregate(grid)
    order = [(g.key.task_id, g.key.cell, g.key.n_examples) for g in groups]
    assert order == [(t, c, n) for t in (CAT, REAL) for c in CELLS for n in SIZES]
    custom = copy.deepcopy(base_runs[CAT])
    custom.task["id"] = "Aaa-CatCat-v0"  # not a grid setting: after the grid settings despite its name
    budget = copy.deepcopy(base_runs[CAT])
    budget.cell.update(params_budget=500, hidden_size=7)
    keys = sorted(GroupKey.of(r) for r in [custom, budget, base_runs[REAL], base_runs[CAT]])
    assert [(k.task_id, k.params_budget, k.hidden) for k in keys] == [
        (CAT, 500, None), (CAT, None, 4), (REAL, None, 4), ("Aaa-CatCat-v0", None, 4)]


def test_runs_group_by_their_search_not_by_the_trial_it_selected(grid):
    assert search_label({"lrs": [0.002], "batch_sizes": [64]}) == "lr 0.002 · batch 64"
    assert search_label({"lrs": [0.03, 0.001, 0.01], "batch_sizes": [64]}) == "lr 0.03,0.001,0.01 · batch 64"
    assert search_label({"lrs": [0.01], "batch_sizes": [64], "inits": 3}) == "lr 0.01 · batch 64 · 3 inits"
    assert search_label({"lrs": [0.01], "batch_sizes": [32, 128]}) == "lr 0.01 · batch 32,128"
    # each seed's best trial may have another learning rate and batch size: still one group, nothing "varied"
    picked = copy.deepcopy(grid)
    for r in picked:
        r.search = {"lrs": [0.001, 0.01], "batch_sizes": [16, 64]}
        r.protocol.update(lr=[0.001, 0.01][r.protocol["seed"] % 2], batch_size=[16, 64][r.protocol["seed"] // 2 % 2])
    groups = aggregate(picked)
    assert [g.key.search for g in groups] == ["lr 0.001,0.01 · batch 16,64"] * 12
    assert all(g.varied == [] for g in groups)
    assert [(g.n_runs, g.mean) for g in groups] == [(g.n_runs, g.mean) for g in aggregate(grid)]
    # another search is another group
    other = copy.deepcopy(grid[:3])
    for r in other:
        r.search = {"lrs": [0.01], "batch_sizes": [64]}
    assert len(aggregate(grid + other)) == len(aggregate(grid)) + 1


def test_a_curve_whose_small_sizes_had_a_wider_search_stays_one_curve(grid):
    """A sweep's [[overrides]] may widen the search of some sizes: the curve keeps all its sizes, its label
    names each search with the sizes it measured, and nothing else changes."""
    wider = copy.deepcopy(grid)
    for r in wider:
        if r.task["n_examples"] == 16:
            r.search = {"lrs": [0.001, 0.002], "batch_sizes": [64], "inits": 3}
    groups = aggregate(wider)
    label = f"n=16: lr 0.001,0.002 · batch 64 · 3 inits; n=32,64: lr {LR:g} · batch 64"
    assert {g.key.search for g in groups} == {label}
    assert [(g.n_runs, g.mean) for g in groups] == [(g.n_runs, g.mean) for g in aggregate(grid)]
    rows = frontier(groups)
    assert [r.largest_fitted for r in rows] == [r.largest_fitted for r in frontier(aggregate(grid))]
    assert all(r.sizes_tried == list(SIZES) for r in rows)
    assert markdown_report(groups, rows).count(label) >= 2  # one table per setting, all sizes as its columns


@pytest.mark.parametrize("a, b", [
    ({"lrs": [0.01], "batch_sizes": [32]}, {"lrs": [0.01], "batch_sizes": [64]}),
    ({"lrs": [0.001, 0.003, 0.03], "batch_sizes": [64]}, {"lrs": [0.001, 0.01, 0.03], "batch_sizes": [64]}),
])
def test_different_searches_are_never_one_silent_group(grid, a, b):
    runs = copy.deepcopy([r for r in grid if (r.task["id"], r.cell["name"], r.status) == (CAT, "rnn", "completed")])
    for r in runs:
        r.search = a if r.protocol["seed"] == 0 else b
    groups = aggregate(runs)
    assert len(groups) == 6 or all(g.varied for g in groups if g.n_runs == 3)


def test_frontier_picks_the_largest_size_fitted_on_average(grid):
    groups, rows = _report(grid)
    assert [(r.task_id, r.cell) for r in rows] == list(FRONTIER)
    for r in rows:
        assert r.largest_fitted == FRONTIER[(r.task_id, r.cell)], (r.task_id, r.cell)
        assert r.sizes_tried == list(SIZES) and r.threshold == 0.99
        mean_bits = [np.mean(known("bits", r.task_id, r.cell, n)) for n in SIZES]
        assert r.max_bits == pytest.approx(max(mean_bits))
        assert r.max_bits_per_param == pytest.approx(max(mean_bits) / PARAMS[r.cell])
        assert r.params_total == PARAMS[r.cell]
    loose = {(r.task_id, r.cell): r.largest_fitted for r in frontier(groups, threshold=0.55)}
    assert loose[(REAL, "rnn")] == 16 and loose[(CAT, "rnn")] == 64


# ----- outputs ------------------------------------------------------------------------------------


def test_csv_has_one_row_per_group(tmp_path, grid):
    groups, _ = _report(grid)
    path = write_csv(groups, tmp_path / "summary.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(groups)
    header = list(rows[0])
    assert header[:4] == ["task_id", "kind", "x_type", "y_type"]
    assert {f"{s}_{m}" for s in STATS for m in ("mean", "std")} <= set(header)
    assert {"n_runs", "seeds", "params_budget", "hidden", "search", "seq_len", "n_examples"} <= set(header)
    assert "lr" not in header and "epochs_mean" not in header and "steps_mean" in header
    first = rows[0]
    assert (first["task_id"], first["cell"], first["n_examples"], first["params_budget"]) == (CAT, "rnn", "16", "")
    assert (first["n_runs"], first["seeds"], first["hidden"], first["search"]) == \
        ("4", "0 1 2 3", "4", "lr 0.002 · batch 64")
    for row, g in zip(rows, groups, strict=True):
        assert float(row["fraction_mean"]) == g.mean["fraction"] and float(row["bits_std"]) == g.std["bits"]
    assert write_csv(groups, tmp_path / "again.csv").read_bytes() == path.read_bytes()


def test_plots_are_pngs_with_the_data_plotted_beside_them(tmp_path, grid):
    groups, rows = _report(grid)
    written = write_plots(groups, rows, tmp_path / "a")
    names = sorted(p.name for p in written)
    assert names == sorted(f"{n}.{e}" for n in ("fit_vs_size", "bits_vs_params", "frontier") for e in ("png", "json"))
    for p in written:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    data = {p.stem: json.loads(p.read_text()) for p in written if p.suffix == ".json"}

    panels = {p["task_id"]: p for p in data["fit_vs_size"]["panels"]}
    assert list(panels) == [CAT, REAL]
    for (task_id, cell), _ in FRACTION.items():
        (line,) = [ln for ln in panels[task_id]["lines"] if ln["cell"] == cell]
        assert line["n_examples"] == list(SIZES)
        assert line["mean"] == [group_of(groups, task_id, cell, n).mean["fraction"] for n in SIZES]
        assert line["std"] == [group_of(groups, task_id, cell, n).std["fraction"] for n in SIZES]

    points = data["bits_vs_params"]["points"]
    assert len(points) == 4 and not any(p["teacher"] for p in points)
    for p in points:  # each series at the dataset size where it stores the most bits
        bits = {n: group_of(groups, p["task_id"], p["cell"], n).mean["bits"] for n in SIZES}
        assert p["n_examples"] == max(bits, key=bits.get) and p["bits"] == max(bits.values())
        assert p["params_total"] == PARAMS[p["cell"]]
    assert {p["n_examples"] for p in points} != {max(SIZES)}, "the fixture should not always peak at the largest n"
    assert data["bits_vs_params"]["reference"]["bits_per_param"] == 5.0
    assert "teacher" not in data["bits_vs_params"]["title"]

    bars = {(b["task_id"], b["cell"]): b["largest_fitted"] for b in data["frontier"]["bars"]}
    assert bars == FRONTIER

    # Deterministic: the same groups give the same bytes.
    again = write_plots(groups, rows, tmp_path / "b")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


def test_teacher_runs_are_flagged_in_the_bits_plot(tmp_path, grid):
    cat = [r for r in grid if r.task["id"] == CAT]
    teacher = [copy.deepcopy(r) for r in cat if r.cell["name"] == "gru"]
    for r in teacher:
        r.task["kwargs"]["source"] = "teacher"
        r.search = {"lrs": [0.001, 0.01], "batch_sizes": [64]}  # another search: a group of its own
    groups, rows = _report(cat + teacher)
    written = write_plots(groups, rows, tmp_path)
    data = json.loads((tmp_path / "bits_vs_params.json").read_text())
    assert tmp_path / "bits_vs_params.json" in written
    assert sum(p["teacher"] for p in data["points"]) == 1 and "teacher" in data["title"]
    assert "random/teacher" not in markdown_report(groups, rows) and "teacher targets" in markdown_report(groups, rows)


def test_mixed_settings_inside_a_group_are_flagged(grid):
    mixed = copy.deepcopy(grid[0])
    mixed.task["kwargs"]["out_classes"] = 7
    mixed.protocol["seed"] = mixed.task["kwargs"]["seed"] = 9
    groups, rows = _report(grid + [mixed])
    assert group_of(groups, CAT, "rnn", 16).varied == ["task.out_classes"]
    assert "differ in task.out_classes" in markdown_report(groups, rows)


def test_markdown_is_deterministic_and_holds_the_numbers(grid):
    groups, rows = _report(grid)
    md = markdown_report(groups, rows)
    shuffled = list(reversed(grid))
    assert markdown_report(*_report(shuffled)) == md

    def pm(stat, task_id, cell, n):
        v = known(stat, task_id, cell, n)
        return f"{np.mean(v):.3f} ± {np.std(v):.3f}"

    bpp = pm("bits_per_param", CAT, "rnn", 64)  # rnn stores the most bits per parameter at n=64
    row = (f"| rnn | hidden 4 | {pm('fraction', CAT, 'rnn', 16)}* | {pm('fraction', CAT, 'rnn', 32)} | "
           f"{pm('fraction', CAT, 'rnn', 64)} | {bpp} (n=64) | 32 |")
    assert row in md.splitlines()
    assert "| Seq2Vec-RealReal-v0 | rnn | hidden 4 | 4 | lr 0.002 · batch 64 | 300 | – | 16 32 64 |" in md
    assert "## Seq2Vec-CatCat-v0 · seq_len 4 · lr 0.002 · batch 64 · random targets" in md
    assert md.index("## Seq2Vec-CatCat-v0") < md.index("## Seq2Vec-RealReal-v0") < md.index("## Capacity frontier")
    assert 'only for random-target runs (`source="random"`)' in md
    assert "\\* not every run" in md


def test_figures_the_step_budget_stopped_are_marked_everywhere_the_report_shows_them(grid, tmp_path):
    runs = copy.deepcopy(grid)
    for r in runs:
        if (r.task["id"], r.cell["name"], r.task["n_examples"], r.protocol["seed"]) in {(CAT, "gru", 32, 1),
                                                                                        (CAT, "gru", 32, 2)}:
            r.stop_reason = "budget"
    groups, rows = _report(runs)
    assert [(g.key.cell, g.key.n_examples, g.at_budget) for g in groups if g.at_budget] == [("gru", 32, 2)]
    md = markdown_report(groups, rows)
    cat, real = [line for line in md.splitlines() if line.startswith("| gru | hidden 4 |")]  # setting order
    assert cat.split(" | ")[3].endswith("†") and cat.count("†") == 1 and "†" not in real  # only n=32's column
    assert "† 2 of 37 runs, in 1 of 12 groups, are not shown converged" in md
    assert "†" not in markdown_report(*_report(grid))
    console = Console(record=True, width=250)
    for t in rich_tables(groups, rows):
        console.print(t)
    assert console.export_text().count("†") == 1
    with write_csv(groups, tmp_path / "s.csv").open(newline="") as f:
        counts = {(r["cell"], r["n_examples"], r["task_id"]): r["n_at_budget"] for r in csv.DictReader(f)}
    assert counts[("gru", "32", CAT)] == "2" and set(counts.values()) == {"0", "2"}


def test_runs_the_doubling_test_did_not_pass_are_marked_whatever_stopped_them(grid, tmp_path):
    runs = copy.deepcopy(grid)
    evidence = {"rule": "doubling", "tolerance": 0.01, "from_step": 500, "to_step": 1000, "from_bits": 9.0,
                "to_bits": 10.0, "gain": 0.1, "flat": False}
    for r in runs:
        if r.best is not None:
            r.convergence = {**evidence, "converged": True}
        if (r.task["id"], r.cell["name"], r.task["n_examples"], r.protocol["seed"]) == (REAL, "rnn", 64, 0):
            r.convergence = {**evidence, "converged": False}  # stopped on a plateau, but not shown converged
    groups, rows = _report(runs)
    assert [(g.key.task_id, g.key.cell, g.key.n_examples) for g in groups if g.unconverged] == [(REAL, "rnn", 64)]
    assert "† 1 of 37 runs, in 1 of 12 groups, are not shown converged" in markdown_report(groups, rows)
    with write_csv(groups, tmp_path / "s.csv").open(newline="") as f:
        marks = {(r["cell"], r["n_examples"], r["task_id"]): r["n_unconverged"] for r in csv.DictReader(f)}
    assert marks[("rnn", "64", REAL)] == "1" and set(marks.values()) == {"0", "1"}


def test_rich_tables_and_report_data(grid):
    groups, rows = _report(grid)
    tables = rich_tables(groups, rows)
    assert len(tables) == 3
    console = Console(record=True, width=250)
    for t in tables:
        console.print(t)
    text = console.export_text()
    v = known("fraction", CAT, "rnn", 32)
    assert f"{np.mean(v):.3f} ± {np.std(v):.3f}" in text and "Capacity frontier" in text
    data = report_data(groups, rows)
    json.dumps(data, allow_nan=False)
    assert data["n_runs"] == len(grid) and data["threshold"] == 0.99
    assert len(data["groups"]) == 12 and len(data["frontier"]) == 4
    assert data["groups"][0]["mean"]["fraction"] == groups[0].mean["fraction"]
    assert [r["largest_fitted"] for r in data["frontier"]] == list(FRONTIER.values())


def test_a_group_with_no_evaluation_has_no_statistics(tmp_path, grid):
    stopped = [r for r in grid if r.status == "interrupted"][0]
    alone = copy.deepcopy(stopped)
    alone.search = {"lrs": [0.5], "batch_sizes": [64]}  # a group of its own: its only run was never evaluated
    groups, rows = _report(grid + [alone])
    (g,) = [g for g in groups if g.key.search.startswith("lr 0.5 ")]
    assert (g.n_runs, g.n_measured, g.statuses) == (1, 0, {"interrupted": 1})
    assert set(g.mean.values()) == {None} and set(g.std.values()) == {None}
    (row,) = [r for r in rows if r.search.startswith("lr 0.5 ")]
    assert row.largest_fitted is None and row.max_bits is None and row.sizes_tried == [16]
    md = markdown_report(groups, rows)
    assert "## Seq2Vec-CatCat-v0 · seq_len 4 · lr 0.5 · batch 64 · random targets" in md
    assert "| rnn | hidden 4 | –* | – | – |" in md
    written = write_plots([g], [row], tmp_path)
    assert json.loads((tmp_path / "frontier.json").read_text())["bars"][0]["largest_fitted"] is None
    assert len(written) == 6
