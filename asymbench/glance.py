"""Every Table 3 at a glance: ``asymbench tables glance`` and ``asymbench figures verdicts``.

Why: a reader comes for "does the claim reproduce, on which task, at which budget". The answer
lies spread over every ``table3.csv`` under paper_tables/ (each scale, each protocol, each
milestone) and every noise x budget grid (``<scale>/variants/<name>.csv``: Table 3 rows of Ours
with its sub-policy noise dropped or as SAC's). This module gathers them into one compact
Markdown table, written between two
marker comments in README.md and as paper_tables/README.md, and into one figure of Ours'
normalized score per task and budget against 1 − δ and the paper's own point. Numbers are only
ever read from the tables, so the README cannot drift from them (a test compares).

The columns read, by name: ``task``, ``train_steps``, ``claim_return_verdict``,
``claim_return_mean`` (required); ``protocol``, ``n_seeds``, ``claim_return_low``,
``claim_return_high``, ``claim_return_reason``, ``claim_flops_verdict``, ``claim_flops_reason``,
``degenerate``, ``delta``, ``paper_task``, ``noise`` (used when present; a Table 3 without
``noise`` is of Ours as the pipeline trains it by default: noise dropped, the authors' script).
A grid row that repeats a Table 3 row (same task, scale, budget, protocol, noise and seeds) is
shown once.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from asymbench.runs import atomic_path
from asymbench.tables import GRID_NOISE, GRID_NOISE_LABELS

START = "<!-- glance:start -->"
END = "<!-- glance:end -->"
TABLE_FILE = "table3.csv"
GRID_FOLDER = "variants"  # tables.write_grid's tables, one per grid name
DEFAULT_NOISE = GRID_NOISE["ours"]  # the setting of Table 3's Ours (the `ours` folder)
NOISE_SHORT = {"dropped": "noise dropped", "as_sac": "noise as SAC"}  # figure labels, sentences
PLUMBING_SCALES = ("smoke",)  # checks the pipeline's plumbing; its numbers mean nothing
REQUIRED = ("task", "train_steps", "claim_return_verdict", "claim_return_mean")
PROTOCOL_ORDER = ("deterministic", "stochastic")
# Ours' numbers set beside the paper's in the findings block (docs/results.md); the last three
# only grids have.
FINDINGS_COLUMNS = tuple(f"{c}_{k}" for c in ("ours_return", "ours_large_usage_pct")
                         for k in ("mean", "low", "high")) + (
    "ours_return_solved_share", "ours_return_solved_low", "ours_return_solved_high", "seeds_to_decide")
LEGEND = "docs/reading-tables.md"
MILESTONES_NOTE = ("Tables under `<scale>/milestones/<steps>/` judge snapshots of the same runs "
                   "taken during training (`asymbench train --until`), evaluated as finished runs are.")


@dataclass
class Row:
    """One task of one Table 3 file."""

    table: Path              # the table3.csv it came from
    task: str
    paper_task: str
    scale: str
    steps: int
    paper_steps: int | None  # the registry's total_steps (the paper's budget)
    protocol: str
    noise: str               # Ours' sub-policy noise: "dropped" or "as_sac"
    seeds: str
    score: float             # Ours' mean normalized score
    low: float
    high: float
    verdict_a: str
    reason_a: str
    verdict_b: str
    reason_b: str
    degenerate: bool | None
    delta: float             # NaN where the table has none
    values: dict[str, float] = field(default_factory=dict)  # FINDINGS_COLUMNS present in the table

    @property
    def fraction(self) -> float | None:
        return self.steps / self.paper_steps if self.paper_steps else None


# ----------------------------------------------------------------------------- reading
def table_files(root: str | Path = "paper_tables") -> list[Path]:
    """Every table3.csv under ``root``, then every grid (``variants/*.csv``), the smoke scale's
    left out."""
    root = Path(root)
    tables = sorted(root.rglob(TABLE_FILE)) + sorted(root.rglob(f"{GRID_FOLDER}/*.csv"))
    return [p for p in tables if p.relative_to(root).parts[0] not in PLUMBING_SCALES]


def scale_of(path: Path, root: Path) -> str:
    """The scale a table belongs to, from where it lies: paper_tables/<scale>/..., the paper
    scale's own at paper_tables/, paper_tables/{stochastic,milestones,variants}/."""
    parts = Path(path).relative_to(root).parts
    return ("paper" if len(parts) == 1 or parts[0] in ("stochastic", "milestones", GRID_FOLDER)
            else parts[0])


def _text(row: pd.Series, column: str) -> str:
    value = row.get(column)
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _number(row: pd.Series, column: str) -> float:
    try:
        return float(row.get(column))
    except (TypeError, ValueError):
        return math.nan


def _flag(value) -> bool | None:
    text = str(value).strip().lower()
    return True if text == "true" else False if text == "false" else None


def read_table(path: Path, required: tuple[str, ...], rebuild: str) -> pd.DataFrame:
    """A CSV the glance reads; one line naming what rebuilds it where a column is missing."""
    df = pd.read_csv(path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}; rebuild it with {rebuild}")
    return df


def read_rows(paths: list[Path], root: str | Path = "paper_tables", registry=None) -> list[Row]:
    """The rows of every table, in registry task order, then budget, scale and protocol."""
    from asymbench.tasks import load_registry

    tasks = load_registry(registry)
    root = Path(root)
    rows = []
    for path in paths:
        df = read_table(path, REQUIRED, "`asymbench tables table3` (or the pipeline)")
        try:
            scale = scale_of(Path(path), root)
        except ValueError:
            scale = Path(path).parent.name
        for _, r in df.iterrows():
            task = str(r["task"])
            protocol = _text(r, "protocol") or ("stochastic" if "stochastic" in Path(path).parts
                                                else "deterministic")
            seeds = _text(r, "n_seeds") or _text(r, "claim_return_n")
            rows.append(Row(table=Path(path), task=task, paper_task=_text(r, "paper_task") or task,
                            scale=scale, steps=int(r["train_steps"]),
                            paper_steps=tasks[task].total_steps if task in tasks else None,
                            protocol=protocol, noise=_text(r, "noise") or DEFAULT_NOISE,
                            seeds=seeds.removesuffix(".0"),
                            score=_number(r, "claim_return_mean"),
                            low=_number(r, "claim_return_low"), high=_number(r, "claim_return_high"),
                            verdict_a=_text(r, "claim_return_verdict"),
                            reason_a=_text(r, "claim_return_reason"),
                            verdict_b=_text(r, "claim_flops_verdict"),
                            reason_b=_text(r, "claim_flops_reason"),
                            degenerate=_flag(r.get("degenerate")), delta=_number(r, "delta"),
                            values={c: _number(r, c) for c in FINDINGS_COLUMNS if c in df.columns}))
    order = {name: i for i, name in enumerate(tasks)}
    noises = list(NOISE_SHORT)
    return sorted(_unique(rows), key=lambda r: (
        order.get(r.task, len(order)), r.task, r.steps, r.scale,
        noises.index(r.noise) if r.noise in noises else len(noises),
        PROTOCOL_ORDER.index(r.protocol) if r.protocol in PROTOCOL_ORDER else 2, str(r.table)))


def _unique(rows: list[Row]) -> list[Row]:
    """The rows, a grid's repeat of an earlier (Table 3) row left out."""
    seen, kept = set(), []
    for r in rows:
        key = (r.task, r.scale, r.steps, r.protocol, r.noise, r.seeds)
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept


# ----------------------------------------------------------------------------- the table
def steps_text(steps: int) -> str:
    """100000 -> "100k", 2000000 -> "2M"."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if steps >= size:
            return f"{steps / size:g}{unit}"
    return str(steps)


def share_text(fraction: float | None) -> str:
    return "?" if fraction is None else f"{100 * fraction:.3g}%"


def _g(x: float) -> str:
    return f"{x:.3g}"


def score_text(row: Row) -> str:
    if math.isnan(row.score):
        return "–"
    if math.isnan(row.low) or math.isnan(row.high):
        return f"{_g(row.score)} (no interval)"
    return f"{_g(row.score)} ({_g(row.low)}, {_g(row.high)})"


def _verdict(verdict: str, reason: str, notes: list[str]) -> str:
    """The verdict; the reason of an inconclusive, trivial or n/a one as a numbered note."""
    shown = "n/a" if verdict == "not applicable" else verdict or "–"
    if reason and (verdict.startswith(("inconclusive", "trivial")) or verdict == "not applicable"):
        if reason not in notes:
            notes.append(reason)
        return f"{shown} [{notes.index(reason) + 1}]"
    return shown


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _link(table: Path, start: Path) -> str:
    target = table.with_suffix(".md") if table.with_suffix(".md").exists() else table
    return _relative(target, start)


HEADER = ("task", "scale", "budget (share of the paper's)", "Ours' sub-policy noise", "protocol", "seeds",
          "Ours' normalized score (95% interval)", "(a) Ours ≥ 1 − δ of L-only",
          "(b) FLOPs reduction ≥ paper's", "degenerate", "full table")


def glance_table(rows: list[Row], doc_dir: Path, root: Path, legend: Path) -> str:
    """The Markdown block of a document in ``doc_dir``: one line per row, every link relative
    to ``doc_dir`` (``root``: the tables' folder, named when there is none)."""
    if not rows:
        return (f"No Table 3 or grid is committed under `{_relative(root, doc_dir)}/` yet: run the "
                "pipeline (`snakemake --cores N`), then `asymbench tables glance`.")
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    notes: list[str] = []
    for r in rows:
        cells = (r.task, r.scale, f"{steps_text(r.steps)} ({share_text(r.fraction)})",
                 GRID_NOISE_LABELS.get(r.noise, r.noise), r.protocol,
                 r.seeds, score_text(r), _verdict(r.verdict_a, r.reason_a, notes),
                 _verdict(r.verdict_b, r.reason_b, notes),
                 {True: "yes", False: "no", None: "–"}[r.degenerate],
                 f"[table]({_link(r.table, doc_dir)})")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    deltas = sorted({r.delta for r in rows if not math.isnan(r.delta)})
    margin = ", ".join(f"δ = {d:g} (1 − δ = {1 - d:g})" for d in deltas) or "δ as in each table"
    if notes:
        lines += ["", "; ".join(f"[{i}] {note}" for i, note in enumerate(notes, 1)) + "."]
    lines += ["", f"Normalized score: S-only's mean 0, L-only's 1; verdict margin {margin}. "
              f"Every column: [Reading the tables]({_relative(legend, doc_dir)})."]
    return "\n".join(lines)


def readme_block(text: str, block: str, readme: str | Path, start: str = START, end: str = END) -> str:
    """``text`` with the part between the ``start`` and ``end`` markers replaced by ``block``."""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{readme}: expected one '{start}' line, then one '{end}' line, around "
                         "the generated table; add them where the table should go")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{block}\n{end}{tail}"


# ----------------------------------------------------------------------------- the findings
FINDINGS_START, FINDINGS_END = "<!-- findings:start -->", "<!-- findings:end -->"
FINDINGS_DOC = "docs/results.md"
FINDINGS_HEADER = ("Ours' sub-policy noise", "budget (share of the paper's)", "protocol", "seeds",
                   "Ours' return (95% interval)", "share of the paper's Ours return",
                   "Ours' % steps large (95% interval)", "paper's % large",
                   "seeds solving the task (95% interval)", "(a)", "full table")


def _interval(values: dict, column: str) -> str:
    mean, low, high = (values.get(f"{column}_{k}", math.nan) for k in ("mean", "low", "high"))
    if math.isnan(mean):
        return "–"
    if math.isnan(low) or math.isnan(high):
        return _g(mean)
    return f"{_g(mean)} ({_g(low)}, {_g(high)})"


def _number_text(x: float) -> str:
    return "–" if math.isnan(x) else _g(x)


def _paper(row: Row, column: str) -> float:
    from asymbench.tables import published_text

    try:
        return float(published_text("table3", row.paper_task, column))
    except ValueError:
        return math.nan


def findings_cells(r: Row, doc_dir: Path) -> list[str]:
    paper_return, paper_large = _paper(r, "ours_return"), _paper(r, "ours_large_usage_pct")
    ours = r.values.get("ours_return_mean", math.nan)
    of_paper = "–" if math.isnan(ours) or math.isnan(paper_return) else f"{100 * ours / paper_return:.0f}%"
    share, low, high = (100 * r.values.get(f"ours_return_solved_{k}", math.nan) for k in ("share", "low", "high"))
    solved = "–" if math.isnan(share) else f"{share:.0f}% ({low:.0f}, {high:.0f})"
    return [GRID_NOISE_LABELS.get(r.noise, r.noise), f"{steps_text(r.steps)} ({share_text(r.fraction)})",
            r.protocol, r.seeds, _interval(r.values, "ours_return"), of_paper,
            _interval(r.values, "ours_large_usage_pct"), _number_text(paper_large),
            solved, r.verdict_a or "–", f"[table]({_link(r.table, doc_dir)})"]


def _where(r: Row) -> str:
    return f"{NOISE_SHORT.get(r.noise, 'noise ' + r.noise)} at {steps_text(r.steps)}, {r.protocol}"


def findings_sentences(rows: list[Row]) -> str:
    """Per verdict, the settings of one task that reached it; for the undecided ones, the seeds
    per method that would decide them if the observed spread held."""
    groups = {"Claim (a) holds": [], "Claim (a) fails": [], "Undecided": []}
    for r in rows:
        verdict = r.verdict_a
        if verdict == "reproduced" or verdict.startswith("met at"):
            groups["Claim (a) holds"].append(_where(r))
        elif verdict == "not reproduced" or verdict.startswith("not met"):
            groups["Claim (a) fails"].append(_where(r))
        elif verdict.startswith("inconclusive"):
            need = r.values.get("seeds_to_decide", math.nan)
            groups["Undecided"].append(_where(r) + ("" if math.isnan(need) else
                                                    f" (about {need:,.0f} seeds per method would decide it)"))
    return " ".join(f"{name}: {'; '.join(items)}." for name, items in groups.items() if items)


def findings_block(rows: list[Row], doc_dir: Path, root: Path,
                   sweeps: dict[str, list[str]] | None = None) -> str:
    """Per task, Ours of every committed table beside the paper's own Ours: its return, the share
    of the paper's return that is, its share of large steps, the seeds solving the task (grids),
    verdict (a); then which settings hold, fail or are undecided; then its cost-weight sweeps
    (``sweeps``: task -> sentences, `sweep_sentences`)."""
    sweeps = sweeps or {}
    if not rows and not sweeps:
        return f"No Table 3 or grid is committed under `{_relative(root, doc_dir)}/` yet."
    parts = []
    for task in dict.fromkeys([r.task for r in rows] + list(sweeps)):
        mine = [r for r in rows if r.task == task]
        lines = [f"**{task}**"]
        if mine:
            paper_return, paper_large = (_paper(mine[0], c) for c in ("ours_return", "ours_large_usage_pct"))
            lines = [f"**{task}** (the paper's Ours: return {_number_text(paper_return)}, "
                     f"{_number_text(paper_large)}% of steps large).", "",
                     "| " + " | ".join(FINDINGS_HEADER) + " |", "|" + "---|" * len(FINDINGS_HEADER)]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in findings_cells(r, doc_dir)) + " |"
                      for r in mine]
            lines += ["", findings_sentences(mine)]
        for sentence in sweeps.get(task, []):
            lines += ["", sentence]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- cost-weight sweeps
SWEEP_GLOB = "*/figures/pareto_*.csv"  # `asymbench figures pareto --csv` under results/<scale>/
SWEEP_COLUMNS = ("task", "scale", "variant", "method", "lambda_factor", "protocol", "n_seeds",
                 "train_steps", "flops_per_inf_mean", "claim_return_verdict", "source", "delta")


def sweep_files(results: str | Path = "results") -> list[Path]:
    """Every cost-weight sweep's CSV under ``results`` (`snakemake pareto`), the plumbing scales'
    left out."""
    return sorted(p for p in Path(results).glob(SWEEP_GLOB) if p.parts[-3] not in PLUMBING_SCALES)


def _flops_beside(l_only: pd.DataFrame, paper: pd.DataFrame) -> str:
    """"; FLOPs/Inf of L-only 8,707, of the paper's Ours 4,440" (those of the two given)."""
    parts = [f"of {who} {rows['flops_per_inf_mean'].iloc[0]:,.0f}"
             for who, rows in (("L-only", l_only), ("the paper's Ours", paper)) if len(rows)]
    return f"; FLOPs/Inf {', '.join(parts)}" if parts else ""


def sweep_sentences(paths: list[Path], doc_dir: Path, registry=None) -> dict[str, list[str]]:
    """Per task, one paragraph per sweep: its setting (noise, budget, seeds, weights), then one
    sentence per protocol saying whether any cost weight is non-inferior by claim (a), and at
    what FLOPs/Inf, beside L-only's and the paper's Ours'."""
    from asymbench.tables import non_inferiority_sentence
    from asymbench.tasks import load_registry

    tasks = load_registry(registry)
    found: dict[str, list[str]] = {}
    for path in paths:
        df = read_table(path, SWEEP_COLUMNS, "`snakemake pareto` (or `asymbench figures pareto --csv`)")
        reproduced = df[df["source"] == "reproduced"].assign(
            claim_return_verdict=lambda d: d["claim_return_verdict"].fillna(""))
        sweep = reproduced[reproduced["lambda_factor"].notna()]
        if sweep.empty:
            raise ValueError(f"{path}: no reproduced cost weight in it")
        task, steps = str(df["task"].iloc[0]), int(sweep["train_steps"].max())
        fraction = steps / tasks[task].total_steps if task in tasks else None
        seeds = "–".join(str(n) for n in sorted({int(sweep["n_seeds"].min()), int(sweep["n_seeds"].max())}))
        factors = ", ".join(f"{f:g}" for f in sorted(sweep["lambda_factor"].unique()))
        figure = path.with_suffix(".png")
        link = f" ([figure]({_relative(figure, doc_dir)}))" if figure.exists() else ""
        variant = str(df["variant"].iloc[0])
        lines = [f"Cost-weight sweep{link}: Ours, sub-policy noise {GRID_NOISE_LABELS.get(variant, variant)}, "
                 f"at {steps_text(steps)} ({share_text(fraction)}), scale {df['scale'].iloc[0]}, {seeds} "
                 f"seeds per weight, λ × {factors}."]
        for protocol, group in reproduced.groupby("protocol", sort=False):
            paper = df[(df["source"] == "paper") & (df["protocol"] == protocol)]
            lines.append(f"{str(protocol).capitalize()} protocol: "
                         f"{non_inferiority_sentence(group, float(group['delta'].iloc[0]))}"
                         f"{_flops_beside(group[group['method'] == 'l_only'], paper)}.")
        found.setdefault(task, []).append(" ".join(lines))
    return found


def figure_link(root: Path, doc_dir: Path) -> str:
    """The verdict figure embedded, relative to ``doc_dir``, where it is built (else nothing:
    an empty figure is never shown)."""
    figure = root / "verdicts.png"
    if not figure.exists():
        return ""
    return (f"![Ours' normalized score per task and budget, both protocols, against 1 − δ and the "
            f"paper]({_relative(figure, doc_dir)})\n\n")


def tables_readme(rows: list[Row], root: Path, legend: Path) -> str:
    figure = figure_link(root, root)
    return ("# paper_tables: every Table 3 at a glance\n\n"
            "Written by `asymbench tables glance` from the `table3.csv` files "
            "and the noise x budget grids (`variants/*.csv`) below this folder (do not edit by "
            "hand). Other scales' tables lie in `<scale>/`, the stochastic protocol's in "
            "`stochastic/`. " + MILESTONES_NOTE + "\n\n"
            + figure + glance_table(rows, root, root, legend) + "\n")


def write_glance(root: str | Path = "paper_tables", readme: str | Path = "README.md",
                 registry=None, check: bool = False, results: str | Path = "results") -> list[Row]:
    """Writes the glance block into ``readme`` (between its START and END lines), ``root``/README.md
    and, where docs/results.md beside ``readme`` has the findings markers, the findings block (with
    the cost-weight sweeps under ``results``); with ``check``, writes nothing and fails if any
    differs from what it would write."""
    root, readme = Path(root), Path(readme)
    rows = read_rows(table_files(root), root, registry)
    legend = readme.parent / LEGEND
    block = figure_link(root, readme.parent) + glance_table(rows, readme.parent, root, legend)
    wanted = {readme: readme_block(readme.read_text(encoding="utf-8"), block, readme),
              root / "README.md": tables_readme(rows, root, legend)}
    findings, results_root = readme.parent / FINDINGS_DOC, Path(results)
    if findings.exists() and FINDINGS_START in (text := findings.read_text(encoding="utf-8")):
        sweeps = sweep_sentences(sweep_files(results_root), findings.parent, registry)
        wanted[findings] = readme_block(text, findings_block(rows, findings.parent, root, sweeps), findings,
                                        FINDINGS_START, FINDINGS_END)
    for path, text in wanted.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if check:
            raise ValueError(f"{path} differs from the tables under {root}/: run `asymbench "
                             "tables glance` and commit the result")
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return rows


# ----------------------------------------------------------------------------- the figure
PROTOCOL_MARKERS = {"deterministic": ("o", "tab:green"), "stochastic": ("s", "tab:olive")}


def figure_title(rows: list[Row]) -> str:
    """Names every budget shown, as a share of the paper's."""
    if not rows:
        return "Ours' normalized score per task: no Table 3 or grid committed yet"
    shares = sorted({r.fraction for r in rows if r.fraction is not None})
    budgets = ", ".join(share_text(f) for f in shares) or "unknown"
    return (f"Ours' normalized score per task (S-only 0, L-only 1), mean and 95% interval; "
            f"budgets: {budgets} of the paper's budget")


def _x_positions(rows: list[Row]) -> tuple[dict[int, float], dict[str, float]]:
    """x of every row (by index) and of every task's paper point: one group per task, one slot
    per (budget, scale, noise) in it with the two protocols side by side, the paper's point last."""
    x, paper_x = {}, {}
    for i, task in enumerate(dict.fromkeys(r.task for r in rows)):
        slots = list(dict.fromkeys((r.steps, r.scale, r.noise) for r in rows if r.task == task))
        width = 0.8 / (len(slots) + 1)
        for j, r in enumerate(rows):
            if r.task == task:
                offset = 0.2 * width * (1 if r.protocol == "stochastic" else -1)
                x[j] = i - 0.4 + width * (slots.index((r.steps, r.scale, r.noise)) + 0.5) + offset
        paper_x[task] = i - 0.4 + width * (len(slots) + 0.5)
    return x, paper_x


def _y_top(rows: list[Row], paper: list[float]) -> float:
    """The highest value worth the axis: intervals' upper ends, resolved scores, the paper's
    points, 1.2; a score without interval beyond it is drawn at this edge."""
    values = [r.high if not math.isnan(r.high) else r.score for r in rows
              if not math.isnan(r.low) and not math.isnan(r.score)]
    return max(values + paper + [1.2])


def verdicts_figure(rows: list[Row], outs: list[str | Path]) -> None:
    """Ours' normalized score of every row with its 95% interval, per task and budget under
    both protocols, the 1 − δ line and the paper's own point; the budget labelled on each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asymbench.tables import published_normalized_scores

    title = figure_title(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.6 * len({r.task for r in rows}) + 2), 4.8))
    x, paper_x = _x_positions(rows)
    tasks = list(paper_x)
    paper = published_normalized_scores()
    top = _y_top(rows, [paper[r.paper_task] for r in rows if r.paper_task in paper.index])
    for j, r in enumerate(rows):
        marker, colour = PROTOCOL_MARKERS.get(r.protocol, ("^", "tab:gray"))
        has_interval = not (math.isnan(r.low) or math.isnan(r.high))
        label = f"{steps_text(r.steps)} ({share_text(r.fraction)})"
        if r.noise != DEFAULT_NOISE or len({q.noise for q in rows if q.task == r.task}) > 1:
            label += f", {NOISE_SHORT.get(r.noise, r.noise)}"
        if r.score > top:  # an unresolved normalization far off the scale: marked at the edge
            marker, label, y = "^", f"{label}: {_g(r.score)}", top
        else:
            y = r.score
        yerr = [[max(r.score - r.low, 0)], [max(r.high - r.score, 0)]] if has_interval else None
        ax.errorbar([x[j]], [y], yerr=yerr, fmt=marker, color=colour, capsize=3,
                    mfc=colour if has_interval else "white", ms=6)
        left = r.protocol == "deterministic"  # the two protocols' labels of a slot part ways
        ax.annotate(label, (x[j], y), textcoords="offset points", xytext=(-4 if left else 4, 3),
                    fontsize=7, rotation=-60 if left else 60, ha="right" if left else "left",
                    rotation_mode="anchor")
    for task, px in paper_x.items():
        row = next(r for r in rows if r.task == task)
        if row.paper_task in paper.index:
            label = f"paper, {steps_text(row.paper_steps)} (100%)" if row.paper_steps else "paper"
            ax.plot([px], [paper[row.paper_task]], "*", color="black", ms=10)
            ax.annotate(label, (px, paper[row.paper_task]), textcoords="offset points",
                        xytext=(4, 3), fontsize=7, rotation=60)
    for delta in sorted({r.delta for r in rows if not math.isnan(r.delta)}):
        ax.axhline(1 - delta, color="0.3", ls="--", lw=1)
        ax.annotate(f"1 − δ = {1 - delta:g}", (1, 1 - delta), xycoords=("axes fraction", "data"),
                    xytext=(4, 0), textcoords="offset points", fontsize=8, va="center")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axhline(1, color="0.8", lw=0.8)
    ax.set_ylim(min([0.0] + [r.low if not math.isnan(r.low) else r.score for r in rows
                              if not math.isnan(r.score)]) - 0.3, top * 1.3 + 0.3)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_xlim(-0.6, max(len(tasks), 1) - 0.4)
    ax.set_ylabel("Ours' normalized score")
    ax.grid(axis="y", alpha=0.3)
    handles = [plt.Line2D([], [], marker=m, color=c, ls="", label=f"Ours, {p} protocol")
               for p, (m, c) in PROTOCOL_MARKERS.items()]
    handles += [plt.Line2D([], [], marker="o", color="tab:gray", mfc="white", ls="",
                           label="no interval (normalization unresolved)"),
                plt.Line2D([], [], marker="^", color="tab:gray", mfc="white", ls="",
                           label="off the scale (value in its label)"),
                plt.Line2D([], [], marker="*", color="black", ls="", ms=10, label="the paper's Table 3")]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    if not rows:
        ax.text(0.5, 0.5, "no Table 3 or grid under paper_tables/", transform=ax.transAxes, ha="center")
    ax.set_title(title, fontsize=9)
    for out in outs:
        out = Path(out)
        kind = out.suffix.lstrip(".")
        metadata = {"Title": title, **({"CreationDate": None} if kind == "pdf" else {})}
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=kind, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
