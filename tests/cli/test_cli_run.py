"""``memtasks run`` and ``memtasks cells``: the summary, the result file, and bad input (exit code 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from memtasks.fitting.result import RunResult
from tests.helpers import ROOT, assert_bad_input, run

TINY = ["-k", "seq_len=5", "-k", "n_examples=40", "-k", "n_test=10"]


def test_run_prints_a_summary_and_writes_the_result(tmp_path):
    result = run("run", "Seq2Vec-CatCat-v0", *TINY, "--hidden", "16", "--lr", "0.01", "--batch-size", "20",
                 "--out", str(tmp_path / "runs"), "--save-model")
    assert result.exit_code == 0, result.output
    for text in ("achievable ceiling", "fitting ceiling", "bits per parameter", "epochs to 50 / 90 / 100",
                 "completed (ceiling)", "result: "):
        assert text in result.output
    files = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors")
    assert files[0].startswith("Seq2Vec-CatCat-v0_lstm_h16_seed0_")
    saved = RunResult.load(tmp_path / "runs" / files[0])
    assert saved.stop_reason == "ceiling" and saved.model_file == files[1]
    assert saved.protocol["lr"] == 0.01 and saved.protocol["batch_size"] == 20
    assert saved.task["kwargs"]["n_examples"] == 40


def test_run_json_matches_the_file_and_never_overwrites(tmp_path):
    args = ["run", "Seq2Vec-CatReal-v0", *TINY, "--cell", "gru", "--params", "2000", "--max-epochs", "2",
            "--out", str(tmp_path), "--json"]
    first, second = run(*args), run(*args)
    assert first.exit_code == 0 and second.exit_code == 0
    data = json.loads(first.stdout)
    assert data["schema_version"] == 1 and data["cell"]["params_budget"] == 2000
    assert abs(data["cell"]["params_total"] - 2000) < 200
    assert len(list(tmp_path.glob("*.json"))) == 2  # the second run got its own file


@pytest.mark.parametrize("task_id", ["Seq2Vec-CatCat-v0", "NextStep-RealReal-v0", "Vec2Seq-CatReal-v0"])
def test_run_without_a_held_out_set(task_id, tmp_path):
    """n_test=0: the summary says there is no held-out set; --json stays strict JSON with no test metrics."""
    args = ["run", task_id, "-k", "seq_len=4", "-k", "n_examples=16", "-k", "n_test=0", "--hidden", "4",
            "--max-epochs", "2", "--out", str(tmp_path)]
    table = run(*args)
    assert table.exit_code == 0, table.output
    held_out = [line for line in table.output.splitlines() if "held-out test" in line]
    assert len(held_out) == 1 and "n/a (n_test=0)" in held_out[0], held_out
    assert "chance" not in held_out[0]
    as_json = run(*args, "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not valid JSON"))
    assert data["task"]["n_test"] == 0 and data["best"]["test"] is None
    assert all(entry["test"] is None for entry in data["history"])


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
    (["--lr", "0"], ["learning rate must be a positive number, got 0.0"]),
    (["--lr", "-0.1"], ["learning rate must be a positive number"]),
    (["--batch-size", "0"], ["batch_size must be a positive integer"]),
    (["--device", "quantum"], ["unknown device 'quantum'"]),
    (["-k", "seq_len=0"], ["seq_len"]),
    (["--threads", "0"], ["--threads must be a positive integer"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, fragments):
    result = run("run", "Seq2Vec-CatCat-v0", *TINY, "--max-epochs", "1", "--out", str(tmp_path / "o"), *args)
    assert_bad_input(result, *fragments)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing written


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_bad_input(run("run", "Seq2Vec-CatCat-v0", *TINY, "--out", str(blocker / "sub")),
                     "cannot write results to")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_request_without_gpu_is_refused(tmp_path):
    assert_bad_input(run("run", "Seq2Vec-CatCat-v0", *TINY, "--device", "cuda", "--out", str(tmp_path)),
                     "no CUDA GPU is available")


def test_ctrl_c_saves_the_partial_result(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # One optimizer step per epoch; the cell presses Ctrl-C at its third step, after two evaluated epochs.
    cmd = [sys.executable, "-m", "memtasks.cli", "run", "Seq2Vec-CatCat-v0", "-k", "seq_len=20", "-k", "n_examples=64",
           "--batch-size", "64", "--cell", "tests.plugin_cells:interrupting", "--max-epochs", "100000",
           "--patience", "100000", "--lr", "1e-6", "--out", str(tmp_path / "runs"), "--no-progress"]
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
    assert partial.epochs == len(partial.history) == 2
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary file left


def test_a_result_that_cannot_be_written_is_rescued_and_named(tmp_path, monkeypatch):
    def full_disk(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("memtasks.fitting.result.os.replace", full_disk)
    result = run("run", "Seq2Vec-CatCat-v0", *TINY, "--hidden", "4", "--max-epochs", "2", "--out", str(tmp_path))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in result.output
    rescued = next(tmp_path.glob("*.json.partial"))
    assert str(rescued) in lines[0]
    assert [e["epoch"] for e in json.loads(rescued.read_text())["history"]] == [1, 2]
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob(".*.tmp"))
