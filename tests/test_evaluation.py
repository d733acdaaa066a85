import json

import numpy as np
import pandas as pd
import pytest

from asymbench.cli import main
from asymbench.evaluation import evaluate_run
from asymbench.runs import RunError
from asymbench.training import TrainRequest, train

from conftest import TINY


def test_asym_evaluation_reports_returns_usage_flops_latency_and_trace(asym_run, tmp_path):
    out, trace, frames = tmp_path / "eval.json", tmp_path / "trace.csv", tmp_path / "frames"
    assert main(["evaluate", str(asym_run), "--episodes", "3", "--out", str(out),
                 "--trace", str(trace), "--frames", str(frames)]) == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == len(result["returns"]) == 3
    assert result["mean_return"] == pytest.approx(np.mean(result["returns"]))
    steps = pd.read_csv(trace)
    assert len(steps) == 50 and set(steps["sub_policy"]) <= {"small", "large"}
    # the master reconsiders only at macro starts
    changes = steps.index[steps["sub_policy"] != steps["sub_policy"].shift()][1:]
    assert all(step % 5 == 0 for step in changes)
    share = result["large_share"]
    expected = share * 8707 + (1 - share) * 195 + 2304 / 5
    assert result["flops_per_inf"] == pytest.approx(expected)
    assert result["flops_reduction_pct"] == pytest.approx(100 * (1 - expected / 8707))
    assert result["latency_us"]["policy"] > 0 and result["latency_us"]["l_only"] > 0
    index = pd.read_csv(frames / "index.csv")
    assert 1 <= len(index) <= 6 and all((frames / f).stat().st_size > 1000 for f in index["file"])


def test_same_seed_gives_the_same_evaluation(tmp_path):
    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        train(TrainRequest(task="MountainCarContinuous", method="s_only", seed=5, out=out,
                           **{**TINY, "steps": 200}))
        results.append(evaluate_run(out, episodes=2, seed=10))
    assert results[0]["returns"] == results[1]["returns"]


def test_l_only_evaluation(l_only_run):
    result = evaluate_run(l_only_run, episodes=1)
    assert result["large_share"] == 1.0 and result["flops_per_inf"] == 8707
    assert result["flops_reduction_pct"] == 0.0 and result["width"] == 64


def test_missing_or_unfinished_runs_are_refused(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        evaluate_run(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(RunError, match="unfinished"):
        evaluate_run(tmp_path / "half")
    assert main(["evaluate", str(tmp_path / "half"), "--out", str(tmp_path / "e.json")]) == 2
    assert not (tmp_path / "e.json").exists()
