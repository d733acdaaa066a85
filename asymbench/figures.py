"""The paper's figures: sub-policy timelines (Figs. 2 and 3) and learning curves.

Every figure's title states the scale, the training budget and the seeds it was made from, so a
reduced-budget figure cannot be mistaken for a paper-scale one. Figures are written as PNG and
PDF (the format follows each output's suffix).
"""

from __future__ import annotations

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
from asymbench.tables import METHOD_LABELS

SUB_POLICY_COLOURS = {"small": "tab:blue", "large": "tab:orange", "policy": "tab:gray"}
METHOD_COLOURS = {"s_only": "tab:blue", "l_only": "tab:orange", "ours": "tab:green",
                  "ours_no_cost": "tab:red", "fit": "tab:purple"}
MAX_SWITCH_LINES = 60  # beyond this many switches, lines would hide the dots: shading alone shows them


def save(fig: plt.Figure, outs: list[str | Path]) -> None:
    """Saves ``fig`` to every path (format from its suffix), atomically, then closes it."""
    for out in outs:
        out = Path(out)
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.suffix.lstrip("."), dpi=150, bbox_inches="tight")
    plt.close(fig)


def _segments(policies: np.ndarray) -> list[tuple[int, int, str]]:
    """(first index, last index + 1, sub-policy) of every run of equal sub-policies."""
    starts = np.flatnonzero(np.r_[True, policies[1:] != policies[:-1]])
    ends = np.r_[starts[1:], len(policies)]
    return [(int(s), int(e), str(policies[s])) for s, e in zip(starts, ends)]


def timeline(trace_csv: str | Path, eval_json: str | Path, frames_dir: str | Path | None,
             scale: str, run_seed: int, outs: list[str | Path]) -> None:
    """Per-step reward of the traced evaluation episode, dots coloured by the sub-policy in use,
    large-policy stretches shaded, switches marked, rendered frames above linked to their step."""
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

    fig.suptitle(f"{evaluation['task']}: Ours (training seed {run_seed}), first evaluation episode: "
                 f"return {rewards.sum():.1f}, {len(segments) - 1} master switches\nscale '{scale}': "
                 f"{evaluation['total_steps']:,} training steps; dots coloured by the sub-policy the "
                 "master chose", fontsize=10)
    save(fig, outs)


def _run_curve(run_json: str | Path, grid: np.ndarray, column: str) -> np.ndarray:
    """One run's ``column`` per episode, smoothed over 2% of its episodes, on ``grid``
    (NaN outside the steps the run covered: no extrapolation)."""
    progress = pd.read_csv(Path(run_json).parent / PROGRESS_FILE)
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
    fig.suptitle(f"{task}: learning curves, scale '{scale}': {budget:,} env steps per run, "
                 f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}\nline: mean over seeds of each run's "
                 f"episode returns (moving average over 2% of its episodes){spread}", fontsize=10)
    save(fig, outs)
