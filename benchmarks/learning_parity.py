"""Learning parity of the batched engine against a stable-baselines3 reference: does it learn
as well? (issue 10: L-only on MountainCarContinuous at the paper budget, >= 10 seeds; the batched
engine's success rate must not be worse within binomial noise). This is a benchmark, not a test:
the tests prove each update equal to SAC.train(1), not that two runs learn alike.

The reference side ("--sb3") is a set of run folders whose config.json records
``"engine": "sb3"``: runs of the reference engine asymbench had until issue 23 (one process per
seed, ``SAC.train`` per gradient step; the recorded results below and in
benchmarks/results/learning_parity*.json come from it). That engine is gone; its run folders stay readable. A new comparison needs such
folders from an asymbench before issue 23 (the commands below ran there), or a plain
``SAC.learn`` writer of the same run-folder format, which is not provided yet.

A seed succeeds when its deterministic evaluation return (mean over the evaluation episodes)
exceeds the environment's own ``reward_threshold`` (90 for MountainCarContinuous-v0); on a goal
task, when its evaluation success rate reaches ``--min-success-rate``. The two sets of runs are
trained and evaluated with the same commands, seeds and evaluation episodes:

    # batched engine (the verify scale trains these):
    asymbench train --task MountainCarContinuous --method l_only --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --out results/verify/MountainCarContinuous/l_only
    # reference engine (asymbench before issue 23), one process per seed:
    asymbench train --engine sb3 --task MountainCarContinuous --method l_only --seed S --out DIR/seedS
    # both:
    asymbench evaluate RUN --out RUN/eval.json --episodes 200 --seed 1000

    python benchmarks/learning_parity.py --batched results/verify/MountainCarContinuous/l_only \\
        --sb3 DIR

prints each seed's return, the success counts with Wilson 95% intervals, Fisher's exact test of
"the batched engine succeeds less often" and Mann-Whitney's U test of "its per-seed scores are
lower" (both one-sided), and writes
``benchmarks/results/learning_parity.json``.

Hindsight relabelling, on FetchReach (benchmarks/goal_task_registry.py says why not
FetchPickAndPlace), 5 seeds, 30k steps (60k: --steps 60000 and other folders):

    R=results/parity_fetch_reach
    python benchmarks/goal_task_registry.py --out $R/registry.yaml
    asymbench train --registry $R/registry.yaml --task FetchReach --method l_only \
        --seeds 0 1 2 3 4 --steps 30000 --out $R/batched
    asymbench train --registry $R/registry.yaml --engine sb3 --task FetchReach --method l_only \
        --seed S --steps 30000 --out $R/sb3/seedS                      # S = 0 ... 4
    asymbench evaluate RUN --out RUN/eval.json --episodes 100 --seed 1000  # every run
    python benchmarks/learning_parity.py --batched $R/batched --sb3 $R/sb3 \
        --out benchmarks/results/learning_parity_fetch_reach_30k.json
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
                     "env_id": config["env_id"], "steps": finished["steps"],
                     "episodes": evaluation["episodes"], "mean_return": evaluation["mean_return"],
                     "success_rate": evaluation.get("success_rate")})
    if not runs:
        raise SystemExit(f"{root}: no seed*/eval.json (train and evaluate the runs first)")
    return runs


def succeeded(run: dict, threshold: float, goal_task: bool) -> bool:
    return run["success_rate"] >= threshold if goal_task else run["mean_return"] > threshold


def summary(runs: list[dict], threshold: float, goal_task: bool) -> dict:
    successes = sum(succeeded(r, threshold, goal_task) for r in runs)
    interval = stats.binomtest(successes, len(runs)).proportion_ci(method="wilson")
    returns = np.array([r["mean_return"] for r in runs])
    result = {"seeds": len(runs), "successes": int(successes), "success_rate": successes / len(runs),
              "wilson95": [interval.low, interval.high], "mean_return": float(returns.mean()),
              "std_return_over_seeds": float(returns.std(ddof=1)) if len(runs) > 1 else 0.0}
    if goal_task:
        rates = np.array([r["success_rate"] for r in runs])
        result.update(mean_eval_success_rate=float(rates.mean()),
                      std_eval_success_rate_over_seeds=float(rates.std(ddof=1)) if len(runs) > 1 else 0.0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batched", type=Path, required=True, help="parent of the batched engine's seed<S>/")
    parser.add_argument("--sb3", type=Path, required=True, help="parent of the reference engine's seed<S>/")
    parser.add_argument("--min-success-rate", type=float, default=0.9,
                        help="goal tasks: a seed succeeds when its evaluation success rate reaches this")
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
    goal_task = all(r["success_rate"] is not None for rs in runs.values() for r in rs)
    env_id = runs["batched"][0]["env_id"]
    threshold = args.min_success_rate if goal_task else gym.spec(env_id).reward_threshold
    if threshold is None:
        raise SystemExit(f"{env_id} has no reward_threshold to count a seed as a success")
    results = {engine: summary(rs, threshold, goal_task) for engine, rs in runs.items()}
    b, r = results["batched"], results["sb3"]
    table = [[b["successes"], b["seeds"] - b["successes"]], [r["successes"], r["seeds"] - r["successes"]]]
    _, p_worse = stats.fisher_exact(table, alternative="less")
    # The scores themselves (return, or success rate), without a threshold: Mann-Whitney U.
    score = "success_rate" if goal_task else "mean_return"
    _, p_lower = stats.mannwhitneyu([x[score] for x in runs["batched"]],
                                    [x[score] for x in runs["sb3"]], alternative="less")
    verdict = ("parity: the batched engine is not worse within the noise of these seeds"
               if min(p_worse, p_lower) >= 0.05 else "the batched engine does worse (p < 0.05)")

    by_seed = {engine: {r["seed"]: r[score] for r in rs} for engine, rs in runs.items()}
    print_table([{"seed": seed, **{engine: scores.get(seed, float("nan")) for engine, scores in by_seed.items()}}
                 for seed in sorted(set(by_seed["batched"]) | set(by_seed["sb3"]))],
                ["seed", "batched", "sb3"], {"batched": ".2f" if goal_task else ".1f",
                                             "sb3": ".2f" if goal_task else ".1f"})
    print_table([{"engine": e, **{k: v for k, v in s.items() if k != "wilson95"},
                  "wilson95": f"{s['wilson95'][0]:.2f}-{s['wilson95'][1]:.2f}"} for e, s in results.items()],
                ["engine", "seeds", "successes", "success_rate", "wilson95", "mean_return", "std_return_over_seeds"],
                {"success_rate": ".2f", "mean_return": ".1f", "std_return_over_seeds": ".1f"})
    criterion = (f"evaluation success rate >= {threshold}" if goal_task
                 else f"mean evaluation return > {threshold} ({env_id} reward_threshold)")
    print(f"success: {criterion}; one-sided tests of 'batched worse': Fisher's exact on the "
          f"successes p = {p_worse:.3f}, Mann-Whitney U on the per-seed {score} p = {p_lower:.3f} "
          f"-> {verdict}")
    write_results("learning_parity", {"task": task, "success_criterion": criterion,
                                      "success_threshold": threshold,
                                      "engines": results, "fisher_p_batched_worse": p_worse,
                                      "mannwhitney_p_batched_lower": p_lower, "score": score,
                                      "verdict": verdict, "runs": runs}, started, args.out)


if __name__ == "__main__":
    main()
