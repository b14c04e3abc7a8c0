"""Sweeps: grid expansion, config errors, grouping, the worst-case refusal, resume after a kill, the lock,
corrupt files, failures, Ray."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from memtasks.cli import main
from memtasks.fitting.cost import trial_step_seconds
from memtasks.fitting.protocol import DEFAULT_LRS
from memtasks.fitting.result import RunResult
from memtasks.fitting.spec import resolve
from memtasks.reports import export_jsonl
from memtasks.sweeps.config import SweepConfig, SweepError
from memtasks.sweeps.folder import SweepFolder
from memtasks.sweeps.runner import LIMIT_HOURS, estimate_hours, group_points, run_sweep
from tests.helpers import ROOT, assert_bad_input

PROTOCOL = {"max_steps": 10, "eval_every": 5}
BASE = {"name": "t", "tasks": ["Seq2Vec-CatCat-v0"], "cells": ["rnn", "gru"], "n_examples": [12, 24],
        "seq_len": [3], "hidden": [4], "seeds": [0, 1], "task_kwargs": {"n_test": 4},
        "protocol": PROTOCOL, "search": {"lr": [0.01]}}


def config(**changes: object) -> SweepConfig:
    return SweepConfig.from_dict({**BASE, **changes})


def sweep(cfg: SweepConfig, root: Path, **kw: object):
    return run_sweep(cfg, root, workers=1, progress=False, **kw)


def test_grid_expansion_is_the_full_product_in_a_fixed_order():
    cfg = config(search={"lr": [0.01, 0.002]}, tasks=["Seq2Vec-CatCat-v0", "NextStep-RealCat-v0"])
    points = cfg.points()
    assert len(points) == 2 * 2 * 2 * 1 * 1 * 2  # the search is not a grid dimension: every point carries it
    assert len({p.stem for p in points}) == len(points)
    assert points[0].stem == "Seq2Vec-CatCat-v0_rnn_n12_T3_h4_seed0"
    assert points[1].seed == 1 and points[2].n_examples == 24 and points[4].cell == "gru"
    assert points[8].task == "NextStep-RealCat-v0"
    assert all(p.search.to_dict() == {"lrs": [0.01, 0.002], "batch_sizes": [64], "prune": True, "halving": True} for p in points)
    assert all(p.protocol.changed() == PROTOCOL and p.bits_per_param is None for p in points)
    assert all(p.task_kwargs == {"n_test": 4} for p in points)
    assert config(tasks="all").tasks[:2] == ["NextStep-CatCat-v0", "NextStep-CatReal-v0"]
    per = config(per_task={"Seq2Vec-CatCat-v0": {"in_vocab": 8}}).points()
    assert per[0].task_kwargs == {"n_test": 4, "in_vocab": 8}


@pytest.mark.parametrize("changes, match", [
    ({"colour": "red"}, "unknown keys colour; valid keys:"),
    ({"cells": []}, "cells is empty"),
    ({"seeds": [0, 0]}, "lists a value twice"),
    ({"n_examples": ["many"]}, "n_examples: 'many' is not a int"),
    ({"params": [100]}, "exactly one of params"),
    ({"name": "a/b"}, "must be a folder name"),
    ({"task_kwargs": {"seq_len": 5}}, "which the grid controls"),
    ({"per_task": {"Vec2Seq-CatCat-v0": {}}}, "names tasks not in the grid"),
    ({"lr": [0.01]}, "unknown keys lr; valid keys:"),  # learning rates are no longer a grid list
    # learning rates and batch sizes are the [search]'s, never the [protocol]'s
    ({"protocol": {"lr": 0.1}}, r"\[protocol\] sets lr; learning rates and batch sizes are the \[search\]"),
    ({"protocol": {"batch_size": 8}}, r"\[protocol\] sets batch_size; .*are the \[search\]"),
    ({"protocol": {"lr": 0.1, "batch_size": 8, "seed": 1}}, r"\[protocol\] sets batch_size, lr, seed;"),
    ({"search": {"lr": [0.01], "momentum": [0.9]}},
     r"\[search\] has unknown keys momentum; valid: lr, batch_size, prune, inits"),
    ({"search": {"lrs": [0.01]}}, r"\[search\] has unknown keys lrs; valid: lr, batch_size, prune, inits"),
    ({"search": [0.01]}, r"\[search\] must be a table"),
    ({"search": {"lr": []}}, r"\[search\]: a search needs at least one learning rate"),
    ({"search": {"lr": [0.01, 0.01]}}, r"\[search\]: the search lists learning rates twice"),
    ({"search": {"lr": [-0.01]}}, r"\[search\]: search learning rate must be a positive number"),
    ({"search": {"lr": [0.01], "prune": "yes"}}, r"\[search\]: search prune must be true or false, got 'yes'"),
    ({"search": {"lr": [0.01], "inits": 0}}, r"\[search\]: search inits must be a positive integer, got 0"),
    ({"search": {"batch_size": [0]}}, r"\[search\]: search batch size must be a positive integer"),
    ({"overrides": {"n_examples": [12]}}, r"overrides must be an array of tables"),
    ({"overrides": [{"search": {"inits": 2}}]}, r"\[\[overrides\]\] #1 selects no points; give at least one of tasks"),
    ({"overrides": [{"n_examples": [12]}]}, r"#1 changes nothing; give a search or a protocol table"),
    ({"overrides": [{"n_examples": [12], "seeds": [0], "search": {}}]}, r"#1 has unknown keys seeds; valid: tasks,"),
    ({"overrides": [{"n_examples": [100], "search": {"inits": 2}}]},
     r"#1 n_examples \[100\] names values not in the grid's n_examples \[12, 24\]"),
    ({"overrides": [{"cells": ["lstm"], "search": {"inits": 2}}]}, r"#1 cells \['lstm'\] names values not in"),
    ({"overrides": [{"n_examples": [12], "search": {"inits": 0}}]}, r"#1: search inits must be a positive integer"),
    ({"overrides": [{"n_examples": [12], "search": {"momentum": 1}}]}, r"#1 search has unknown keys momentum"),
    ({"overrides": [{"n_examples": [12], "protocol": {"lr": 1}}]}, r"#1 protocol has unknown keys lr; valid: max_st"),
])
def test_bad_configs_are_refused_before_any_work(changes, match):
    with pytest.raises(SweepError, match=match):
        config(**changes)


def test_a_config_without_a_search_measures_the_default_learning_rate_grid():
    cfg = SweepConfig.from_dict({k: v for k, v in BASE.items() if k != "search"})
    assert cfg.search_spec().lrs == DEFAULT_LRS and cfg.search_spec().batch_sizes == (64,)
    assert cfg.points()[0].search.to_dict() == {"lrs": list(DEFAULT_LRS), "batch_sizes": [64], "prune": True, "halving": True}
    scalar = config(search={"lr": 0.01, "batch_size": 8})  # one value without a list
    assert scalar.points()[0].search.to_dict() == {"lrs": [0.01], "batch_sizes": [8], "prune": True, "halving": True}


def test_a_search_over_initialisations_reaches_each_points_measurement():
    cfg = config(search={"lr": [0.01, 0.03], "inits": 3, "prune": False})
    point = cfg.points()[0]
    assert point.search.to_dict() == {"lrs": [0.01, 0.03], "batch_sizes": [64], "prune": False, "inits": 3, "halving": True}
    m = resolve(point)
    assert (len(m.spec.search), m.spec.search.inits, m.spec.search.prune) == (6, 3, False)


def test_overrides_widen_the_search_and_budget_of_the_points_they_select():
    wide = {"n_examples": [12], "search": {"lr": [0.003, 0.01], "inits": 3}, "protocol": {"max_steps": 40}}
    later = {"cells": ["gru"], "n_examples": 12, "protocol": {"max_steps": 50}}  # a later override wins
    cfg = config(overrides=[wide, later])
    by_stem = {p.stem: p for p in cfg.points()}
    small, large = by_stem["Seq2Vec-CatCat-v0_rnn_n12_T3_h4_seed0"], by_stem["Seq2Vec-CatCat-v0_rnn_n24_T3_h4_seed0"]
    assert small.search.to_dict() == {"lrs": [0.003, 0.01], "batch_sizes": [64], "prune": True, "inits": 3, "halving": True}
    assert small.protocol.changed() == {**PROTOCOL, "max_steps": 40}
    assert large.search.to_dict() == {"lrs": [0.01], "batch_sizes": [64], "prune": True, "halving": True}
    assert large.protocol.changed() == PROTOCOL
    assert by_stem["Seq2Vec-CatCat-v0_gru_n12_T3_h4_seed1"].protocol.max_steps == 50
    assert by_stem["Seq2Vec-CatCat-v0_gru_n24_T3_h4_seed1"].protocol.max_steps == 10
    assert len(small.search) == 6 and resolve(small).spec.protocol.max_steps == 40
    # points with other settings train in their own job, and the worst case counts each point's own search
    assert len(group_points(cfg.points())) == 2 * len(group_points(config().points()))
    # 4x the steps and 6x the trials; each step of the smaller set costs its 12 examples, not the batch of 64
    m_small, m_large = resolve(small), resolve(large)
    per_step = (trial_step_seconds(m_small.params_total, 12, m_small.layout.length)
                / trial_step_seconds(m_large.params_total, 24, m_large.layout.length))
    assert estimate_hours([small], 1) == pytest.approx(4 * 6 * per_step * estimate_hours([large], 1))
    assert SweepConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(SweepError, match=r"\[\[overrides\]\] #1 protocol: max_steps must be a positive integer"):
        config(overrides=[{"n_examples": [12], "protocol": {"max_steps": 0}}]).validate()


def test_config_errors_found_by_validation(tmp_path):
    with pytest.raises(Exception, match="unknown cell 'lstn'"):
        sweep(config(cells=["lstn"]), tmp_path)
    with pytest.raises(Exception, match="in_vocab"):
        sweep(config(task_kwargs={"in_vocab": 1}), tmp_path)
    with pytest.raises(SweepError, match=r"\[protocol\] has unknown keys epochs; valid: max_steps, eval_every"):
        sweep(config(protocol={"epochs": 3}), tmp_path)
    # the old epoch budget is refused, naming the step budget that replaced it
    with pytest.raises(SweepError, match=r"\[protocol\] has unknown keys max_epochs; valid: max_steps, eval_every"):
        sweep(config(protocol={"max_epochs": 2}), tmp_path)
    with pytest.raises(Exception, match="max_steps must be a positive integer"):
        sweep(config(protocol={"max_steps": 0}), tmp_path)
    assert not (tmp_path / "t").exists()  # nothing was created


def test_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ncells = [rnn]\n')
    with pytest.raises(SweepError, match="malformed TOML"):
        SweepConfig.load(bad)
    good = tmp_path / "good.toml"
    good.write_text('name="g"\ntasks=["Seq2Vec-CatCat-v0"]\ncells=["rnn"]\nn_examples=[8]\nseq_len=[3]\n'
                    'hidden=[4]\nseeds=[0]\n[protocol]\nmax_steps=1\n[search]\nlr=[0.01, 0.03]\nbatch_size=[8, 16]\n')
    loaded = SweepConfig.load(good)
    assert loaded.protocol == {"max_steps": 1} and loaded.search == {"lr": [0.01, 0.03], "batch_size": [8, 16]}
    assert loaded.search_spec().trials() == [(0.01, 8, 0), (0.03, 8, 0), (0.01, 16, 0), (0.03, 16, 0)]
    assert SweepConfig.from_dict(loaded.to_dict()) == loaded
    with pytest.raises(SweepError, match="no such file"):
        SweepConfig.load(tmp_path / "missing.toml")


def test_sweep_runs_every_point_once_and_skips_finished_ones(tmp_path):
    cfg = config()
    first = sweep(cfg, tmp_path)
    assert (first.ran, first.skipped, first.failed) == (8, 0, [])
    files = sorted((tmp_path / "t").glob("*_*.json"))
    assert [f.stem for f in files] == sorted(p.stem for p in cfg.points())
    r = RunResult.load(files[0])
    assert r.task["kwargs"]["seed"] == r.protocol["seed"]  # the grid seed sets data and training
    assert r.extra["sweep_point"]["task"] == "Seq2Vec-CatCat-v0" and r.extra["sweep_point"]["hidden"] == 4
    # the step-budget protocol and the one-trial search are what ran
    assert r.search == {"lrs": [0.01], "batch_sizes": [64], "prune": True, "halving": True}
    assert len(r.trials) == 1 and r.selected_trial == 0
    assert r.protocol["lr"] == 0.01 and r.protocol["max_steps"] == 10 and r.protocol["eval_every"] == 5
    assert 0 < r.steps <= 10 and r.evaluations == len(r.history) > 0
    assert [e["step"] for e in r.history] == list(range(5, r.steps + 1, 5))
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    again = sweep(cfg, tmp_path)
    assert (again.ran, again.skipped) == (0, 8)
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes


def test_another_config_in_the_same_folder_is_refused(tmp_path):
    sweep(config(seeds=[0], n_examples=[12], cells=["rnn"]), tmp_path)
    with pytest.raises(SweepError, match=r"holds results of another config \(it differs in: seeds\)"):
        sweep(config(seeds=[0, 1], n_examples=[12], cells=["rnn"]), tmp_path)


def test_the_lock_stops_a_second_sweep(tmp_path):
    cfg = config()
    (tmp_path / "t").mkdir()
    fd = os.open(tmp_path / "t" / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242")
    try:
        with pytest.raises(SweepError, match=r"another sweep \(pid 4242\) is writing"):
            sweep(cfg, tmp_path)
    finally:
        os.close(fd)
    assert sweep(cfg, tmp_path).ran == 8  # released: it runs


def test_corrupt_and_unfinished_results_are_reported_and_rerun(tmp_path, capsys):
    cfg = config()
    sweep(cfg, tmp_path)
    points = cfg.points()
    folder = SweepFolder(tmp_path, cfg)
    folder.result_path(points[0]).write_text('{"schema_version": 1, "trunc')
    partial = json.loads(folder.result_path(points[1]).read_text())
    partial["status"], partial["stop_reason"] = "interrupted", "interrupted"
    folder.result_path(points[1]).write_text(json.dumps(partial))
    from rich.console import Console

    console = Console(file=open(tmp_path / "log.txt", "w"), width=200)
    summary = run_sweep(cfg, tmp_path, workers=1, progress=False, console=console)
    console.file.close()
    log = (tmp_path / "log.txt").read_text()
    assert f"corrupt result {points[0].stem}.json" in log and f"unfinished result {points[1].stem}.json" in log
    assert (summary.ran, summary.skipped) == (2, 6)
    assert RunResult.load(folder.result_path(points[0])).status == "completed"


def test_a_failed_run_never_stops_the_sweep(tmp_path):
    cfg = config(cells=["rnn", "tests.plugin_cells:wrong_shape"])
    summary = sweep(cfg, tmp_path)
    assert summary.ran == 4 and len(summary.failed) == 4
    assert all("returned shape" in why for _, why in summary.failed)
    assert len(list((tmp_path / "t").glob("*_*.json"))) == 4


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead but not yet reaped by init, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_resume_after_a_kill_loses_nothing_and_repeats_nothing(tmp_path, monkeypatch):
    # The rnn points finish; the gated points cannot until the gate opens, so the kill always lands
    # while both workers are busy and exactly the rnn results exist, on a fast or a loaded machine.
    gate = tmp_path / "gate"
    # All points of one shape are one job: the rnn points and the gated points are two groups (two cells),
    # and with two workers each group runs in a worker of its own.
    cfg = config(n_examples=[12, 24], seeds=[0, 1], cells=["rnn", "tests.plugin_cells:gated"])
    assert [{p.cell for p in g} for g in group_points(cfg.points())] == [{"rnn"}, {"tests.plugin_cells:gated"}]
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(
        'name="t"\ntasks=["Seq2Vec-CatCat-v0"]\ncells=["rnn","tests.plugin_cells:gated"]\nn_examples=[12,24]\n'
        'seq_len=[3]\nhidden=[4]\nseeds=[0,1]\n[task_kwargs]\nn_test=4\n'
        '[protocol]\nmax_steps=10\neval_every=5\n[search]\nlr=[0.01]\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MEMTASKS_TEST_GATE": str(gate)}
    log = tmp_path / "sweep.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "memtasks.cli", "sweep", str(cfg_file), "--out", str(tmp_path),
                                 "--workers", "2", "--no-progress"], cwd=ROOT, env=env, stdout=out, stderr=out)
    folder = tmp_path / "t"
    rnn = [p for p in cfg.points() if p.cell == "rnn"]
    gated = [p for p in cfg.points() if p.cell != "rnn"]
    try:
        while proc.poll() is None and not all((folder / f"{p.stem}.json").exists() for p in rnn):
            time.sleep(0.02)
        assert proc.poll() is None, f"the sweep ended early: {log.read_text()}"
        workers = _children(proc.pid)
        assert workers, "the pool's worker processes should be running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # A write cut short by the kill leaves a temporary file; one of another name must survive the resume.
    stale = [folder / f".{gated[0].stem}.json.k1ll3d_.tmp", folder / f".{rnn[1].stem}.json.abc123.tmp",
             folder / f".{gated[1].stem}.safetensors.x9y8z7.tmp", folder / ".sweep.json.q1w2e3.tmp"]
    for f in stale:
        f.write_text('{"schema_version": 2, "half')
    foreign = folder / ".notes.tmp"
    foreign.write_text("not the sweep's")
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120]
                 for pid in workers if _alive(pid)}
    assert not survivors, f"orphan workers outlived the sweep: {survivors}"
    before = {f.name: f.read_bytes() for f in folder.glob("*_*.json")}
    assert sorted(before) == sorted(f"{p.stem}.json" for p in rnn)  # exactly the rnn results, all of them
    assert all(RunResult.load(folder / name).status == "completed" for name in before)
    assert SweepConfig.from_dict(json.loads((folder / "sweep.json").read_text())) == cfg

    gate.touch()
    monkeypatch.setenv("MEMTASKS_TEST_GATE", str(gate))
    summary = sweep(cfg, tmp_path)
    assert summary.skipped == len(rnn) and summary.ran == len(gated) and not summary.failed
    after = {f.name: f.read_bytes() for f in folder.glob("*_*.json")}
    assert sorted(after) == sorted(p.stem + ".json" for p in cfg.points())
    assert all(after[name] == data for name, data in before.items())  # finished runs untouched
    resumed = [RunResult.load(folder / f"{p.stem}.json") for p in gated]
    assert all(r.status == "completed" and r.batched_with == 1 for r in resumed)  # a plugin cell: one at a time
    assert not any(f.exists() for f in stale) and foreign.exists()
    assert sorted(f.name for f in folder.glob(".*.tmp")) == [foreign.name]


def test_cli_sweep_from_flags_and_report(tmp_path):
    args = ["sweep", "--name", "cli", "--task", "Seq2Vec-CatReal-v0", "--cell", "rnn", "--n-examples", "12,24",
            "--seq-len", "3", "--hidden", "4", "--seeds", "0,1", "-k", "n_test=4", "--max-steps", "10",
            "--min-steps", "3", "--lr", "0.01", "--batch-size", "4,8", "--workers", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "4 ran, 0 already finished, 0 failed" in result.stdout
    cfg = json.loads((tmp_path / "cli" / "sweep.json").read_text())
    assert cfg["search"] == {"lr": [0.01], "batch_size": [4, 8]} and cfg["protocol"] == {"max_steps": 10, "min_steps": 3}
    for f in (tmp_path / "cli").glob("*_*.json"):
        r = RunResult.load(f)
        assert r.search == {"lrs": [0.01], "batch_sizes": [4, 8], "prune": True, "halving": True} and r.steps <= 10
        assert [(t["lr"], t["batch_size"]) for t in r.trials] == [(0.01, 4), (0.01, 8)]
    result = CliRunner().invoke(main, ["report", str(tmp_path / "cli"), "--jsonl", str(tmp_path / "r.jsonl"),
                                       "--readme", str(tmp_path / "README.md")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "report" / "summary.csv").exists()
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["history"] == [] for line in lines)
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("<!-- memtasks-report:start -->") and readme.rstrip().endswith("end -->")
    # Regenerating from the compact file gives the same Markdown, byte for byte.
    CliRunner().invoke(main, ["report", str(tmp_path / "r.jsonl"), "--readme", str(tmp_path / "README2.md")])
    assert (tmp_path / "README2.md").read_text() == readme


@pytest.mark.parametrize("args, match", [
    (["--n-examples", "ten"], "give comma-separated ints"),
    (["--backend", "ray", "--address", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
    (["--device", "cuda:7"], "cuda"),
    (["--bits-per-param", "2"], "exactly one of n_examples"),
    (["--max-steps", "0"], "max_steps must be a positive integer"),
    (["--lr", "0.01,0.01"], "lists learning rates twice"),
    (["--batch-size", "0"], "batch size must be a positive integer"),
    (["--lr", "fast"], "--lr 'fast': give comma-separated floats"),  # the option typed, not the parameter
    (["--batch-size", "1.5"], "--batch-size '1.5': give comma-separated ints"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, match):
    base = ["sweep", "--name", "b", "--task", "Seq2Vec-CatCat-v0", "--cell", "rnn", "--n-examples", "8",
            "--seq-len", "3", "--hidden", "4", "--seeds", "0", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0]
    assert not (tmp_path / "b").exists()


def test_cli_dry_run_prints_the_plan_writes_nothing_and_checks_the_folder(tmp_path):
    base = ["sweep", "--name", "d", "--task", "Seq2Vec-CatCat-v0", "--cell", "rnn", "--n-examples", "8",
            "--seq-len", "3", "--hidden", "4", "-k", "n_test=4", "--max-steps", "5", "--lr", "0.01",
            "--out", str(tmp_path)]
    result = CliRunner().invoke(main, base + ["--seeds", "0,1", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "sweep d: 2 points (0 finished)" in result.stdout and "_seed1" in result.stdout
    assert not (tmp_path / "d").exists()
    assert CliRunner().invoke(main, base + ["--seeds", "0", "--workers", "1"]).exit_code == 0
    result = CliRunner().invoke(main, base + ["--seeds", "0,1", "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds results of another config (it differs in: seeds)" in lines[0]
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert names == [".lock", "Seq2Vec-CatCat-v0_rnn_n8_T3_h4_seed0.json", "sweep.json"]


def test_export_jsonl_is_sorted_and_compact(tmp_path):
    cfg = config(cells=["rnn"], seeds=[0])
    sweep(cfg, tmp_path)
    results = [RunResult.load(f) for f in sorted((tmp_path / "t").glob("*_*.json"), reverse=True)]
    assert export_jsonl(results, tmp_path / "a.jsonl") == 2
    assert export_jsonl(list(reversed(results)), tmp_path / "b.jsonl") == 2
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_ray_backend_matches_the_local_backend(tmp_path):
    pytest.importorskip("ray")
    cfg = config(cells=["rnn"], seeds=[0, 1], n_examples=[12], save_models=True)
    local = sweep(cfg, tmp_path / "local")
    remote = run_sweep(cfg, tmp_path / "ray", backend="ray", workers=2, progress=False)
    assert (local.ran, remote.ran, remote.failed) == (2, 2, [])
    # Weights travel back from the Ray workers and are written beside their results.
    from safetensors.torch import load_file
    for p in cfg.points():
        ray_w, local_w = (load_file(tmp_path / k / "t" / f"{p.stem}.safetensors") for k in ("ray", "local"))
        assert ray_w.keys() == local_w.keys() and all(ray_w[k].equal(local_w[k]) for k in ray_w)

    def metrics(root: Path) -> dict:
        out = {}
        for f in sorted((root / "t").glob("*_*.json")):
            r = RunResult.load(f)
            out[f.name] = [{k: v for k, v in e.items() if k != "time_s"} for e in r.history]
        return out

    assert metrics(tmp_path / "local") == metrics(tmp_path / "ray")


def test_a_result_that_cannot_be_written_is_rescued_and_the_sweep_goes_on(tmp_path, monkeypatch):
    cfg = config(cells=["rnn"], n_examples=[12], seeds=[0, 1])

    def unserialisable(self):
        raise TypeError("Object of type Tensor is not JSON serializable")

    with monkeypatch.context() as m:
        m.setattr(RunResult, "to_json", unserialisable)
        summary = sweep(cfg, tmp_path)
    assert summary.ran == 0 and len(summary.failed) == 2
    for stem, why in summary.failed:
        rescued = tmp_path / "t" / f"{stem}.json.partial"
        assert f"saved to {rescued}" in why and json.loads(rescued.read_text())["status"] == "completed"
    summary = sweep(cfg, tmp_path)  # the next run writes them; the rescue copies are not taken for results
    assert summary.ran == 2 and not summary.failed


# ----- grouping: the points of one shape are one job, their trials trained together -------------------


def test_points_that_differ_only_in_seed_and_size_share_a_group():
    points = config(search={"lr": [0.01, 0.03]}).points()
    groups = group_points(points)
    assert [[p.stem for p in g] for g in groups] == [
        [p.stem for p in points if p.cell == "rnn"], [p.stem for p in points if p.cell == "gru"]]
    for g in groups:  # every seed and size of one cell, in grid order
        assert {(p.seed, p.n_examples) for p in g} == {(0, 12), (1, 12), (0, 24), (1, 24)}
    # anything else that changes the model's shape or its training is another job
    assert len(group_points(config(cells=["rnn"], hidden=[4, 5]).points())) == 2
    assert len(group_points(config(cells=["rnn"], seq_len=[3, 4]).points())) == 2
    assert len(group_points(config(cells=["rnn"], tasks=["Seq2Vec-CatCat-v0", "Seq2Vec-CatReal-v0"]).points())) == 2
    other = config(cells=["rnn"], search={"lr": [0.03]}).points()
    assert len(group_points(config(cells=["rnn"]).points() + other)) == 2


def test_a_sweep_trains_the_trials_of_one_group_together(tmp_path):
    cfg = config(search={"lr": [0.01, 0.03]})  # 2 cells × 2 seeds × 2 sizes, 2 trials per point
    summary = sweep(cfg, tmp_path)
    assert (summary.ran, summary.failed) == (8, [])
    results = {p.stem: RunResult.load(tmp_path / "t" / f"{p.stem}.json") for p in cfg.points()}
    for group in group_points(cfg.points()):
        trials = sum(len(p.search) for p in group)
        assert trials == 8
        for p in group:
            r = results[p.stem]
            assert r.batched_with == trials, (p.stem, r.batched_with)
            assert r.cell["batched"] and [t["lr"] for t in r.trials] == [0.01, 0.03]
            assert r.protocol["lr"] == r.trials[r.selected_trial]["lr"]
            assert r.task["n_examples"] == p.n_examples and r.protocol["seed"] == p.seed


# ----- the worst-case estimate ---------------------------------------------------------------------


#: Worst case 10**12 steps (far over LIMIT_HOURS for any plausible cost model), but a trial of 4 examples stops
#: within a few steps: at most one improvement per correct target, then the ceiling or (patience 1, no decays)
#: a plateau.
QUICK_HUGE = {"rule": "plateau", "max_steps": 10**12, "eval_every": 1, "patience": 1, "max_decays": 0}


def test_estimate_hours_scales_with_steps_trials_and_workers():
    points = config(cells=["rnn"]).points()
    one = estimate_hours(points, workers=1)
    assert 0 < one < LIMIT_HOURS
    twice = config(cells=["rnn"], protocol={**PROTOCOL, "max_steps": 20}).points()
    assert estimate_hours(twice, 1) == pytest.approx(2 * one)
    two_lrs = config(cells=["rnn"], search={"lr": [0.01, 0.03]}).points()
    assert estimate_hours(two_lrs, 1) == pytest.approx(2 * one)
    assert estimate_hours(points, 4) == pytest.approx(one / 4)
    huge = config(cells=["rnn"], protocol=QUICK_HUGE).points()
    assert estimate_hours(huge, 1) > LIMIT_HOURS


def test_a_sweep_whose_worst_case_is_too_long_is_refused_unless_yes(tmp_path):
    cfg = config(cells=["rnn"], n_examples=[4], seeds=[0], protocol=QUICK_HUGE)
    with pytest.raises(SweepError, match=r"1 model fits of up to 1,000,000,000,000 steps, at worst about .* h "
                                         r"on this machine \(1 worker\); use --yes or a smaller grid"):
        sweep(cfg, tmp_path)
    assert not list((tmp_path / "t").glob("*_*.json"))  # nothing ran
    summary = sweep(cfg, tmp_path, yes=True)  # not refused: it runs (and stops early)
    assert (summary.ran, summary.failed) == (1, [])
    (r,) = [RunResult.load(f) for f in (tmp_path / "t").glob("*_*.json")]
    assert r.protocol["max_steps"] == 10**12 and r.stop_reason in ("ceiling", "plateau") and r.steps < 50


def test_a_refused_sweep_leaves_nothing_behind(tmp_path):
    big = config(cells=["rnn"], n_examples=[4], seeds=[0], protocol={**PROTOCOL, "max_steps": 10**12, "rule": "plateau"})
    with pytest.raises(SweepError, match="use --yes"):
        sweep(big, tmp_path)
    try:
        assert not (tmp_path / "t").exists()
    finally:  # whatever was left, the advised smaller grid must run under the same name
        assert sweep(config(cells=["rnn"], n_examples=[4], seeds=[0]), tmp_path).ran == 1


def test_cli_refuses_a_too_long_sweep_in_one_line_unless_yes(tmp_path):
    toml = tmp_path / "huge.toml"
    toml.write_text('name="huge"\ntasks=["Seq2Vec-CatCat-v0"]\ncells=["rnn"]\nn_examples=[4]\nseq_len=[3]\n'
                    'hidden=[4]\nseeds=[0]\n[task_kwargs]\nn_test=4\n[search]\nlr=[0.01]\n[protocol]\n'
                    + "".join(f"{k}={json.dumps(v)}\n" for k, v in QUICK_HUGE.items()))
    args = ["sweep", str(toml), "--workers", "1", "--out", str(tmp_path / "runs")]
    result = CliRunner().invoke(main, args)
    assert_bad_input(result, "at worst about", "use --yes or a smaller grid")
    assert not list((tmp_path / "runs").glob("huge/*_*.json"))
    result = CliRunner().invoke(main, [*args, "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 ran, 0 already finished, 0 failed" in result.stdout


def test_a_sweep_that_keeps_weights_writes_them_beside_each_result_and_reruns_a_point_without_them(tmp_path):
    plain = config()
    assert "save_models" not in plain.to_dict() and "save_model" not in plain.points()[0].to_dict()
    cfg = config(cells=["gru"], n_examples=[12], save_models=True)
    assert cfg.to_dict()["save_models"] is True and cfg.points()[0].to_dict()["save_model"] is True
    summary = sweep(cfg, tmp_path)
    assert summary.ran == 2 and not summary.failed
    folder = tmp_path / "t"
    for point in cfg.points():
        result = RunResult.load(folder / f"{point.stem}.json")
        assert result.model_file == f"{point.stem}.safetensors" and (folder / result.model_file).is_file()
    (folder / f"{cfg.points()[0].stem}.safetensors").unlink()
    plan = SweepFolder(tmp_path, cfg).plan(cfg.points())
    assert [p.stem for p in plan.todo] == [cfg.points()[0].stem] and "weights file is missing" in plan.rerun[0]
    assert sweep(cfg, tmp_path).ran == 1
    assert (folder / f"{cfg.points()[0].stem}.safetensors").is_file()
    with pytest.raises(SweepError, match="save_models must be true or false"):
        config(save_models="yes")


def test_weights_come_back_from_a_worker_that_writes_nothing(tmp_path):
    from memtasks.sweeps.point import run_group

    cfg = config(cells=["gru"], n_examples=[12], seeds=[0], save_models=True)
    (outcome,) = run_group(cfg.points())
    assert outcome.error is None and not outcome.written
    assert outcome.weights is not None and outcome.weights[8:9] == b"{"  # a safetensors header
