"""The sweep commands: ``sweep`` runs a grid of fits, ``report`` aggregates a sweep's results."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from memtasks.cli.common import (
    KWARG_OPTION,
    BadInput,
    Failure,
    check_workers,
    csv_list,
    err,
    out,
    parse_json_pairs,
    writable_dir,
)
from memtasks.fitting.protocol import check_device


# ----- sweep ------------------------------------------------------------------------------------
@click.command("sweep")
@click.argument("config_path", metavar="[CONFIG.toml]", required=False, type=click.Path(path_type=Path))
@click.option("--name", help="Sweep name: results go to OUT/NAME/ (overrides the config's).")
@click.option("--task", "tasks", multiple=True, help="Task id (repeatable), or 'all' for the 16 settings.")
@click.option("--cell", "cells", multiple=True, help="Cell (repeatable).")
@click.option("--n-examples", callback=csv_list(int), help="Training-set sizes, e.g. 100,300,1000.")
@click.option("--bits-per-param", callback=csv_list(float),
              help="Training-set sizes in bits of target information per parameter, e.g. 0.5,1,2,4,8 "
                   "(instead of --n-examples).")
@click.option("--seq-len", callback=csv_list(int), help="Sequence lengths, e.g. 10,20.")
@click.option("--params", "params", callback=csv_list(int), help="Parameter budgets, e.g. 1000,4000.")
@click.option("--hidden", "hidden", callback=csv_list(int), help="Hidden sizes (instead of --params).")
@click.option("--seeds", callback=csv_list(int), help="Seeds (data and training), e.g. 0,1,2.")
@click.option("--lr", "lrs", callback=csv_list(float), help="Learning rates of every point's search, e.g. 3e-3,1e-2.")
@click.option("--batch-size", "batch_sizes", callback=csv_list(int),
              help="Batch sizes of every point's search, e.g. 32,128.")
@KWARG_OPTION
@click.option("--max-steps", type=int, help="Most steps of every trial (the plateau rule's whole budget).")
@click.option("--passes", type=int, help="Doubling rule: every trial's budget in passes over its training set.")
@click.option("--min-steps", type=int,
              help="Doubling rule: fewest steps before a trial can be judged converged (and the first halving rung).")
@click.option("--patience", type=int,
              help="Plateau rule: evaluations without a new best before a learning-rate decay.")
@click.option("--out", "root", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Root folder of sweeps.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=int, help="Parallel runs (default: the number of CPU cores).")
@click.option("--threads", type=int, default=1, show_default=True, help="torch CPU threads per run.")
@click.option("--address", help="Ray cluster address (host:port, ray://host:port or auto); default: local Ray.")
@click.option("--device", default="cpu", show_default=True, help="Device of every run: cpu, cuda, cuda:N or mps.")
@click.option("--progress/--no-progress", default=None, help="Show the progress display (default: on a terminal).")
@click.option("--dry-run", is_flag=True, help="Check the config and show the plan without running anything.")
@click.option("--yes", is_flag=True, help="Run even if the worst-case estimate is many hours.")
def sweep_cmd(config_path: Path | None, name: str | None, tasks: tuple[str, ...], cells: tuple[str, ...],
              n_examples: list[int] | None, bits_per_param: list[float] | None, seq_len: list[int] | None,
              params: list[int] | None, hidden: list[int] | None, seeds: list[int] | None,
              lrs: list[float] | None, batch_sizes: list[int] | None, kwargs: tuple[str, ...],
              max_steps: int | None, passes: int | None, min_steps: int | None, patience: int | None, root: Path,
              backend: str, workers: int | None,
              threads: int, address: str | None, device: str, progress: bool | None, dry_run: bool,
              yes: bool) -> None:
    """Run a grid of measurements: tasks × cells × sizes × lengths × budgets × seeds, each the best trial
    of a search over learning rates (and batch sizes).

    One RunResult per grid point lands in OUT/NAME/. Finished points are skipped, so re-running a killed
    sweep resumes it; a failed run is reported and never stops the sweep. See docs/sweeps.md.
    """
    # deferred: the sweep runner imports torch and Lightning, its Ray backend Ray (keeps start-up fast)
    from memtasks.sweeps.config import SweepConfig
    from memtasks.sweeps.folder import SweepFolder
    from memtasks.sweeps.runner import run_sweep

    check_workers(workers)
    check_workers(threads, "--threads")
    data: dict[str, Any] = {}
    if config_path is not None:
        try:
            data = SweepConfig.load(config_path).to_dict()
        except RecursionError:
            raise BadInput(f"{config_path}: a value is nested too deeply to read (arrays or tables inside each "
                           "other hundreds of levels deep)") from None
    flags = {"name": name, "tasks": list(tasks) or None, "cells": list(cells) or None, "seq_len": seq_len,
             "seeds": seeds}
    data.update({k: v for k, v in flags.items() if v is not None})
    if n_examples is not None or bits_per_param is not None:
        data.pop("n_examples", None)
        data.pop("bits_per_param", None)
        data.update({k: v for k, v in (("n_examples", n_examples), ("bits_per_param", bits_per_param))
                     if v is not None})
    search = {k: v for k, v in (("lr", lrs), ("batch_size", batch_sizes)) if v is not None}
    if search:
        data["search"] = {**data.get("search", {}), **search}
    if params is not None or hidden is not None:
        data.pop("params", None)
        data.pop("hidden", None)
        data.update({k: v for k, v in (("params", params), ("hidden", hidden)) if v is not None})
    if kwargs:
        data["task_kwargs"] = {**data.get("task_kwargs", {}), **parse_json_pairs(kwargs)}
    overrides = {"max_steps": max_steps, "passes": passes, "min_steps": min_steps, "patience": patience}
    if any(v is not None for v in overrides.values()):
        data["protocol"] = {**data.get("protocol", {}), **{k: v for k, v in overrides.items() if v is not None}}
    config = SweepConfig.from_dict(data, str(config_path) if config_path else "flags")
    if dry_run:
        points = config.validate()
        check_device(device)
        folder = SweepFolder(root, config)
        folder.check()
        plan = folder.plan(points) if folder.path.is_dir() else None
        done = plan.done if plan else 0
        out.print(f"sweep {config.name}: {len(points)} points ({done} finished) -> {folder.path}", soft_wrap=True)
        for p in points[:5]:
            out.print(f"  {p.stem}", soft_wrap=True)
        if len(points) > 5:
            out.print(f"  … and {len(points) - 5} more")
        return
    show = sys.stderr.isatty() if progress is None else progress
    summary = run_sweep(config, root, backend=backend, workers=workers, threads=threads, device=device,
                        address=address, console=err, progress=show, yes=yes)
    out.print(f"sweep {config.name}: {summary.ran} ran, {summary.skipped} already finished, "
              f"{len(summary.failed)} failed, {summary.total} points in {summary.wall_time_s:.0f} s -> {summary.path}",
              soft_wrap=True)
    if summary.failed:
        raise Failure(f"{len(summary.failed)} run(s) failed (listed above); run the sweep again to retry them")


# ----- report -----------------------------------------------------------------------------------
REPORT_START, REPORT_END = "<!-- memtasks-report:start -->", "<!-- memtasks-report:end -->"


def _replace_marked(path: Path, body: str) -> None:
    """Put ``body`` between the report markers of ``path`` (keeping everything else byte for byte)."""
    text = path.read_text() if path.exists() else ""
    section = f"{REPORT_START}\n{body.rstrip()}\n{REPORT_END}"
    start, end = text.find(REPORT_START), text.find(REPORT_END)
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(REPORT_END):]
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n"
    path.write_text(text)


@click.command("report")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write summary.csv, report.md and the plots (default: PATH/report).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.99, show_default=True,
              help="Fraction of the achievable ceiling that counts as fitted (for the capacity frontier).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the aggregated data as JSON.")
@click.option("--jsonl", "jsonl", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results compactly to this JSON Lines file (histories dropped).")
@click.option("--readme", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Also write report.md into this Markdown file, between '{REPORT_START}' and "
                   f"'{REPORT_END}' markers (appended if absent).")
def report_cmd(path: Path, out_dir: Path | None, threshold: float, no_plots: bool, as_json: bool,
               jsonl: Path | None, readme: Path | None) -> None:
    """Aggregate a sweep's results over seeds: tables, CSV, plots and the capacity frontier.

    PATH is a sweep folder (runs/NAME) or a JSON Lines file of results.
    """
    # deferred: only `report` needs the report modules, and its plots load matplotlib (keeps start-up fast)
    from memtasks.reports import (
        aggregate,
        export_jsonl,
        frontier,
        load_runs,
        markdown_report,
        report_data,
        rich_tables,
        write_csv,
        write_plots,
    )

    runs, problems = load_runs(path)
    for line in problems:
        err.print(f"[yellow]Warning:[/] skipped {escape(str(line))}", soft_wrap=True)
    groups = aggregate(runs)
    rows = frontier(groups, threshold)
    target = out_dir or ((path if path.is_dir() else path.parent) / "report")
    writable_dir(target)
    written = [write_csv(groups, target / "summary.csv")]
    md = target / "report.md"
    md.write_text(markdown_report(groups, rows))
    written.append(md)
    if not no_plots:
        written += write_plots(groups, rows, target)
    if jsonl is not None:
        export_jsonl(runs, jsonl)
        written.append(jsonl)
    if readme is not None:
        _replace_marked(readme, md.read_text())
        written.append(readme)
    if as_json:
        click.echo(json.dumps(report_data(groups, rows), indent=1))
        return
    for table in rich_tables(groups, rows):
        out.print(table)
    inside = [p.name for p in written if p.parent == target]
    elsewhere = [str(p) for p in written if p.parent != target]
    out.print(f"{len(runs)} runs in {len(groups)} groups; wrote {', '.join(inside)} to {target}"
              + "".join(f"; wrote {p}" for p in elsewhere), soft_wrap=True)
