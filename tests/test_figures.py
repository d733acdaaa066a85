"""Figures from synthetic traces, frames and learning curves: files exist, are real images, and
the learning-curve interpolation does not extrapolate."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt

from asymbench import figures
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
