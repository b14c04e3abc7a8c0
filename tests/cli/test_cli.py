"""The memtasks CLI: list, show, generate; bad input is one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import memtasks
from tests.helpers import assert_bad_input, run


def test_help_everywhere():
    for cmd in ([], ["list"], ["show"], ["generate"]):
        result = run(*cmd, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    assert all(c in run("--help").output for c in ("list", "show", "generate"))


def test_list_shows_all_sixteen_settings():
    result = run("list")
    assert result.exit_code == 0
    for sid in memtasks.SETTINGS:
        assert sid in result.output
    rows = json.loads(run("list", "--json").output)
    assert {r["id"] for r in rows} >= set(memtasks.SETTINGS)
    by_id = {r["id"]: r for r in rows}
    assert all(by_id[sid]["entry_point"].startswith("memtasks.tasks.grid:") for sid in memtasks.SETTINGS)
    assert by_id["DelayedRecall-Real-v0"]["entry_point"] == "memtasks.tasks.recall:DelayedRecallReal"


def test_show_every_setting(setting):
    kw = ["-k", "seq_len=5", "-k", "n_examples=30", "-k", "n_test=5"]
    result = run("show", setting, *kw)
    assert result.exit_code == 0, result.output
    for text in ("kwargs (merged)", "achievable ceiling", "train example 0", "fingerprint", "scored steps"):
        assert text in result.output
    summary = json.loads(run("show", setting, *kw, "--json").output)
    task = memtasks.make(setting, seq_len=5, n_examples=30, n_test=5)
    assert summary["spec"]["kwargs"] == task.spec.kwargs
    assert summary["splits"]["train"]["fingerprint"] == task.train.fingerprint
    assert summary["ceiling"] == task.train.ceiling.to_dict()
    assert summary["info"]["max_bits"] == task.info.max_bits


def test_show_parses_typed_kwargs():
    result = json.loads(run("show", "Seq2Seq-CatReal-v0", "-k", "out_len=4", "-k", "x_noise=0.25",
                            "-k", "source=teacher", "-k", "seq_len=1_0", "--json").output)
    kw = result["spec"]["kwargs"]
    assert (kw["out_len"], kw["x_noise"], kw["source"], kw["seq_len"]) == (4, 0.25, "teacher", 10)
    assert result["splits"]["train"]["x_noised"] == 250


def test_generate_every_setting(setting, tmp_path):
    out = tmp_path / "d.npz"
    result = run("generate", setting, "-o", str(out), "-k", "n_examples=20", "-k", "n_test=4", "-k", "seq_len=3")
    assert result.exit_code == 0, result.output
    loaded = memtasks.load(out)
    task = memtasks.make(setting, n_examples=20, n_test=4, seq_len=3)
    assert loaded["train"].fingerprint == task.train.fingerprint
    assert loaded["test"].fingerprint == task.test.fingerprint
    assert task.train.fingerprint in result.output


def test_generate_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "d.npz"
    assert run("generate", "Seq2Vec-CatCat-v0", "-o", str(out)).exit_code == 0
    before = out.read_bytes()
    assert_bad_input(run("generate", "Seq2Vec-CatCat-v0", "-o", str(out), "-k", "seed=1"), "exists", "--force")
    assert out.read_bytes() == before  # nothing lost
    assert run("generate", "Seq2Vec-CatCat-v0", "-o", str(out), "-k", "seed=1", "--force").exit_code == 0
    assert out.read_bytes() != before
    info = json.loads(run("generate", "Seq2Vec-CatCat-v0", "-o", str(out), "--force", "--json").output)
    assert info["splits"]["train"]["n"] == 1000



EMPTY_TEST = ["-k", "seq_len=4", "-k", "n_examples=16", "-k", "n_test=0"]


@pytest.mark.parametrize("task_id", ["Seq2Vec-CatCat-v0", "NextStep-RealReal-v0", "Vec2Seq-CatReal-v0"])
def test_show_and_generate_with_an_empty_test_split(task_id, tmp_path):
    """n_test=0 is valid: no held-out set, and every command still works."""
    shown = run("show", task_id, *EMPTY_TEST)
    assert shown.exit_code == 0, shown.output
    assert "train example 0" in shown.output
    summary = json.loads(run("show", task_id, *EMPTY_TEST, "--json").output)
    test = summary["splits"]["test"]
    assert test["n"] == 0 and test["x"]["shape"][0] == 0 and test["y"]["shape"][0] == 0
    assert summary["splits"]["train"]["n"] == 16

    out = tmp_path / "d.npz"
    written = run("generate", task_id, *EMPTY_TEST, "-o", str(out))
    assert written.exit_code == 0, written.output
    task = memtasks.make(task_id, seq_len=4, n_examples=16, n_test=0)
    assert f"test fingerprint: {task.test.fingerprint}" in written.output
    loaded = memtasks.load(out)
    assert len(loaded["train"]) == 16 and len(loaded["test"]) == 0
    assert loaded["test"].fingerprint == task.test.fingerprint
    assert loaded["train"].fingerprint == task.train.fingerprint
    info = json.loads(run("generate", task_id, *EMPTY_TEST, "-o", str(out), "--force", "--json").output)
    assert info["splits"]["test"] == {"n": 0, "fingerprint": task.test.fingerprint}

@pytest.mark.parametrize("args, fragments", [
    (["show", "Seq2Vec-CatCta-v0"], ["doesn't exist", "did you mean 'Seq2Vec-CatCat'"]),
    (["show", "Seq2Vec-CatCat-v9"], ["has no version v9", "registered versions: v0"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "sq_len=5"], ["unknown kwarg sq_len", "valid kwargs are seq_len"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "seq_len"], ["expected key=value"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "seq_len=abc"], ["seq_len='abc' is invalid", "an integer >= 1"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "seq_len=0"], ["seq_len=0 is invalid"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "n_examples=-5"], ["n_examples=-5 is invalid"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "seq_len=2.5"], ["seq_len='2.5' is invalid"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "x_noise=1.5"], ["x_noise=1.5 is invalid", "[0, 1]"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "in_vocab=1"], ["in_vocab=1 is invalid"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "out_classes=0"], ["out_classes=0 is invalid"]),
    (["show", "NextStep-CatCat-v0", "-k", "out_len=3"], ["unknown kwarg out_len", "only Seq2Seq"]),
    (["show", "Seq2Vec-CatCat-v0", "-k", "source=magic"], ["one of 'random', 'teacher'"]),
    (["show", "NextStep-RealReal-v0", "-k", "n_examples=1000000000", "-k", "seq_len=1000"],
     ["over the memory guard"]),
    (["show", "Seq2Vec-CatCat-v0", "--example", "5000"], ["out of range"]),
    (["show", "Seq2Vec-CatCat-v0", "--bogus"], ["No such option"]),
    (["generate", "Seq2Vec-CatCat-v0"], ["Missing option"]),
    (["generate", "Seq2Vec-CatCat-v0", "-o", "data.txt"], ["must end in .npz"]),
    (["generate", "Seq2Vec-CatCat-v0", "-o", "no/such/dir/d.npz"], ["does not exist"]),
])
def test_bad_input_is_one_line_and_exit_2(args, fragments):
    result = run(*args)
    if "No such option" in fragments or "Missing option" in fragments:
        # click's own usage errors: exit 2 with the usage line and one Error line
        assert result.exit_code == 2 and any(f in result.stderr for f in fragments)
        return
    assert_bad_input(result, *fragments)


def test_unwritable_directory(tmp_path, monkeypatch):
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    assert_bad_input(run("generate", "Seq2Vec-CatCat-v0", "-o", str(tmp_path / "d.npz")), "not writable")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def failing_task(clean_registry):
    from memtasks.tasks.grid import Seq2VecCatCat

    class Broken(Seq2VecCatCat):
        def generate(self, split):
            raise RuntimeError("disk on fire")

    memtasks.register("test/Broken-v0", Broken)
    return "test/Broken-v0"


def test_failure_while_running_is_exit_1(failing_task):
    result = run("show", failing_task)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: RuntimeError: disk on fire (set MEMTASKS_DEBUG=1 for the traceback)"


def test_outdated_version_warns_on_the_cli(clean_registry):
    from memtasks.tasks.grid import Seq2VecCatCat

    memtasks.register("Seq2Vec-CatCat-v1", Seq2VecCatCat)
    result = run("show", "Seq2Vec-CatCat-v0", "-k", "n_examples=5")
    assert result.exit_code == 0
    assert "Warning: task Seq2Vec-CatCat-v0 is out of date; the latest version is Seq2Vec-CatCat-v1" in result.stderr


def test_installed_entry_point_exit_codes(tmp_path):
    """The real console script: exit 0, 2 with one line, and no traceback."""
    exe = [sys.executable, "-m", "memtasks.cli"]
    ok = subprocess.run([*exe, "list"], capture_output=True, text=True)
    assert ok.returncode == 0 and "Seq2Vec-CatCat-v0" in ok.stdout
    bad = subprocess.run([*exe, "show", "Nope-v0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("Error: ")
