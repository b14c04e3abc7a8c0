"""``memtasks run`` and ``memtasks cells``: the summary, the result file, the search, and bad input (exit code 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import memtasks
from memtasks.cli.run import RUN_LIMIT_S
from memtasks.fitting.cost import trial_step_seconds
from memtasks.fitting.result import RunResult
from memtasks.models.registry import cell_spec
from memtasks.models.sequence_model import count_total_params
from tests.helpers import ROOT, assert_bad_input, run

TINY = ["-k", "seq_len=5", "-k", "n_examples=40", "-k", "n_test=10"]
#: A tiny model trains fastest on one thread, and a busy machine cannot slow it down by oversubscription.
FAST = ["--threads", "1"]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """``--threads`` sets torch's thread count for the whole test process: give it back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _row(output: str, label: str) -> str:
    """The one line of the summary table holding ``label``."""
    rows = [line for line in output.splitlines() if label in line]
    assert len(rows) == 1, output
    return rows[0]


def test_run_help_lists_the_step_protocol():
    result = run("run", "--help")
    assert result.exit_code == 0
    for flag in ("--lr", "--batch-size", "--max-steps", "--eval-every", "--patience", "--decays", "--yes"):
        assert flag in result.output
    assert "--max-epochs" not in result.output
    gone = run("run", "Seq2Vec-CatCat-v0", "--max-epochs", "2")
    assert gone.exit_code == 2 and "No such option '--max-epochs'" in gone.stderr and "--max-steps" in gone.stderr


def test_run_prints_a_summary_and_writes_the_result(tmp_path):
    result = run("run", "Seq2Vec-CatCat-v0", *TINY, *FAST, "--hidden", "16", "--lr", "0.01", "--batch-size", "20",
                 "--max-steps", "100", "--out", str(tmp_path / "runs"), "--save-model")
    assert result.exit_code == 0, result.output
    for text in ("achievable ceiling", "fitting ceiling", "bits per parameter", "steps to 50 / 90 / 100 % of ceiling",
                 "completed (ceiling)", "result: "):
        assert text in result.output
    files = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors")
    assert files[0].startswith("Seq2Vec-CatCat-v0_lstm_h16_seed0_")
    saved = RunResult.load(tmp_path / "runs" / files[0])
    assert saved.schema_version == 2
    assert saved.stop_reason == "ceiling" and saved.model_file == files[1]
    assert saved.protocol["lr"] == 0.01 and saved.protocol["batch_size"] == 20 and saved.protocol["max_steps"] == 100
    assert saved.search == {"lrs": [0.01], "batch_sizes": [20], "prune": True, "halving": True}
    assert len(saved.trials) == 1 and saved.selected_trial == 0 and saved.batched_with == 1
    assert saved.task["kwargs"]["n_examples"] == 40
    # Budgets are optimizer steps: the training set is evaluated every eval_every steps until the ceiling.
    every = saved.protocol["eval_every"]
    assert [e["step"] for e in saved.history] == list(range(every, saved.steps + 1, every))
    assert saved.evaluations == len(saved.history)
    assert saved.best["step"] == saved.steps == saved.steps_to_ceiling["100%"] <= 100
    assert saved.history[0]["lr"] == 0.01 and saved.lr_history[0] == {"step": 0, "lr": 0.01}
    # The table shows what the file holds.
    assert f"{saved.steps:,} ({saved.best['step']})" in _row(result.output, "optimizer steps (best at)")
    reach = " / ".join("–" if saved.steps_to_ceiling[k] is None else str(saved.steps_to_ceiling[k])
                       for k in ("50%", "90%", "100%"))
    assert reach in _row(result.output, "steps to 50 / 90 / 100 % of ceiling")
    assert "lr 0.01, batch 20" in _row(result.output, "search: trials (selected)")


def test_run_json_matches_the_file_and_never_overwrites(tmp_path):
    args = ["run", "Seq2Vec-CatReal-v0", *TINY, *FAST, "--cell", "gru", "--params", "2000", "--lr", "0.01",
            "--max-steps", "3", "--out", str(tmp_path), "--json"]
    first, second = run(*args), run(*args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    data = json.loads(first.stdout)
    assert data["schema_version"] == 2 and data["cell"]["params_budget"] == 2000
    assert abs(data["cell"]["params_total"] - 2000) < 200
    # The budget of 3 steps ends the run with one evaluation, at the budget.
    assert (data["stop_reason"], data["steps"], data["evaluations"]) == ("budget", 3, 1)
    assert [e["step"] for e in data["history"]] == [3]
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 2  # the second run got its own file
    saved = [json.loads(p.read_text()) for p in files]
    assert data in saved and json.loads(second.stdout) in saved  # --json prints exactly what was written


@pytest.mark.parametrize("task_id", ["Seq2Vec-CatCat-v0", "NextStep-RealReal-v0", "Vec2Seq-CatReal-v0"])
def test_run_without_a_held_out_set(task_id, tmp_path):
    """n_test=0: the summary says there is no held-out set; --json stays strict JSON with no test metrics."""
    args = ["run", task_id, "-k", "seq_len=4", "-k", "n_examples=16", "-k", "n_test=0", "--hidden", "4",
            "--lr", "0.01", "--max-steps", "2", "--eval-every", "1", *FAST, "--out", str(tmp_path)]
    table = run(*args)
    assert table.exit_code == 0, table.output
    held_out = _row(table.output, "held-out test")
    assert "n/a (n_test=0)" in held_out and "chance" not in held_out
    as_json = run(*args, "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not valid JSON"))
    assert data["task"]["n_test"] == 0 and data["best"]["test"] is None
    assert len(data["history"]) == 2 and all(entry["test"] is None for entry in data["history"])


def test_run_searches_learning_rates_and_batch_sizes(tmp_path):
    """Every lr × batch-size trial is recorded; the best fit is the measurement and the table names it."""
    args = ["run", "Seq2Vec-CatCat-v0", *TINY, *FAST, "--hidden", "8", "--lr", "1e-3,1e-2", "--batch-size", "8,32",
            "--max-steps", "60"]
    result = run(*args, "--out", str(tmp_path / "json"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["search"] == {"lrs": [1e-3, 1e-2], "batch_sizes": [8, 32], "prune": True, "halving": True}
    trials = data["trials"]
    assert [(t["lr"], t["batch_size"]) for t in trials] == [(1e-3, 8), (1e-2, 8), (1e-3, 32), (1e-2, 32)]
    assert all(t["status"] == "completed" and t["best"] is not None for t in trials), trials
    # The selection rule: most correct targets, then fewer steps to get there, then the smaller learning rate.
    rule = [(-t["best"]["train"]["correct"], t["best"]["step"], t["lr"], i) for i, t in enumerate(trials)]
    assert data["selected_trial"] == min(rule)[-1]
    chosen = trials[data["selected_trial"]]
    assert (data["protocol"]["lr"], data["protocol"]["batch_size"]) == (chosen["lr"], chosen["batch_size"])
    assert data["steps"] == chosen["steps"] and data["evaluations"] == chosen["evaluations"] == len(data["history"])
    assert data["best"]["train"] == chosen["best"]["train"]
    assert data["batched_with"] == 4  # one model shape: the four trials trained together

    table = run(*args, "--out", str(tmp_path / "table"))
    assert table.exit_code == 0, table.output
    saved = RunResult.load(next((tmp_path / "table").glob("*.json")))
    pruned = sum(t["stop_reason"] == "pruned" for t in saved.trials)
    won = f"4 (lr {saved.protocol['lr']:g}, batch {saved.protocol['batch_size']}" + \
        (f"; {pruned} pruned)" if pruned else ")")
    assert won in _row(table.output, "search: trials (selected)")
    assert "(4 trials trained together)" in _row(table.output, "wall time")


def test_run_names_pruned_trials_and_warns_of_the_grid_edge_only_below_the_ceiling(tmp_path):
    base = ["run", "Seq2Vec-CatCat-v0", "-k", "seq_len=4", "-k", "n_examples=8", "-k", "n_test=0", "--cell", "gru",
            "--hidden", "16", "--eval-every", "10", "--no-progress"]
    fitted = run(*base, "--lr", "3e-3,3e-2", "--max-steps", "3000", "--out", str(tmp_path / "a"))
    assert fitted.exit_code == 0, fitted.output
    assert "ceiling" in _row(fitted.output, "status") and "1 pruned)" in _row(fitted.output, "search: trials")
    assert "edge of the learning-rate grid" not in fitted.output  # at the ceiling, no grid could fit further
    short = run("run", "NextStep-CatCat-v0", "-k", "n_examples=64", "-k", "n_test=0", "--hidden", "4", "--no-progress",
                "--lr", "1e-5,3e-2", "--max-steps", "10", "--out", str(tmp_path / "b"))
    assert short.exit_code == 0, short.output
    assert "budget" in _row(short.output, "status") and "pruned" not in _row(short.output, "search: trials")
    assert "edge of the learning-rate grid" in short.output


def test_cells_lists_the_builtins():
    result = run("cells")
    assert result.exit_code == 0
    for name in ("rnn", "irnn", "lstm", "gru", "ugrnn", "intersection", "nlstm", "mlp"):
        assert name in result.output
    names = [c["name"] for c in json.loads(run("cells", "--json").output)]
    assert names[:8] == ["rnn", "irnn", "lstm", "gru", "ugrnn", "intersection", "nlstm", "mlp"]


@pytest.mark.parametrize("args, fragments", [
    (["--cell", "lstn"], ["unknown cell 'lstn'", "Did you mean 'lstm'"]),
    (["--cell", "no_such_module_xyz:make"], ["cannot import module 'no_such_module_xyz'"]),
    (["--cell", "tests.broken_cell_module:make"], ["cannot import module", "broken on purpose"]),
    (["--cell", "tests.plugin_cells:missing"], ["has no attribute 'missing'"]),
    (["--cell", "tests.plugin_cells:NOT_CALLABLE"], ["not a callable factory"]),
    (["--cell", "tests.plugin_cells:wrong_shape"], ["returned shape (2, 5, 65)", "expected (batch, length, hidden)"]),
    (["--cell", "tests.plugin_cells:raw_lstm"], ["returned a tuple"]),
    (["--cell", "tests.plugin_cells:elman", "-c", "bogus=1"], ["could not be built", "bogus"]),
    (["--hidden", "0"], ["hidden size must be a positive integer, got 0"]),
    (["--params", "50"], ["--params 50 is too small for cell 'lstm'"]),
    (["--hidden", "8", "--params", "5000"], ["either hidden", "not both"]),
    (["--lr", "0"], ["search learning rate must be a positive number, got 0.0"]),
    (["--lr", "-0.1"], ["search learning rate must be a positive number"]),
    (["--lr", "0.01,nan"], ["search learning rate must be a positive number, got nan"]),
    (["--lr", "abc"], ["'abc'", "comma-separated floats"]),
    (["--lr", "0.01,0.01"], ["lists learning rates twice"]),
    (["--inits", "0"], ["search inits must be a positive integer, got 0"]),
    (["--rule", "plateau", "--plateau-steps", "0"], ["plateau_steps must be a positive integer, got 0"]),
    (["--plateau-steps", "5"], ["plateau_steps is a setting of rule plateau", "valid for doubling"]),
    (["--tolerance", "1.5"], ["tolerance must be a relative gain in (0, 1)"]),
    (["--min-steps", "0"], ["min_steps must be a positive integer, got 0"]),
    (["--passes", "-2"], ["passes must be a positive integer, got -2"]),
    (["--batch-size", "0"], ["search batch size must be a positive integer, got 0"]),
    (["--batch-size", "8,x"], ["'8,x'", "comma-separated ints"]),
    (["--max-steps", "0"], ["max_steps must be a positive integer, got 0"]),
    (["--eval-every", "0"], ["eval_every must be a positive integer, got 0"]),
    (["--rule", "plateau", "--patience", "0"], ["patience must be a positive integer, got 0"]),
    (["--decays", "-1"], ["max_decays must be a non-negative integer, got -1"]),
    (["--grad-clip", "-1"], ["grad_clip must be >= 0"]),
    (["--max-steps", "100000000000", "--passes", "100000000000"], ["100,000,000,000 steps", "use --yes"]),
    (["--device", "quantum"], ["unknown device 'quantum'"]),
    (["-k", "seq_len=0"], ["seq_len"]),
    (["--threads", "0"], ["--threads must be a positive integer"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, fragments):
    result = run("run", "Seq2Vec-CatCat-v0", *TINY, "--lr", "0.01", "--max-steps", "1", "--out", str(tmp_path / "o"),
                 *args)
    assert_bad_input(result, *fragments)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing written


@pytest.mark.parametrize("flag, value", [("--lr", "abc"), ("--batch-size", "8,x")])
def test_a_list_that_does_not_parse_names_the_flag(tmp_path, flag, value):
    result = run("run", "Seq2Vec-CatCat-v0", *TINY, "--max-steps", "1", "--out", str(tmp_path / "o"), flag, value)
    assert_bad_input(result, f"{flag} {value!r}:")


@pytest.mark.parametrize("flag", ["--lr", "--batch-size"])
def test_an_empty_search_list_is_refused(tmp_path, flag):
    result = run("run", "Seq2Vec-CatCat-v0", *TINY, *FAST, "--hidden", "4", "--lr", "0.01", "--batch-size", "64",
                 "--max-steps", "1", "--out", str(tmp_path / "o"), flag, ",")
    assert_bad_input(result, f"{flag} ',': give comma-separated")
    assert not (tmp_path / "o").exists()


def test_a_run_of_hours_is_refused_unless_yes(tmp_path):
    """The worst-case estimate is checked before anything is written; --yes lets the run past that check."""
    blocked = tmp_path / "file"
    blocked.write_text("")
    base = ["run", "Seq2Vec-CatCat-v0", *TINY, "--hidden", "4", "--lr", "0.01", "--max-steps", "100000000000",
            "--rule", "plateau"]
    refused = run(*base, "--out", str(tmp_path / "o"))
    assert_bad_input(refused, "of up to 100,000,000,000 steps", "at worst about", "use --yes")
    assert not (tmp_path / "o").exists()
    # With an unwritable --out the refusal still comes first; with --yes the run gets past it to the next check.
    assert_bad_input(run(*base, "--out", str(blocked / "sub")), "use --yes")
    assert_bad_input(run(*base, "--out", str(blocked / "sub"), "--yes"), "cannot write results to")


def test_the_estimate_counts_every_trial_of_the_search(tmp_path):
    """A budget that one trial can afford (half the limit at worst) is refused for a search of four that trains every
    trial to its budget (the plateau rule: no halving)."""
    task = memtasks.make("Seq2Vec-CatCat-v0", seq_len=5, n_examples=40, n_test=10)
    total = count_total_params(task.layout, cell_spec("lstm"), 4, 16, {})
    steps = str(round(RUN_LIMIT_S / 2 / trial_step_seconds(total, 40, task.layout.length)))  # batch 64: all 40
    blocked = tmp_path / "file"
    blocked.write_text("")
    base = ["run", "Seq2Vec-CatCat-v0", *TINY, "--hidden", "4", "--max-steps", steps, "--rule", "plateau",
            "--out", str(blocked / "sub")]
    assert_bad_input(run(*base, "--lr", "0.01"), "cannot write results to")  # one trial: not refused
    assert_bad_input(run(*base, "--lr", "1e-3,3e-3,1e-2,3e-2"), "4 trials", "use --yes")
    assert_bad_input(run(*base), "4 trials", "use --yes")  # the default grid is four learning rates
    assert_bad_input(run(*base, "--lr", "0.01", "--batch-size", "64,32,16,8"), "4 trials", "use --yes")


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_bad_input(run("run", "Seq2Vec-CatCat-v0", *TINY, "--lr", "0.01", "--out", str(blocker / "sub")),
                     "cannot write results to")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_request_without_gpu_is_refused(tmp_path):
    assert_bad_input(run("run", "Seq2Vec-CatCat-v0", *TINY, "--device", "cuda", "--out", str(tmp_path)),
                     "no CUDA GPU is available")


def test_ctrl_c_saves_the_partial_result(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # Full-batch steps evaluated after each one; the cell presses Ctrl-C in its third training step, after two
    # completed and evaluated steps.
    cmd = [sys.executable, "-m", "memtasks.cli", "run", "Seq2Vec-CatCat-v0", "-k", "seq_len=5", "-k", "n_examples=64",
           "--batch-size", "64", "--cell", "tests.plugin_cells:interrupting", "--hidden", "8", "--lr", "1e-6",
           "--eval-every", "1", "--max-steps", "100", "--out", str(tmp_path / "runs"),
           "--no-progress"]
    # A shell without job control starts background commands with SIGINT ignored, and a child inherits that;
    # restore the default so the cell's Ctrl-C is delivered however the suite itself was started.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "partial result is saved" in stderr
    files = list((tmp_path / "runs").glob("*.json"))
    assert len(files) == 1
    partial = RunResult.load(files[0])
    assert (partial.status, partial.stop_reason) == ("interrupted", "interrupted")
    assert partial.evaluations == len(partial.history) == 2
    assert [e["step"] for e in partial.history] == [1, 2] and partial.steps == 2
    assert [t["status"] for t in partial.trials] == ["interrupted"] and partial.selected_trial == 0
    assert str(files[0]) in stderr
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary file left


def test_a_module_factory_cell_in_the_current_folder_needs_no_pythonpath(tmp_path):
    """The console script, started in the folder that holds the user's module, with no PYTHONPATH."""
    (tmp_path / "mycells.py").write_text("import torch\n\n\ndef make(input_size, hidden_size):\n"
                                         "    return torch.nn.Sequential(torch.nn.Linear(input_size, hidden_size), "
                                         "torch.nn.Tanh())\n")
    script = os.path.join(os.path.dirname(sys.executable), "memtasks")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    cmd = [script, "run", "Seq2Vec-CatCat-v0", *TINY, "--cell", "mycells:make", "--hidden", "4", "--lr", "0.01",
           "--max-steps", "2", "--out", "runs", "--no-progress", "--json"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cell"]["name"] == "mycells:make"
    missing = subprocess.run([*cmd[:3], *TINY, "--cell", "nomodule:make"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2 and "cannot import module 'nomodule'" in missing.stderr


def test_a_result_that_cannot_be_written_is_rescued_and_named(tmp_path, monkeypatch):
    def full_disk(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("memtasks.atomic.os.replace", full_disk)
    result = run("run", "Seq2Vec-CatCat-v0", *TINY, *FAST, "--hidden", "4", "--lr", "0.01", "--max-steps", "2",
                 "--eval-every", "1", "--out", str(tmp_path))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in result.output
    rescued = next(tmp_path.glob("*.json.partial"))
    assert str(rescued) in lines[0]
    assert [e["step"] for e in json.loads(rescued.read_text())["history"]] == [1, 2]
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob(".*.tmp"))
