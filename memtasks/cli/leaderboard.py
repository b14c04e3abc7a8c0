"""``memtasks suite``, ``memtasks submit`` and ``memtasks leaderboard``: run a versioned suite, bundle it into a
submission, and check, verify and publish submissions (see ``leaderboard/README.md``)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from memtasks.cli.common import BadInput, Failure, check_workers, could_create_dir, err, out, parse_json_pairs

CELL_KWARG_OPTION = click.option("-c", "--cell-kwarg", "cell_kwargs", multiple=True, metavar="KEY=VALUE",
                                 help="A cell hyper-parameter (repeatable); the value is read as JSON.")


@click.group("suite")
def suite_group() -> None:
    """Run a versioned leaderboard suite (e.g. core-v1) for one cell."""


@suite_group.command("show")
@click.argument("suite_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the suite's definition as JSON.")
def suite_show_cmd(suite_id: str | None, as_json: bool) -> None:
    """What SUITE_ID (default: the current suite) fixes: settings, sizes, parameter budget, protocol, search and
    seeds."""
    from memtasks.leaderboard.suite import CURRENT_SUITE, get_suite

    suite = get_suite(suite_id or CURRENT_SUITE)
    if as_json:
        out.print_json(json.dumps(suite.to_dict()))
        return
    out.print(f"[bold]{suite.id}[/]: {suite.summary}", soft_wrap=True)
    for part in suite.parts:
        out.print(f"  {part.name}: {part.bits_per_param:g} bits of targets per parameter: {', '.join(part.tasks)}",
                  soft_wrap=True)
    out.print(f"  params {suite.params} (the closest hidden size), seq_len {suite.seq_len}, embed_dim "
              f"{suite.embed_dim}, seeds {list(suite.seeds)}, search {suite.search}, protocol {suite.protocol}, "
              f"task kwargs {suite.task_kwargs}, per task {suite.per_task}", soft_wrap=True)


@suite_group.command("run")
@click.argument("suite_id")
@click.option("--cell", required=True, help="A registered cell name, or module:factory.")
@CELL_KWARG_OPTION
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The run's folder (default: runs/suites/SUITE-CELL); resumable.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=int, help="Parallel jobs (default: the number of CPU cores).")
@click.option("--address", help="Ray cluster address (default: local Ray).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps.")
@click.option("--progress/--no-progress", default=None, help="Progress display (default: on a terminal).")
@click.option("--yes", is_flag=True, help="Run even if the worst-case estimate is many hours.")
def suite_run_cmd(suite_id: str, cell: str, cell_kwargs: tuple[str, ...], out_dir: Path | None, backend: str,
                  workers: int | None, address: str | None, device: str, progress: bool | None, yes: bool) -> None:
    """Run SUITE_ID for one cell: its sweeps, with each point's selected weights kept for verification.

    Then bundle it with `memtasks submit DIR`.
    """
    from memtasks.leaderboard.suite import get_suite, run_suite

    check_workers(workers)
    suite = get_suite(suite_id)
    label = re.sub(r"[^\w.-]+", "-", cell)
    folder = out_dir or Path("runs") / "suites" / f"{suite.id}-{label}"
    show = sys.stderr.isatty() if progress is None else progress
    run = run_suite(suite, cell, folder, cell_kwargs=parse_json_pairs(cell_kwargs), backend=backend,
                    workers=workers, device=device, address=address, console=err, progress=show, yes=yes)
    if run.failed:
        raise Failure(f"{len(run.failed)} run(s) failed (listed above); run the same command again to retry them")
    out.print(f"suite {suite.id} for {cell}: done in {run.seconds:.0f} s -> {folder}; next: memtasks submit "
              f"{folder} --name NAME --cell-source URL", soft_wrap=True)



@click.command("submit")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="What the leaderboard shows, e.g. \"LSTM (builtin)\".")
@click.option("--cell-source", required=True, help="An http(s) address of the cell's code, or 'builtin'.")
@click.option("--description", default="", help="One line on the cell.")
@click.option("--weights/--no-weights", default=True, show_default=True,
              help="Bundle every run's trained weights (safetensors) so the submission can be verified.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The submission file (default: NAME.json here); weights go beside it as NAME.safetensors.")
def submit_cmd(run_dir: Path, name: str, cell_source: str, description: str, weights: bool,
               out_file: Path | None) -> None:
    """Bundle a finished `memtasks suite run` folder RUN_DIR into one submission file."""
    from memtasks.leaderboard.submission import make_submission, slug
    from memtasks.leaderboard.validate import validate_file

    target = out_file or Path(f"{slug(name)}.json")
    path = make_submission(run_dir, name, cell_source, target, description=description, weights=weights)
    report = validate_file(path)
    if not report.ok:
        raise Failure(f"{path} was written but does not validate: {report.problems[0]}")
    overall = report.data["scores"]["overall"]  # type: ignore[index]
    lower = f"{overall['unconverged']}/{overall['runs']} runs unconverged" if "unconverged" in overall else \
        f"{overall['at_budget']}/{overall['runs']} runs at the step budget"
    out.print(f"wrote {path}" + (f" and {path.with_suffix('.safetensors').name}" if weights else "") +
              f": {overall['bits_per_param']:.3f} bits/param overall, {lower}; it validates", soft_wrap=True)


@click.group("leaderboard")
def leaderboard_group() -> None:
    """Check, verify and publish leaderboard submissions (see leaderboard/README.md)."""


def _print_problems(path: Path, problems: list[Any]) -> None:
    for problem in problems:
        err.print(f"[red]rejected[/] {escape(str(path))}: {escape(str(problem))}", soft_wrap=True, markup=True,
                  highlight=False)


TRUST_OPTION = click.option("--trust-code", is_flag=True,
                            help="Check a cell named as module:factory, which runs its code: read its source first.")


@leaderboard_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@TRUST_OPTION
def validate_cmd(files: tuple[Path, ...], trust_code: bool) -> None:
    """Check submission FILES without running their models: schema, completeness, fingerprints, derived
    figures, ranges, budget, weights format and hash, duplicates. Exit code 2 if any is rejected."""
    from memtasks.leaderboard.validate import check_duplicates, validate_file

    reports = [validate_file(f, trust_code=trust_code) for f in files]
    check_duplicates(reports)
    bad = [r for r in reports if not r.ok]
    for report in reports:
        if report.ok:
            overall = report.data["scores"]["overall"]  # type: ignore[index]
            out.print(f"[green]valid[/] {report.path}: {report.data['name']}, "  # type: ignore[index]
                      f"{overall['bits_per_param']:.3f} bits/param overall", soft_wrap=True)
        else:
            _print_problems(report.path, report.problems)
    if bad:
        raise BadInput(f"{len(bad)} of {len(reports)} submission(s) rejected (reasons above)")


@leaderboard_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print every entry's claimed and re-measured fit as JSON.")
@TRUST_OPTION
def verify_cmd(file: Path, as_json: bool, trust_code: bool) -> None:
    """Rebuild every model of FILE from its safetensors weights, regenerate its training set and confirm the
    claimed training fit. The file is validated first."""
    from dataclasses import asdict

    from memtasks.leaderboard.validate import validate_file
    from memtasks.leaderboard.verify import ACCURACY_TOL, MSE_REL_TOL, verify_submission

    report = validate_file(file, trust_code=trust_code)
    if not report.ok:
        _print_problems(file, report.problems)
        raise BadInput(f"{file} does not validate, so it was not verified (reasons above)")
    if report.data["weights"] is None:  # type: ignore[index]
        raise BadInput(f"{file} has no weights, so it cannot be verified; bundle them with memtasks submit --weights")
    checks, problems = verify_submission(file, report.data, report.measurements)  # type: ignore[arg-type]
    if as_json:
        out.print_json(json.dumps([asdict(c) for c in checks]))
    if problems:
        _print_problems(file, problems)
        raise BadInput(f"{file}: {len(problems)} of {len(checks) or len(problems)} runs not confirmed by their weights")
    worst = max((abs(c.claimed - c.measured) for c in checks), default=0.0)
    console = err if as_json else out  # --json keeps stdout for the JSON alone
    console.print(f"[green]verified[/] {file}: all {len(checks)} runs re-measured from their weights within tolerance "
                  f"(accuracy ±{ACCURACY_TOL:g}, MSE ±{MSE_REL_TOL:.1%}; largest difference {worst:.2g})",
                  soft_wrap=True)


@leaderboard_group.command("build")
@click.option("--suite", "suite_id", default=None,
              help="The suite whose page to build, in leaderboard/SUITE/ from leaderboard/SUITE/submissions/ "
                   "[default: the current suite]")
@click.option("--submissions", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The folder of submissions [default: leaderboard/SUITE/submissions]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where README.md and index.html go [default: leaderboard/SUITE]")
@TRUST_OPTION
def build_cmd(suite_id: str | None, submissions: Path | None, out_dir: Path | None, trust_code: bool) -> None:
    """Validate and verify every submission, then write README.md and index.html (all or nothing)."""
    from memtasks.leaderboard.site import build
    from memtasks.leaderboard.suite import CURRENT_SUITE, SuiteError, get_suite

    try:
        suite = get_suite(suite_id or CURRENT_SUITE)
    except SuiteError as exc:
        raise BadInput(str(exc)) from None
    submissions = submissions or Path("leaderboard", suite.id, "submissions")
    out_dir = out_dir or Path("leaderboard", suite.id)
    could_create_dir(out_dir)  # the folder itself is made by a build that succeeds: a refused one leaves none
    written = build(submissions, out_dir, trust_code=trust_code)
    out.print(f"wrote {', '.join(str(p) for p in written)}", soft_wrap=True)
