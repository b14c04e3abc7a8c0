"""``build``: the published leaderboard, ``README.md`` (Markdown tables) and ``index.html`` (self-contained: inline
CSS, SVG charts and a few lines of JavaScript for sorting; no network, no CDN), from ``submissions/``.

Every submission is validated, and verified when it has weights, before anything is written; one bad file
stops the build with every reason, and the two pages are written together (temporary files, then renamed), so
a build never leaves a partial page. The output is a pure function of the submissions: byte-identical on
every build.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

from memtasks.atomic import atomic_path
from memtasks.errors import MemtasksError
from memtasks.leaderboard.scores import INTERVAL, compute_scores, entry_convergence, shared_ranks, spread
from memtasks.leaderboard.suite import Suite, get_suite
from memtasks.leaderboard.validate import check_duplicates, validate_file
from memtasks.leaderboard.verify import ACCURACY_TOL, MSE_REL_TOL, verify_submission

#: Files that may sit in the submissions folder.
ALLOWED_SUFFIXES = (".json", ".safetensors")


class BuildError(MemtasksError, ValueError):
    """A submission is invalid or fails verification; nothing was written."""


@dataclass
class Row:
    """One submission as the pages show it."""

    file: str
    data: dict[str, Any]
    verified: bool
    #: The overall figure's spread (:func:`~memtasks.leaderboard.scores.spread`) and its shared rank.
    spread: dict[str, float] | None = None
    rank: int = 0
    #: Entry key → its convergence evidence, for every entry the doubling test does not show converged.
    unconverged: dict[str, dict[str, Any] | None] | None = None

    def unconverged_in(self, task: str) -> int:
        return sum(1 for e in self.data["entries"] if e["task"]["id"] == task and e["key"] in (self.unconverged or {}))

    @property
    def overall(self) -> dict[str, Any]:
        return self.data["scores"]["overall"]

    def setting(self, task: str) -> dict[str, Any]:
        return self.data["scores"]["settings"][task]

    @property
    def run_time(self) -> tuple[float | None, str]:
        """The suite's wall time in minutes, and what it ran on."""
        prov = self.data["provenance"]
        seconds = prov.get("wall_time_s")
        where = f"{prov.get('cpu_count') or '?'} × {prov.get('cpu') or '?'}, {prov.get('workers') or '?'} workers, " \
                f"torch {', '.join(prov.get('torch') or ['?'])}"
        return (None if not isinstance(seconds, (int, float)) else seconds / 60), where

    @property
    def params(self) -> str:
        counts = sorted({e["cell"]["params_total"] for e in self.data["entries"]})
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def collect(folder: Path, *, verify: bool = True, trust_code: bool = False) -> tuple[Suite, list[Row]]:
    """Validate (and verify) every submission in ``folder``; raise :class:`BuildError` with every problem.

    The pages show scores recomputed from the entries (validation has checked that the claimed ones match).
    """
    if not folder.is_dir():
        raise BuildError(f"{folder}: no such folder of submissions")
    problems = [f"{p.name}: only .json submissions and their .safetensors weights belong here"
                for p in sorted(folder.iterdir()) if not p.name.startswith(".") and p.suffix not in ALLOWED_SUFFIXES]
    problems += [f"{p.name}: a symbolic link; submissions are regular files" for p in sorted(folder.iterdir())
                 if p.is_symlink()]
    reports = [validate_file(p, trust_code=trust_code) for p in sorted(folder.glob("*.json")) if not p.is_symlink()]
    if not reports and not problems:
        raise BuildError(f"{folder}: no submissions (*.json) to publish")
    check_duplicates(reports)
    problems += [f"{r.path.name}: {p}" for r in reports for p in r.problems]
    suites = {r.data["suite"] for r in reports if r.ok and r.data}
    if len(suites) > 1:
        problems.append(f"submissions to several suites ({', '.join(sorted(suites))}); one page shows one suite")
    if problems:
        raise BuildError(_listing(problems))
    suite = get_suite(suites.pop())
    rows = []
    for report in reports:
        data: dict[str, Any] = report.data  # type: ignore[assignment]
        data["scores"] = compute_scores(data["entries"], suite.settings)
        verified = False
        if verify and data["weights"] is not None:
            _, failed = verify_submission(report.path, data, report.measurements)
            problems += [f"{report.path.name}: {p}" for p in failed]
            verified = not failed
        evidence = {e["key"]: entry_convergence(e) for e in data["entries"]}
        rows.append(Row(report.path.name, data, verified, spread(data["entries"], suite.settings),
                        unconverged=None if suite.rule != "doubling" else
                        {k: c for k, c in evidence.items() if not (c and c["converged"])}))
    if problems:
        raise BuildError(_listing(problems))
    rows.sort(key=lambda r: (-r.overall["bits_per_param"], r.data["name"].lower()))
    for row, rank in zip(rows, shared_ranks([(r.spread["low"], r.spread["high"]) for r in rows])):  # type: ignore[index]
        row.rank = rank
    return suite, rows


def rank_text(row: Row, rows: list[Row]) -> str:
    """``3``, or ``=3`` when another cell shares the rank (overlapping intervals)."""
    shared = sum(r.rank == row.rank for r in rows) > 1
    return f"={row.rank}" if shared else str(row.rank)


def _evidence_note(suite: Suite) -> str:
    if suite.rule == "doubling":
        return "judged by the doubling test each run carries, rechecked from its histories by the validator"
    return (f"not known for {suite.id}: it predates the doubling test and its entries carry no histories, so no run "
            "is shown converged; a figure stopped at the step budget is marked †")



def _unconverged_note(suite: Suite) -> str:
    if suite.rule == "doubling":
        return (f"Unconverged counts runs that more steps might still raise ({_evidence_note(suite)}): their figures "
                "are lower bounds, and the leaderboard's README lists each.")
    return f"Whether a run converged is {_evidence_note(suite)}."


def _unconverged_text(row: Row) -> str:
    return "–" if row.unconverged is None else f"{len(row.unconverged)}/{row.overall['runs']}"


def _marked(row: Row, task: str) -> int:
    """Runs of ``task`` whose figure is marked a lower bound: unconverged, or (a suite without evidence) at budget."""
    return row.setting(task)["at_budget"] if row.unconverged is None else row.unconverged_in(task)


def _listing(problems: list[str]) -> str:
    shown = problems[:40]
    more = f"\n… and {len(problems) - 40} more" if len(problems) > 40 else ""
    return f"{len(problems)} problem(s); nothing was written:\n" + "\n".join(f"  {p}" for p in shown) + more


def build(submissions: str | Path, out_dir: str | Path, *, verify: bool = True, trust_code: bool = False
          ) -> list[Path]:
    """Write ``README.md`` and ``index.html`` to ``out_dir`` from the submissions in ``submissions``
    (``trust_code``: see :func:`~memtasks.leaderboard.validate.validate_file`)."""
    suite, rows = collect(Path(submissions), verify=verify, trust_code=trust_code)
    out_dir = Path(out_dir)
    readme, page = out_dir / "README.md", out_dir / "index.html"
    markdown, html_ = render_markdown(suite, rows), render_html(suite, rows)
    # Made only now, once everything is checked and rendered: a refused build leaves no empty folder behind.
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot write the pages to {out_dir}: {exc.strerror or exc}; nothing was written") \
            from None
    try:
        with atomic_path(readme) as tmp_readme, atomic_path(page) as tmp_page:  # both written, then both renamed
            tmp_readme.write_text(markdown, encoding="utf-8")
            tmp_page.write_text(html_, encoding="utf-8")
    except BaseException:
        if created:
            try:
                out_dir.rmdir()
            except OSError:  # not empty after all: someone else's files, left alone
                pass
        raise
    return [readme, page]


# ----- shared formatting -----------------------------------------------------------------------------------------
def _f(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def _short(task: str) -> str:
    """``NextStep-CatCat-v0`` → ``NextStep CatCat``."""
    return task.removesuffix("-v0").replace("-", " ")


def _facts(suite: Suite) -> list[str]:
    lrs = suite.search.get("lr", [])
    return [f"{len(suite.settings)} settings", f"{suite.params:,} parameters (closest hidden size)",
            ", ".join(f"{p.name} sets: {p.bits_per_param:g} bits/param" for p in suite.parts),
            f"best of {len(lrs)} learning rates" + (" (successive halving)" if suite.rule == "doubling" else ""),
            f"≤ {suite.protocol.get('max_steps', 5000):,} steps"
            + (", doubling test" if suite.rule == "doubling" else ""),
            f"{len(suite.seeds)} seeds", "random targets"]


# ----- Markdown ---------------------------------------------------------------------------------------------------
def render_markdown(suite: Suite, rows: list[Row]) -> str:
    """The leaderboard as Markdown tables, then how to submit."""
    lines = [f"# memtasks leaderboard · {suite.id}", "",
             f"{suite.summary} Generated by `memtasks leaderboard build` from `submissions/`; every figure is "
             "recomputed from the submitted runs. The same tables, sortable and with a chart per setting: "
             "[`index.html`](index.html) (open the file in a browser; it works offline).", "",
             "![The leaderboard page](screenshot.png)", "",
             f"| # | submission | cell | bits / param | {INTERVAL:.0%} interval | sd over seeds | fraction of ceiling "
             "| at ceiling | unconverged | parameters | verified | suite time | date |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for row in rows:
        o, d, sp = row.overall, row.data, row.spread or {}
        name = d["name"] if d["cell_source"] == "builtin" else f"[{d['name']}](<{d['cell_source']}>)"
        lines.append(f"| {rank_text(row, rows)} | {name} | `{d['cell']['name']}` | **{_f(o['bits_per_param'], 3)}** | "
                     f"{_f(sp['low'], 3)}–{_f(sp['high'], 3)} | {_f(sp['seed_std'], 3)} | "
                     f"{_f(o['fraction_of_ceiling'], 3)} | {o['at_ceiling']}/{o['runs']} | "
                     f"{_unconverged_text(row)} | {row.params} | "
                     f"{'✓ verified' if row.verified else 'no weights'} | {_minutes(row)} | {d['created']} |")
    lines += ["", f"Ranks: cells whose {INTERVAL:.0%} intervals overlap share a rank (=). The interval is a percentile "
              "bootstrap of the overall figure that resamples each setting's seeds; the settings stay fixed, since "
              "every cell runs the same ones. *Unconverged*: runs that more steps might still raise; "
              + (f"{_evidence_note(suite)}; each is listed below." if suite.rule == "doubling" else
                 f"{_evidence_note(suite)}."),
              "", "## Bits per parameter, per setting", "",
              "Mean over seeds ± population standard deviation; † marks a setting with an unconverged run (its "
              "figure is a lower bound)" + ("" if suite.rule == "doubling" else ", here one stopped at the step "
                                            "budget") + ".", "",
              "| submission | " + " | ".join(_short(t) for t in suite.settings) + " |",
              "|---|" + "---:|" * len(suite.settings)]
    for row in rows:
        cells = [f"{_f(row.setting(t)['bits_per_param']['mean'])} ± {_f(row.setting(t)['bits_per_param']['std'])}"
                 + (" †" if _marked(row, t) else "") for t in suite.settings]
        lines.append(f"| {row.data['name']} | " + " | ".join(cells) + " |")
    lines += ["", "## Unconverged runs", ""]
    listed = [(row, key, c) for row in rows for key, c in sorted((row.unconverged or {}).items())]
    if suite.rule != "doubling":
        lines.append(f"Not known: {_evidence_note(suite)}.")
    elif not listed:
        lines.append("None: every run reached its achievable ceiling or passed the doubling test.")
    else:
        entries = {(row.data["name"], e["key"]): e for row in rows for e in row.data["entries"]}
        lines += [f"{len(listed)} of {sum(r.overall['runs'] for r in rows)} runs. *Gain*: what the figure gained over "
                  "the last half of the run's steps; a run that gained less than the tolerance is still unconverged "
                  "when it reached the step cap before a learning-rate decay, and a quarter of its steps after it, "
                  "could show that the lower rate gains nothing.", "",
                  "| submission | run | bits / param | stopped | steps | gain over the last half |",
                  "|---|---|---:|---|---:|---:|"]
        for row, key, c in listed:
            e = entries[(row.data["name"], key)]
            gain = "–" if c is None else f"{c['gain']:+.1%}"
            lines.append(f"| {row.data['name']} | `{key}` | {_f(e['best']['train']['bits_per_param'], 3)} | "
                         f"{e['stop_reason']} | {e['steps']:,} | {gain} |")
    guide = files("memtasks.leaderboard").joinpath("templates/submitting.md").read_text(encoding="utf-8")
    lines += ["", Template(guide).substitute(suite_id=suite.id, acc_tol=f"{ACCURACY_TOL:g}",
                                             mse_tol=f"{MSE_REL_TOL:.1%}").rstrip("\n"), ""]
    return "\n".join(lines)


def _minutes(row: Row) -> str:
    minutes, _ = row.run_time
    return "?" if minutes is None else f"{minutes:.0f} min"


# ----- HTML -------------------------------------------------------------------------------------------------------
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _two_lines(label: str) -> str:
    """``NextStep CatCat`` → the task over the targets, as two lines of a column header (its text unchanged)."""
    first, _, rest = label.partition(" ")
    return f'<span class="l1">{_e(first)}</span> <span class="l2">{_e(rest)}</span>' if rest else _e(label)


def _badge(row: Row) -> str:
    if row.verified:
        return '<span class="badge ok" title="every model re-evaluated from its weights">✓ verified</span>'
    return '<span class="badge no" title="submitted without weights">no weights</span>'


def _name_cell(row: Row, describe: bool = False) -> str:
    d = row.data
    name = _e(d["name"])
    if d["cell_source"] != "builtin":
        name = f'<a href="{_e(d["cell_source"])}" rel="noopener">{name}</a>'
    desc = f'<div class="small">{_e(d["description"])}</div>' if describe and d["description"] else ""
    return f'<td class="name" data-value="{_e(d["name"])}"><span class="sub">{name}</span>{desc}</td>'


def render_html(suite: Suite, rows: list[Row]) -> str:
    """The self-contained page (see the module docstring)."""
    overall = []
    for row in rows:
        o, d, sp = row.overall, row.data, row.spread or {}
        n_unc = -1 if row.unconverged is None else len(row.unconverged)
        unc = "–" if n_unc < 0 else f'<span class="warn">{n_unc}</span>' if n_unc else "0"
        overall.append(
            f'<tr><td class="rank num" data-value="{row.rank}">{rank_text(row, rows)}</td>'
            f'{_name_cell(row, describe=True)}<td><code>{_e(d["cell"]["name"])}</code></td>'
            f'<td class="num score" data-value="{o["bits_per_param"]:.6f}">{_f(o["bits_per_param"], 3)}'
            f'<div class="small interval" title="{INTERVAL:.0%} interval; sd over seeds {sp["seed_std"]:.3f}">'
            f'{_f(sp["low"], 3)}–{_f(sp["high"], 3)}</div></td>'
            f'<td class="num" data-value="{o["fraction_of_ceiling"]:.6f}">{_f(o["fraction_of_ceiling"], 3)}</td>'
            f'<td class="num" data-value="{o["at_ceiling"]}">{o["at_ceiling"]}/{o["runs"]}</td>'
            f'<td class="num" data-value="{n_unc}">{unc}{"" if n_unc < 0 else "/" + str(o["runs"])}</td>'
            f'<td class="num" data-value="{_e(row.params.split("–")[0])}">{_e(row.params)}</td>'
            f'<td data-value="{int(row.verified)}">{_badge(row)}</td>'
            f'<td class="num" data-value="{row.run_time[0] or 0:.3f}" title="{_e(row.run_time[1])}">'
            f'{_minutes(row)}</td>'
            f'<td>{_e(d["created"])}</td></tr>')
    heat_head = "\n".join(f'<th class="sortable num" data-type="num" title="{_e(t)}">{_two_lines(_short(t))}</th>'
                          for t in suite.settings)
    top = {t: max(r.setting(t)["bits_per_param"]["mean"] for r in rows) or 1.0 for t in suite.settings}
    heat = []
    for row in rows:
        cells = []
        for t in suite.settings:
            v = row.setting(t)["bits_per_param"]["mean"]
            alpha = 0.06 + 0.5 * max(v, 0.0) / top[t]
            unc = _marked(row, t)
            what = "unconverged" if row.unconverged is not None else "at the step budget"
            mark = (f'<sup class="mark" title="{unc} of {row.setting(t)["runs"]} runs {what}">'
                    '†</sup>') if unc else ""
            cells.append(f'<td class="cellv" data-value="{v:.6f}" style="background: rgba(47, 95, 208, {alpha:.3f})">'
                         f'{_f(v)}{mark}</td>')
        heat.append(f'<tr>{_name_cell(row)}{"".join(cells)}</tr>')
    cards = [_card(suite, t, rows) for t in suite.settings]
    page = Template(files("memtasks.leaderboard").joinpath("templates/index.html").read_text(encoding="utf-8"))
    return page.substitute(
        suite_id=_e(suite.id), suite_summary=_e(suite.summary),
        facts="".join(f'<span class="fact">{_e(f)}</span>' for f in _facts(suite)), n_settings=len(suite.settings),
        overall_rows="\n".join(overall), heat_head=heat_head, heat_rows="\n".join(heat), cards="\n".join(cards),
        acc_tol=f"{ACCURACY_TOL:g}", mse_tol=f"{MSE_REL_TOL:.1%}", n_submissions=len(rows),
        interval=f"{INTERVAL:.0%}", unconverged_note=_e(_unconverged_note(suite)),
        plural="s" * (len(rows) != 1))


def _card(suite: Suite, task: str, rows: list[Row]) -> str:
    part = suite.part_of(task)
    ranked = sorted(rows, key=lambda r: (-r.setting(task)["bits_per_param"]["mean"], r.data["name"].lower()))
    sizes = sorted({e["task"]["n_examples"] for r in rows for e in r.data["entries"] if e["task"]["id"] == task})
    body = []
    for row in ranked:
        s = row.setting(task)
        b, f = s["bits_per_param"], s["fraction_of_ceiling"]
        n_unc = _marked(row, task)
        unc = f'<span class="warn">{n_unc}</span>' if n_unc else "0"
        body.append(f'<tr>{_name_cell(row)}<td class="num" data-value="{b["mean"]:.6f}">{_f(b["mean"])} '
                    f'<span class="small">± {_f(b["std"])}</span></td>'
                    f'<td class="num" data-value="{f["mean"]:.6f}">{_f(f["mean"], 3)}</td>'
                    f'<td class="num" data-value="{n_unc}">{unc}/{s["runs"]}</td></tr>')
    size = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
    return (f'<section class="card" id="{_e(task)}"><h3>{_e(task)}</h3>'
            f'<div class="meta">{part.bits_per_param:g} bits of targets per parameter ({size} training examples); '
            f'bits stored per parameter</div>{_chart(task, ranked)}'
            '<table class="sortable-table"><thead><tr><th class="sortable" data-type="text">Submission</th>'
            '<th class="sortable num" data-type="num">Bits / param</th>'
            '<th class="sortable num" data-type="num">Fraction of ceiling</th>'
            '<th class="sortable num" data-type="num">Unconverged</th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></section>')


def _nice_step(top: float) -> float:
    raw = top / 4
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _chart(task: str, ranked: list[Row]) -> str:
    """A horizontal bar chart (inline SVG) of bits per parameter, mean ± std, one bar per submission."""
    left, right, bar_h, gap, top_pad = 150, 50, 16, 6, 8
    width = 540
    plot = width - left - right
    height = top_pad + len(ranked) * (bar_h + gap) + 22
    top = max(r.setting(task)["bits_per_param"]["mean"] + r.setting(task)["bits_per_param"]["std"] for r in ranked)
    step = _nice_step(top or 1.0)
    ticks = [step * i for i in range(int(math.ceil((top or 1.0) / step)) + 1)]
    scale = plot / ticks[-1]
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="bits per parameter on {_e(task)}">']
    axis_y = top_pad + len(ranked) * (bar_h + gap)
    for t in ticks:
        x = left + t * scale
        parts.append(f'<line class="gridl" x1="{x:.1f}" y1="{top_pad - 4}" x2="{x:.1f}" y2="{axis_y}"/>'
                     f'<text class="lbl" x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle">{t:g}</text>')
    for i, row in enumerate(ranked):
        b = row.setting(task)["bits_per_param"]
        y = top_pad + i * (bar_h + gap)
        w = max(b["mean"], 0.0) * scale
        lo, hi = left + max(b["mean"] - b["std"], 0.0) * scale, left + (b["mean"] + b["std"]) * scale
        mid = y + bar_h / 2
        parts.append(f'<text x="{left - 8}" y="{mid + 4:.1f}" text-anchor="end">{_e(row.data["name"][:24])}</text>'
                     f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="2">'
                     f'<title>{_e(row.data["name"])}: {b["mean"]:.3f} ± {b["std"]:.3f} bits/param</title></rect>'
                     f'<line class="err" x1="{lo:.1f}" y1="{mid:.1f}" x2="{hi:.1f}" y2="{mid:.1f}"/>'
                     f'<text class="lbl" x="{hi + 5:.1f}" y="{mid + 4:.1f}">{b["mean"]:.2f}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top_pad - 4}" x2="{left}" y2="{axis_y}"/></svg>')
    return "".join(parts)
