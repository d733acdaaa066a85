"""``asymbench estimate``: what a pipeline scale costs, in CPU-hours and in wall time on N cores.

The job list is the pipeline's (``config/config.yaml``: a scale's tasks, each task's seeds, with
a scale's ``per_task`` overrides, and the methods that its default target builds):

- training: ONE job per (task, method) trains all K seeds of the task together (the batched
  engine, ``asymbench.engine``); its CPU work is K x steps / the engine's per-seed rate at that K
  (``benchmarks/engine_throughput.py``: the "engine <trainer>" row of the task, trainer s_only,
  l_only, fit or asym, at the closest measured K). S-only and fit without a row of their own
  are narrower than L-only: the task's L-only row bounds their cost from above (labelled "upper
  bound"). A task without such a row gets its sb3 rate times the mean engine speedup of that
  trainer measured on the other (non-goal) tasks (S-only and fit: their own, else L-only's, an
  upper bound again); without any engine measurement, the sb3 rates below ("sb3 engine rates").
  Goal tasks (hindsight relabelling) use their engine rows like any other task; one without
  engine rows keeps the sb3 rate, the K seeds one after another in the one job (labelled so).
- engine rows come from every ``benchmarks/results/engine_throughput*.json`` measured on the
  CPU of one machine kind (CPU model and core count, the JSON's ``machine``): the machine of
  ``engine_throughput.json``, or this one where that file is absent. Other machines' files are
  left out, and GPU rows (``device`` cuda) everywhere, each named in the printed estimate. Where
  two files measured the same (task, trainer, K), the later measurement wins (its row's
  ``measured_utc``, else its file's ``finished_utc``; equal or unknown: the later file); the
  rate's source names its file. Files given explicitly (``--engine-throughput``) are all used,
  GPU rows excepted.
- distillation (BC, GAIL), expert data and evaluation: one job per seed, at a measured rate per
  CPU-second (``benchmarks/train_throughput.py``, ``benchmarks/env_step_rate.py``).

A (task, trainer) that was not measured falls back, labelled as such in every output row, to the
measured speeds in the project's dependencies note, scaled by network width. Every job is
single-threaded, so on N cores the wall time is at least ``max(total / N, longest dependency
chain)`` and, with a greedy scheduler, at most ``total / N + longest chain`` (Graham's
list-scheduling bound).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from asymbench.tasks import RegistryError, get_task, load_registry

# The result folders the pipeline's default target builds (workflow/rules/common.smk), and the
# trainer whose throughput each one's main job runs at.
PIPELINE_METHODS = ("s_only", "l_only", "ours", "ours_no_cost", "fit", "bc", "gail")
TRAINER = {"s_only": "s_only", "l_only": "l_only", "ours": "asym", "ours_no_cost": "asym",
           "fit": "fit", "bc": "bc", "gail": "gail"}
# The engine_throughput*.json row ("engine <row>") whose per-seed rate each trainer's group runs
# at, and, where the task has none, the row that bounds its cost from above: S-only and fit are
# narrower than L-only, so L-only's rate is an upper bound of their cost.
ENGINE_ROW = {"s_only": "s_only", "l_only": "l_only", "fit": "fit", "asym": "asym"}
UPPER_BOUND_ROW = {"s_only": "l_only", "fit": "l_only"}
# The SAC.learn reference an engine row's speedup is relative to, where the row does not name
# it (files before the s_only / fit rows had only the large one).
SB3_REFERENCE = {"s_only": "SAC.learn (small)", "fit": "SAC.learn (fit)"}

DEFAULT_CONFIG = "config/config.yaml"
DEFAULT_THROUGHPUT = "benchmarks/results/train_throughput.json"  # and train_throughput_*.json
DEFAULT_ENGINE_THROUGHPUT = "benchmarks/results/engine_throughput.json"  # its machine: the kind
DEFAULT_ENGINE_GLOB = "benchmarks/results/engine_throughput*.json"         # all files, that kind's
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
    """One pipeline scale, resolved per task (None in the config: the registry's value; a
    scale's ``per_task`` entries override its settings for that task)."""

    name: str
    tasks: tuple[str, ...]
    seeds: dict[str, tuple[int, ...]]  # per task: K = len(seeds[task]) for its training jobs
    steps: dict[str, int]              # per seed
    gail_steps: dict[str, int]
    bc_samples: dict[str, int]    # epochs x expert pairs
    expert_pairs: dict[str, int]
    eval_steps: dict[str, int]    # episodes x episode limit (an upper bound: episodes may end early)


@dataclass(frozen=True)
class Job:
    task: str
    method: str   # result folder (s_only ... gail) or "expert"
    seeds: tuple[int, ...]  # training: all the task's seeds, trained together; else one seed
    stage: str    # train | distill | expert | evaluate
    trainer: str  # whose rate it runs at: s_only, l_only, fit, asym, bc, gail, or eval
    work: float   # in the rate's unit, all seeds: env steps (bc: expert samples)

    @property
    def k(self) -> int:
        return len(self.seeds)

    def label(self) -> str:
        seeds = f"K={self.k}" if self.stage == "train" else f"seed{self.seeds[0]}"
        return f"{self.method} {self.stage} ({seeds})"


@dataclass(frozen=True)
class Rate:
    per_cpu_s: float  # training: per seed (a group's K seeds together do K x this)
    source: str


@dataclass(frozen=True)
class EngineRow:
    """One engine_throughput*.json measurement: per-seed env steps per CPU-second of K seeds
    trained together, and its ratio to plain SAC.learn at the trainer's width (l_only, asym:
    the large one) in the same run; ``measured``: when (UTC, ISO 8601; "" if not recorded)."""

    k: int
    per_cpu_s: float
    speedup: float | None
    source: str
    measured: str = ""


# ----------------------------------------------------------------------------- the job list
def load_scale(scale: str, config_path: str | Path = DEFAULT_CONFIG, tasks=None, seeds=None,
               registry: str | Path | None = None) -> Scale:
    """Reads a scale from the pipeline config, with each task's ``per_task`` overrides merged in
    as the workflow's ``settings()`` does. ``tasks`` / ``seeds`` (or the config's top-level
    ones) replace the scale's lists, per-task seeds included (``seeds_of`` in common.smk).
    Without a config file only ``paper`` is known: the registry's budgets, with ``seeds``
    (required then) and ``tasks`` (default: all)."""
    path = Path(config_path)
    if path.exists():
        config = yaml.safe_load(path.read_text()) or {}
        scales = config.get("scales") or {}
        if scale not in scales:
            raise ValueError(f"unknown scale '{scale}'; {path} defines: {', '.join(scales) or 'none'}")
        s = scales[scale]
        tasks = tasks or config.get("tasks") or s["tasks"]
        seeds = seeds or config.get("seeds")
    else:
        if scale != "paper":
            raise ValueError(f"unknown scale '{scale}': {path} does not exist, and without it "
                             "only 'paper' (the task registry's budgets) can be estimated")
        if not seeds:
            raise ValueError(f"{path} does not exist: give the seeds of the paper scale (--seeds)")
        s = {}
        tasks = tasks or list(load_registry(registry))
    per_task = s.get("per_task") or {}
    resolved = {key: {} for key in ("seeds", "steps", "gail_steps", "bc_samples", "expert_pairs",
                                    "eval_steps")}
    for name in tasks:
        task = get_task(name, registry)
        t = {**s, **(per_task.get(name) or {})}
        distill = task.distill
        pairs = ((t.get("expert_trajectories") or distill["expert_trajectories"])
                 * (t.get("expert_length") or distill["expert_length"]))
        task_seeds = seeds or t.get("seeds")
        if not task_seeds:
            raise ValueError(f"scale '{scale}' gives task {name} no seeds")
        resolved["seeds"][name] = tuple(int(x) for x in task_seeds)
        resolved["steps"][name] = t.get("steps") or task.total_steps
        resolved["gail_steps"][name] = t.get("gail_steps") or distill["gail_steps"]
        resolved["bc_samples"][name] = (t.get("bc_epochs") or distill["bc_epochs"]) * pairs
        resolved["expert_pairs"][name] = pairs
        limit = t.get("max_episode_steps") or task.max_episode_steps or _env_episode_limit(task)
        resolved["eval_steps"][name] = (t.get("eval_episodes") or task.eval_episodes) * limit
    return Scale(scale, tuple(tasks), **resolved)


def _env_episode_limit(task) -> int:
    from asymbench.tasks import make_env

    env = make_env(task)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    return limit or DEFAULT_EPISODE_STEPS


def jobs_of(scale: Scale, methods=PIPELINE_METHODS) -> list[Job]:
    """Every training, distillation, expert-data and evaluation job of the scale: one training
    job per (task, method) for all the task's seeds, every other job per seed."""
    unknown = [m for m in methods if m not in TRAINER]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(TRAINER)}")
    jobs = []
    for task in scale.tasks:
        seeds = scale.seeds[task]
        for method in methods:
            if method in ("bc", "gail"):
                work = scale.bc_samples[task] if method == "bc" else scale.gail_steps[task]
                jobs += [Job(task, method, (seed,), "distill", method, work) for seed in seeds]
            else:
                jobs.append(Job(task, method, seeds, "train", TRAINER[method],
                                len(seeds) * scale.steps[task]))
            jobs += [Job(task, method, (seed,), "evaluate", "eval", scale.eval_steps[task])
                     for seed in seeds]
        if {"bc", "gail"} & set(methods):
            jobs += [Job(task, "expert", (seed,), "expert", "eval", scale.expert_pairs[task])
                     for seed in seeds]
    return jobs


# ----------------------------------------------------------------------------- rates
def read_throughput(path: str | Path) -> dict[tuple[str, str], Rate]:
    """(task, trainer) -> rate per CPU second, from benchmarks/train_throughput.py's JSON."""
    rows = _rows(path, ("task", "trainer"))
    return {(r["task"], r["trainer"]): _measured(r, path) for r in rows if "error" not in r}


def read_env_rates(path: str | Path) -> dict[str, Rate]:
    """task -> raw env.step rate per CPU second, from benchmarks/env_step_rate.py's JSON."""
    return {r["task"]: _measured(r, path) for r in _rows(path, ("task",))}


def read_engine_throughput(path: str | Path) -> dict[tuple[str, str], dict[int, EngineRow]]:
    """(task, "s_only" | "l_only" | "fit" | "asym") -> {K: per-seed rate}, from
    benchmarks/engine_throughput.py's JSON ("engine <trainer>" rows; the "SAC.learn (...)" row a
    row names as its ``reference``, by default the large one, gives the speedup where a row does
    not carry its own). Rows run on a GPU (``device`` cuda, the row's or else the file's) are
    left out: their CPU time does not measure the work."""
    data = _data(path)
    rows = [r for r in _rows(path, ("task", "trainer"), data) if "error" not in r]
    sb3 = {(r["task"], str(r["trainer"])): r.get("per_seed_steps_per_cpu_s") for r in rows
           if str(r["trainer"]).startswith("SAC.learn")}
    file_device = data.get("device") or "cpu"
    file_time = data.get("finished_utc") or data.get("started_utc") or ""
    engine = {}
    for r in rows:
        trainer = str(r["trainer"])
        if not trainer.startswith("engine ") or (r.get("device") or file_device) != "cpu":
            continue
        name = trainer[len("engine "):]
        k, rate = r.get("K"), r.get("per_seed_steps_per_cpu_s")
        if not (isinstance(k, int) and k >= 1 and isinstance(rate, (int, float)) and rate > 0):
            raise ValueError(f"{path}: row {r['task']}/{trainer} needs an integer K >= 1 and a "
                             "positive per_seed_steps_per_cpu_s")
        speedup = r.get("speedup_vs_sb3")
        if not isinstance(speedup, (int, float)) or not speedup > 0:
            reference = r.get("reference") or SB3_REFERENCE.get(name, "SAC.learn (large)")
            base = sb3.get((r["task"], str(reference)))
            speedup = rate / base if isinstance(base, (int, float)) and base > 0 else None
        load = r.get("load")
        source = f"{Path(path).name}" + (f", load {load:.1f}" if load else "")
        engine.setdefault((r["task"], name), {})[k] = EngineRow(
            k, float(rate), None if speedup is None else float(speedup), source,
            str(r.get("measured_utc") or file_time))
    return engine


def _data(path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read measurements {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def machine_kind(machine: dict | None) -> tuple[str, int] | None:
    """(CPU model, core count) of a benchmark JSON's ``machine``; None where not recorded."""
    if not isinstance(machine, dict) or not machine.get("cpu"):
        return None
    return str(machine["cpu"]), machine.get("cpu_count")


def this_machine_kind() -> tuple[str, int]:
    """The kind of the machine running this, as benchmarks/_common.py records it."""
    import os

    from asymbench.runs import cpu_model

    return cpu_model(), os.cpu_count()


def engine_files(given=None) -> tuple[list[str], dict[str, str]]:
    """The engine_throughput JSONs to read, and those left out with the reason. None (the
    default): every benchmarks/results/engine_throughput*.json measured on the CPU of one machine
    kind, that of engine_throughput.json (else this machine); a file run on a GPU (``device``
    cuda) or on another kind of machine is left out. A path or a list: those files (GPU rows are
    still left out, by read_engine_throughput)."""
    if given is not None:
        return _paths(given, DEFAULT_ENGINE_GLOB), {}
    paths = _paths(None, DEFAULT_ENGINE_GLOB)
    primary = Path(DEFAULT_ENGINE_THROUGHPUT)
    reference = (machine_kind(_data(primary).get("machine")) if primary.exists() else None) \
        or this_machine_kind()
    used, left_out = [], {}
    for path in paths:
        data = _data(path)
        kind = machine_kind(data.get("machine"))
        if (data.get("device") or "cpu") != "cpu":
            left_out[path] = f"GPU run, device {data.get('device')}"
        elif kind is not None and kind != reference:
            left_out[path] = f"another machine: {kind[0]}, {kind[1]} cores"
        else:
            used.append(path)
    return used, left_out


def merge_engine(tables) -> dict[tuple[str, str], dict[int, EngineRow]]:
    """read_engine_throughput's results of several files, in order: where two measured the same
    (task, trainer, K), the later measurement wins (an equal or unknown time: the later file)."""
    merged = {}
    for table in tables:
        for key, rows in table.items():
            for k, row in rows.items():
                old = merged.setdefault(key, {}).get(k)
                if old is None or _when(row.measured) >= _when(old.measured):
                    merged[key][k] = row
    return merged


def _when(stamp: str):
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _rows(path, keys, data: dict | None = None) -> list[dict]:
    """The "rows" of a benchmark JSON (``data``: the file, where already read)."""
    data = _data(path) if data is None else data
    rows = data.get("rows")
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


def _closest(rows: dict[int, EngineRow], k: int) -> EngineRow:
    """The row of the measured K closest to ``k`` (a tie: the smaller K, the slower rate)."""
    return rows[min(rows, key=lambda m: (abs(m - k), m))]


def _is_goal(task_name: str, registry) -> bool:
    try:
        return bool(get_task(task_name, registry).her)
    except RegistryError:  # a task of a measurement that this registry does not know
        return False


def engine_rate(task_name: str, trainer: str, k: int, engine: dict, sb3_rate,
                registry: str | Path | None = None) -> Rate:
    """Per-seed rate of a training group of ``k`` seeds. ``engine``: read_engine_throughput's
    rows (merged); ``sb3_rate(task, trainer)``: the per-seed stable-baselines3 rate (measured or
    fallback). In order: the task's own engine row at the closest K; S-only and fit: the task's
    L-only row (an upper bound); a goal task: its sb3 rate, seeds one after another; the task's
    sb3 rate times the mean engine speedup of the trainer on the other non-goal tasks (at their
    K closest to ``k``; S-only and fit: their own speedup on their sb3 rate, else L-only's on
    sb3 L-only's, an upper bound); the sb3 rate."""
    row_of, bound_row = ENGINE_ROW[trainer], UPPER_BOUND_ROW.get(trainer)
    for row_name, bound in ((row_of, ""), (bound_row, "upper bound: ")):
        rows = engine.get((task_name, row_name)) if row_name else None
        if rows:
            row = _closest(rows, k)
            return Rate(row.per_cpu_s, f"{bound}engine {row_name} measured K={row.k} ({row.source})")
    if _is_goal(task_name, registry):
        rate = sb3_rate(task_name, trainer)
        return Rate(rate.per_cpu_s, f"sb3 engine, goal task: seeds one after another; {rate.source}")
    # Extrapolated: a row's speedup is against SAC.learn at its trainer's width (l_only and
    # asym: the large one), so it multiplies that trainer's sb3 rate (asym: L-only's).
    for row_name, base_trainer, bound in ((row_of, "l_only" if row_of == "asym" else row_of, ""),
                                          (bound_row, "l_only", "upper bound: ")):
        if not row_name:
            continue
        others = {t: _closest(r, k) for (t, tr), r in engine.items()
                  if tr == row_name and t != task_name and not _is_goal(t, registry)}
        speedups = {t: row.speedup for t, row in others.items() if row.speedup}
        if speedups:
            base = sb3_rate(task_name, base_trainer)
            factor = float(np.mean(list(speedups.values())))
            ks = "/".join(str(m) for m in sorted({others[t].k for t in speedups}))
            kind = "fallback" if base.source.startswith("fallback") else "measured"
            who = {"s_only": "S-only", "l_only": "L-only", "fit": "fit"}[base_trainer]
            return Rate(base.per_cpu_s * factor,
                        f"{bound}extrapolated: sb3 {who} rate ({kind}) x {factor:.2f} (mean engine "
                        f"{row_name} speedup, K={ks}, on {', '.join(sorted(speedups))})")
    rate = sb3_rate(task_name, trainer)
    return Rate(rate.per_cpu_s, f"sb3 engine rates: {rate.source}")


def rates_for(jobs: list[Job], measured: dict, env_rates: dict | None = None,
              registry: str | Path | None = None, engine: dict | None = None
              ) -> dict[tuple[str, str], Rate]:
    """(task, trainer) -> rate of every job: training groups at the engine's per-seed rate at
    their K (a task's groups all have the same K), every other job at its measured rate."""
    env_rates, engine = env_rates or {}, engine or {}

    def sb3_rate(task, trainer):
        return measured.get((task, trainer)) or fallback_rate(task, trainer, measured, env_rates, registry)

    rates = {}
    for job in jobs:
        key = (job.task, job.trainer)
        if key not in rates:
            rates[key] = (engine_rate(job.task, job.trainer, job.k, engine, sb3_rate, registry)
                          if job.stage == "train" else sb3_rate(*key))
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


def _before(job: Job, index: dict) -> list[int]:
    """Indices of the jobs ``job`` waits for (workflow/rules): an evaluation its run's training
    group or distillation; expert data the L-only group; fit's group every evaluation of Ours
    of its task; BC / GAIL Ours' evaluation and the expert data of their seed."""
    task, seed = job.task, job.seeds[0]
    keys = {"evaluate": [("run", task, job.method, seed)],
            "expert": [("run", task, "l_only", seed)],
            "distill": [("evaluate", task, "ours", seed), ("expert", task, "expert", seed)],
            }.get(job.stage, [])
    if job.stage == "train" and job.method == "fit":
        keys = [("evaluate", task, "ours", s) for s in job.seeds]
    return [index[key] for key in keys if key in index]


def longest_chain(jobs: list[Job], hours: list[float]) -> tuple[float, list[str]]:
    """Longest path of dependent jobs (``_before``), e.g. Ours' group -> one of its evaluations
    -> fit's group -> one of fit's evaluations; ``hours[i]`` is job i's."""
    index = {}
    for i, job in enumerate(jobs):
        for seed in job.seeds:
            if job.stage in ("train", "distill"):
                index[("run", job.task, job.method, seed)] = i
            index[(job.stage, job.task, job.method, seed)] = i
    finish: dict[int, tuple[float, list[int]]] = {}

    def done(i):
        if i not in finish:
            prev = max((done(b) for b in _before(jobs[i], index)), key=lambda x: x[0], default=(0.0, []))
            finish[i] = (prev[0] + hours[i], prev[1] + [i])
        return finish[i]

    best, best_path = 0.0, []
    for i in range(len(jobs)):
        h, path = done(i)
        if h > best:
            best, best_path = h, [f"{jobs[i].task}: " + " -> ".join(jobs[j].label() for j in path)]
    return best, best_path


def estimate(jobs: list[Job], rates: dict[tuple[str, str], Rate], cores: int) -> dict:
    """CPU-hours per (task, method, stage) and in total, and the wall time on ``cores``. A job's
    hours are its work over its rate: a training group's K x steps over the per-seed rate."""
    rows, hours, longest = {}, [], (0.0, None)
    for job in jobs:
        rate = rates[(job.task, job.trainer)]
        h = cpu_hours(job.work, rate.per_cpu_s)
        hours.append(h)
        key = (job.task, job.method, job.stage)
        row = rows.setdefault(key, {"task": job.task, "method": job.method, "stage": job.stage,
                                    "K": job.k, "jobs": 0, "work_per_job": job.work,
                                    "rate_per_cpu_s": rate.per_cpu_s, "cpu_h_per_job": h,
                                    "cpu_h": 0.0, "source": rate.source})
        row["jobs"] += 1
        row["cpu_h"] += h
        if h > longest[0]:
            longest = (h, f"{job.task}/{job.label()}")
    total = sum(r["cpu_h"] for r in rows.values())
    per_method = {}
    for r in rows.values():
        per_method[r["method"]] = per_method.get(r["method"], 0.0) + r["cpu_h"]
    chain_h, chain = longest_chain(jobs, hours)
    lower, upper = wall_time_bounds(total, cores, chain_h)
    return {"rows": list(rows.values()), "cpu_h_by_method": per_method, "total_cpu_h": total,
            "jobs": len(jobs), "longest_job_h": longest[0], "longest_job": longest[1],
            "longest_chain_h": chain_h, "longest_chain": chain, "cores": cores,
            "wall_h_lower": lower, "wall_h_upper": upper}


# ----------------------------------------------------------------------------- the command
def _paths(given, default_glob: str) -> list[str]:
    """None: the default files that exist; a path or a list: those."""
    if given is None:
        folder, pattern = default_glob.rsplit("/", 1)
        return sorted(str(p) for p in Path(folder).glob(pattern))
    return [str(given)] if isinstance(given, (str, Path)) else [str(p) for p in given]


def run_estimate(scale: str, cores: int, throughput=None, env_rates: str | None = None,
                 config: str = DEFAULT_CONFIG, tasks=None, seeds=None, methods=None,
                 out: str | None = None, registry: str | None = None,
                 engine_throughput=None) -> dict:
    """``asymbench estimate``: prints the estimate and returns it (and writes it to ``out``).
    ``throughput``: one or more train_throughput JSONs (default: every
    benchmarks/results/train_throughput*.json; a later file's row replaces an earlier one's);
    ``engine_throughput``: one or more engine_throughput JSONs (default: every
    benchmarks/results/engine_throughput*.json of one machine kind, see ``engine_files``; an
    empty list: none, the sb3 rates; the later measurement of a row wins); ``env_rates``: an
    env_step_rate JSON."""
    plan = load_scale(scale, config, tasks, seeds, registry)
    methods = tuple(methods or PIPELINE_METHODS)
    jobs = jobs_of(plan, methods)
    throughput = _paths(throughput, str(Path(DEFAULT_THROUGHPUT).parent / "train_throughput*.json"))
    engine_throughput, engine_left_out = engine_files(engine_throughput)
    if env_rates is None and Path(DEFAULT_ENV_RATES).exists():
        env_rates = DEFAULT_ENV_RATES
    measured = {}
    for path in throughput:
        measured.update(read_throughput(path))
    tables = {path: read_engine_throughput(path) for path in engine_throughput}
    for path, table in tables.items():  # e.g. an explicitly given GPU run
        if not table:
            engine_left_out[path] = "no CPU engine rows"
    engine_throughput = [p for p in engine_throughput if tables[p]]
    engine = merge_engine(tables[p] for p in engine_throughput)
    env = read_env_rates(env_rates) if env_rates else {}
    if env:  # evaluation = env steps + one decision per step, unless measured otherwise
        for task, rate in env.items():
            measured.setdefault((task, "eval"), Rate(
                1.0 / (1.0 / rate.per_cpu_s + NOTE_INFERENCE_S), f"{rate.source} + {NOTE} inference"))
    result = estimate(jobs, rates_for(jobs, measured, env, registry, engine), cores)
    result.update({"scale": asdict(plan), "methods": list(methods),
                   "throughput": ", ".join(throughput) or None,
                   "engine_throughput": ", ".join(engine_throughput) or None,
                   "engine_throughput_left_out": {p: why for p, why in engine_left_out.items()},
                   "env_rates": env_rates})
    _print(result, plan, methods)
    if out:
        from asymbench.runs import write_json

        write_json(out, result)
    return result


def _print(result: dict, plan: Scale, methods) -> None:
    """The training groups (K, rate, CPU-hours and the rate's source each), CPU-hours by task and
    method, the per-seed jobs' rates, then the totals. Every row is in the JSON (--out)."""
    counts = {plan.seeds[t] for t in plan.tasks}
    seeds = (f"{len(next(iter(counts)))} seeds each" if len(counts) == 1 else
             "seeds " + ", ".join(f"{t} {len(plan.seeds[t])}" for t in plan.tasks))
    left_out = result.get("engine_throughput_left_out") or {}
    print(f"scale '{plan.name}': {len(plan.tasks)} tasks, {seeds}; {result['jobs']} jobs\n"
          f"measurements: engine {result['engine_throughput'] or 'none'}; sb3 "
          f"{result['throughput'] or 'none'}; env {result['env_rates'] or 'none'}")
    if left_out:
        print("engine measurements not used: " + "; ".join(
            f"{Path(p).name} ({why})" for p, why in left_out.items()))
    print()

    trains = [r for r in result["rows"] if r["stage"] == "train"]
    if trains:
        print("training: one job per task and method, its K seeds together; "
              "CPU-hours = K x steps / per-seed rate")
        print(f"{'task':21} {'method':12} {'K':>3} {'steps/seed':>10} {'rate/seed/CPU-s':>15} "
              f"{'CPU-h':>8}  rate source")
        for r in trains:
            print(f"{r['task']:21} {r['method']:12} {r['K']:3d} {r['work_per_job'] / r['K']:10,.0f} "
                  f"{r['rate_per_cpu_s']:15,.1f} {r['cpu_h']:8,.2f}  {r['source']}")
        print()

    columns = [m for m in methods if m != "expert"] + ["evaluate"]
    hours = {}
    for r in result["rows"]:
        column = "evaluate" if r["stage"] in ("evaluate", "expert") else r["method"]
        hours[(r["task"], column)] = hours.get((r["task"], column), 0.0) + r["cpu_h"]
    print(f"{'CPU-hours, all seeds':21} {'K':>3}" + "".join(f"{c:>13}" for c in columns) + f"{'total':>10}")
    for task in plan.tasks:
        cells = [hours.get((task, c), 0.0) for c in columns]
        print(f"{task:21} {len(plan.seeds[task]):3d}" + "".join(f"{h:13,.2f}" for h in cells)
              + f"{sum(cells):10,.2f}")
    totals = [sum(hours.get((t, c), 0.0) for t in plan.tasks) for c in columns]
    print(f"{'total':21}    " + "".join(f"{h:13,.2f}" for h in totals) + f"{sum(totals):10,.2f}")

    per_seed = {(r["task"], "evaluate" if r["stage"] == "evaluate" else r["method"]): r
                for r in result["rows"] if r["stage"] in ("distill", "evaluate") and r["method"] != "expert"}
    kinds = [c for c in ("bc", "gail", "evaluate") if any((t, c) in per_seed for t in plan.tasks)]
    if kinds:
        print(f"\n{'per-seed jobs: rate/CPU-s':25}" + "".join(f"{c:>12}" for c in kinds)
              + "   (env steps; bc: expert samples; * = fallback, not measured)")
        for task in plan.tasks:
            cells = [per_seed.get((task, c)) for c in kinds]
            print(f"{task:25}" + "".join(
                f"{r['rate_per_cpu_s']:11,.1f}{'*' if r['source'].startswith('fallback') else ' '}"
                if r else f"{'-':>12}" for r in cells))
    fallbacks = sorted({r["source"].split(" at width")[0] for r in result["rows"]
                        if r["stage"] != "train" and r["source"].startswith("fallback")})
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
