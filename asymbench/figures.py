"""The paper's figures: sub-policy timelines (Figs. 2 and 3) and learning curves; and two of
ours: the return / FLOPs trade-off of every method against the paper's points, and the Pareto
sweep of Ours' cost weight.

Every figure's title states the scale, the training budget as a fraction of the paper's and the
seeds it was made from, so a reduced-budget figure cannot be mistaken for a paper-scale one; the
title is also stored in each file's metadata ("Title"). Figures are written as PNG and PDF (the
format follows each output's suffix).
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on the machines we target
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import ConnectionPatch, Patch
from matplotlib.lines import Line2D

from asymbench.runs import CONFIG_FILE, PROGRESS_FILE, atomic_path, read_json
from asymbench import tables
from asymbench.tables import METHOD_LABELS

SUB_POLICY_COLOURS = {"small": "tab:blue", "large": "tab:orange", "policy": "tab:gray"}
METHOD_COLOURS = {"s_only": "tab:blue", "l_only": "tab:orange", "ours": "tab:green",
                  "ours_no_cost": "tab:red", "fit": "tab:purple", "bc": "tab:brown", "gail": "tab:pink"}
MAX_SWITCH_LINES = 60  # beyond this many switches, lines would hide the dots: shading alone shows them


def save(fig: plt.Figure, outs: list[str | Path]) -> None:
    """Saves ``fig`` to every path (format from its suffix), atomically, its title (the
    suptitle) in the file's metadata, then closes it."""
    title = " ".join(fig.get_suptitle().split())
    for out in outs:
        out = Path(out)
        kind = out.suffix.lstrip(".").lower()
        metadata = {"Title": title} if kind in ("png", "pdf", "svg") else None
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=kind, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def budget_phrase(steps, paper_steps) -> str:
    """"20,000 env steps per run, 2% of the paper's budget of 1,000,000" (or "..., the paper's
    budget")."""
    steps, paper_steps = int(steps), int(paper_steps)
    share = "the paper's budget" if steps == paper_steps else (
        f"{tables.percent_text(steps / paper_steps)} of the paper's budget of {paper_steps:,}")
    return f"{steps:,} env steps per run, {share}"


def paper_budget(task: str, registry=None) -> int:
    """The paper's training budget of ``task`` (the registry's ``total_steps``), for runs that
    do not record it."""
    return int(tables.load_registry(registry)[task].total_steps)


def png_title(path: str | Path) -> str:
    """The title a PNG written by ``save`` carries in its metadata ("" if none)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.info.get("Title", "")


def _segments(policies: np.ndarray) -> list[tuple[int, int, str]]:
    """(first index, last index + 1, sub-policy) of every run of equal sub-policies."""
    starts = np.flatnonzero(np.r_[True, policies[1:] != policies[:-1]])
    ends = np.r_[starts[1:], len(policies)]
    return [(int(s), int(e), str(policies[s])) for s, e in zip(starts, ends)]


SEED_CHOICES = {"first": "the scale's first seed", "learned": "a seed chosen because it learned"}


def _variant(evaluation: dict) -> str:
    """"Ours" or "Ours, sub-policy noise as SAC (variant)", from the run's config.json."""
    config = Path(evaluation.get("run") or "") / CONFIG_FILE
    noise = read_json(config).get("asym_action_noise") if config.is_file() else None
    return "Ours, sub-policy noise as SAC (variant)" if noise == "as_sac" else "Ours"


def timeline(trace_csv: str | Path, eval_json: str | Path, frames_dir: str | Path | None,
             scale: str, run_seed: int, outs: list[str | Path], seed_choice: str = "first") -> None:
    """Per-step reward of the traced evaluation episode, dots coloured by the sub-policy in use,
    large-policy stretches shaded, switches marked, rendered frames above linked to their step.
    The title says which variant of Ours ran and how its seed was chosen (``SEED_CHOICES``)."""
    trace = pd.read_csv(trace_csv)
    evaluation = read_json(eval_json)
    if trace.empty:
        raise ValueError(f"trace {trace_csv} is empty")
    frames = pd.DataFrame(columns=["step", "sub_policy", "file"])
    if frames_dir is not None and (Path(frames_dir) / "index.csv").exists():
        frames = pd.read_csv(Path(frames_dir) / "index.csv").sort_values("step").head(6)

    n_frames = len(frames)
    fig = plt.figure(figsize=(max(8.0, 1.9 * n_frames), 5.2 if n_frames else 3.6))
    grid = fig.add_gridspec(2 if n_frames else 1, max(n_frames, 1),
                            height_ratios=[1, 1.4] if n_frames else [1], hspace=0.25)
    ax = fig.add_subplot(grid[-1, :])

    steps, rewards = trace["step"].to_numpy(), trace["reward"].to_numpy(dtype=float)
    policies = trace["sub_policy"].astype(str).to_numpy()
    segments = _segments(policies)
    for start, end, policy in segments:
        if policy == "large":
            ax.axvspan(steps[start] - 0.5, steps[end - 1] + 0.5, color="tab:orange", alpha=0.12, lw=0)
    if len(segments) - 1 <= MAX_SWITCH_LINES:
        for start, _, _ in segments[1:]:
            ax.axvline(steps[start] - 0.5, color="0.4", lw=0.6, ls="--", alpha=0.7)
    for policy, colour in SUB_POLICY_COLOURS.items():
        mask = policies == policy
        if mask.any():
            ax.scatter(steps[mask], rewards[mask], s=9, color=colour, zorder=3,
                       label=f"{policy} ({100 * mask.mean():.1f}% of steps)")
    ax.set_xlabel("environment step of the episode")
    ax.set_ylabel("reward per step")
    ax.set_xlim(steps.min() - 1, steps.max() + 1)
    handles, labels = ax.get_legend_handles_labels()
    if "large" in policies:
        handles.append(Patch(color="tab:orange", alpha=0.25))
        labels.append("large sub-policy in use")
    if 1 < len(segments) <= MAX_SWITCH_LINES + 1:
        handles.append(Line2D([], [], color="0.4", ls="--", lw=0.6))
        labels.append("master switch")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)

    top = ax.get_ylim()[1]
    for i, frame in enumerate(frames.itertuples()):
        image_ax = fig.add_subplot(grid[0, i])
        image_ax.imshow(plt.imread(Path(frames_dir) / frame.file))
        image_ax.set_xticks([]), image_ax.set_yticks([])
        colour = SUB_POLICY_COLOURS.get(str(frame.sub_policy), "0.3")
        for spine in image_ax.spines.values():
            spine.set_edgecolor(colour), spine.set_linewidth(2.5)
        image_ax.set_title(f"step {frame.step} ({frame.sub_policy})", fontsize=8, color=colour)
        fig.add_artist(ConnectionPatch(xyA=(0.5, 0), coordsA=image_ax.transAxes, xyB=(frame.step, top),
                                       coordsB=ax.transData, color=colour, lw=0.8, alpha=0.8))

    paper_steps = evaluation.get("paper_total_steps") or paper_budget(evaluation["task"])
    fig.suptitle(f"{evaluation['task']}: {_variant(evaluation)}, training seed {run_seed} "
                 f"({SEED_CHOICES[seed_choice]}), first evaluation episode: return {rewards.sum():.1f}, "
                 f"{len(segments) - 1} master switches\nscale '{scale}': "
                 f"{budget_phrase(evaluation['total_steps'], paper_steps)}; dots coloured by the "
                 "sub-policy the master chose", fontsize=10)
    save(fig, outs)


def read_progress(path: str | Path, column: str) -> pd.DataFrame:
    """A run's progress.csv, refused on one line naming it when it is empty, is no CSV table,
    has a row cut mid-line or of another length than its header, or lacks numeric ``step`` and
    ``column`` values (``ValueError``)."""
    path = Path(path)
    what = (f"; it is written by training: delete the run folder {path.parent} and rerun the "
            "pipeline to train it again")
    text = path.read_text(errors="replace")
    if not text.strip():
        raise ValueError(f"progress {path} is empty{what}")
    if not text.endswith("\n"):
        raise ValueError(f"progress {path}: its last row is cut mid-line{what}")
    rows = list(csv.reader(io.StringIO(text)))
    short = next((i for i, row in enumerate(rows[1:], 2) if row and len(row) != len(rows[0])), None)
    if short is not None:
        raise ValueError(f"progress {path}: line {short} has {len(rows[short - 1])} fields, its header "
                         f"{len(rows[0])}{what}")
    progress = pd.read_csv(io.StringIO(text))
    for name in ("step", column):
        if name not in progress.columns:
            raise ValueError(f"progress {path} has no '{name}' column (columns: "
                             f"{', '.join(map(str, progress.columns))}){what}")
        values = pd.to_numeric(progress[name], errors="coerce")
        bad = values.isna() & progress[name].notna()
        if bad.any() or (name == "step" and values.isna().any()):
            line = int(np.flatnonzero(bad | (values.isna() if name == "step" else bad))[0]) + 2
            raise ValueError(f"progress {path}: line {line} has no number in '{name}'{what}")
        progress[name] = values
    return progress


def _run_curve(run_json: str | Path, grid: np.ndarray, column: str) -> np.ndarray:
    """One run's ``column`` per episode, smoothed over 2% of its episodes, on ``grid``
    (NaN outside the steps the run covered: no extrapolation)."""
    progress = read_progress(Path(run_json).parent / PROGRESS_FILE, column)
    progress = progress.dropna(subset=[column])
    if progress.empty:
        return np.full(len(grid), np.nan)
    window = max(1, len(progress) // 50)
    smooth = progress[column].rolling(window, min_periods=1).mean().to_numpy(dtype=float)
    step = progress["step"].to_numpy(dtype=float)
    curve = np.interp(grid, step, smooth)
    curve[(grid < step.min()) | (grid > step.max())] = np.nan
    return curve


def learning_curves(task: str, runs: dict[str, list[str | Path]], scale: str,
                    outs: list[str | Path]) -> None:
    """Episode return against environment steps per method (mean over seeds, min-max shaded);
    below, the share of steps driven by the large sub-policy for the asymmetric agents.

    ``runs`` maps a method to its runs' ``run.json`` (the completion marker); ``progress.csv``
    and ``config.json`` beside it are read. progress.csv is not a pipeline output of its own
    because the trainer appends to it while a killed run resumes.
    """
    configs = {m: [read_json(Path(r).parent / CONFIG_FILE) for r in paths] for m, paths in runs.items()}
    budget = max(c["total_steps"] for cs in configs.values() for c in cs)
    paper_steps = max(c.get("paper_total_steps") or paper_budget(task) for cs in configs.values() for c in cs)
    seeds = sorted({c["seed"] for cs in configs.values() for c in cs})
    grid = np.linspace(0, budget, 200)
    has_share = any(m in ("ours", "ours_no_cost") for m in runs)
    fig, axes = plt.subplots(2 if has_share else 1, 1, sharex=True, squeeze=False,
                             figsize=(7.5, 6 if has_share else 4), height_ratios=[2, 1] if has_share else [1])
    panels = [("episode_return", "episode return")] + ([("large_share", "share of steps by large")]
                                                        if has_share else [])
    for ax, (column, ylabel) in zip(axes[:, 0], panels):
        for method, paths in runs.items():
            if column == "large_share" and method not in ("ours", "ours_no_cost"):
                continue
            curves = np.array([_run_curve(p, grid, column) for p in paths])
            if np.isnan(curves).all():
                continue
            with warnings.catch_warnings():  # grid points no seed reached: NaN, as wanted
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, low, high = (f(curves, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
            colour = METHOD_COLOURS.get(method)
            ax.plot(grid, mean, color=colour, lw=1.5, label=f"{METHOD_LABELS[method]} (n={len(paths)})")
            if len(paths) > 1:
                ax.fill_between(grid, low, high, color=colour, alpha=0.2, lw=0)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    if has_share:
        axes[1, 0].set_ylim(-0.05, 1.05)
    axes[-1, 0].set_xlabel("environment steps")
    spread = "; shaded: min-max over seeds" if any(len(p) > 1 for p in runs.values()) else ""
    fig.suptitle(f"{task}: learning curves, scale '{scale}': {budget_phrase(budget, paper_steps)}, "
                 f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}\nline: mean over seeds of each run's "
                 f"episode returns (moving average over 2% of its episodes){spread}", fontsize=10)
    save(fig, outs)


# ----------------------------------------------------------------------------- trade-off, Pareto
def factor_name(factor: float) -> str:
    """A lambda factor as written in result folders: 0.333 -> "0.333", 10.0 -> "10", 1e-5 ->
    "0.00001" (no exponent, so that the folder name is ``ours_lam`` + digits)."""
    if not math.isfinite(factor) or factor < 0:
        raise ValueError(f"a lambda factor must be a number >= 0, got {factor}")
    return np.format_float_positional(float(factor), trim="-")


def summarise(evaluations: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """One row per method of ONE task's evaluations: number of seeds, score (the task's metric:
    success rate for goal tasks, else return) and FLOPs/Inf as mean and 95% CI half-width over
    seeds (NaN half-width for one seed), mean % steps large and cost weight. Returns the rows in
    the order the methods were given, and the metric."""
    tasks_seen = sorted(set(evaluations["task"]))
    if len(tasks_seen) != 1:
        raise ValueError(f"evaluations of one task expected, got {tasks_seen}")
    runs, metric = tables.with_score(evaluations)
    rows = []
    for method, group in runs.groupby("method", sort=False):
        score, score_ci = tables.mean_ci95(group["score"])
        flops, flops_ci = tables.mean_ci95(group["flops_per_inf"])
        rows.append({"task": tasks_seen[0], "method": method, "label": tables.method_label(method),
                     "n_seeds": len(group), "metric": tables.METRIC_LABELS[metric],
                     "score_mean": score, "score_ci95": score_ci,
                     "flops_per_inf_mean": flops, "flops_per_inf_ci95": flops_ci,
                     "large_usage_pct_mean": group["large_usage_pct"].mean(),
                     "cost_weight": group["cost_weight"].mean(),
                     "train_steps": tables._joined(group["total_steps"]),
                     "eval_episodes": tables._joined(group["episodes"])})
    return pd.DataFrame(rows), metric


def non_dominated(flops, scores) -> np.ndarray:
    """Mask of the points no other point dominates (FLOPs lower is better, score higher is
    better; dominating = at least as good in both and strictly better in one). Equal points
    are all kept; NaN points are never on the front."""
    flops, scores = np.asarray(flops, dtype=float), np.asarray(scores, dtype=float)
    valid = ~(np.isnan(flops) | np.isnan(scores))
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        better_eq = valid & (flops <= flops[i]) & (scores >= scores[i])
        strictly = (flops < flops[i]) | (scores > scores[i])
        mask[i] = not (better_eq & strictly).any()
    return mask


def _points(ax, summary: pd.DataFrame, colours: dict, annotate: bool = True) -> None:
    """Mean +- 95% CI over seeds on both axes, one marker per row, each labelled."""
    for row in summary.itertuples():
        colour = colours.get(row.method, "0.3")
        ax.errorbar(row.flops_per_inf_mean, row.score_mean,
                    xerr=0 if math.isnan(row.flops_per_inf_ci95) else row.flops_per_inf_ci95,
                    yerr=0 if math.isnan(row.score_ci95) else row.score_ci95,
                    fmt="o", ms=6, color=colour, ecolor=colour, elinewidth=1.2, capsize=3, zorder=4,
                    label=f"{row.label} (n={row.n_seeds})")
        if annotate:
            ax.annotate(row.label, (row.flops_per_inf_mean, row.score_mean), textcoords="offset points",
                        xytext=(5, 5), fontsize=7, color=colour)


def _label_sweep(ax, sweep: pd.DataFrame, colours: dict) -> None:
    """Short labels (λ×factor) for the sweep's points, none overlapping: a label that would
    touch one already placed is lifted above it, with a leader line to its point (several cost
    weights often land on the same cheap, small-policy point)."""
    fig = ax.figure
    ax.get_xlim(), ax.get_ylim()  # fixes the autoscaled limits before positions are computed
    to_points = 72.0 / fig.dpi
    placed: list[tuple[float, float]] = []  # label anchors, in points
    width, height = 42.0, 10.0  # a "λ×0.333" label at fontsize 7, in points
    for row in sweep.sort_values(["score_mean", "flops_per_inf_mean"]).itertuples():
        x, y = (v * to_points for v in ax.transData.transform((row.flops_per_inf_mean, row.score_mean)))
        lx, ly = x + 6, y + 6
        while any(abs(lx - px) < width and abs(ly - py) < height for px, py in placed):
            ly += height
        placed.append((lx, ly))
        colour = colours[row.method]
        lifted = ly - y > 6 + 1e-9
        ax.annotate(f"λ×{factor_name(row.lambda_factor)}", (row.flops_per_inf_mean, row.score_mean),
                    textcoords="offset points", xytext=(lx - x, ly - y), fontsize=7, color=colour,
                    arrowprops=dict(arrowstyle="-", color=colour, lw=0.5) if lifted else None)


def _off_scale(value: float, values) -> bool:
    """Whether ``value`` lies so far from ``values`` (more than twice their spread beyond them)
    that drawing it would squash them into a line."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if not len(values):
        return False
    low, high = float(values.min()), float(values.max())
    spread = max(high - low, 0.05 * max(abs(high), abs(low), 1.0))
    return value < low - 2 * spread or value > high + 2 * spread


def _paper_points(ax, points: dict[str, tuple[float, float]], methods, colours: dict) -> bool:
    drawn = False
    for method in methods:
        if method in points:
            flops, score = points[method]
            ax.scatter([flops], [score], s=60, facecolors="none", edgecolors=colours.get(method, "0.3"),
                       linewidths=1.5, marker="D", zorder=5)
            drawn = True
    return drawn


def _budget(summary: pd.DataFrame, task: str, registry=None) -> str:
    """"300 env steps per run, 0.01% of the paper's budget (3,000,000), 3 seeds per method, 2
    eval episodes": the RL methods' budget (BC and GAIL learn from L-only's demonstrations, their
    own step counts are not a training budget); differing values spelt "a/b"."""
    def joined(rows, column):
        return tables._joined([v for cell in rows[column] for v in str(cell).split("/")])

    rl = summary[[tables.is_pareto_method(m) or m in tables.RL_METHODS for m in summary["method"]]]
    steps = joined(rl if len(rl) else summary, "train_steps")
    paper_steps = paper_budget(task, registry)
    budget = (budget_phrase(steps, paper_steps) if isinstance(steps, int)
              else f"{tables._steps_text(steps)} env steps per run")
    students = " (BC, GAIL: distilled from L-only)" if set(summary["method"]) & {"bc", "gail"} else ""
    return (f"{budget}{students}, {joined(summary, 'n_seeds')} seeds per method, "
            f"{joined(summary, 'eval_episodes')} eval episodes")


def _axes_labels(ax, metric: str) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("Avg-FLOPs/Inf (the paper's FLOPs convention), log scale")
    ax.margins(x=0.1, y=0.08)
    ax.set_ylabel(f"evaluation {tables.METRIC_LABELS[metric]}")
    ax.grid(alpha=0.3, which="both")


def tradeoff(task: str, evaluations: dict[str, list[str | Path]], scale: str, outs: list[str | Path],
             registry=None) -> pd.DataFrame:
    """Score against Avg-FLOPs/Inf of every method (mean and 95% CI over seeds on both axes),
    the paper's published points (hollow diamonds) beside them. Returns the plotted numbers."""
    summary, metric = summarise(tables.load_evaluations(evaluations))
    published = tables.published_points(task, registry)
    fig, ax = plt.subplots(figsize=(8, 5))
    _points(ax, summary, METHOD_COLOURS)
    has_paper = _paper_points(ax, published, summary["method"], METHOD_COLOURS)
    _axes_labels(ax, metric)
    handles, labels = ax.get_legend_handles_labels()
    if has_paper:
        handles.append(Line2D([], [], ls="", marker="D", mfc="none", mec="0.3"))
        labels.append("paper (same colour: same method)")
    ax.legend(handles, labels, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(f"{task}: {tables.METRIC_LABELS[metric]} against inference cost, scale '{scale}': "
                 f"{_budget(summary, task, registry)}\nfilled: mean ± 95% CI over seeds (t) on both axes; hollow "
                 "diamonds: the paper's published numbers", fontsize=10)
    save(fig, outs)
    return summary


# Ours' sub-policy noise in a Pareto sweep (`--variant`) -> how the title names the agent.
PARETO_VARIANTS = {"dropped": "Ours (sub-policy noise dropped, as the authors' script)",
                   "as_sac": "Ours-as-SAC (sub-policy noise as SAC's, as the paper)"}


def pareto(task: str, points: dict[float, list[str | Path]], baselines: dict[str, list[str | Path]],
           scale: str, outs: list[str | Path], csv_out: str | Path | None = None,
           registry=None, variant: str = "dropped", protocols=("deterministic", "stochastic"),
           delta: float = tables.DEFAULT_DELTA) -> pd.DataFrame:
    """Ours trained at several cost weights (``points``: lambda factor -> its seeds' evaluations)
    on the score / Avg-FLOPs/Inf plane with the baselines of the same scale, the paper's Ours
    point, and the non-dominated front of all reproduced points, one panel per evaluation
    protocol. Each cost weight is judged by claim (a) against S-only and L-only (where given),
    and each panel says in one sentence whether any weight is non-inferior, and at what FLOPs.
    Writes the same numbers to ``csv_out`` (one row per point and protocol; ``source`` "paper"
    for the published one)."""
    if not points:
        raise ValueError("pareto: no lambda points given")
    paths = {f"{tables.PARETO_PREFIX}{factor_name(f)}": p for f, p in sorted(points.items())}
    paths.update(baselines)
    fig, axes = plt.subplots(1, len(protocols), figsize=(7.5 * len(protocols), 6.5), squeeze=False,
                             layout="constrained")
    rows = []
    for ax, protocol in zip(axes[0], protocols):
        rows += _pareto_panel(ax, task, paths, protocol, registry, delta)
    budget = _budget(rows[0], task, registry)
    fig.suptitle(f"{task}: {PARETO_VARIANTS[variant]} at cost weights λ × factor (registry λ), scale '{scale}':\n"
                 f"{budget}\nmean ± 95% CI over seeds (t) on both axes; dashed: front of "
                 "the reproduced means (lower FLOPs, higher score)", fontsize=10)
    save(fig, outs)
    table = pd.concat(rows, ignore_index=True)
    table.insert(1, "scale", scale)
    table.insert(2, "variant", variant)
    table["delta"] = delta
    if csv_out is not None:
        with atomic_path(Path(csv_out)) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    return table


def _sweep_verdicts(evaluations: pd.DataFrame, summary: pd.DataFrame, task: str, delta: float) -> pd.DataFrame:
    """Claim (a) of every cost weight of the sweep against the S-only and L-only runs given (the
    same bootstrap as Table 3's): normalized score, its interval and the verdict per row."""
    runs, _ = tables.with_score(evaluations)
    score = {m: g["score"].to_numpy() for m, g in runs.groupby("method")}
    columns = {"normalized_score": [], "normalized_low": [], "normalized_high": [], "claim_return_verdict": []}
    for method in summary["method"]:
        judged = tables.is_pareto_method(method) and {"s_only", "l_only"} <= set(score)
        verdict = (tables.verdict_return(score["s_only"], score["l_only"], score[method], delta, task, method)
                   if judged else None)
        for key, value in zip(columns, (verdict.mean, verdict.low, verdict.high, verdict.verdict)
                              if verdict else (math.nan, math.nan, math.nan, "")):
            columns[key].append(value)
    return summary.assign(**columns)


def _pareto_panel(ax, task: str, paths: dict, protocol: str, registry,
                  delta: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One protocol's panel of the Pareto figure; returns its plotted numbers: the reproduced
    points, and the paper's (empty where unpublished)."""
    evaluations = tables.load_evaluations(paths, protocol)
    summary, metric = summarise(evaluations)
    summary.insert(2, "lambda_factor", [tables.pareto_factor(m) if tables.is_pareto_method(m) else math.nan
                                        for m in summary["method"]])
    summary.insert(3, "protocol", protocol)
    summary["non_dominated"] = non_dominated(summary["flops_per_inf_mean"], summary["score_mean"])
    summary["source"] = "reproduced"
    summary = _sweep_verdicts(evaluations, summary, task, delta)
    sweep = summary[summary["lambda_factor"].notna()].sort_values("lambda_factor")
    cmap = plt.get_cmap("viridis")
    colours = {m: cmap(i / max(1, len(sweep) - 1) * 0.85) for i, m in enumerate(sweep["method"])}
    ax.plot(sweep["flops_per_inf_mean"], sweep["score_mean"], color="tab:green", lw=0.8, alpha=0.5, zorder=2)
    _points(ax, sweep, colours, annotate=False)
    _points(ax, summary[summary["lambda_factor"].isna()], METHOD_COLOURS)
    front = summary[summary["non_dominated"]].sort_values("flops_per_inf_mean")
    if len(front):
        ax.step(front["flops_per_inf_mean"], front["score_mean"], where="post", color="0.2", ls="--",
                lw=1, zorder=3, label="non-dominated front (means)")
    paper = _pareto_paper_point(ax, task, summary, metric, registry, protocol)
    _axes_labels(ax, metric)
    _label_sweep(ax, sweep, colours)
    # Below its own panel: beside it, a legend would run into the next protocol's panel.
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax.set_title(textwrap.fill(f"{protocol} protocol: {tables.non_inferiority_sentence(summary, delta)}", 100),
                 fontsize=9)
    return summary, paper


def _pareto_paper_point(ax, task: str, summary: pd.DataFrame, metric: str, registry,
                        protocol: str) -> pd.DataFrame:
    """The paper's Ours point, drawn, or named in the legend where it lies far off the scale of
    the reproduced points (so that they keep their scale); its CSV row (none if unpublished)."""
    paper = tables.published_points(task, registry).get("ours")
    if paper is None:
        return pd.DataFrame()
    reproduced = np.concatenate([summary["score_mean"] - summary["score_ci95"].fillna(0),
                                 summary["score_mean"] + summary["score_ci95"].fillna(0)])
    if _off_scale(paper[1], reproduced):
        ax.scatter([], [], marker="*", s=180, color="gold", edgecolors="k",
                   label=f"paper: Ours (λ×1), {tables.METRIC_LABELS[metric]} {paper[1]:g} at "
                         f"{paper[0]:,.0f} FLOPs/Inf:\nfar off this plot's scale, not drawn")
    else:
        ax.scatter([paper[0]], [paper[1]], marker="*", s=180, color="gold", edgecolors="k",
                   zorder=6, label="paper: Ours (λ×1)")
    return pd.DataFrame([{"task": task, "method": "ours", "label": "Ours (paper)", "lambda_factor": 1.0,
                          "protocol": protocol, "metric": tables.METRIC_LABELS[metric],
                          "score_mean": paper[1], "flops_per_inf_mean": paper[0], "source": "paper"}])


# ----------------------------------------------------------------------------- performance profile
def performance_profile(evaluations: dict[str, list[str | Path]], scale: str, outs: list[str | Path],
                        delta: float = tables.DEFAULT_DELTA, protocol: str = "deterministic",
                        registry=None, reps: int = 2_000) -> pd.DataFrame:
    """rliable's performance profile across tasks: per method, the fraction of runs whose
    normalized score exceeds tau (mean over tasks of each task's fraction), with its
    stratified-bootstrap 95% band; 0 is S-only's mean, 1 L-only's, 1 - delta marked. With fewer
    than ``tables.MIN_TASKS`` normalizable tasks nothing is drawn and nothing written (an error).
    Returns the plotted numbers (method, tau, fraction, low, high)."""
    agg = tables.normalized_scores(tables.load_evaluations(evaluations, protocol), scale, registry,
                                   delta, protocol)
    tables.check_computed(agg)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    rows = []
    pooled = np.concatenate([s for per_task in agg.scores.values() for s in per_task])
    taus = np.linspace(min(0.0, float(pooled.min())) - 0.05, max(1.0, float(pooled.max())) + 0.05, 121)
    for method, per_task in agg.scores.items():
        profile, low, high = tables.performance_profile(
            per_task, taus, tables.bootstrap_rng("aggregate", "profile", method), reps)
        colour = METHOD_COLOURS.get(method)
        ax.plot(taus, profile, color=colour, lw=1.6, label=f"{METHOD_LABELS[method]} "
                f"(n={sum(len(t) for t in per_task)})")
        ax.fill_between(taus, low, high, color=colour, alpha=0.15, lw=0)
        rows += [{"method": method, "tau": t, "fraction": p, "low": lo, "high": hi}
                 for t, p, lo, hi in zip(taus, profile, low, high)]
    for x, text in ((0.0, "S-only"), (1.0, "L-only"), (1 - agg.delta, f"1 − δ = {1 - agg.delta:g}")):
        ax.axvline(x, color="0.4", lw=0.8, ls=":" if x not in (0.0, 1.0) else "--")
        ax.annotate(text, (x, 1.02), xycoords=("data", "axes fraction"), fontsize=7, ha="center")
    ax.set_xlabel("normalized score τ ((R − mean S-only) / (mean L-only − mean S-only))")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    fractions = [int(str(steps).split("/")[-1]) / tables.load_registry(registry)[task].total_steps
                 for task, steps in zip(agg.budget["task"], agg.budget["train_steps"])]
    fig.suptitle(f"Performance profile across tasks ({', '.join(agg.tasks)}), {protocol} protocol, "
                 f"scale '{scale}', {tables.budget_fraction_text(fractions)}\nline: fraction of runs "
                 "above τ (mean over tasks); band: stratified-bootstrap 95% interval", fontsize=10)
    save(fig, outs)
    return pd.DataFrame(rows, columns=["method", "tau", "fraction", "low", "high"])


def _normalized_panel(ax, summary: pd.DataFrame, budget: int, delta: float, task: str, registry) -> None:
    """Ours' normalized score per milestone with its interval and verdict ("met at 5% of the
    budget" below the paper's budget; "L-only not converged" where the score is above 1.5),
    the line 1 - delta and the paper's point."""
    normalized = summary[summary["quantity"] == "normalized score"]
    ax.errorbar(normalized["step"], normalized["mean"],
                yerr=[(normalized["mean"] - normalized["low"]).clip(lower=0).fillna(0),
                      (normalized["high"] - normalized["mean"]).clip(lower=0).fillna(0)],
                fmt="o-", color=METHOD_COLOURS["ours"], capsize=3, label="Ours (bootstrap 95%)")
    for _, row in normalized.iterrows():
        fraction = row["step"] / budget
        label = tables.verdict_word(row["verdict"], fraction) + (
            "; L-only not converged" if fraction < 1 and row["mean"] > tables.NOT_CONVERGED_SCORE else "")
        ax.annotate(label, (row["step"], row["mean"]), fontsize=7, textcoords="offset points",
                    xytext=(4, 6))
    ax.axhline(1 - delta, color="0.3", ls="--", lw=1, label=f"1 − δ = {1 - delta:g}")
    paper = tables.published_normalized_scores()
    name = tables.load_registry(registry)[task].settings.get("paper_name", task)
    if name in paper.index:
        ax.plot([budget], [paper[name]], "D", mfc="none", mec=METHOD_COLOURS["ours"], ms=8,
                label="paper")


MILESTONE_METHODS = ("s_only", "l_only", "ours")


def milestone_verdicts(task: str, evaluations: dict[str, list[str | Path]], scale: str,
                       outs: list[str | Path], csv: str | Path | None = None,
                       delta: float = tables.DEFAULT_DELTA, registry=None) -> pd.DataFrame:
    """Claim (a) along training: at every milestone reached, each method's score (mean and 95%
    t-interval over seeds) and Ours' normalized score with its stratified-bootstrap 95% interval
    against the non-inferiority line 1 - delta, the paper's points at its budget beside them.
    The milestone of an evaluation is the number of env steps its run was trained for. Returns
    (and writes to ``csv``) the plotted numbers and, per method, the best-over-training score:
    each run's best milestone, averaged over seeds, beside the last milestone's mean."""
    runs, metric = tables.with_score(tables.load_evaluations(evaluations))
    if set(runs["task"]) != {task}:
        raise ValueError(f"evaluations of task '{task}' expected, got {sorted(set(runs['task']))}")
    steps = sorted(int(s) for s in runs["total_steps"].unique())
    rows = []
    for step in steps:
        at = runs[runs["total_steps"] == step]
        scores = {m: at.loc[at["method"] == m, "score"].to_numpy() for m in MILESTONE_METHODS}
        for method, values in scores.items():
            if len(values):
                mean, half = tables.mean_ci95(values)
                rows.append({"kind": "milestone", "step": step, "method": method, "quantity": metric,
                             "n": len(values), "mean": mean, "low": mean - half, "high": mean + half,
                             "verdict": ""})
        if all(len(v) for v in scores.values()):
            # seeded as the milestone's Table 3 seeds its claim (a): the same interval in both
            v = tables.verdict_return(scores["s_only"], scores["l_only"], scores["ours"], delta, task)
            rows.append({"kind": "milestone", "step": step, "method": "ours",
                         "quantity": "normalized score", "n": v.n, "mean": v.mean, "low": v.low,
                         "high": v.high, "verdict": v.verdict})
    last = steps[-1]
    for (method, seed), group in runs.groupby(["method", "seed"]):
        best = group.loc[group["score"].idxmax()]
        rows.append({"kind": "best_of_run", "step": int(best["total_steps"]), "method": method,
                     "quantity": metric, "n": 1, "mean": float(best["score"]), "low": math.nan,
                     "high": math.nan, "verdict": f"seed {seed}"})
    summary = pd.DataFrame(rows)
    best_runs = summary[summary["kind"] == "best_of_run"]
    for method, group in best_runs.groupby("method", sort=False):
        mean, half = tables.mean_ci95(group["mean"])
        summary.loc[len(summary)] = {"kind": "best_over_training", "step": last, "method": method,
                                     "quantity": metric, "n": len(group), "mean": mean,
                                     "low": mean - half, "high": mean + half, "verdict": ""}
    if csv is not None:
        with atomic_path(csv) as tmp:
            summary.to_csv(tmp, index=False)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    milestones = summary[(summary["kind"] == "milestone") & (summary["quantity"] == metric)]
    for method, group in milestones.groupby("method", sort=False):
        colour = METHOD_COLOURS[method]
        top.plot(group["step"], group["mean"], "o-", color=colour, label=tables.method_label(method))
        top.fill_between(group["step"], group["low"], group["high"], color=colour, alpha=0.2)
    budget = int(tables.load_registry(registry)[task].total_steps)
    for method, (_, score) in tables.published_points(task, registry).items():
        if method in MILESTONE_METHODS:
            top.plot([budget], [score], "D", mfc="none", mec=METHOD_COLOURS[method], ms=8)
    top.set_ylabel(tables.METRIC_LABELS[metric])
    top.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    _normalized_panel(bottom, summary, budget, delta, task, registry)
    bottom.set_ylabel("normalized score\n(S-only 0, L-only 1)")
    bottom.set_xlabel("env steps trained (milestone)")
    bottom.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    for ax in (top, bottom):
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    seeds = int(milestones["n"].max()) if len(milestones) else 0
    fig.suptitle(f"{task}: claim (a) at every milestone, scale '{scale}', up to {last:,} of "
                 f"{budget:,} env steps ({tables.percent_text(last / budget)} of the paper's budget), "
                 f"{seeds} seeds\n"
                 "mean ± 95% interval over seeds; hollow diamonds: the paper at its budget",
                 fontsize=10)
    save(fig, outs)
    return summary
