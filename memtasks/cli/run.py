"""The ``run`` command: train one cell on one task, save its RunResult and print a summary table."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from memtasks.cli.common import (
    KWARG_OPTION,
    BadInput,
    csv_list,
    err,
    make_task,
    out,
    parse_json_pairs,
    print_teacher_note,
    writable_dir,
)
from memtasks.fitting.protocol import DEFAULT_BATCH_SIZE, DEFAULT_LRS, RULES, Protocol, check_device
from memtasks.fitting.result import run_name


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "–" if v is None else format(v, spec)


def _run_table(result: Any, path: Path) -> Table:
    task, cell, best = result.task, result.cell, result.best
    cat = task["layout"]["y_type"] == "cat"
    ceil = task["ceiling"]
    table = Table(title=f"{task['id']} · {cell['name']} · hidden {cell['hidden_size']}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("status", f"{result.status} ({result.stop_reason})")
    table.add_row("parameters: total / recurrent core", f"{cell['params_total']:,} / {cell['params_core']:,}")
    table.add_row("optimizer steps (best at)", f"{result.steps:,} ({best['step'] if best else '–'})")
    proto = result.protocol
    trials = result.trials
    won = f"lr {proto['lr']:g}, batch {proto['batch_size']}"
    pruned = sum(t["stop_reason"] == "pruned" for t in trials)
    won += f"; {pruned} pruned" if pruned else ""
    table.add_row("search: trials (selected)", f"{len(trials)} ({won})" if len(trials) > 1 else won)
    metric = "accuracy" if cat else "R²"
    table.add_row(f"achievable ceiling ({metric})", _fmt(ceil["accuracy"] if cat else ceil["r2"]))
    tr = best["train"] if best else {}
    te = (best or {}).get("test") or {}
    table.add_row(f"fitting ceiling: best train {metric}", _fmt(tr.get("accuracy" if cat else "r2")))
    if not cat:
        table.add_row("best train MSE (floor)", f"{_fmt(tr.get('mse'), '.4g')} ({ceil['mse_floor']:.4g})")
    table.add_row("fraction of the achievable ceiling", _fmt(tr.get("fraction_of_ceiling")))
    if task.get("n_test") == 0:
        held_out = "n/a (n_test=0)"
    else:
        chance = f" (chance {task['chance']:.4f})" if cat else " (chance 0)"
        held_out = _fmt(te.get("accuracy" if cat else "r2")) + chance
    table.add_row(f"held-out test {metric}", held_out)
    table.add_row("bits stored (at the ceiling)", f"{_fmt(tr.get('bits'), ',.1f')} ({ceil['bits']:,.1f})")
    table.add_row("bits per parameter", _fmt(best["bits_per_param"] if best else None))
    conv = result.convergence
    if conv:
        if best and best["train"]["at_ceiling"]:
            text = "yes (at the achievable ceiling)"
        else:
            text = (f"{'yes' if conv['converged'] else 'NO'} ({conv['gain']:+.2%} from step {conv['from_step']:,} "
                    f"to {conv['to_step']:,})")
        table.add_row("converged (gain over the last half)", text)
    reach = result.steps_to_ceiling
    table.add_row("steps to 50 / 90 / 100 % of ceiling",
                  " / ".join("–" if reach[k] is None else str(reach[k]) for k in ("50%", "90%", "100%")))
    together = f" ({result.batched_with} trials trained together)" if result.batched_with > 1 else ""
    table.add_row("wall time", f"{result.wall_time_s:.1f} s{together}")
    return table


_DEFAULTS = Protocol  # dataclass field defaults are class attributes
#: A run whose worst case (every trial to its step budget) exceeds this is refused unless --yes.
RUN_LIMIT_S = 2 * 3600


@click.command("run")
@click.argument("task_id", metavar="ID")
@KWARG_OPTION
@click.option("--cell", default="lstm", show_default=True, metavar="NAME|MODULE:FACTORY",
              help="Cell to train: a registered name (see `memtasks cells`) or 'package.module:factory'.")
@click.option("-c", "--cell-kwarg", "cell_kwargs", multiple=True, metavar="KEY=VALUE",
              help="Extra keyword argument for the cell factory (repeatable; JSON values).")
@click.option("--hidden", type=int, default=None, help="Hidden size (default 64 unless --params is given).")
@click.option("--params", "n_params", type=int, default=None, metavar="N",
              help="Parameter budget: pick the hidden size whose total parameter count is closest to N.")
@click.option("--embed-dim", type=int, default=16, show_default=True, help="Width of the shared input encoder.")
@click.option("--lr", "lrs", callback=csv_list(float), metavar="LR[,LR…]",
              help=f"Learning rates of the search (default {','.join(f'{x:g}' for x in DEFAULT_LRS)}); "
                   "the best trial is the measurement.")
@click.option("--batch-size", "batch_sizes", callback=csv_list(int), metavar="B[,B…]",
              help=f"Batch sizes of the search (default {DEFAULT_BATCH_SIZE}; more than the set: full batch).")
@click.option("--inits", type=int, default=1, show_default=True,
              help="Initialisations (training seeds) per learning rate and batch size; the best trial is the "
                   "measurement.")
@click.option("--rule", type=click.Choice(RULES), default=_DEFAULTS.rule, show_default=True,
              help="Stopping rule: doubling (a trial ends when its figure gains under --tolerance over the last "
                   "half of its steps) or plateau (the rule of results before core-v1).")
@click.option("--tolerance", type=float, default=None,
              help=f"Doubling rule: relative gain over the last half that counts as converged "
                   f"(default {_DEFAULTS.tolerance:g}).")
@click.option("--min-steps", type=int, default=None,
              help=f"Doubling rule: fewest steps before a trial can be judged converged, and the first halving "
                   f"rung (default {_DEFAULTS.min_steps:,}).")
@click.option("--passes", type=int, default=None,
              help=f"Doubling rule: budget in passes over the training set, at least 4×--min-steps steps and at "
                   f"most --max-steps (default {_DEFAULTS.passes:,}).")
@click.option("--max-steps", type=int, default=_DEFAULTS.max_steps, show_default=True,
              help="Most optimizer steps per trial (the plateau rule's whole budget).")
@click.option("--eval-every", type=int, default=None,
              help="Steps between whole-training-set evaluations (default: about a tenth of the time).")
@click.option("--patience", type=int, default=None,
              help=f"Plateau rule: evaluations without progress before the learning rate decays (or, after the "
                   f"last decay, the trial stops) (default {_DEFAULTS.patience}).")
@click.option("--plateau-steps", type=int, default=None,
              help=f"Plateau rule: fewest steps without progress that make a plateau (default "
                   f"{_DEFAULTS.plateau_steps}).")
@click.option("--decays", type=int, default=_DEFAULTS.max_decays, show_default=True,
              help="Learning-rate decays (×0.3 each) a trial may take.")
@click.option("--grad-clip", type=float, default=_DEFAULTS.grad_clip, show_default=True,
              help="Gradient-norm clip (0: off).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Training seed (initialisation, batch order); the data's seed is -k seed=N.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Directory for the result JSON (created if missing).")
@click.option("--save-model", is_flag=True, help="Also write the best epoch's weights as .safetensors.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal and --json is not given).")
@click.option("--json", "as_json", is_flag=True, help="Print the RunResult JSON instead of the summary table.")
@click.option("--yes", is_flag=True, help="Run even if the worst-case estimate is hours.")
def run_cmd(task_id: str, kwargs: tuple[str, ...], cell: str, cell_kwargs: tuple[str, ...], hidden: int | None,
            n_params: int | None, embed_dim: int, lrs: list[float] | None, batch_sizes: list[int] | None, inits: int,
            rule: str, tolerance: float | None, min_steps: int | None, passes: int | None,
            max_steps: int, eval_every: int | None, patience: int | None, plateau_steps: int | None, decays: int,
            grad_clip: float, seed: int, device: str, threads: int | None, out_dir: Path, save_model: bool,
            progress: bool | None, as_json: bool, yes: bool) -> None:
    """Train a cell on a task's training set and report how far it fits it.

    Measures the best trial of a search over learning rates (and batch sizes), each trained until the
    achievable ceiling, until the doubling test shows more steps would not change its figure, or its budget
    (the worse half of the trials stops at each doubling of steps); writes one RunResult JSON to --out and
    prints a summary (fitting ceiling, bits stored, bits per parameter, converged or not).
    """
    # deferred: torch, Lightning and the cell registry take seconds to import (keeps start-up fast)
    import torch

    from memtasks.fitting.cost import worst_case_seconds
    from memtasks.fitting.protocol import Search
    from memtasks.fitting.trainer import measure_one, measurement_of

    if threads is not None:
        if threads < 1:
            raise BadInput(f"--threads must be a positive integer, got {threads}")
        torch.set_num_threads(threads)
    if embed_dim < 1:
        raise BadInput(f"--embed-dim must be a positive integer, got {embed_dim}")
    from memtasks.sweeps.runner import MAX_TRAIN_SEED

    if not 0 <= seed <= MAX_TRAIN_SEED:
        raise BadInput(f"--seed {seed} is out of range; a training seed must be an integer in [0, {MAX_TRAIN_SEED}] "
                       "(the data's seed is -k seed=N)")
    given = {"tolerance": tolerance, "min_steps": min_steps, "passes": passes, "patience": patience,
             "plateau_steps": plateau_steps}
    protocol = Protocol(max_steps=max_steps, eval_every=eval_every, rule=rule, max_decays=decays, grad_clip=grad_clip,
                        **{k: v for k, v in given.items() if v is not None})
    search = Search(lrs=tuple(lrs or DEFAULT_LRS), batch_sizes=tuple(batch_sizes or (DEFAULT_BATCH_SIZE,)),
                    inits=inits, halving=rule == "doubling")
    check_device(device)
    task = make_task(task_id, kwargs)
    m = measurement_of(task, cell, hidden=hidden, params=n_params, embed_dim=embed_dim,
                       cell_kwargs=parse_json_pairs(cell_kwargs), protocol=protocol, search=search, seed=seed)
    worst = worst_case_seconds(m)
    if worst > RUN_LIMIT_S and not yes:
        trials = f"{len(search)} trial{'s' * (len(search) != 1)}"
        steps = protocol.budget(int(task.spec.kwargs.get("n_examples", 1)), max(search.batch_sizes))
        raise BadInput(f"this run is {trials} of up to {steps:,} steps of a {m.params_total:,}-parameter "
                       f"model, at worst about {worst / 3600:,.1f} h on this machine; use --yes, fewer --lr "
                       "values or a smaller --max-steps")
    writable_dir(out_dir)
    stem = run_name(task.spec.id, m.cell.name, m.hidden_size, seed,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = out_dir / f"{stem}.json"
    n = 1
    while path.exists() or path.with_suffix(".safetensors").exists():
        path = out_dir / f"{stem}-{n}.json"
        n += 1
    m.result_path = path
    m.model_path = path.with_suffix(".safetensors") if save_model else None
    show = sys.stderr.isatty() and not as_json if progress is None else progress
    with err.status(f"generating {task.spec.id}…") if show else nullcontext():
        task.train.ceiling, task.test  # noqa: B018 - generate before the progress bar starts
    result = measure_one(m, device=device, progress=show)[0]
    result.save(path)
    if as_json:
        click.echo(result.to_json())
    else:
        out.print(_run_table(result, path))
        out.print(f"result: {path}", soft_wrap=True)
        if result.model_file:
            out.print(f"model weights: {path.parent / result.model_file}", soft_wrap=True)
        if result.converged is False:
            gain = result.convergence["gain"] if result.convergence else None
            how = f", still gaining {gain:.1%} over its last half" if gain is not None else ""
            out.print(f"[dim]Not converged: the selected trial stopped ({result.stop_reason}) after "
                      f"{result.steps:,} steps{how}; raise --passes or --max-steps to find this cell's full "
                      "fitting ceiling.[/]")
        if len(search.lrs) > 1 and result.protocol["lr"] in (min(search.lrs), max(search.lrs)) \
                and result.stop_reason != "ceiling":
            out.print("[dim]The best trial is at the edge of the learning-rate grid: a wider --lr grid may "
                      "fit further.[/]")
        if task.kwargs.get("source") != "random":
            print_teacher_note()
    if result.status == "interrupted":
        err.print(f"Interrupted: the partial result is saved in {path}", soft_wrap=True)
        sys.exit(130)
