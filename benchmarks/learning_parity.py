"""Learning parity of the two training engines: does the batched engine learn as well as the
stable-baselines3 reference? (issue 10: L-only on MountainCarContinuous at the paper budget,
>= 10 seeds; the batched engine's success rate must not be worse within binomial noise).

A seed succeeds when its deterministic evaluation return (mean over the evaluation episodes)
exceeds the environment's own ``reward_threshold`` (90 for MountainCarContinuous-v0). The two
sets of runs are trained and evaluated with the same commands, seeds and evaluation episodes:

    # batched engine (the verify scale trains these):
    asymbench train --task MountainCarContinuous --method l_only --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --out results/verify/MountainCarContinuous/l_only
    # reference engine, one process per seed:
    asymbench train --engine sb3 --task MountainCarContinuous --method l_only --seed S --out DIR/seedS
    # both:
    asymbench evaluate RUN --out RUN/eval.json --episodes 200 --seed 1000

    python benchmarks/learning_parity.py --batched results/verify/MountainCarContinuous/l_only \\
        --sb3 DIR

prints each seed's return, the success counts with Wilson 95% intervals, and Fisher's exact test
of "the batched engine succeeds less often" (one-sided), and writes
``benchmarks/results/learning_parity.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _common  # noqa: F401  (one BLAS thread, set before numpy loads)
from _common import print_table, write_results

import gymnasium as gym
import numpy as np
from scipy import stats


def engine_runs(root: Path) -> list[dict]:
    """Every ``seed*/eval.json`` under ``root`` with the run's engine and step count."""
    runs = []
    for eval_path in sorted(root.glob("seed*/eval.json"), key=lambda p: int(p.parent.name[4:])):
        evaluation = json.loads(eval_path.read_text())
        config = json.loads((eval_path.parent / "config.json").read_text())
        finished = json.loads((eval_path.parent / "run.json").read_text())
        runs.append({"seed": config["seed"], "task": evaluation["task"],
                     "method": evaluation["method"], "engine": config["engine"],
                     "steps": finished["steps"], "episodes": evaluation["episodes"],
                     "mean_return": evaluation["mean_return"]})
    if not runs:
        raise SystemExit(f"{root}: no seed*/eval.json (train and evaluate the runs first)")
    return runs


def summary(runs: list[dict], threshold: float) -> dict:
    successes = sum(r["mean_return"] > threshold for r in runs)
    interval = stats.binomtest(successes, len(runs)).proportion_ci(method="wilson")
    returns = np.array([r["mean_return"] for r in runs])
    return {"seeds": len(runs), "successes": int(successes), "success_rate": successes / len(runs),
            "wilson95": [interval.low, interval.high], "mean_return": float(returns.mean()),
            "std_return_over_seeds": float(returns.std(ddof=1)) if len(runs) > 1 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batched", type=Path, required=True, help="parent of the batched engine's seed<S>/")
    parser.add_argument("--sb3", type=Path, required=True, help="parent of the reference engine's seed<S>/")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    started = time.time()
    runs = {"batched": engine_runs(args.batched), "sb3": engine_runs(args.sb3)}
    tasks = {r["task"] for rs in runs.values() for r in rs}
    if len(tasks) != 1:
        raise SystemExit(f"the two sets of runs must be of one task, got {sorted(tasks)}")
    task = tasks.pop()
    for engine, rs in runs.items():
        wrong = [r["seed"] for r in rs if r["engine"] != engine]
        if wrong:
            raise SystemExit(f"--{engine}: seeds {wrong} were trained with another engine")
    threshold = gym.spec(f"{task}-v0").reward_threshold
    results = {engine: summary(rs, threshold) for engine, rs in runs.items()}
    b, r = results["batched"], results["sb3"]
    table = [[b["successes"], b["seeds"] - b["successes"]], [r["successes"], r["seeds"] - r["successes"]]]
    _, p_worse = stats.fisher_exact(table, alternative="less")
    verdict = ("parity: the batched engine is not worse within binomial noise" if p_worse >= 0.05
               else "the batched engine succeeds less often (p < 0.05)")

    print_table([{"seed": x["seed"], "batched": x["mean_return"], "sb3": y["mean_return"]}
                 for x, y in zip(runs["batched"], runs["sb3"])],
                ["seed", "batched", "sb3"], {"batched": ".1f", "sb3": ".1f"})
    print_table([{"engine": e, **{k: v for k, v in s.items() if k != "wilson95"},
                  "wilson95": f"{s['wilson95'][0]:.2f}-{s['wilson95'][1]:.2f}"} for e, s in results.items()],
                ["engine", "seeds", "successes", "success_rate", "wilson95", "mean_return", "std_return_over_seeds"],
                {"success_rate": ".2f", "mean_return": ".1f", "std_return_over_seeds": ".1f"})
    print(f"success: mean evaluation return > {threshold} ({task}-v0 reward_threshold); "
          f"Fisher's exact test, one-sided (batched worse): p = {p_worse:.3f} -> {verdict}")
    write_results("learning_parity", {"task": task, "success_threshold": threshold,
                                      "engines": results, "fisher_p_batched_worse": p_worse,
                                      "verdict": verdict, "runs": runs}, started, args.out)


if __name__ == "__main__":
    main()
