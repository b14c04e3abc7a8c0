"""Bad input that used to let a sweep, a suite or a build start (issue 25): each is refused before any work with exit
code 2 and one ``Error:`` line, creating nothing; and Ctrl-C on a parallel sweep prints no worker traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memtasks.leaderboard import site
from memtasks.leaderboard.suite import get_suite
from memtasks.leaderboard.validate import Report, _check_weights
from tests.helpers import ROOT, assert_bad_input, run

#: A sweep of one tiny point (a few steps of a 4-unit rnn).
TOML = ('name = "ok"\ntasks = ["Seq2Vec-CatCat-v0"]\ncells = [{cells}]\nn_examples = [8]\nseq_len = [3]\n'
        'hidden = [4]\nseeds = [0]\n[task_kwargs]\nn_test = 4\n{extra}[protocol]\nmax_steps = 10\n[search]\n'
        'lr = [0.01]\n')


def _config(tmp_path: Path, cells: str = '"rnn"', extra: str = "") -> Path:
    path = tmp_path / "ok.toml"
    path.write_text(TOML.format(cells=cells, extra=extra))
    return path


def _sweep(tmp_path: Path, *args: str, cells: str = '"rnn"', extra: str = ""):
    """``memtasks sweep`` of the tiny config into ``tmp_path/runs``."""
    return run("sweep", str(_config(tmp_path, cells, extra)), "--out", str(tmp_path / "runs"), "--workers", "1",
               "--no-progress", *args)


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "runs").exists()


# ----- 1. a module:factory cell that cannot be built ----------------------------------------------------------------
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_sweep_builds_its_module_factory_cells_first(tmp_path, dry_run):
    result = _sweep(tmp_path, *(["--dry-run"] if dry_run else []), cells='"rnn", "os:system"')
    assert_bad_input(result, "cell 'os:system' could not be built", "system()")
    _nothing_written(tmp_path)


def test_a_suite_builds_its_cell_before_making_its_folder(tmp_path):
    folder = tmp_path / "suite"
    result = run("suite", "run", "core-v0", "--cell", "os:system", "--workers", "1", "--out", str(folder))
    assert_bad_input(result, "cell 'os:system' could not be built")
    assert not folder.exists()


# ----- 2. seeds are checked with the task kwargs, in a dry run too -----------------------------------------------
@pytest.mark.parametrize("seeds", ["-1", "4294967296"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_seeds_out_of_range_are_refused_before_any_work(tmp_path, seeds, dry_run):
    result = _sweep(tmp_path, "--seeds", seeds, *(["--dry-run"] if dry_run else []))
    assert_bad_input(result, f"seeds: {seeds} is out of range", "[0, 4294967295]")
    _nothing_written(tmp_path)


def test_the_last_valid_seed_is_accepted(tmp_path):
    result = _sweep(tmp_path, "--seeds", "0,4294967295", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 points" in result.stdout


# ----- 3. bad values that used to fail with exit code 1 -------------------------------------------------------------
@pytest.mark.parametrize("seed", ["99999999999999999999", "4294967296", "-1"])
def test_run_refuses_a_training_seed_outside_its_range(tmp_path, seed):
    result = run("run", "Seq2Vec-CatCat-v0", "--seed", seed, "--out", str(tmp_path / "runs"))
    assert_bad_input(result, f"--seed {seed} is out of range", "[0, 4294967295]")
    _nothing_written(tmp_path)


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_task_kwarg_nested_thousands_deep_is_one_error_line(tmp_path, dry_run):
    deep = "[" * 5000 + "]" * 5000
    result = _sweep(tmp_path, *(["--dry-run"] if dry_run else []), extra=f"foo = {deep}\n")
    assert_bad_input(result, "nested too deeply")
    _nothing_written(tmp_path)
    result = run("sweep", str(_config(tmp_path)), "--out", str(tmp_path / "runs"), "-k", f"foo={deep}", "--dry-run")
    assert_bad_input(result, "kwarg 'foo'", "nested too deeply")


# ----- 4. worker and thread counts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["--workers", "0"], "--workers must be a positive integer (1 or more), got 0"),
    (["--workers", "-3"], "--workers must be a positive integer (1 or more), got -3"),
    (["--threads", "0"], "--threads must be a positive integer (1 or more), got 0"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_sweep_refuses_zero_or_negative_workers_and_threads(tmp_path, args, fragment, dry_run):
    config = _config(tmp_path)
    result = run("sweep", str(config), "--out", str(tmp_path / "runs"), *args, *(["--dry-run"] if dry_run else []))
    assert_bad_input(result, fragment)
    _nothing_written(tmp_path)


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_a_suite_refuses_zero_or_negative_workers(tmp_path, workers):
    folder = tmp_path / "suite"
    result = run("suite", "run", "core-v0", "--cell", "lstm", "--workers", workers, "--out", str(folder))
    assert_bad_input(result, f"--workers must be a positive integer (1 or more), got {workers}")
    assert not folder.exists()



# ----- 5. empty items in a comma-separated list ---------------------------------------------------------------------
@pytest.mark.parametrize("value, where", [("0.01,,0.03", "item 2 of 3 is empty"), ("0.01,", "item 2 of 2 is empty"),
                                          (",0.01", "item 1 of 2 is empty"), ("", "it is empty")])
def test_an_empty_list_item_is_refused(tmp_path, value, where):
    result = run("run", "Seq2Vec-CatCat-v0", "--lr", value, "--out", str(tmp_path / "runs"))
    assert_bad_input(result, f"--lr {value!r}: give comma-separated floats, e.g. 0.003,0.01 ({where})")
    assert_bad_input(_sweep(tmp_path, "--lr", value), f"--lr {value!r}: give comma-separated floats", where)
    _nothing_written(tmp_path)


# ----- 6. Ctrl-C on a parallel sweep --------------------------------------------------------------------------------
def _workers(pid: int) -> list[int]:
    """The process-pool workers of the sweep ``pid`` (Linux /proc): its children that run ``spawn_main``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid and \
                    b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _start_sweep(config: Path, out: Path, gate: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MEMTASKS_TEST_GATE": str(gate)}
    with log.open("w") as stream:
        # Its own process group, so a Ctrl-C reaches the sweep and its workers as a terminal's would, and never
        # this test; SIGINT restored in case this suite was started with it ignored (a child inherits that).
        return subprocess.Popen([sys.executable, "-m", "memtasks.cli", "sweep", str(config), "--out", str(out),
                                 "--workers", "2", "--no-progress"], cwd=ROOT, env=env, stdout=stream, stderr=stream,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(condition, proc: subprocess.Popen, log: Path, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the sweep ended before {what}: {log.read_text()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {log.read_text()}"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_ctrl_c_on_a_parallel_sweep_prints_no_worker_traceback(tmp_path):
    # The rnn points finish at once; the gated point cannot before the gate opens, so while it waits one worker is
    # idle and the other busy, on a fast or a loaded machine alike.
    gate = tmp_path / "gate"
    config = _config(tmp_path, cells='"rnn", "tests.plugin_cells:gated"')
    out, log = tmp_path / "runs", tmp_path / "sweep.log"
    rnn = out / "ok" / "Seq2Vec-CatCat-v0_rnn_n8_T3_h4_seed0.json"
    proc = _start_sweep(config, out, gate, log)
    try:
        _wait_for(rnn.exists, proc, log, "the rnn result")
        workers = _workers(proc.pid)
        assert len(workers) == 2, workers
        # A Ctrl-C that reaches the workers first (a terminal signals the whole group, in no set order): the idle
        # one must not die of it with a traceback; the busy one stops its job, which the sweep reports.
        for pid in workers:
            os.kill(pid, signal.SIGINT)
        proc.wait(timeout=240)
        text = log.read_text()
        assert "Traceback" not in text, text
        assert proc.returncode == 1 and "KeyboardInterrupt" in text and "1 run(s) failed" in text, text
        assert rnn.exists()

        # Ctrl-C to the whole group on the resumed sweep, as soon as its worker exists (most likely still
        # starting up): the sweep aborts, quietly, and keeps what was finished.
        proc = _start_sweep(config, out, gate, log)
        _wait_for(lambda: _workers(proc.pid), proc, log, "a worker process")
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=240)
        text = log.read_text()
        assert "Traceback" not in text, text
        assert proc.returncode == 1 and "Aborted!" in text, text
        assert rnn.exists()
    finally:
        gate.touch()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ----- 7. a refused build leaves no folder --------------------------------------------------------------------------
def test_a_refused_build_creates_no_folder(tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    (subs / "bad.json").write_text("{}")
    target = tmp_path / "new" / "site"
    result = run("leaderboard", "build", "--submissions", str(subs), "--out", str(target))
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()  # the Error: line, then one indented line per problem
    assert lines[0].startswith("Error: ") and "nothing was written" in lines[0], result.stderr
    assert not any(line.startswith("Error:") for line in lines[1:]) and "Traceback" not in result.output
    assert not (tmp_path / "new").exists()


def test_a_build_makes_its_folder_once_it_succeeds(tmp_path, monkeypatch):
    monkeypatch.setattr(site, "collect", lambda *a, **k: (get_suite("core-v0"), []))
    monkeypatch.setattr(site, "render_markdown", lambda suite, rows: "# board\n")
    monkeypatch.setattr(site, "render_html", lambda suite, rows: "<html></html>\n")
    target = tmp_path / "new" / "site"
    assert site.build(tmp_path, target) == [target / "README.md", target / "index.html"]
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "index.html"]


def test_a_build_into_a_file_is_refused_before_any_check(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_bad_input(run("leaderboard", "build", "--submissions", str(tmp_path), "--out", str(blocker / "site")),
                     "is not a writable directory")


def test_a_build_of_an_unknown_suite_names_the_valid_ones_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_bad_input(run("leaderboard", "build", "--suite", "core-v9"), "unknown suite 'core-v9'; valid: core-v0")
    assert list(tmp_path.iterdir()) == []


def test_a_build_reads_and_writes_its_suites_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    monkeypatch.setattr(site, "build", lambda subs, out, **k: seen.append((subs, out)) or [])
    assert run("leaderboard", "build", "--suite", "core-v1").exit_code == 0
    assert seen == [(Path("leaderboard/core-v1/submissions"), Path("leaderboard/core-v1"))]


# ----- 8. weights that are not a regular file -----------------------------------------------------------------------
def _weights_problems(tmp_path: Path) -> list[str]:
    report = Report(tmp_path / "sub.json")
    _check_weights(report, {"weights": {"file": "sub.safetensors", "format": "safetensors", "sha256": "0"}}, [])
    return [str(p) for p in report.problems]


@pytest.mark.skipif(not Path("/dev/zero").is_char_device(), reason="needs /dev/zero")
def test_weights_linked_to_a_device_are_named_as_such(tmp_path):
    (tmp_path / "sub.safetensors").symlink_to("/dev/zero")
    assert _weights_problems(tmp_path) == [
        "weights: sub.safetensors is a symbolic link to a character device, not a regular file"]


def test_weights_that_are_a_folder_a_broken_link_or_missing_are_named_as_such(tmp_path):
    assert _weights_problems(tmp_path) == ["weights: sub.safetensors is missing beside the submission"]
    (tmp_path / "sub.safetensors").symlink_to(tmp_path / "nowhere")
    assert _weights_problems(tmp_path) == ["weights: sub.safetensors is a broken symbolic link, not a regular file"]
    (tmp_path / "sub.safetensors").unlink()
    (tmp_path / "sub.safetensors").mkdir()
    assert _weights_problems(tmp_path) == ["weights: sub.safetensors is a directory, not a regular file"]


# ----- 9. digits other than ASCII -----------------------------------------------------------------------------------
@pytest.mark.parametrize("args, fragments", [
    (["show", "Seq2Vec-CatCat-v0", "-k", "seq_len=１０"], ["seq_len='１０' is invalid", "only ASCII digits"]),
    (["generate", "Seq2Vec-CatCat-v0", "-k", "seq_len=１０", "--out", "d.npz"],
     ["seq_len='１０' is invalid", "only ASCII digits"]),
    (["run", "Seq2Vec-CatCat-v0", "-k", "seq_len=١٠"], ["seq_len='١٠' is invalid", "only ASCII digits"]),
    (["run", "Seq2Vec-CatCat-v0", "--hidden", "１０"], ["--hidden '１０'", "only ASCII digits"]),
    (["run", "Seq2Vec-CatCat-v0", "--grad-clip", "１.５"], ["--grad-clip '１.５'", "only ASCII digits"]),
    (["run", "Seq2Vec-CatCat-v0", "--lr", "0.01,１.５"], ["--lr '0.01,１.５'", "(item 2 '１.５': only ASCII digits"]),
    (["sweep", "--max-steps", "１０"], ["--max-steps '１０'", "only ASCII digits"]),
    (["report", "x", "--threshold", "０.５"], ["--threshold '０.５'", "only ASCII digits"]),
    (["show", "Seq2Vec-CatCat-v0", "--example", "１"], ["--example '１'", "only ASCII digits"]),
])
def test_numbers_with_other_than_ascii_digits_are_refused(tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    assert_bad_input(run(*args), *fragments)
    assert not list(tmp_path.iterdir())
