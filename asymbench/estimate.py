"""``asymbench estimate``: what a pipeline scale costs, in CPU-hours and in wall time on N cores.

The job list is the pipeline's (``config/config.yaml``: a scale's tasks x seeds, and the methods
that its default target builds); each job's work (env steps; for BC, expert samples) is divided
by a measured rate per CPU-second (``benchmarks/train_throughput.py``,
``benchmarks/env_step_rate.py``). A (task, trainer) that was not measured falls back, labelled
as such in every output row, to the measured speeds in the project's dependencies note, scaled
by network width. Every job is single-threaded, so on N cores the wall time is at least
``max(total / N, longest dependency chain)`` and, with a greedy scheduler, at most
``total / N + longest chain`` (Graham's list-scheduling bound).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from asymbench.tasks import get_task, load_registry

# The result folders the pipeline's default target builds (workflow/rules/common.smk), and the
# trainer whose throughput each one's main job runs at.
PIPELINE_METHODS = ("s_only", "l_only", "ours", "ours_no_cost", "fit", "bc", "gail")
TRAINER = {"s_only": "s_only", "l_only": "l_only", "ours": "asym", "ours_no_cost": "asym",
           "fit": "fit", "bc": "bc", "gail": "gail"}
# What each method's jobs wait for (fit and the students are sized from Ours' evaluation).
AFTER = {"fit": ("ours",), "bc": ("ours", "expert"), "gail": ("ours", "expert"),
         "expert": ("l_only",)}

DEFAULT_CONFIG = "config/config.yaml"
DEFAULT_THROUGHPUT = "benchmarks/results/train_throughput.json"  # and train_throughput_*.json
DEFAULT_ENV_RATES = "benchmarks/results/env_step_rate.json"

# Fallbacks: /work/shared/notes/dependencies.md, "Measured speeds" (single process, one torch
# thread, stable-baselines3 SAC, one gradient step of batch 256 per env step).
NOTE = "dependencies note"
NOTE_SAC_STEPS_PER_S = {32: 206.0, 64: 183.0, 256: 78.0}
NOTE_ENV_STEPS_PER_S = {"Swimmer": 12_000.0}
NOTE_INFERENCE_S = 79e-6  # actor forward at batch 1, PyTorch eager, [256, 256]
# Used only where neither a measurement nor the note has a figure: labelled "assumed".
ASSUMED = {"env": 3_000.0, "gail": 1_500.0, "bc": 5_000.0}
DEFAULT_EPISODE_STEPS = 1000  # dm_control's 1000-step episodes; gymnasium ids report theirs


@dataclass(frozen=True)
class Scale:
    """One pipeline scale, resolved per task (None in the config: the registry's value)."""

    name: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: dict[str, int]
    gail_steps: dict[str, int]
    bc_samples: dict[str, int]    # epochs x expert pairs
    expert_pairs: dict[str, int]
    eval_steps: dict[str, int]    # episodes x episode limit (an upper bound: episodes may end early)


@dataclass(frozen=True)
class Job:
    task: str
    method: str   # result folder (s_only ... gail) or "expert"
    seed: int
    stage: str    # train | distill | expert | evaluate
    trainer: str  # whose rate it runs at: s_only, l_only, fit, asym, bc, gail, or eval
    work: float   # in the rate's unit: env steps (bc: expert samples)


@dataclass(frozen=True)
class Rate:
    per_cpu_s: float
    source: str


# ----------------------------------------------------------------------------- the job list
def load_scale(scale: str, config_path: str | Path = DEFAULT_CONFIG, tasks=None, seeds=None,
               registry: str | Path | None = None) -> Scale:
    """Reads a scale from the pipeline config. Without a config file only ``paper`` is known:
    the registry's budgets, with ``seeds`` (required then) and ``tasks`` (default: all)."""
    path = Path(config_path)
    if path.exists():
        config = yaml.safe_load(path.read_text()) or {}
        scales = config.get("scales") or {}
        if scale not in scales:
            raise ValueError(f"unknown scale '{scale}'; {path} defines: {', '.join(scales) or 'none'}")
        s = scales[scale]
        tasks = tasks or config.get("tasks") or s["tasks"]
        seeds = seeds or config.get("seeds") or s["seeds"]
    else:
        if scale != "paper":
            raise ValueError(f"unknown scale '{scale}': {path} does not exist, and without it "
                             "only 'paper' (the task registry's budgets) can be estimated")
        if not seeds:
            raise ValueError(f"{path} does not exist: give the seeds of the paper scale (--seeds)")
        s = {}
        tasks = tasks or list(load_registry(registry))
    resolved = {key: {} for key in ("steps", "gail_steps", "bc_samples", "expert_pairs", "eval_steps")}
    for name in tasks:
        task = get_task(name, registry)
        distill = task.distill
        pairs = ((s.get("expert_trajectories") or distill["expert_trajectories"])
                 * (s.get("expert_length") or distill["expert_length"]))
        resolved["steps"][name] = s.get("steps") or task.total_steps
        resolved["gail_steps"][name] = s.get("gail_steps") or distill["gail_steps"]
        resolved["bc_samples"][name] = (s.get("bc_epochs") or distill["bc_epochs"]) * pairs
        resolved["expert_pairs"][name] = pairs
        limit = s.get("max_episode_steps") or task.max_episode_steps or _env_episode_limit(task)
        resolved["eval_steps"][name] = (s.get("eval_episodes") or task.eval_episodes) * limit
    return Scale(scale, tuple(tasks), tuple(int(x) for x in seeds), **resolved)


def _env_episode_limit(task) -> int:
    from asymbench.tasks import make_env

    env = make_env(task)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    return limit or DEFAULT_EPISODE_STEPS


def jobs_of(scale: Scale, methods=PIPELINE_METHODS) -> list[Job]:
    """Every training, distillation, expert-data and evaluation job of the scale."""
    unknown = [m for m in methods if m not in TRAINER]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(TRAINER)}")
    jobs = []
    for task in scale.tasks:
        for seed in scale.seeds:
            for method in methods:
                if method == "bc":
                    jobs.append(Job(task, method, seed, "distill", "bc", scale.bc_samples[task]))
                elif method == "gail":
                    jobs.append(Job(task, method, seed, "distill", "gail", scale.gail_steps[task]))
                else:
                    jobs.append(Job(task, method, seed, "train", TRAINER[method], scale.steps[task]))
                jobs.append(Job(task, method, seed, "evaluate", "eval", scale.eval_steps[task]))
            if {"bc", "gail"} & set(methods):
                jobs.append(Job(task, "expert", seed, "expert", "eval", scale.expert_pairs[task]))
    return jobs


# ----------------------------------------------------------------------------- rates
def read_throughput(path: str | Path) -> dict[tuple[str, str], Rate]:
    """(task, trainer) -> rate per CPU second, from benchmarks/train_throughput.py's JSON."""
    rows = _rows(path, ("task", "trainer"))
    return {(r["task"], r["trainer"]): _measured(r, path) for r in rows if "error" not in r}


def read_env_rates(path: str | Path) -> dict[str, Rate]:
    """task -> raw env.step rate per CPU second, from benchmarks/env_step_rate.py's JSON."""
    return {r["task"]: _measured(r, path) for r in _rows(path, ("task",))}


def _rows(path, keys) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read measurements {path}: {exc}") from exc
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and all(k in r for k in keys)
                                             for r in rows):
        raise ValueError(f"{path}: not a benchmark result (needs a 'rows' list with {keys})")
    return rows


def _measured(row: dict, path) -> Rate:
    rate = row.get("steps_per_cpu_s") or row.get("steps_per_s")
    if not isinstance(rate, (int, float)) or not rate > 0:
        raise ValueError(f"{path}: row {row.get('task')}/{row.get('trainer', 'env')} has no positive rate")
    load = row.get("load")
    return Rate(float(rate), f"measured ({Path(path).name}" + (f", load {load:.1f})" if load else ")"))


def note_sac_seconds_per_step(width: int) -> float:
    """SB3 SAC seconds per env step at a hidden width: the note's three widths, linear in width
    between them (and beyond 256), no cheaper than at 32 below it."""
    widths = sorted(NOTE_SAC_STEPS_PER_S)
    seconds = [1.0 / NOTE_SAC_STEPS_PER_S[w] for w in widths]
    if width > widths[-1]:
        slope = (seconds[-1] - seconds[-2]) / (widths[-1] - widths[-2])
        return seconds[-1] + slope * (width - widths[-1])
    return float(np.interp(width, widths, seconds))


def fallback_rate(task_name: str, trainer: str, measured: dict, env_rates: dict,
                  registry: str | Path | None = None) -> Rate:
    """The rate of an unmeasured (task, trainer), labelled with where it comes from."""
    task = get_task(task_name, registry)
    env = env_rates.get(task_name)
    if trainer == "eval":
        if env is None and task_name in NOTE_ENV_STEPS_PER_S:
            env = Rate(NOTE_ENV_STEPS_PER_S[task_name], NOTE)
        env = env or Rate(ASSUMED["env"], "assumed")
        per_step = 1.0 / env.per_cpu_s + NOTE_INFERENCE_S
        return Rate(1.0 / per_step, f"fallback: env.step {env.source} + {NOTE} inference")
    if trainer in ("bc", "gail"):
        others = [r.per_cpu_s for (t, tr), r in measured.items() if tr == trainer and t != task_name]
        if others:
            return Rate(float(np.mean(others)), f"fallback: mean of {trainer} measured on other tasks")
        return Rate(ASSUMED[trainer], "fallback: assumed (not measured)")
    widths = {"s_only": [task.small], "l_only": [task.large], "asym": [task.small, task.large],
              "fit": [task.settings.get("paper_fit_width", task.large)]}[trainer]
    per_step = sum(note_sac_seconds_per_step(w) for w in widths)
    label = f"fallback: {NOTE} SB3 SAC at width {'+'.join(map(str, widths))}"
    if env is not None:
        per_step += 1.0 / env.per_cpu_s
        label += f" + env.step {env.source}"
    return Rate(1.0 / per_step, label)


def rates_for(jobs: list[Job], measured: dict, env_rates: dict | None = None,
              registry: str | Path | None = None) -> dict[tuple[str, str], Rate]:
    env_rates = env_rates or {}
    rates = {}
    for job in jobs:
        key = (job.task, job.trainer)
        if key not in rates:
            rates[key] = measured.get(key) or fallback_rate(job.task, job.trainer, measured,
                                                            env_rates, registry)
    return rates


# ----------------------------------------------------------------------------- arithmetic
def cpu_hours(work: float, per_cpu_s: float) -> float:
    return work / per_cpu_s / 3600.0


def wall_time_bounds(total_cpu_h: float, cores: int, chain_h: float) -> tuple[float, float]:
    """(lower, upper) wall hours of single-threaded jobs on ``cores``: no schedule beats
    max(total / cores, the longest chain of dependent jobs); a greedy one needs at most
    total / cores + that chain."""
    if cores < 1:
        raise ValueError(f"--cores must be positive, got {cores}")
    return max(total_cpu_h / cores, chain_h), total_cpu_h / cores + chain_h


def longest_chain(hours_by_node: dict[tuple[str, int, str], float]) -> tuple[float, list[str]]:
    """Longest path through the jobs of one (task, seed), following AFTER; node = (task, seed,
    method) with the hours of all its jobs (train or distill, then evaluate)."""
    best, best_path, finish = 0.0, [], {}

    def done(node):
        if node not in finish:
            task, seed, method = node
            before = [(task, seed, m) for m in AFTER.get(method, ()) if (task, seed, m) in hours_by_node]
            prev = max((done(b) for b in before), key=lambda x: x[0], default=(0.0, []))
            finish[node] = (prev[0] + hours_by_node[node], prev[1] + [method])
        return finish[node]

    for node in hours_by_node:
        h, path = done(node)
        if h > best:
            best, best_path = h, [f"{node[0]}/seed{node[1]}: " + " -> ".join(path)]
    return best, best_path


def estimate(jobs: list[Job], rates: dict[tuple[str, str], Rate], cores: int) -> dict:
    """CPU-hours per (task, method, stage) and in total, and the wall time on ``cores``."""
    rows, by_node, longest = {}, {}, (0.0, None)
    for job in jobs:
        rate = rates[(job.task, job.trainer)]
        h = cpu_hours(job.work, rate.per_cpu_s)
        key = (job.task, job.method, job.stage)
        row = rows.setdefault(key, {"task": job.task, "method": job.method, "stage": job.stage,
                                    "jobs": 0, "work_per_job": job.work, "rate_per_cpu_s": rate.per_cpu_s,
                                    "cpu_h_per_job": h, "cpu_h": 0.0, "source": rate.source})
        row["jobs"] += 1
        row["cpu_h"] += h
        node = (job.task, job.seed, job.method)
        by_node[node] = by_node.get(node, 0.0) + h
        if h > longest[0]:
            longest = (h, f"{job.task}/{job.method}/seed{job.seed} ({job.stage})")
    total = sum(r["cpu_h"] for r in rows.values())
    per_method = {}
    for r in rows.values():
        per_method[r["method"]] = per_method.get(r["method"], 0.0) + r["cpu_h"]
    chain_h, chain = longest_chain(by_node)
    lower, upper = wall_time_bounds(total, cores, chain_h)
    return {"rows": list(rows.values()), "cpu_h_by_method": per_method, "total_cpu_h": total,
            "longest_job_h": longest[0], "longest_job": longest[1], "longest_chain_h": chain_h,
            "longest_chain": chain, "cores": cores, "wall_h_lower": lower, "wall_h_upper": upper}


# ----------------------------------------------------------------------------- the command
def run_estimate(scale: str, cores: int, throughput=None, env_rates: str | None = None,
                 config: str = DEFAULT_CONFIG, tasks=None, seeds=None, methods=None,
                 out: str | None = None, registry: str | None = None) -> dict:
    """``asymbench estimate``: prints the estimate and returns it (and writes it to ``out``).
    ``throughput``: one or more train_throughput JSONs (default: every
    benchmarks/results/train_throughput*.json); ``env_rates``: an env_step_rate JSON."""
    plan = load_scale(scale, config, tasks, seeds, registry)
    methods = tuple(methods or PIPELINE_METHODS)
    jobs = jobs_of(plan, methods)
    if throughput is None:
        throughput = sorted(str(p) for p in Path(DEFAULT_THROUGHPUT).parent.glob("train_throughput*.json"))
    elif isinstance(throughput, (str, Path)):
        throughput = [throughput]
    if env_rates is None and Path(DEFAULT_ENV_RATES).exists():
        env_rates = DEFAULT_ENV_RATES
    measured = {}
    for path in throughput:  # a later file's row replaces an earlier one's
        measured.update(read_throughput(path))
    throughput = ", ".join(map(str, throughput)) or None
    env = read_env_rates(env_rates) if env_rates else {}
    if env:  # evaluation = env steps + one decision per step, unless measured otherwise
        for task, rate in env.items():
            measured.setdefault((task, "eval"), Rate(
                1.0 / (1.0 / rate.per_cpu_s + NOTE_INFERENCE_S), f"{rate.source} + {NOTE} inference"))
    result = estimate(jobs, rates_for(jobs, measured, env, registry), cores)
    result.update({"scale": asdict(plan), "methods": list(methods), "throughput": throughput,
                   "env_rates": env_rates})
    _print(result, plan, methods)
    if out:
        from asymbench.runs import write_json

        write_json(out, result)
    return result


def _print(result: dict, plan: Scale, methods) -> None:
    """Two compact tables (CPU-hours by task and method; the rate behind each), then the totals.
    Every job, with its rate's source, is in the JSON (--out)."""
    print(f"scale '{plan.name}': {len(plan.tasks)} tasks x {len(plan.seeds)} seeds; measurements: "
          f"{result['throughput'] or 'none'}, {result['env_rates'] or 'none'}\n")
    columns = [m for m in methods if m != "expert"] + ["evaluate"]
    hours = {}
    for r in result["rows"]:
        column = "evaluate" if r["stage"] in ("evaluate", "expert") else r["method"]
        hours[(r["task"], column)] = hours.get((r["task"], column), 0.0) + r["cpu_h"]
    print("CPU-hours, all seeds  " + "".join(f"{c:>13}" for c in columns) + f"{'total':>9}")
    for task in plan.tasks:
        cells = [hours.get((task, c), 0.0) for c in columns]
        print(f"{task:21} " + "".join(f"{h:13,.2f}" for h in cells) + f"{sum(cells):9,.2f}")
    totals = [sum(hours.get((t, c), 0.0) for t in plan.tasks) for c in columns]
    print(f"{'total':21} " + "".join(f"{h:13,.2f}" for h in totals) + f"{sum(totals):9,.2f}")

    rates = {(r["task"], r["method"]): r for r in result["rows"] if r["stage"] in ("train", "distill")}
    print("\nrate per CPU-second  " + "".join(f"{c:>13}" for c in columns[:-1])
          + "   (env steps; bc: expert samples; * = fallback, not measured)")
    for task in plan.tasks:
        print(f"{task:21} " + "".join(
            f"{rates[(task, c)]['rate_per_cpu_s']:12,.1f}{'*' if rates[(task, c)]['source'].startswith('fallback') else ' '}"
            for c in columns[:-1]))
    fallbacks = sorted({r["source"].split(" at width")[0] for r in result["rows"]
                        if r["source"].startswith("fallback")})
    if fallbacks:
        print("fallbacks used: " + "; ".join(fallbacks) + " (details per job: --out JSON)")

    lower, upper, cores = result["wall_h_lower"], result["wall_h_upper"], result["cores"]
    total = result["total_cpu_h"]
    total_text = f"{total:,.0f} CPU-hours" if total >= 1 else f"{total * 60:.1f} CPU-minutes"
    print(f"\ntotal: {total_text}; longest job {_hours(result['longest_job_h'])} "
          f"({result['longest_job']}); longest chain of dependent jobs "
          f"{_hours(result['longest_chain_h'])} ({'; '.join(result['longest_chain'])})")
    print(f"wall time on {cores} cores (one single-threaded job per core): at least {_hours(lower)}, "
          f"at most {_hours(upper)} with a greedy scheduler")


def _hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.1f} min"
    return f"{h:,.1f} h" + (f" ({h / 24:.1f} days)" if h >= 48 else "")
