"""Figures from synthetic traces, frames, learning curves and evaluation JSONs: files exist, are
real images, the learning-curve interpolation does not extrapolate, and the Pareto sweep's
numbers (means, CIs, non-dominated front, the paper's point) are right."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from matplotlib.text import Text

from asymbench import figures, tables
from asymbench.cli import main


def write_trace(folder, steps=200, frames=True):
    """A TRACE.csv whose master switches every 20 steps, and (optionally) 4 rendered frames."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    policy = np.where((np.arange(steps) // 20) % 2 == 0, "small", "large")
    pd.DataFrame({"step": np.arange(steps), "reward": rng.normal(1, 0.3, steps) + (policy == "large"),
                  "sub_policy": policy, "action_0": rng.uniform(-1, 1, steps)}).to_csv(
        folder / "trace.csv", index=False)
    (folder / "eval.json").write_text(json.dumps({"task": "Swimmer", "method": "asym", "total_steps": 300,
                                                  "episodes": 2, "mean_return": 1.0}))
    if frames:
        (folder / "frames").mkdir()
        rows = []
        for step in (0, 20, 40, 120):
            image = np.full((48, 64, 3), step / 200.0)
            plt.imsave(folder / "frames" / f"step_{step:05d}.png", image)
            rows.append({"step": step, "sub_policy": policy[step], "file": f"step_{step:05d}.png"})
        pd.DataFrame(rows).to_csv(folder / "frames" / "index.csv", index=False)
    return folder


def write_run(folder, method, seed, steps=1000, episode_length=50, share=True):
    """A finished run folder: config.json, progress.csv (rising returns) and run.json."""
    folder.mkdir(parents=True, exist_ok=True)
    ends = np.arange(episode_length, steps + 1, episode_length)
    slope = {"s_only": 0.1, "l_only": 0.2, "ours": 0.18}.get(method, 0.15)
    pd.DataFrame({"step": ends, "episode": np.arange(len(ends)), "episode_return": slope * ends + 5 * seed,
                  "episode_length": episode_length,
                  "large_share": np.linspace(0.9, 0.3, len(ends)) if share else np.nan,
                  "wall_s": ends / 100}).to_csv(folder / "progress.csv", index=False)
    (folder / "config.json").write_text(json.dumps({"task": "Swimmer", "method": method, "seed": seed,
                                                    "total_steps": steps}))
    (folder / "run.json").write_text(json.dumps({"steps": steps}))
    return folder / "run.json"


def assert_image(path, min_bytes=5000):
    assert path.exists() and path.stat().st_size > min_bytes
    if path.suffix == ".png":
        image = plt.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert image[..., :3].std() > 0.01  # not a blank canvas


def test_timeline_png_and_pdf(tmp_path):
    folder = write_trace(tmp_path / "ours")
    outs = [tmp_path / "fig" / "timeline.png", tmp_path / "fig" / "timeline.pdf"]
    assert main(["figures", "timeline", "--trace", str(folder / "trace.csv"), "--eval",
                 str(folder / "eval.json"), "--frames", str(folder / "frames"), "--run-seed", "0",
                 "--scale", "smoke", "--out", *map(str, outs)]) == 0
    for out in outs:
        assert_image(out)
    assert outs[1].read_bytes().startswith(b"%PDF")


def test_timeline_without_frames(tmp_path):
    folder = write_trace(tmp_path / "ours", frames=False)
    out = tmp_path / "timeline.png"
    figures.timeline(folder / "trace.csv", folder / "eval.json", None, "smoke", 0, [out])
    assert_image(out)


def test_segments():
    assert figures._segments(np.array(["small", "small", "large", "small"])) == [
        (0, 2, "small"), (2, 3, "large"), (3, 4, "small")]


def test_run_curve_does_not_extrapolate(tmp_path):
    run = write_run(tmp_path / "r", "s_only", 0, steps=500)
    grid = np.linspace(0, 1000, 11)
    curve = figures._run_curve(run, grid, "episode_return")
    assert np.isnan(curve[0]) and np.isnan(curve[-1])  # before the first / after the last episode
    assert curve[5] == pytest.approx(50.0)  # step 500: return 0.1 * 500, no smoothing over 10 episodes


def test_learning_curves(tmp_path):
    runs = {m: [write_run(tmp_path / m / f"seed{s}", m, s, share=m.startswith("ours")) for s in (0, 1, 2)]
            for m in ("s_only", "l_only", "ours", "ours_no_cost", "fit")}
    outs = [tmp_path / "curves.png", tmp_path / "curves.pdf"]
    args = ["figures", "curves", "--task", "Swimmer", "--scale", "smoke", "--out", *map(str, outs)]
    for method, paths in runs.items():
        args += [f"--{method.replace('_', '-')}", *map(str, paths)]
    assert main(args) == 0
    for out in outs:
        assert_image(out)


# ----------------------------------------------------------------------------- trade-off, Pareto
def write_eval(path, task, method, score, flops, seed, success_rate=None, cost_weight=None):
    """An EVAL.json with the fields the trade-off and Pareto figures read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"task": task, "method": method, "seed": 1000, "episodes": 2,
                                "total_steps": 300, "mean_return": score, "success_rate": success_rate,
                                "large_share": 0.5, "flops_per_inf": flops,
                                "flops_reduction_pct": 100 * (1 - flops / 137219),
                                "cost_weight": cost_weight}))
    return path


# method -> (score, FLOPs/Inf) of seed 0; seed s adds s to the score and 10 s to the FLOPs
BASELINES = {"s_only": (20.0, 300.0), "l_only": (80.0, 137219.0), "fit": (60.0, 70000.0),
             "bc": (40.0, 70000.0), "gail": (30.0, 70000.0)}
SWEEP = {0: (90.0, 120000.0), 0.1: (85.0, 90000.0), 1: (70.0, 75000.0), 10: (30.0, 5000.0)}


def sweep_files(folder, task="Swimmer"):
    baselines = {m: [write_eval(folder / m / f"seed{s}" / "eval.json", task, m, r + s, f + 10 * s, s)
                     for s in range(3)] for m, (r, f) in BASELINES.items()}
    points = {k: [write_eval(folder / f"ours_lam{k}" / f"seed{s}" / "eval.json", task, "asym", r + s,
                             f + 10 * s, s, cost_weight=1e-4 * k) for s in range(3)]
              for k, (r, f) in SWEEP.items()}
    return baselines, points


def test_non_dominated():
    flops = [100, 200, 200, 300, 50, 300, math.nan]
    scores = [10, 20, 15, 20, 5, 25, 99]
    # (200, 15) is dominated by (200, 20); (300, 20) by (300, 25) and (200, 20); NaN never on it
    assert figures.non_dominated(flops, scores).tolist() == [True, True, False, False, True, True, False]
    assert figures.non_dominated([1, 1], [2, 2]).tolist() == [True, True]  # equal points both kept


def test_factor_names_are_folder_safe():
    assert [figures.factor_name(f) for f in (0, 0.1, 0.333, 1, 3.0, 10, 1e-5)] == [
        "0", "0.1", "0.333", "1", "3", "10", "0.00001"]
    with pytest.raises(ValueError):
        figures.factor_name(-1)


def test_pareto_csv_and_figure(tmp_path):
    baselines, points = sweep_files(tmp_path / "runs")
    outs = [tmp_path / "pareto.png", tmp_path / "pareto.pdf"]
    csv = tmp_path / "pareto.csv"
    args = ["pareto", "--task", "Swimmer", "--scale", "smoke", "--out", *map(str, outs), "--csv", str(csv),
            "--protocol", "deterministic"]
    for factor, paths in points.items():
        args += ["--point", str(factor), *map(str, paths)]
    for method, paths in baselines.items():
        args += [f"--{method.replace('_', '-')}", *map(str, paths)]
    assert main(["figures", *args]) == 0
    for out in outs:
        assert_image(out)
    df = pd.read_csv(csv)
    reproduced = df[df["source"] == "reproduced"].set_index("label")
    lam = reproduced.loc["Ours, λ×0.1"]
    assert lam["lambda_factor"] == 0.1 and lam["n_seeds"] == 3 and lam["cost_weight"] == pytest.approx(1e-5)
    assert lam["score_mean"] == pytest.approx(86.0)  # 85, 86, 87
    assert lam["score_ci95"] == pytest.approx(figures.tables.mean_ci95([85, 86, 87])[1])
    assert lam["flops_per_inf_mean"] == pytest.approx(90010.0)
    # front (means): S-only (300, 21), λ×10 (5010, 31), fit (70010, 61), λ×1 (75010, 71),
    # λ×0.1 (90010, 86), λ×0 (120010, 91); L-only (137229, 81), BC and GAIL are dominated
    front = set(reproduced.index[reproduced["non_dominated"]])
    assert front == {"S-only", "Ours, λ×10", "fit", "Ours, λ×1", "Ours, λ×0.1", "Ours, λ×0"}
    paper = df[df["source"] == "paper"].iloc[0]
    assert paper["score_mean"] == 108.8 and paper["flops_per_inf_mean"] == 76019
    assert set(df["scale"]) == {"smoke"}


def test_tradeoff_figure_with_success_rates(tmp_path):
    runs = {m: [write_eval(tmp_path / m / f"seed{s}" / "eval.json", "FetchPickAndPlace", m, -20.0, f,
                           s, success_rate=0.5 + 0.1 * s) for s in range(2)]
            for m, (_, f) in BASELINES.items()}
    outs = [tmp_path / "tradeoff.png"]
    summary = figures.tradeoff("FetchPickAndPlace", runs, "smoke", outs)
    assert_image(outs[0])
    assert set(summary["metric"]) == {"success rate"}
    assert summary.set_index("method").loc["l_only", "score_mean"] == pytest.approx(0.55)
    args = ["tradeoff", "--task", "FetchPickAndPlace", "--scale", "smoke", "--out", str(tmp_path / "t.pdf")]
    for method, paths in runs.items():
        args += [f"--{method.replace('_', '-')}", *map(str, paths)]
    assert main(["figures", *args]) == 0 and (tmp_path / "t.pdf").read_bytes().startswith(b"%PDF")




# ----------------------------------------------------------------------------- milestone verdicts
def test_milestone_verdict_figure_csv_and_best_over_training(tmp_path):
    """Two milestones of walker-stand, 4 seeds: at 100k Ours' mean equals L-only's but one seed
    far above the others (600 against ~200) leaves the interval wide (inconclusive); at 200k
    Ours equals L-only seed by seed (reproduced). Ours' seed 0 peaked at 100k, so its
    best-over-training score is its 100k one and the method's best mean is above its final."""
    files = {"s_only": [], "l_only": [], "ours": []}
    for step, scores in ((100_000, {"s_only": 100, "l_only": 300, "ours": 200}),
                         (200_000, {"s_only": 100, "l_only": 500, "ours": 500})):
        for method, score in scores.items():
            for seed in range(4):
                value = score + seed + (400 if (method, seed, step) == ("ours", 0, 100_000) else 0)
                path = write_eval(tmp_path / method / str(step) / f"seed{seed}" / "eval.json",
                                  "walker-stand", method, value, 3000.0, seed)
                data = json.loads(path.read_text())
                path.write_text(json.dumps({**data, "total_steps": step}))
                files[method].append(path)
    outs = [tmp_path / "verdict.png", tmp_path / "verdict.pdf"]
    summary = figures.milestone_verdicts("walker-stand", files, "paper", outs, tmp_path / "v.csv", 0.2)
    for out in outs:
        assert_image(out)
    normalized = summary[summary["quantity"] == "normalized score"].set_index("step")
    assert normalized.loc[100_000, "verdict"] == "inconclusive"  # seed 0's 600 widens the interval
    assert normalized.loc[200_000, "verdict"] == "reproduced"
    assert normalized.loc[200_000, "mean"] == pytest.approx(1.0)
    best = summary[summary["kind"] == "best_over_training"].set_index("method")
    assert best.loc["ours", "mean"] == pytest.approx(np.mean([600, 501, 502, 503]))
    assert best.loc["l_only", "mean"] == pytest.approx(np.mean([500, 501, 502, 503]))
    assert best.loc["ours", "step"] == 200_000   # the last milestone, beside which it is reported
    written = pd.read_csv(tmp_path / "v.csv")
    assert set(written["kind"]) == {"milestone", "best_of_run", "best_over_training"}
    # the same interval as the milestone's Table 3 prints for claim (a)
    at_200k = {m: [p for p in paths if p.parent.parent.name == "200000"] for m, paths in files.items()}
    row = tables.build_table("table3", tables.load_evaluations(at_200k), "paper").iloc[0]
    assert (normalized.loc[200_000, "low"], normalized.loc[200_000, "high"]) == (
        row["claim_return_low"], row["claim_return_high"])


def test_pareto_labels_do_not_overlap_and_a_far_paper_point_is_a_note(tmp_path, monkeypatch):
    """Crowded cost weights (several λ on one cheap point) get labels that do not overlap; the
    paper's walker-stand point (967) would squash reproduced returns near 30-90 into a line, so
    it is named in the legend instead of drawn."""
    crowded = {0.001: (30.0, 5000.0), 0.01: (30.5, 5010.0), 0.1: (31.0, 5020.0), 1: (31.5, 5030.0),
               10: (30.2, 5005.0)}
    baselines = {m: [write_eval(tmp_path / m / f"seed{s}" / "eval.json", "walker-stand", m, r + s, f, s)
                     for s in range(3)] for m, (r, f) in BASELINES.items()}
    points = {k: [write_eval(tmp_path / f"lam{k}" / f"seed{s}" / "eval.json", "walker-stand", "asym", r,
                             f, s, cost_weight=k) for s in range(3)] for k, (r, f) in crowded.items()}
    seen = {}
    real_save = figures.save

    def inspect(fig, outs):
        fig.canvas.draw()
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        seen["boxes"] = [Text.get_window_extent(t, renderer)  # the text alone, not its leader line
                         for t in ax.texts if t.get_text().startswith("λ×")]
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        seen["ylim"] = ax.get_ylim()
        real_save(fig, outs)

    monkeypatch.setattr(figures, "save", inspect)
    figures.pareto("walker-stand", points, baselines, "smoke", [tmp_path / "p.png"], protocols=("deterministic",))
    boxes = seen["boxes"]
    assert len(boxes) == len(crowded)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert any("not drawn" in text for text in seen["legend"])
    assert seen["ylim"][1] < 200  # the reproduced points keep their scale
    assert "of the paper's budget" in figures.png_title(tmp_path / "p.png")


def test_as_sac_timeline_says_it_is_the_variant(tmp_path):
    folder = write_trace(tmp_path / "ours", frames=False)
    (folder / "config.json").write_text(json.dumps({"asym_action_noise": "as_sac"}))
    data = json.loads((folder / "eval.json").read_text())
    (folder / "eval.json").write_text(json.dumps({**data, "run": str(folder), "paper_total_steps": 3000}))
    out = tmp_path / "timeline.png"
    assert main(["figures", "timeline", "--trace", str(folder / "trace.csv"), "--eval",
                 str(folder / "eval.json"), "--run-seed", "3", "--seed-choice", "learned",
                 "--scale", "verify", "--out", str(out)]) == 0
    title = figures.png_title(out)
    assert "noise as SAC (variant)" in title and "chosen because it learned" in title
    assert "10% of the paper's budget" in title


def test_pareto_of_ours_as_sac_judges_each_cost_weight_under_both_protocols(tmp_path):
    """One panel per protocol; each cost weight judged by claim (a) against S-only and L-only.
    Under the stochastic protocol the sweep loses 50 return, so no weight is non-inferior."""
    baselines, points = sweep_files(tmp_path / "runs")
    for path in [p for paths in [*baselines.values(), *points.values()] for p in paths]:
        data = json.loads(path.read_text())
        drop = 50.0 if data["method"] == "asym" else 0.0
        path.write_text(json.dumps({**data, "stochastic": {
            "mean_return": data["mean_return"] - drop, "large_share": 0.5,
            "flops_per_inf": data["flops_per_inf"], "flops_reduction_pct": data["flops_reduction_pct"]}}))
    csv = tmp_path / "pareto.csv"
    table = figures.pareto("Swimmer", points, baselines, "smoke", [tmp_path / "p.png"], csv, variant="as_sac")
    assert "Ours-as-SAC" in figures.png_title(tmp_path / "p.png")
    rows = pd.read_csv(csv)
    assert set(rows["protocol"]) == {"deterministic", "stochastic"}
    assert set(rows["variant"]) == {"as_sac"} and set(rows["delta"]) == {0.2}
    sweep = table[table["lambda_factor"].notna() & (table["source"] == "reproduced")]
    verdicts = sweep.set_index(["protocol", "lambda_factor"])["claim_return_verdict"]
    # deterministic: S-only 21, L-only 81 (means); λ×0.1 scores 86 -> 1.08, λ×10 31 -> 0.17
    assert verdicts["deterministic", 0.1] == figures.tables.REPRODUCED
    assert verdicts["deterministic", 10] == figures.tables.NOT_REPRODUCED
    assert (verdicts["stochastic"] != figures.tables.REPRODUCED).all()
    deterministic = sweep[sweep["protocol"] == "deterministic"]
    sentence = figures.tables.non_inferiority_sentence(deterministic, 0.2)
    cheapest = deterministic[deterministic["claim_return_verdict"] == figures.tables.REPRODUCED]["flops_per_inf_mean"].min()
    assert sentence.startswith("non-inferior (normalized score ≥ 0.8): ") and f"{cheapest:,.0f} FLOPs/Inf" in sentence
    assert figures.tables.non_inferiority_sentence(sweep[sweep["protocol"] == "stochastic"], 0.2).startswith(
        "no cost weight is shown non-inferior")
