"""``memtasks study``: the papers' experiments, each a set of sweeps and the files that answer one question."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from memtasks.cli.common import BadInput, Failure, check_workers, err, out, writable_dir


def _cells(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    cells = [c.strip() for c in value.split(",") if c.strip()]
    if not cells:
        raise BadInput(f"--cells {value!r}: give comma-separated cells, e.g. --cells rnn,gru")
    return cells


def _study_options(fn: Any) -> Any:
    options = [
        click.option("--cells", callback=_cells,
                     help="Cells, comma-separated (default: the eight built-in cells; noise and difficulty: rnn, "
                          "lstm, gru, mlp)."),
        click.option("--scale", type=float, default=1.0, show_default=True,
                     help="Multiply the step budget and the number of seeds (1 is the committed size)."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Where to write the figure, data and README (default: the committed folder under "
                          "baselines/studies/ at the committed size, else RUNS/studies/study-NAME-…)."),
        click.option("--runs", "root", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
                     show_default=True, help="Root folder of the study's sweeps (resumable)."),
        click.option("--from", "source", type=click.Path(file_okay=False, path_type=Path),
                     help="Rewrite the outputs from a study folder's results.jsonl and study.json; trains nothing."),
        click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True),
        click.option("--workers", type=int, help="Parallel jobs (default: the number of CPU cores)."),
        click.option("--address", help="Ray cluster address (default: local Ray)."),
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps."),
        click.option("--progress/--no-progress", default=None, help="Progress display (default: on a terminal)."),
        click.option("--yes", is_flag=True, help="Run even if a sweep's worst-case estimate is many hours."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run_study(name: str, cells: list[str] | None, scale: float, out_dir: Path | None, root: Path,
               source: Path | None, backend: str, workers: int | None, address: str | None, device: str,
               progress: bool | None, yes: bool) -> None:
    # deferred: studies import torch, Lightning and matplotlib (keeps start-up fast)
    from memtasks.reports import export_jsonl
    from memtasks.studies import common, registry

    check_workers(workers)  # before any study is set up or a folder made
    study = registry.get(name)
    committed = cells is None and scale == 1.0
    # Only the committed size writes the committed folder by default: a smaller or larger run must not replace it.
    target = out_dir or source or (study.folder if committed else
                                   root / "studies" / study.sweep_name(cells or study.default_cells, scale))
    if source is not None:
        if cells is not None or scale != 1.0:
            raise BadInput("--from rewrites a finished study's outputs; it takes no --cells or --scale")
        results = common.load_results(source)
        info = common.read_study_json(source / "study.json")
        writable_dir(target)
        if target.resolve() != source.resolve():
            export_jsonl(results, target / "results.jsonl", keep_history=study.keeps_history)
            (target / "study.json").write_text((source / "study.json").read_text())
            for folder in study.files:
                common.copy_tree(source / folder, target / folder)
    else:
        configs = study.configs(cells or study.default_cells, scale)
        writable_dir(target)
        show = sys.stderr.isatty() if progress is None else progress
        # its sweeps, then those its followup chooses from the results so far (a check at each cell's peak, a
        # search's next round), until it chooses none
        more, configs, run = configs, [], common.StudyRun([], 0.0, 0)
        while more:
            then = common.run_sweeps(more, root, backend=backend, workers=workers, device=device, address=address,
                                     console=err, progress=show, yes=yes)
            if then.failed:
                raise Failure(f"{then.failed} run(s) failed (listed above); run the study again to retry them")
            configs, run = [*configs, *more], common.StudyRun(run.results + then.results,
                                                              run.wall_time_s + then.wall_time_s, 0)
            more = study.followup(configs, run.results) if study.followup is not None else []
            if more and {c.name for c in more} <= {c.name for c in configs}:
                raise Failure(f"study {name}: its followup asks again for sweeps it has run "
                              f"({', '.join(c.name for c in more)})")
        results = study.trim(run.results)
        export_jsonl(results, target / "results.jsonl", keep_history=study.keeps_history)
        if study.collect is not None:
            study.collect(configs, root, target)
        command = _command(name, cells, scale, workers, backend)
        common.write_study_json(target / "study.json", name, configs, run, workers, command)
        info = common.read_study_json(target / "study.json")
    written = study.write_outputs(results, target, info)
    for line in study.summary_lines(results):
        out.print(line, soft_wrap=True)
    out.print(f"{len(results)} runs; wrote {', '.join(p.name for p in written)} and results.jsonl, study.json to "
              f"{target}", soft_wrap=True)


def _command(study: str, cells: list[str] | None, scale: float, workers: int | None, backend: str) -> str:
    """The command that reproduces a study's results (its folders aside)."""
    args = ["memtasks", "study", study]
    if cells is not None:
        args += ["--cells", ",".join(cells)]
    if scale != 1.0:
        args += ["--scale", f"{scale:g}"]
    if workers is not None:
        args += ["--workers", str(workers)]
    if backend != "local":
        args += ["--backend", backend]
    return " ".join(shlex.quote(a) for a in args)


@click.group("study")
def study_group() -> None:
    """Reproduce the papers' experiments: each study is sweeps underneath (resumable, --backend ray) and writes
    a figure, its data (CSV/JSON) and a README. See docs/studies.md."""


@study_group.command("capacity", short_help="Bits stored per parameter, per cell (Collins et al. 2017).")
@_study_options
def capacity_cmd(**kw: Any) -> None:
    """Bits stored per parameter (Collins et al. 2017): every cell at two parameter budgets on training sets of
    1 to 4 bits per parameter, each point trained until the doubling test shows more steps would not change it
    (or its cap), then a check of each converged peak with four times the steps."""
    _run_study("capacity", **kw)


@study_group.command("per-unit", short_help="Reals recalled per hidden unit, per cell (Collins et al. 2017).")
@_study_options
def per_unit_cmd(**kw: Any) -> None:
    """Reals recalled per hidden unit (Collins et al. 2017): cells with N = 8, 16, 32 units recall a vector of
    N/4 to 4N numbers after a delay (DelayedRecall-Real-v0); held-out R² against dim/N."""
    _run_study("per-unit", **kw)


@study_group.command("noise", short_help="Structured data against X- and Y-noise (Maharaj et al.; Arpit et al.).")
@_study_options
def noise_cmd(**kw: Any) -> None:
    """Training and held-out curves on structured data (a teacher RNN's labels) and with a fraction of the inputs
    (X-noise, randX) or labels (Y-noise, randY) replaced by noise, at two training-set sizes; how the steps to
    fit grow with the noise fraction (Maharaj et al. 2017 figs. 2-3; Arpit et al. 2017). Default cells: rnn,
    lstm, gru, mlp."""
    _run_study("noise", **kw)


@study_group.command("rnn-vs-mlp", short_help="Recurrent cells against the causal MLP on random labels.")
@_study_options
def rnn_vs_mlp_cmd(**kw: Any) -> None:
    """At equal parameters, how much faster (steps to 50 / 90 % of the ceiling) and further (bits per parameter)
    the causal MLP fits random labels than each recurrent cell, and the sizes where that flips (Maharaj et al.
    2017)."""
    _run_study("rnn-vs-mlp", **kw)


@study_group.command("difficulty", short_help="Per-example difficulty across seeds (Arpit et al.; Maharaj et al.).")
@_study_options
def difficulty_cmd(**kw: Any) -> None:
    """For each training example, the fraction of seeds that fit it after k epochs, on real data (SeqDigits-v0),
    randX and randY: histograms and their dispersion per cell (Arpit et al. 2017 fig. 1; Maharaj et al. 2017
    fig. 1). Default cells: rnn, lstm, gru, mlp."""
    _run_study("difficulty", **kw)


@study_group.command("connectivity", short_help="How far back each cell's outputs look (Madsen 2019, Distill).")
@_study_options
@click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A result saved by `memtasks run --save-model` (repeatable): draw its connectivity instead of "
                   "running the study.")
@click.option("--example", type=int, default=0, show_default=True, help="With --model: the example of the heatmap.")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="With --model: the examples to use.")
def connectivity_cmd(models: tuple[Path, ...], example: int, split: str, **kw: Any) -> None:
    """Distill's connectivity: the gradient norm of each output's target logit with respect to each input step,
    for every cell trained on structured (teacher) and random targets; one example's heatmap per cell and the
    average by distance. With --model, the same figures for your own saved models."""
    if not models:
        _run_study("connectivity", **kw)
        return
    if kw["cells"] is not None or kw["scale"] != 1.0 or kw["source"] is not None:
        raise BadInput("--model draws saved models; it takes no --cells, --scale or --from")
    from memtasks.studies.connectivity import ConnectivityError
    from memtasks.studies.connectivity_study import saved_models

    target = kw["out_dir"] or kw["root"] / "studies" / "connectivity-models"
    writable_dir(target)
    try:
        written = saved_models(list(models), target, example, split)
    except ConnectivityError as exc:
        raise BadInput(str(exc)) from None
    out.print(f"{len(models)} model(s); wrote {', '.join(p.name for p in written)} to {target}", soft_wrap=True)
