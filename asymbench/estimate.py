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
measured speeds in the project's dependencies note, scaled by network width.

What the pipeline runs (workflow/rules): a training group runs in segments ending at the scale's
``milestones``, then at its budget, one job per segment, each after the previous one; every
snapshot (each milestone's and the finished run's) is evaluated, one job per seed, under both
protocols (``--protocol both``: twice the episodes' env steps); fit's first segment and BC / GAIL
wait for every Ours seed's final evaluation (their width is the mean over Ours' seeds).

Wall time: with one thread per job, on N cores it is at least ``max(total / N, longest dependency
chain)`` and, with a greedy scheduler, at most ``total / N + longest chain`` (Graham's bound). The
makespan printed beside them is a list-scheduling simulation of the job DAG on N cores (and G
GPUs), ready jobs started longest-remaining-chain first, each holding as many cores as it has
threads. ``plan_threads`` gives training groups more threads where that shortens this makespan:
while it falls, one more thread for the group (or all groups) on the current critical path with
the best gain. A thread count only speeds up the SAC update (``thread_scaling``: measured in
benchmarks/results/thread_scaling.json, or the issue-24 rule), the update's share of a job being
1 - its per-seed rate / the task's env.step rate (Amdahl's law for the job). Training groups on a
GPU (``device`` cuda) run at the per-seed WALL rates of the GPU engine measurements
(``gpu_rate``), holding one core and one GPU.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import asdict, dataclass, replace
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
DEFAULT_THREAD_SCALING = "benchmarks/results/thread_scaling.json"
DEFAULT_GPU_THROUGHPUT = "benchmarks/results/engine_throughput_cuda.json"
TRAINED = ("s_only", "l_only", "ours", "ours_no_cost", "fit")  # methods trained in segments

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
    milestones: dict[str, tuple[int, ...]] = None  # segment ends below the budget
    devices: dict[str, dict[str, str]] = None      # per task: method -> cpu | cuda (default cpu)
    student_widths: dict[str, str] = None          # per task: ours (default) | paper


@dataclass(frozen=True)
class Job:
    task: str
    method: str   # result folder (s_only ... gail) or "expert"
    seeds: tuple[int, ...]  # training: all the task's seeds, trained together; else one seed
    stage: str    # train | distill | expert | evaluate
    trainer: str  # whose rate it runs at: s_only, l_only, fit, asym, bc, gail, or eval
    work: float   # in the rate's unit, all seeds: env steps (bc: expert samples)
    end: int = 0  # train: the env step its segment ends at; evaluate: the step evaluated (0: the run)
    device: str = "cpu"
    waits_for_ours: bool = True  # fit's first segment, BC, GAIL: their width needs Ours' evaluations

    @property
    def k(self) -> int:
        return len(self.seeds)

    def label(self) -> str:
        seeds = f"K={self.k}" if self.stage == "train" else f"seed{self.seeds[0]}"
        at = f" to {self.end:,}" if self.stage == "train" and self.end else \
            f" at {self.end:,}" if self.end else ""
        return f"{self.method} {self.stage}{at} ({seeds})"

    def rate_key(self) -> tuple:
        """The key of its rate: (task, trainer), with the device where it is not the CPU."""
        return (self.task, self.trainer) if self.device == "cpu" else (self.task, self.trainer, self.device)


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
                                    "eval_steps", "milestones", "devices", "student_widths")}
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
        resolved["milestones"][name] = tuple(int(m) for m in t.get("milestones") or ())
        device = t.get("device") or "cpu"
        resolved["devices"][name] = {m: (device.get(m, "cpu") if isinstance(device, dict) else device)
                                     for m in TRAINED}
        resolved["student_widths"][name] = t.get("student_width") or "ours"
    return Scale(scale, tuple(tasks), **resolved)


def _env_episode_limit(task) -> int:
    from asymbench.tasks import make_env

    env = make_env(task)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    return limit or DEFAULT_EPISODE_STEPS


def jobs_of(scale: Scale, methods=PIPELINE_METHODS, device: str | None = None) -> list[Job]:
    """Every job of the scale: per (task, method) trained, one training job per segment for all
    the task's seeds and an evaluation per seed of every segment's snapshot; BC and GAIL one
    distillation and one evaluation per seed; expert data per seed. An evaluation runs both
    protocols: twice the episodes' env steps. ``device``: every training job's (default: the
    scale's ``device`` setting)."""
    unknown = [m for m in methods if m not in TRAINER]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(TRAINER)}")
    jobs = []
    for task in scale.tasks:
        seeds, budget = scale.seeds[task], scale.steps[task]
        milestones = tuple(m for m in (scale.milestones or {}).get(task, ()) if m < budget)
        evaluation = 2 * scale.eval_steps[task]
        students_wait = ((scale.student_widths or {}).get(task) or "ours") == "ours"
        for method in methods:
            if method in ("bc", "gail"):
                work = scale.bc_samples[task] if method == "bc" else scale.gail_steps[task]
                jobs += [Job(task, method, (seed,), "distill", method, work,
                             waits_for_ours=students_wait) for seed in seeds]
                jobs += [Job(task, method, (seed,), "evaluate", "eval", evaluation) for seed in seeds]
                continue
            on = device or ((scale.devices or {}).get(task) or {}).get(method, "cpu")
            ends = milestones + (budget,)
            if not milestones:  # one job to the budget: no segment, no snapshot
                ends = (0,)
            start = 0
            for end in ends:
                steps = (end or budget) - start
                jobs.append(Job(task, method, seeds, "train", TRAINER[method], len(seeds) * steps,
                                end, on, waits_for_ours=students_wait))
                jobs += [Job(task, method, (seed,), "evaluate", "eval", evaluation, end) for seed in seeds]
                start = end
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


def read_gpu_throughput(path: str | Path) -> dict[tuple[str, str], dict[int, EngineRow]]:
    """(task, "l_only" | "asym" | ...) -> {K: per-seed env steps per WALL second}, the "engine
    <trainer>" rows of benchmarks/engine_throughput.py run with ``--device cuda`` (on a GPU the
    host's CPU time no longer measures the work)."""
    data = _data(path)
    file_device = data.get("device") or "cpu"
    machine = data.get("machine") or {}
    where = f"{Path(path).name}, {machine.get('gpu') or 'GPU'}"
    rows = {}
    for r in _rows(path, ("task", "trainer"), data):
        trainer = str(r["trainer"])
        if (not trainer.startswith("engine ") or (r.get("device") or file_device) != "cuda"
                or "error" in r):
            continue
        k, rate = r.get("K"), r.get("wall_steps_per_s")
        if not (isinstance(k, int) and k >= 1 and isinstance(rate, (int, float)) and rate > 0):
            raise ValueError(f"{path}: GPU row {r['task']}/{trainer} needs an integer K >= 1 and a "
                             "positive wall_steps_per_s")
        load = r.get("load")
        rows.setdefault((r["task"], trainer[len("engine "):]), {})[k] = EngineRow(
            k, float(rate), r.get("speedup_vs_sb3"), where + (f", load {load:.1f}" if load else ""))
    return rows


def _gpu_at_k(rows: dict[int, EngineRow], k: int) -> tuple[float, str]:
    """The per-seed rate at the measured K closest to ``k``; below the smallest measured K scaled
    by k / K (a group step costs no less with fewer members: an upper bound of the time)."""
    row = _closest(rows, k)
    if k < row.k:
        return row.per_cpu_s * k / row.k, f"K={row.k} x {k}/{row.k}"
    return row.per_cpu_s, f"K={row.k}"


def gpu_rate(task_name: str, trainer: str, k: int, gpu: dict, env_rates: dict,
             registry: str | Path | None = None) -> Rate:
    """Per-seed wall rate of a training group of ``k`` seeds on a GPU: the task's own GPU row of
    the trainer (S-only, fit: L-only's, an upper bound); else the row of the measured task whose
    large width is closest, with the env.step time of this task in place of that task's (per
    seed and env step: 1 / rate + 1 / env_here - 1 / env_there, where both are measured)."""
    task = get_task(task_name, registry)
    for row_name, bound in ((ENGINE_ROW[trainer], ""), (UPPER_BOUND_ROW.get(trainer), "upper bound: ")):
        if not row_name:
            continue
        own = gpu.get((task_name, row_name))
        if own:
            rate, at = _gpu_at_k(own, k)
            return Rate(rate, f"{bound}GPU engine {row_name} measured {at}, wall rate "
                              f"({_closest(own, k).source})")
        others = {t: rows for (t, name), rows in gpu.items() if name == row_name}
        if not others:
            continue
        source = min(others, key=lambda t: (abs(get_task(t, registry).large - task.large), t))
        rate, at = _gpu_at_k(others[source], k)
        label = (f"{bound}GPU engine {row_name} of {source} (width {get_task(source, registry).large}; "
                 f"this task's {task.large}) {at}, wall rate ({_closest(others[source], k).source})")
        here, there = env_rates.get(task_name), env_rates.get(source)
        if here and there:
            seconds = 1.0 / rate + 1.0 / here.per_cpu_s - 1.0 / there.per_cpu_s
            rate, label = 1.0 / max(seconds, 1.0 / rate / 10), label + ", with this task's env.step"
        else:
            label += f", {source}'s env.step (not measured here)"
        return Rate(rate, label)
    raise ValueError(f"device cuda: no GPU engine measurement of {trainer} (or L-only) for any task "
                     f"(--gpu-throughput, default {DEFAULT_GPU_THROUGHPUT})")


def rates_for(jobs: list[Job], measured: dict, env_rates: dict | None = None,
              registry: str | Path | None = None, engine: dict | None = None,
              gpu: dict | None = None) -> dict[tuple, Rate]:
    """``job.rate_key()`` -> rate of every job: training groups at the engine's per-seed rate at
    their K (a task's groups all have the same K; on a GPU, ``gpu_rate``), every other job at its
    measured rate."""
    env_rates, engine = env_rates or {}, engine or {}

    def sb3_rate(task, trainer):
        return measured.get((task, trainer)) or fallback_rate(task, trainer, measured, env_rates, registry)

    rates = {}
    for job in jobs:
        key = job.rate_key()
        if key in rates:
            continue
        if job.stage == "train" and job.device == "cuda":
            rates[key] = gpu_rate(job.task, job.trainer, job.k, gpu or {}, env_rates, registry)
        elif job.stage == "train":
            rates[key] = engine_rate(job.task, job.trainer, job.k, engine, sb3_rate, registry)
        else:
            rates[key] = sb3_rate(job.task, job.trainer)
    return rates


# ----------------------------------------------------------------------------- threads
THREAD_RULE = ("a job's speed-up at T threads: Amdahl's law over its update share, the update's "
               "speed-up measured per width at T <= {largest}, beyond that Amdahl's law with the "
               "parallel fraction fitted to the measured points")
# tests/test_estimate.py::test_training_with_two_threads_is_bit_identical_to_one checks it.
THREADS_REPRODUCIBLE = ("runs at 1 and 2 torch threads are bit-identical (tested); more threads "
                        "were not tested")
# Without a thread_scaling.json: issue 24's measurement of one StackedSAC.update (K = 5, batch
# 256) on the project's 2-core machine, the midpoints of its ranges at 2 threads.
ISSUE_24_SCALING = {64: {1: 1.0, 2: 1.3}, 256: {1: 1.0, 2: 1.55}}
ISSUE_24_SOURCE = ("issue 24's measurement of StackedSAC.update on the project's 2-core machine "
                   "(2 threads: 1.1-1.5x at width 64, 1.4-1.7x at 256; midpoints)")


@dataclass(frozen=True)
class ThreadScaling:
    """Speed-up of one stacked SAC update over one thread, per width and thread count: measured
    where measured; elsewhere Amdahl's law, 1 / ((1 - p) + p / T), with the parallel fraction p
    fitted (least squares on 1 - 1/S = p (1 - 1/T)) to the measured points of each width, and
    linear in width between measured widths (outside them: the nearest one's)."""

    points: dict[int, dict[int, float]]
    source: str
    cores: int | None = None  # of the machine that measured it

    def fraction(self, width: int) -> float:
        fitted = {}
        for w, by_t in self.points.items():
            xs = [(1 - 1 / t, 1 - 1 / s) for t, s in by_t.items() if t > 1 and s > 0]
            den = sum(x * x for x, _ in xs)
            fitted[w] = min(1.0, max(0.0, sum(x * y for x, y in xs) / den)) if den else 0.0
        widths = sorted(fitted)
        return float(np.interp(width, widths, [fitted[w] for w in widths]))

    def speedup(self, width: int, threads: int) -> float:
        measured = self.points.get(width, {}).get(threads)
        if measured is not None:
            return measured
        p = self.fraction(width)
        return 1.0 / ((1 - p) + p / threads)

    def largest_measured(self) -> int:
        return max(t for by_t in self.points.values() for t in by_t)


def read_thread_scaling(path: str | Path) -> ThreadScaling:
    """benchmarks/thread_scaling.py's update rows: the mean speed-up over the tasks measured,
    per width and thread count."""
    data = _data(path)
    rows = [r for r in _rows(path, ("kind",), data) if r["kind"] == "update"]
    speedups: dict[int, dict[int, list[float]]] = {}
    for r in rows:
        if not (isinstance(r.get("width"), int) and isinstance(r.get("threads"), int)
                and isinstance(r.get("speedup"), (int, float)) and r["speedup"] > 0):
            raise ValueError(f"{path}: an update row needs an integer width and threads and a "
                             "positive speedup")
        speedups.setdefault(r["width"], {}).setdefault(r["threads"], []).append(float(r["speedup"]))
    if not speedups:
        raise ValueError(f"{path}: no update rows")
    machine = data.get("machine") or {}
    loads = [r["load"] for r in rows if r.get("load") is not None]
    source = (f"{Path(path).name} ({machine.get('cpu', 'machine not recorded')}, "
              f"{machine.get('cpu_count', '?')} cores" + (f", load {max(loads):.1f})" if loads else ")"))
    return ThreadScaling({w: {t: float(np.mean(v)) for t, v in by_t.items()} for w, by_t in speedups.items()},
                         source, machine.get("cpu_count"))


def trainer_width(task_name: str, trainer: str, registry=None) -> int:
    """The width whose update dominates a training job (asym: the large sub-policy's)."""
    task = get_task(task_name, registry)
    fit = task.settings.get("paper_fit_width", task.large)
    return {"s_only": task.small, "fit": fit}.get(trainer, task.large)


def update_share(job: Job, rate: Rate, env_rates: dict) -> tuple[float, str]:
    """The share of a training job's time in the SAC update, the part threads shorten: 1 - its
    per-seed rate / the task's env.step rate (the rest: stepping the environment); 1 where the
    env.step rate was not measured (an upper bound of the gain)."""
    env = env_rates.get(job.task)
    if env is None:
        return 1.0, "update share 1 (env.step not measured)"
    share = min(1.0, max(0.0, 1.0 - rate.per_cpu_s / env.per_cpu_s))
    return share, f"update share {share:.2f} (1 - rate / env.step rate)"


def job_speedup(share: float, scaling: ThreadScaling, width: int, threads: int) -> float:
    """Amdahl's law for a job: its update share runs ``scaling.speedup`` times faster."""
    return 1.0 / ((1 - share) + share / scaling.speedup(width, threads))


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


def dependencies(jobs: list[Job]) -> list[list[int]]:
    """Per job, the indices of the jobs it waits for (workflow/rules): a segment its group's
    previous segment; an evaluation the segment that wrote its snapshot (the last segment or the
    distillation for the run itself); expert data the L-only run; BC / GAIL the expert data of
    their seed; and fit's first segment, BC and GAIL, unless their width is the paper's
    (``waits_for_ours`` False: `student_width: paper`), every final evaluation of Ours of the task."""
    segments: dict[tuple, list[tuple[int, int]]] = {}
    for i, job in enumerate(jobs):
        if job.stage == "train":
            segments.setdefault((job.task, job.method), []).append((job.end, i))
    for ends in segments.values():
        ends.sort()
    runs, at_step, final, expert = {}, {}, {}, {}
    for (task, method), ends in segments.items():
        for end, i in ends:
            at_step[(task, method, end)] = i
        for seed in jobs[ends[-1][1]].seeds:
            runs[(task, method, seed)] = ends[-1][1]
    for i, job in enumerate(jobs):
        if job.stage == "distill":
            runs[(job.task, job.method, job.seeds[0])] = i
        elif job.stage == "expert":
            expert[(job.task, job.seeds[0])] = i
    last = {key: ends[-1][0] for key, ends in segments.items()}
    for i, job in enumerate(jobs):
        if job.stage == "evaluate" and job.end == last.get((job.task, job.method), 0):
            final[(job.task, job.method, job.seeds[0])] = i
    ours = {}
    for (task, method, _), i in final.items():
        if method == "ours":
            ours.setdefault(task, []).append(i)
    needs = []
    for i, job in enumerate(jobs):
        task, seed = job.task, job.seeds[0]
        found = []
        if job.stage == "train":
            ends = segments[(task, job.method)]
            position = ends.index((job.end, i))
            if position:
                found.append(ends[position - 1][1])
            elif job.method == "fit" and job.waits_for_ours:
                found += ours.get(task, [])
        elif job.stage == "evaluate":
            if job.end == last.get((task, job.method), 0):
                found.append(runs.get((task, job.method, seed)))
            else:
                found.append(at_step.get((task, job.method, job.end)))
        elif job.stage == "expert":
            found.append(runs.get((task, "l_only", seed)))
        elif job.stage == "distill":
            found += (ours.get(task, []) if job.waits_for_ours else []) + [expert.get((task, seed))]
        needs.append([j for j in found if j is not None])
    return needs


def _order(needs: list[list[int]]) -> list[int]:
    """A topological order of the jobs."""
    waiting, after = [len(n) for n in needs], [[] for _ in needs]
    for i, n in enumerate(needs):
        for j in n:
            after[j].append(i)
    order = [i for i, w in enumerate(waiting) if not w]
    for i in order:
        for j in after[i]:
            waiting[j] -= 1
            if not waiting[j]:
                order.append(j)
    return order


def _chains(hours: list[float], needs: list[list[int]]) -> tuple[list[float], list[float], list[int]]:
    """(finish of the longest chain into each job, longest chain out of each job, its own
    included, predecessor on the chain into it; -1: none)."""
    order = _order(needs)
    into, previous = [0.0] * len(hours), [-1] * len(hours)
    for i in order:
        best = max(needs[i], key=lambda j: into[j], default=-1)
        into[i] = hours[i] + (into[best] if best >= 0 else 0.0)
        previous[i] = best
    after = [[] for _ in hours]
    for i, n in enumerate(needs):
        for j in n:
            after[j].append(i)
    out = [0.0] * len(hours)
    for i in reversed(order):
        out[i] = hours[i] + max((out[j] for j in after[i]), default=0.0)
    return into, out, previous


def longest_chain(jobs: list[Job], hours: list[float], needs: list[list[int]] | None = None
                  ) -> tuple[float, list[str]]:
    """Longest path of dependent jobs (``dependencies``), e.g. Ours' segments -> an evaluation
    -> fit's segments -> one of fit's evaluations; ``hours[i]`` is job i's."""
    needs = dependencies(jobs) if needs is None else needs
    if not jobs:
        return 0.0, []
    into, _, previous = _chains(hours, needs)
    last = max(range(len(jobs)), key=lambda i: into[i])
    path = [last]
    while previous[path[-1]] >= 0:
        path.append(previous[path[-1]])
    steps = []  # a group's segments in a row: one step of the chain
    for j in reversed(path):
        job = jobs[j]
        if steps and job.stage == "train" and steps[-1][0] == (job.task, job.method, "train"):
            steps[-1][1].append(job)
        else:
            steps.append(((job.task, job.method, job.stage), [job]))
    labels = [group[0].label() if len(group) == 1 else
              f"{group[0].method} train, {len(group)} segments to {group[-1].end:,} (K={group[0].k})"
              for _, group in steps]
    return into[last], [f"{jobs[last].task}: " + " -> ".join(labels)]


def simulate(hours: list[float], needs: list[list[int]], cores: int, threads: list[int] | None = None,
             gpus_needed: list[int] | None = None, gpus: int = 0) -> float:
    """Makespan (hours) of a list schedule on ``cores`` cores and ``gpus`` GPUs: whenever a job
    ends, every ready job that fits starts, longest remaining chain first; job i holds
    ``threads[i]`` cores (default 1) and ``gpus_needed[i]`` GPUs (default 0) while it runs."""
    n = len(hours)
    threads = threads or [1] * n
    gpus_needed = gpus_needed or [0] * n
    for i in range(n):
        if threads[i] > cores or gpus_needed[i] > gpus:
            raise ValueError(f"a job needs {threads[i]} cores and {gpus_needed[i]} GPUs; the "
                             f"machine has {cores} and {gpus}")
    _, priority, _ = _chains(hours, needs)
    waiting, after = [len(x) for x in needs], [[] for _ in range(n)]
    for i, x in enumerate(needs):
        for j in x:
            after[j].append(i)
    ready = sorted((i for i in range(n) if not waiting[i]), key=lambda i: -priority[i])
    running, now, free, free_gpus = [], 0.0, cores, gpus
    while ready or running:
        still = []
        for i in ready:
            if free and threads[i] <= free and gpus_needed[i] <= free_gpus:
                free, free_gpus = free - threads[i], free_gpus - gpus_needed[i]
                heapq.heappush(running, (now + hours[i], i))
            else:
                still.append(i)
        ready = still
        now, i = heapq.heappop(running)
        finished = [i]
        while running and running[0][0] <= now:
            finished.append(heapq.heappop(running)[1])
        for i in finished:
            free, free_gpus = free + threads[i], free_gpus + gpus_needed[i]
            for j in after[i]:
                waiting[j] -= 1
                if not waiting[j]:
                    ready.append(j)
        ready.sort(key=lambda i: -priority[i])
    return now


def plan_threads(jobs: list[Job], hours: list[float], speedup, cores: int, gpus: int = 0,
                 needs: list[list[int]] | None = None) -> tuple[dict[tuple[str, str], int], float]:
    """Threads per CPU training group ((task, method) -> T, all its segments alike) and the
    makespan they give (``simulate``). ``hours``: each job's at one thread; ``speedup(job, T)``.
    Greedy: while the makespan falls, one more thread for the group on the current critical
    path (or for all the groups on it together) that shortens it most."""
    needs = dependencies(jobs) if needs is None else needs
    groups = {(j.task, j.method) for j in jobs if j.stage == "train" and j.device == "cpu"}
    gpu_of = [int(j.device == "cuda") for j in jobs]
    member = [(j.task, j.method) if j.stage == "train" and j.device == "cpu" else None for j in jobs]

    def schedule(plan):
        t = [plan.get(g, 1) if g else 1 for g in member]
        h = [hours[i] / (speedup(jobs[i], t[i]) if member[i] else 1.0) for i in range(len(jobs))]
        return simulate(h, needs, cores, t, gpu_of, gpus), h

    plan = {g: 1 for g in groups}
    best, current = schedule(plan)
    while True:
        into, out, _ = _chains(current, needs)
        longest = max((into[i] + out[i] - current[i] for i in range(len(jobs))), default=0.0)
        critical = sorted({member[i] for i in range(len(jobs)) if member[i]
                           and into[i] + out[i] - current[i] >= longest * (1 - 1e-9)})
        moves = [[g] for g in critical] + ([critical] if len(critical) > 1 else [])
        trials = []
        for move in moves:
            if any(plan[g] >= cores for g in move):
                continue
            trial = {**plan, **{g: plan[g] + 1 for g in move}}
            makespan, h = schedule(trial)
            trials.append((makespan, sum(trial.values()), sorted(trial.items()), trial, h))
        if not trials:
            break
        makespan, _, _, trial, h = min(trials, key=lambda x: x[:3])
        if makespan >= best * (1 - 1e-9):
            break
        best, plan, current = makespan, trial, h
    return plan, best


def estimate(jobs: list[Job], rates: dict[tuple, Rate], cores: int, threads=None, speedup=None,
             gpus: int = 0) -> dict:
    """CPU-hours per (task, method, stage) and in total, the wall-time bounds on ``cores`` with
    one thread per job, and the simulated makespan with one thread per job and with ``threads``
    ((task, method) -> T of CPU training groups; ``speedup(job, T)``). A job's hours are its
    work over its rate: a training group's K x steps over the per-seed rate."""
    rows, hours, longest = {}, [], (0.0, None)
    threads = threads or {}
    for job in jobs:
        rate = rates[job.rate_key()]
        h = cpu_hours(job.work, rate.per_cpu_s)
        hours.append(h)
        key = (job.task, job.method, job.stage)
        row = rows.setdefault(key, {"task": job.task, "method": job.method, "stage": job.stage,
                                    "K": job.k, "jobs": 0, "work_per_job": job.work, "work": 0.0,
                                    "device": job.device, "rate_per_cpu_s": rate.per_cpu_s,
                                    "cpu_h_per_job": h, "cpu_h": 0.0, "source": rate.source})
        row["jobs"] += 1
        row["work"] += job.work
        row["cpu_h"] += h
        if h > longest[0]:
            longest = (h, f"{job.task}/{job.label()}")
    total = sum(r["cpu_h"] for r in rows.values())
    per_method = {}
    for r in rows.values():
        per_method[r["method"]] = per_method.get(r["method"], 0.0) + r["cpu_h"]
    needs = dependencies(jobs)
    chain_h, chain = longest_chain(jobs, hours, needs)
    lower, upper = wall_time_bounds(total, cores, chain_h)
    gpu_of = [int(j.device == "cuda") for j in jobs]
    gpus = gpus if gpus or not any(gpu_of) else 1
    one = simulate(hours, needs, cores, None, gpu_of, gpus)
    planned = [threads.get((j.task, j.method), 1) if j.stage == "train" and j.device == "cpu" else 1
               for j in jobs]
    timed = [h / (speedup(j, t) if t > 1 else 1.0) for j, h, t in zip(jobs, hours, planned)]
    for job, t, h in zip(jobs, planned, timed):
        if job.stage == "train":
            row = rows[(job.task, job.method, job.stage)]
            row["threads"], row["wall_h"] = t, row.get("wall_h", 0.0) + h
    planned_chain_h, planned_chain = longest_chain(jobs, timed, needs)
    return {"rows": list(rows.values()), "cpu_h_by_method": per_method, "total_cpu_h": total,
            "jobs": len(jobs), "longest_job_h": longest[0], "longest_job": longest[1],
            "longest_chain_h": chain_h, "longest_chain": chain, "cores": cores, "gpus": gpus,
            "wall_h_lower": lower, "wall_h_upper": upper, "makespan_one_thread_h": one,
            "makespan_h": simulate(timed, needs, cores, planned, gpu_of, gpus),
            "core_h": sum(h * t for h, t in zip(timed, planned)),
            "planned_chain_h": planned_chain_h, "planned_chain": planned_chain}


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
                 engine_throughput=None, thread_scaling=None, device: str | None = None,
                 gpus: int | None = None, gpu_throughput=None, student_width: str | None = None) -> dict:
    """``asymbench estimate``: prints the estimate and returns it (and writes it to ``out``).
    ``throughput``: one or more train_throughput JSONs (default: every
    benchmarks/results/train_throughput*.json; a later file's row replaces an earlier one's);
    ``engine_throughput``: one or more engine_throughput JSONs (default: every
    benchmarks/results/engine_throughput*.json of one machine kind, see ``engine_files``; an
    empty list: none, the sb3 rates; the later measurement of a row wins); ``env_rates``: an
    env_step_rate JSON; ``thread_scaling``: a thread_scaling JSON (default
    benchmarks/results/thread_scaling.json if present; "" or absent: the issue-24 rule);
    ``device``: every training job's (default: the scale's ``device`` setting); ``gpus``: GPUs of
    the machine (default 1 where a job runs on one); ``gpu_throughput``: the GPU engine JSONs
    for those jobs (default benchmarks/results/engine_throughput_cuda.json); ``student_width``:
    ours | paper for every task (default: the scale's `student_width` setting)."""
    plan = load_scale(scale, config, tasks, seeds, registry)
    if student_width is not None:
        plan = replace(plan, student_widths={task: student_width for task in plan.tasks})
    methods = tuple(methods or PIPELINE_METHODS)
    jobs = jobs_of(plan, methods, device)
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
    on_gpu = any(j.device == "cuda" for j in jobs)
    gpu_throughput = _paths(gpu_throughput, DEFAULT_GPU_THROUGHPUT) if on_gpu else []
    gpu = merge_engine(read_gpu_throughput(path) for path in gpu_throughput)
    rates = rates_for(jobs, measured, env, registry, engine, gpu)
    if thread_scaling is None and Path(DEFAULT_THREAD_SCALING).exists():
        thread_scaling = DEFAULT_THREAD_SCALING
    scaling = (read_thread_scaling(thread_scaling) if thread_scaling
               else ThreadScaling(ISSUE_24_SCALING, ISSUE_24_SOURCE, 2))
    shares = {}

    def speedup(job, threads):
        key = job.rate_key()
        if key not in shares:
            shares[key] = update_share(job, rates[key], env)
        return job_speedup(shares[key][0], scaling, trainer_width(job.task, job.trainer, registry), threads)

    gpus = gpus if gpus is not None else int(on_gpu)
    hours = [cpu_hours(j.work, rates[j.rate_key()].per_cpu_s) for j in jobs]
    threads, _ = plan_threads(jobs, hours, speedup, cores, gpus)
    result = estimate(jobs, rates, cores, threads, speedup, gpus)
    first = {(j.task, j.method): j for j in reversed(jobs) if j.stage == "train"}
    for row in result["rows"]:
        if row["stage"] == "train" and row["device"] == "cpu":
            job = first[(row["task"], row["method"])]
            row["thread_speedup"] = speedup(job, row["threads"])
            row["update_share"], row["thread_source"] = shares[job.rate_key()]
    result.update({"scale": asdict(plan), "methods": list(methods),
                   "throughput": ", ".join(throughput) or None,
                   "engine_throughput": ", ".join(engine_throughput) or None,
                   "engine_throughput_left_out": {p: why for p, why in engine_left_out.items()},
                   "gpu_throughput": ", ".join(gpu_throughput) or None,
                   "env_rates": env_rates,
                   "thread_scaling": scaling.source, "thread_scaling_cores": scaling.cores,
                   "thread_rule": THREAD_RULE.format(largest=scaling.largest_measured()),
                   "threads_reproducible": THREADS_REPRODUCIBLE,
                   "thread_plan": [{"task": t, "method": m, "threads": threads.get((t, m), 1), "device": d}
                                   for t, m, d in dict.fromkeys((j.task, j.method, j.device)
                                                                for j in jobs if j.stage == "train")]})
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
    paper_width = [t for t in plan.tasks if (plan.student_widths or {}).get(t) == "paper"]
    if paper_width:
        print(f"student_width paper ({', '.join(paper_width)}): fit, BC and GAIL at the registry's "
              "paper_fit_width, not waiting for Ours' evaluations")
    print()

    trains = [r for r in result["rows"] if r["stage"] == "train"]
    if trains:
        print("training: one job per task and method, its K seeds together; "
              "CPU-hours = K x steps / per-seed rate")
        print(f"{'task':21} {'method':12} {'K':>3} {'steps/seed':>10} {'rate/seed/CPU-s':>15} "
              f"{'CPU-h':>8}  rate source")
        for r in trains:
            print(f"{r['task']:21} {r['method']:12} {r['K']:3d} {r['work'] / r['K']:10,.0f} "
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
    _print_plan(result)


def _print_plan(result: dict) -> None:
    """The threads of the training groups that get more than one (or a GPU), and the simulated
    makespans with one thread per job and with the plan, with what they assume."""
    cores, gpus = result["cores"], result["gpus"]
    machine = f"{cores} cores" + (f" and {gpus} GPU{'s' if gpus > 1 else ''}" if gpus else "")
    print(f"\nthreads per training job, planned for {machine}: {result['thread_rule']}; "
          f"measured: {result['thread_scaling']}")
    groups = [r for r in result["rows"] if r["stage"] == "train"
              and (r.get("threads", 1) > 1 or r["device"] != "cpu")]
    if groups:
        print(f"{'task':21} {'method':12} {'device':6} {'threads':>7} {'speed-up':>8} {'wall h':>8}  "
              "update share")
        for r in groups:
            speed = f"{r['thread_speedup']:8.2f}" if r["device"] == "cpu" else f"{'-':>8}"
            print(f"{r['task']:21} {r['method']:12} {r['device']:6} {r['threads']:7d} {speed} "
                  f"{r['wall_h']:8,.1f}  {r.get('thread_source', r['source'])}")
    print("every other training job: 1 thread" if groups
          else "every training job: 1 thread (more shortens nothing)")
    if any(r["device"] == "cuda" for r in result["rows"]):
        print(f"GPU jobs (one core and one GPU each): per-seed wall rates of {result['gpu_throughput']}")
    print(f"makespan on {machine} (list schedule of the job DAG, longest remaining chain first): "
          f"one thread per job {_hours(result['makespan_one_thread_h'])}; with the plan "
          f"{_hours(result['makespan_h'])} ({result['core_h']:,.0f} core-hours); its longest chain "
          f"{_hours(result['planned_chain_h'])} ({'; '.join(result['planned_chain'])})")
    measured = result.get("thread_scaling_cores")
    assumed = [f"{machine} free for the pipeline (threads on busy cores cost time)"]
    if measured and max((r.get("threads", 1) for r in result["rows"]), default=1) > measured:
        assumed.append(f"thread speed-ups beyond the measuring machine's {measured} cores extrapolated")
    assumed.append(result["threads_reproducible"])
    print("assumes: " + "; ".join(assumed))


def _hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.1f} min"
    return f"{h:,.1f} h" + (f" ({h / 24:.1f} days)" if h >= 48 else "")
