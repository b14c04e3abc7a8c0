"""The leaderboard's checks: a tiny suite run end to end, then tampered copies of its submission, each rejected for
the right reason; a valid one validates, verifies and builds."""

from __future__ import annotations

import copy
import json
import pickle
import shutil
from pathlib import Path

import pytest

from memtasks.leaderboard import suite as suites
from memtasks.leaderboard.scores import compute_scores
from memtasks.leaderboard.site import BuildError, build
from memtasks.leaderboard.submission import SubmissionError, make_submission
from memtasks.leaderboard.validate import check_duplicates, validate_file
from memtasks.leaderboard.verify import verify_submission
from tests.helpers import assert_bad_input, run

#: Two settings (one categorical, one real target), two seeds, a few dozen steps: seconds on one core.
TINY = suites.Suite(
    id="tiny-v0", summary="A test suite.",
    parts=(suites.SuitePart("cat", ("NextStep-CatCat-v0",), 1.0), suites.SuitePart("real", ("Seq2Vec-RealReal-v0",),
                                                                                  2.0)),
    params=300, seeds=(0, 1), seq_len=5, embed_dim=4, search={"lr": [0.01, 0.03], "batch_size": [16]},
    protocol={"max_steps": 60, "eval_every": 20, "min_steps": 20}, task_kwargs={"n_test": 8})


@pytest.fixture(scope="module")
def tiny_suite():
    suites.SUITES[TINY.id] = TINY
    yield TINY
    del suites.SUITES[TINY.id]


@pytest.fixture(scope="module")
def valid(tiny_suite, tmp_path_factory) -> Path:
    """A valid submission of the tiny suite for the lstm, with weights."""
    root = tmp_path_factory.mktemp("suite")
    run_ = suites.run_suite(tiny_suite, "lstm", root / "run", workers=1)
    assert not run_.failed
    return make_submission(root / "run", "Tiny LSTM", "builtin", root / "sub" / "tiny-lstm.json",
                           created="2026-12-01")


def _copy(valid: Path, tmp_path: Path, edit=None, name: str = "sub.json") -> Path:
    """A copy of the valid submission (and its weights) in ``tmp_path``, edited by ``edit(data)``."""
    data = json.loads(valid.read_text())
    if edit is not None:
        edit(data)
    shutil.copy(valid.with_suffix(".safetensors"), tmp_path / valid.with_suffix(".safetensors").name)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _reasons(path: Path) -> list[str]:
    return [str(p) for p in validate_file(path).problems]


def _rescore(data: dict) -> None:
    data["scores"] = compute_scores(data["entries"], TINY.settings)


def test_a_valid_submission_validates_and_verifies(valid):
    report = validate_file(valid)
    assert report.ok, report.problems
    data = report.data
    assert {e["key"] for e in data["entries"]} == {"NextStep-CatCat-v0/seed0", "NextStep-CatCat-v0/seed1",
                                                   "Seq2Vec-RealReal-v0/seed0", "Seq2Vec-RealReal-v0/seed1"}
    assert all(e["history"] and e["convergence"] and len(e["trials"]) == 2 for e in data["entries"])
    assert all(sorted(t["stop_reason"] for t in e["trials"])[-1] == "halved" for e in data["entries"])
    prov = data["provenance"]
    assert prov["torch"] and prov["lightning"] and prov["memtasks"] and prov["cpu_count"]
    assert data["weights"]["format"] == "safetensors" and len(data["weights"]["sha256"]) == 64
    checks, problems = verify_submission(valid, data)
    assert not problems and len(checks) == 4
    assert {c.metric for c in checks} == {"accuracy", "mse"}
    assert all(c.ok and abs(c.claimed - c.measured) < 1e-6 for c in checks)


@pytest.mark.parametrize("edit, reason", [
    (lambda d: d["entries"][0]["best"]["train"].update(accuracy=1.0), "accuracy 1.0 is not"),
    (lambda d: d["entries"][0]["best"]["train"].update(bits=1e4), "bits 10000.0 is not"),
    (lambda d: d["entries"][2]["best"]["train"].update(r2=0.999), "r2 0.999 is not"),
    (lambda d: d["entries"][0]["task"]["kwargs"].update(n_examples=7), "task kwargs differ from the suite's in "
                                                                       "n_examples"),
    (lambda d: d["entries"][1]["task"].update(fingerprint="0" * 64), "training-set fingerprint does not match"),
    (lambda d: d["entries"].pop(3), "Seq2Vec-RealReal-v0/seed1: is missing"),
    (lambda d: d["entries"].append(copy.deepcopy(d["entries"][0])), "appears twice"),
    (lambda d: d["entries"][0]["cell"].update(params_total=5000), "5000 parameters overrun the budget: 300"),
    (lambda d: d["entries"][0]["protocol"].update(max_steps=100000), "protocol differs from the suite's in max_steps"),
    (lambda d: d["entries"][0]["best"]["train"].update(correct=10**6), "correct 1000000 is outside"),
    (lambda d: d["scores"]["overall"].update(bits_per_param=9.0), "scores.overall.bits_per_param: claims 9.0"),
    (lambda d: d.update(schema_version=7), "schema_version: 7 is not supported"),
    (lambda d: d.pop("provenance"), "missing fields provenance"),
    (lambda d: d["suite_definition"].update(params=10**6), "suite_definition: differs from tiny-v0"),
    (lambda d: d.update(suite="core"), "suite id 'core' has no version"),
    (lambda d: d["weights"].update(sha256="0" * 64), "SHA-256 is not the one the submission records"),
    (lambda d: d["entries"][0]["convergence"].update(converged=True), "claims converged=True, but the doubling test"),
    (lambda d: d["entries"][1].update(history=d["entries"][1]["history"][:1]), "history is missing or truncated"),
    (lambda d: d["entries"][1].update(history=d["entries"][1]["history"][:-1]), "does not end at step"),
    (lambda d: d["entries"][2].pop("convergence"), "has no convergence evidence"),
    (lambda d: d["entries"][2]["convergence"].update(from_bits=0.0), "convergence from_bits 0.0 is not"),
    (lambda d: d["entries"][3]["lr_history"].clear(), "learning-rate history is missing"),
], ids=["raised-accuracy", "changed-bits", "raised-r2", "altered-kwargs", "fingerprint", "missing-setting",
        "duplicate-entry", "budget-overrun", "protocol", "out-of-range", "scores", "schema-version",
        "missing-field", "suite-definition", "unversioned-suite", "weights-hash", "false-convergence",
        "truncated-history", "history-end", "no-evidence", "window-figure", "no-rates"])
def test_each_tampered_copy_is_rejected_for_its_reason(valid, tmp_path, edit, reason):
    reasons = _reasons(_copy(valid, tmp_path, edit))
    assert any(reason in r for r in reasons), reasons


def test_a_consistently_raised_fit_passes_validation_but_not_verification(valid, tmp_path):
    def raise_fit(data):
        entry = data["entries"][0]
        train = entry["best"]["train"]
        ceiling = entry["task"]["ceiling"]
        n, k = train["n_targets"], entry["task"]["layout"]["out_size"]
        from memtasks.metrics import bits_categorical
        train["correct"] = min(train["correct"] + 5, round(ceiling["accuracy"] * n))
        train["accuracy"] = train["correct"] / n
        train["bits"] = n * bits_categorical(train["accuracy"], k)
        train["bits_per_param"] = entry["best"]["bits_per_param"] = train["bits"] / entry["cell"]["params_total"]
        train["fraction_of_ceiling"] = train["accuracy"] / ceiling["accuracy"]
        train["at_ceiling"] = train["correct"] >= round(ceiling["accuracy"] * n)
        # a consistent claim: the history holds the raised evaluation, the evidence is recomputed from it
        from memtasks.fitting.convergence import assess
        for e in entry["history"]:
            if e["step"] == entry["best"]["step"]:
                e["train"] = copy.deepcopy(train)
        entry["convergence"] = {**assess(entry["history"], entry["lr_history"], tolerance=0.01, min_steps=20,
                                         max_decays=3), "converged": entry["convergence"]["converged"]}
        _rescore(data)

    path = _copy(valid, tmp_path, raise_fit)
    report = validate_file(path)
    assert report.ok, report.problems
    checks, problems = verify_submission(path, report.data)
    assert [p.where for p in problems] == ["NextStep-CatCat-v0/seed0"]
    assert "its weights give" in problems[0].reason


def test_pickled_weights_are_refused_without_being_loaded(valid, tmp_path, monkeypatch):
    def no_unpickling(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    import torch
    monkeypatch.setattr(torch, "load", no_unpickling)
    # A pickle under the expected name and hash...
    path = _copy(valid, tmp_path)
    weights = path.with_name("tiny-lstm.safetensors")
    weights.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    data = json.loads(path.read_text())
    from memtasks.leaderboard.submission import sha256_file
    data["weights"]["sha256"] = sha256_file(weights)
    path.write_text(json.dumps(data))
    assert any("is a Python pickle, not safetensors; it was not loaded" in r for r in _reasons(path))
    # ...and one declared as a checkpoint of another format.
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    data["weights"].update(file="model.pt", format="pytorch")
    path.write_text(json.dumps(data))
    assert any("model.pt (pytorch) is refused unread" in r for r in _reasons(path))


def test_malformed_and_oversized_files_are_rejected(valid, tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1,')
    assert any("malformed JSON" in r for r in _reasons(bad))
    bad.write_text("[1, 2]")
    assert any("a submission is a JSON object, got list" in r for r in _reasons(bad))
    from memtasks.leaderboard import submission
    monkeypatch.setattr(submission, "MAX_JSON_BYTES", 1000)
    assert any("over the 1,000-byte limit" in r for r in _reasons(valid))


def test_the_same_submission_twice_is_a_duplicate(valid, tmp_path):
    a = _copy(valid, tmp_path, name="a.json")
    b = _copy(valid, tmp_path, lambda d: d.update(name="Another name"), name="b.json")
    reports = [validate_file(a), validate_file(b)]
    check_duplicates(reports)
    assert reports[0].ok
    assert any("duplicate of a.json (the same runs)" in str(p) for p in reports[1].problems)


def test_build_writes_both_pages_or_nothing(valid, tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    shutil.copy(valid, subs)
    shutil.copy(valid.with_suffix(".safetensors"), subs)
    site = tmp_path / "site"
    site.mkdir()
    written = build(subs, site)
    assert [p.name for p in written] == ["README.md", "index.html"]
    page = (site / "index.html").read_text()
    assert "Tiny LSTM" in page and "✓ verified" in page and "<script" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    before = {p.name: p.read_bytes() for p in site.iterdir()}
    build(subs, site)
    assert before == {p.name: p.read_bytes() for p in site.iterdir()}, "a rebuild must be byte-identical"
    # One bad file among the submissions: nothing is written, every reason is given.
    (subs / "evil.pt").write_bytes(b"\x80\x04not really")
    data = json.loads(valid.read_text())
    data["entries"][0]["best"]["train"]["accuracy"] = 1.0
    (subs / "tampered.json").write_text(json.dumps(data))
    (site / "index.html").write_text("old page")
    with pytest.raises(BuildError) as info:
        build(subs, site)
    message = str(info.value)
    assert "nothing was written" in message and "evil.pt: only .json submissions" in message
    assert "tampered.json: NextStep-CatCat-v0/seed0: accuracy 1.0 is not" in message
    assert (site / "index.html").read_text() == "old page"
    assert not list(site.glob(".*.tmp"))


def test_submit_refuses_an_unfinished_run_and_bad_names(tiny_suite, valid, tmp_path):
    run_dir = valid.parent.parent / "run"
    with pytest.raises(SubmissionError, match="must be 1-64 letters"):
        make_submission(run_dir, "<script>", "builtin", tmp_path / "x.json")
    with pytest.raises(SubmissionError, match="must be an http"):
        make_submission(run_dir, "ok", "ftp://x", tmp_path / "x.json")
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    victim = sorted(p for p in (partial / "tiny-v0-cat").glob("*.json") if p.name != "sweep.json")[0]
    victim.unlink()
    with pytest.raises(SubmissionError, match="the suite run is unfinished"):
        make_submission(partial, "ok", "builtin", tmp_path / "x.json")


def test_the_command_line_gives_one_line_per_problem(valid, tmp_path):
    result = run("leaderboard", "validate", str(valid))
    assert result.exit_code == 0 and "valid" in result.output
    result = run("leaderboard", "verify", str(valid))
    assert result.exit_code == 0 and "verified" in result.output and "all 4 runs" in result.output
    tampered = _copy(valid, tmp_path, lambda d: d["entries"][0]["best"]["train"].update(accuracy=1.0))
    result = run("leaderboard", "validate", str(tampered))
    assert result.exit_code == 2
    assert "rejected" in result.stderr and "accuracy 1.0 is not" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: 1 of 1 submission(s) rejected (reasons above)"
    assert_bad_input(run("suite", "run", "core", "--cell", "lstm"), "suite id 'core' has no version")
    assert_bad_input(run("suite", "run", "core-v9", "--cell", "lstm"), "unknown suite 'core-v9'; valid: core-v0")
    assert_bad_input(run("submit", str(tmp_path), "--name", "x", "--cell-source", "builtin"), "is not a suite run")


def test_a_run_folder_of_another_cell_is_refused(tiny_suite, valid):
    with pytest.raises(suites.SuiteError, match="holds a run of suite tiny-v0 for cell lstm"):
        suites.run_suite(tiny_suite, "gru", valid.parent.parent / "run", workers=1)


def test_suite_run_and_submit_from_the_command_line(tiny_suite, tmp_path):
    folder = tmp_path / "gru"
    result = run("suite", "run", "tiny-v0", "--cell", "gru", "--workers", "1", "--out", str(folder), "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"-> {folder}" in result.output and "memtasks submit" in result.output
    info = json.loads((folder / "suite.json").read_text())
    assert info["suite"] == "tiny-v0" and info["cell"] == "gru" and info["machine"]["cpu_count"]
    assert len(list(folder.glob("*/*.safetensors"))) == 4
    again = run("suite", "run", "tiny-v0", "--cell", "gru", "--workers", "1", "--out", str(folder), "--no-progress")
    assert again.exit_code == 0 and "2 finished, 0 to run" in again.stderr
    target = tmp_path / "out" / "gru.json"
    result = run("submit", str(folder), "--name", "GRU", "--cell-source", "builtin", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert "it validates" in result.output and target.with_suffix(".safetensors").is_file()
    assert validate_file(target).ok
    bare = tmp_path / "bare.json"
    assert run("submit", str(folder), "--name", "GRU", "--cell-source", "builtin", "--no-weights",
               "--out", str(bare)).exit_code == 0
    data = json.loads(bare.read_text())
    assert data["weights"] is None and not bare.with_suffix(".safetensors").exists()
    assert_bad_input(run("leaderboard", "verify", str(bare)), "no weights")


@pytest.mark.parametrize("edit", [
    lambda d: d["entries"][0].update(task=["not", "a", "dict"]),
    lambda d: d["entries"][0]["task"].update(kwargs="n_examples=7"),
    lambda d: d["entries"][0].update(cell=[1, 2]),
    lambda d: d["entries"][0].update(protocol=None),
    lambda d: d["entries"][0].update(protocol=[1]),
    lambda d: d["entries"][0].update(key=["a"]),
    lambda d: d["entries"][0].update(best=[]),
    lambda d: d["entries"][0]["best"].update(train=None),
    lambda d: d["entries"][0].update(trials={"a": 1}),
    lambda d: d["entries"][0].update(steps="6000"),
    lambda d: d.update(suite=["core-v0"]),
    lambda d: d.update(suite={"id": 1}),
    lambda d: d["cell"].update(kwargs={"no_such_kwarg": 1}),
    lambda d: d["provenance"].update(torch=[1]),
    lambda d: d["provenance"].update(torch="2.1"),
    lambda d: d.update(created="2026|<b>x"),
    lambda d: d.update(cell_source="https://a.b/x)|![p](https://evil.example/p.png"),
    lambda d: d.update(schema_version=True),
    lambda d: d["scores"]["overall"].update(runs=4.00001),
    lambda d: d["entries"][0].update(stop_reason="budget", steps=10),
    lambda d: d.update(entries="none"),
], ids=lambda f: "hostile")
def test_hostile_values_are_reported_never_raised(valid, tmp_path, edit):
    path = _copy(valid, tmp_path, edit)
    report = validate_file(path)
    assert not report.ok and report.problems
    check_duplicates([report, validate_file(path)])  # must not raise either


def test_deep_nesting_huge_numbers_and_nan_are_malformed(valid, tmp_path):
    bad = tmp_path / "bad.json"
    for text, reason in (("[" * 100000 + "]" * 100000, "unreadable JSON"), ('{"a": ' + "9" * 5000 + "}",
                                                                               "unreadable JSON"),
                         ('{"schema_version": NaN}', "NaN is not a JSON number")):
        bad.write_text(text)
        assert any(reason in r for r in _reasons(bad)), (text[:20], _reasons(bad))


def test_a_module_factory_cell_is_code_and_runs_only_when_trusted(valid, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: calls.append(a))

    def point_at_print(data):
        data["cell"] = {"name": "builtins:print", "kwargs": {}, "registered_source": "builtins:print"}
        for e in data["entries"]:
            e["cell"]["name"] = "builtins:print"

    path = _copy(valid, tmp_path, point_at_print)
    reasons = _reasons(path)
    assert any("names code to import (module:factory)" in r and "--trust-code" in r for r in reasons), reasons
    assert calls == []
    result = run("leaderboard", "validate", str(path))
    assert result.exit_code == 2 and "--trust-code" in result.stderr
    assert calls == [] or all("rejected" in str(c) or "Error" in str(c) for c in calls)


def test_builtin_source_is_only_for_builtin_cells(valid, tmp_path, monkeypatch):
    from memtasks.models import registry
    monkeypatch.setattr(registry, "_cells", dict(registry._cells))
    registry.register_cell("tiny_plugin_lstm", registry.cell_spec("lstm").factory, "a registered copy")

    def rename(data):
        data["cell"]["name"] = "tiny_plugin_lstm"

    reasons = _reasons(_copy(valid, tmp_path, rename))
    assert any("'builtin', but tiny_plugin_lstm is not a cell memtasks ships" in r for r in reasons), reasons


def test_genuine_safetensors_are_never_mistaken_for_a_pickle(tmp_path):
    """A header whose length starts with the bytes of a pickle (0x80 0x02...) is still safetensors."""
    import torch
    from safetensors.torch import save_file

    from memtasks.leaderboard.submission import safetensors_header
    for target in (640, 2600):
        path = tmp_path / f"w{target}.safetensors"
        pad = 0
        while True:
            save_file({"w": torch.zeros(3)}, str(path), metadata={"pad": "x" * pad})
            length = int.from_bytes(path.read_bytes()[:8], "little")
            if length >= target:
                break
            pad += 1
        if length == target:
            assert "w" in safetensors_header(path)
    # A torch.save archive and a pickle under the right name and format are refused by their content.
    torch.save({"w": torch.zeros(2)}, tmp_path / "zip.safetensors")
    with pytest.raises(SubmissionError, match="a zip archive"):
        safetensors_header(tmp_path / "zip.safetensors")
    (tmp_path / "p.safetensors").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(SubmissionError, match="a Python pickle"):
        safetensors_header(tmp_path / "p.safetensors")


def test_weights_with_a_bad_byte_range_are_refused_before_loading(valid, tmp_path):
    import struct
    path = _copy(valid, tmp_path)
    weights = path.with_name("tiny-lstm.safetensors")
    raw = weights.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"] = [0, 10**9]
    text = json.dumps(header).encode()
    weights.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length:])
    from memtasks.leaderboard.submission import sha256_file
    data = json.loads(path.read_text())
    data["weights"]["sha256"] = sha256_file(weights)
    path.write_text(json.dumps(data))
    assert any("has no valid type" in r for r in _reasons(path)), _reasons(path)
