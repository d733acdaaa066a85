"""``asymbench estimate``: what a pipeline scale costs, in CPU-hours and in wall time on N cores.

The job list is the pipeline's (``config/config.yaml``: a scale's tasks, each task's seeds, with
a scale's ``per_task`` overrides, and the methods that its default target builds):

- training: ONE job per (task, method) trains all K seeds of the task together (the batched
  engine, ``asymbench.engine``); its CPU work is K x steps / the engine's per-seed rate at that K;
- distillation (BC, GAIL), expert data and evaluation: one job per seed.

A training group runs compiled or eager as the scale's ``compile`` setting decides for the run
itself (``auto``: compiled on a CPU for a budget of >= 100k env steps, ``acceleration``), and is
priced so.

Their rates, measured by the benchmarks or labelled fallbacks, are ``asymbench.rates``; this
module is the job list and its schedule.

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
the best gain (``rates.job_speedup``). Training groups on a GPU (``device`` cuda) hold one core
and one GPU.
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from asymbench.acceleration import auto_compiles, compile_choice
from asymbench.rates import (DEFAULT_COMPILE_SPEEDUP, DEFAULT_GPU_THROUGHPUT, ISSUE_24_SCALING, ISSUE_24_SOURCE, NOTE, Job,
                             NOTE_INFERENCE_S, THREAD_RULE, THREADS_REPRODUCIBLE, Rate,
                             ThreadScaling, _paths, engine_files, job_speedup, merge_engine,
                             rates_for, read_compile_speedup, read_engine_throughput, read_env_rates, read_gpu_throughput,
                             read_thread_scaling, read_throughput, trainer_width, update_share)
from asymbench.tasks import get_task, load_registry

# The result folders the pipeline's default target builds (workflow/rules/common.smk), and the
# trainer whose throughput each one's main job runs at.
PIPELINE_METHODS = ("s_only", "l_only", "ours", "ours_no_cost", "fit", "bc", "gail")
TRAINER = {"s_only": "s_only", "l_only": "l_only", "ours": "asym", "ours_no_cost": "asym",
           "fit": "fit", "bc": "bc", "gail": "gail", "ours_as_sac": "asym"}
STUDENTS = ("fit", "bc", "gail")  # one width per task: `student_width`

DEFAULT_CONFIG = "config/config.yaml"
DEFAULT_THROUGHPUT = "benchmarks/results/train_throughput.json"  # and train_throughput_*.json
DEFAULT_ENV_RATES = "benchmarks/results/env_step_rate.json"
DEFAULT_THREAD_SCALING = "benchmarks/results/thread_scaling.json"
TRAINED = ("s_only", "l_only", "ours", "ours_no_cost", "fit")  # methods trained in segments

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
    gpu_slots: int = 1                             # training groups on cuda that share one GPU
    compile: dict[str, str] = None                 # per task: engine.compile, auto (default) | on | off


# ----------------------------------------------------------------------------- the job list
def load_scale(scale: str, config_path: str | Path = DEFAULT_CONFIG, tasks=None, seeds=None,
               registry: str | Path | None = None) -> Scale:
    """Reads a scale from the pipeline config, with each task's ``per_task`` overrides merged in
    as the workflow's ``settings()`` does. ``tasks`` / ``seeds`` (or the config's top-level
    ones) replace the scale's lists, per-task seeds included, and the grid's seed count sets its
    task's seeds at its scales (``seeds_of`` in common.smk).
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
        grid = config.get("grid") or {}
    else:
        if scale != "paper":
            raise ValueError(f"unknown scale '{scale}': {path} does not exist, and without it "
                             "only 'paper' (the task registry's budgets) can be estimated")
        if not seeds:
            raise ValueError(f"{path} does not exist: give the seeds of the paper scale (--seeds)")
        s, grid = {}, {}
        tasks = tasks or list(load_registry(registry))
    per_task = s.get("per_task") or {}
    resolved = {key: {} for key in ("seeds", "steps", "gail_steps", "bc_samples", "expert_pairs",
                                    "eval_steps", "milestones", "devices", "student_widths", "compile")}
    for name in tasks:
        task = get_task(name, registry)
        t = {**s, **(per_task.get(name) or {})}
        distill = task.distill
        pairs = ((t.get("expert_trajectories") or distill["expert_trajectories"])
                 * (t.get("expert_length") or distill["expert_length"]))
        in_grid = grid.get("seeds") and name == grid.get("task") and scale in grid.get("scales", ())
        task_seeds = seeds or (range(int(grid["seeds"])) if in_grid else t.get("seeds"))
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
        resolved["compile"][name] = compile_choice(t.get("compile", "auto"), f"scale '{scale}': compile")
    return Scale(scale, tuple(tasks), **resolved, gpu_slots=int(s.get("gpu_slots") or 1))


def _env_episode_limit(task) -> int:
    from asymbench.tasks import make_env

    env = make_env(task)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    return limit or DEFAULT_EPISODE_STEPS


def jobs_of(scale: Scale, methods=PIPELINE_METHODS, device: str | None = None,
            compile: str | None = None) -> list[Job]:
    """Every job of the scale: per (task, method) trained, one training job per segment for all
    the task's seeds and an evaluation per seed of every segment's snapshot; BC and GAIL one
    distillation and one evaluation per seed; expert data per seed. An evaluation runs both
    protocols: twice the episodes' env steps. ``device``: every training job's (default: the
    scale's ``device`` setting); ``compile``: every training group's engine.compile (default: the
    scale's), which marks a CPU group compiled as the run would be."""
    unknown = [m for m in methods if m not in TRAINER]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(TRAINER)}")
    jobs = []
    for task in scale.tasks:
        seeds, budget = scale.seeds[task], scale.steps[task]
        milestones = tuple(m for m in (scale.milestones or {}).get(task, ()) if m < budget)
        evaluation = 2 * scale.eval_steps[task]
        width = (scale.student_widths or {}).get(task) or "ours"
        width_from = "" if width == "paper" else width
        trained_for_width = [width_from] if (width_from and width_from not in methods
                                             and set(STUDENTS) & set(methods)) else []
        for method in [*trained_for_width, *methods]:
            if method in ("bc", "gail"):
                work = scale.bc_samples[task] if method == "bc" else scale.gail_steps[task]
                jobs += [Job(task, method, (seed,), "distill", method, work,
                             width_from=width_from) for seed in seeds]
                jobs += [Job(task, method, (seed,), "evaluate", "eval", evaluation) for seed in seeds]
                continue
            on = device or ((scale.devices or {}).get(task) or {}).get(method, "cpu")
            setting = compile or (scale.compile or {}).get(task, "auto")
            compiled = on == "cpu" and (setting == "on" or (setting == "auto" and auto_compiles(on, budget)))
            ends = milestones + (budget,)
            if not milestones:  # one job to the budget: no segment, no snapshot
                ends = (0,)
            start = 0
            for end in ends:
                steps = (end or budget) - start
                jobs.append(Job(task, method, seeds, "train", TRAINER[method], len(seeds) * steps,
                                end, on, width_from=width_from, compiled=compiled))
                jobs += [Job(task, method, (seed,), "evaluate", "eval", evaluation, end) for seed in seeds]
                start = end
        if {"bc", "gail"} & set(methods):
            jobs += [Job(task, "expert", (seed,), "expert", "eval", scale.expert_pairs[task])
                     for seed in seeds]
    return jobs




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
    (``width_from`` "": `student_width: paper`), every final evaluation of the task's folder that
    sets it (Ours, or Ours-as-SAC)."""
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
    width_sources = {}
    for (task, method, _), i in final.items():
        width_sources.setdefault((task, method), []).append(i)
    needs = []
    for i, job in enumerate(jobs):
        task, seed = job.task, job.seeds[0]
        found = []
        if job.stage == "train":
            ends = segments[(task, job.method)]
            position = ends.index((job.end, i))
            if position:
                found.append(ends[position - 1][1])
            elif job.method == "fit" and job.width_from:
                found += width_sources.get((task, job.width_from), [])
        elif job.stage == "evaluate":
            if job.end == last.get((task, job.method), 0):
                found.append(runs.get((task, job.method, seed)))
            else:
                found.append(at_step.get((task, job.method, job.end)))
        elif job.stage == "expert":
            found.append(runs.get((task, "l_only", seed)))
        elif job.stage == "distill":
            found += width_sources.get((task, job.width_from), []) + [expert.get((task, seed))]
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
             gpus: int = 0, gpu_slots: int = 1) -> dict:
    """CPU-hours per (task, method, stage) and in total, the wall-time bounds on ``cores`` with
    one thread per job, and the simulated makespan with one thread per job and with ``threads``
    ((task, method) -> T of CPU training groups; ``speedup(job, T)``). A job's hours are its
    work over its rate: a training group's K x steps over the per-seed rate. A GPU job holds
    one of the ``gpu_slots`` slots of a GPU."""
    rows, hours, longest = {}, [], (0.0, None)
    threads = threads or {}
    for job in jobs:
        rate = rates[job.rate_key()]
        h = cpu_hours(job.work, rate.per_cpu_s)
        hours.append(h)
        key = (job.task, job.method, job.stage)
        row = rows.setdefault(key, {"task": job.task, "method": job.method, "stage": job.stage,
                                    "K": job.k, "jobs": 0, "work_per_job": job.work, "work": 0.0,
                                    "device": job.device, "compiled": job.compiled,
                                    "rate_per_cpu_s": rate.per_cpu_s,
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
    one = simulate(hours, needs, cores, None, gpu_of, gpus * gpu_slots)
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
            "gpu_slots": gpu_slots,
            "wall_h_lower": lower, "wall_h_upper": upper, "makespan_one_thread_h": one,
            "makespan_h": simulate(timed, needs, cores, planned, gpu_of, gpus * gpu_slots),
            "core_h": sum(h * t for h, t in zip(timed, planned)),
            "planned_chain_h": planned_chain_h, "planned_chain": planned_chain}


# ----------------------------------------------------------------------------- the command


def _rates_of(jobs: list[Job], throughput, engine_throughput, env_rates, gpu_throughput,
              registry, gpu_slots: int = 1, compile_speedup=None) -> tuple[dict, dict, dict]:
    """Every job's rate from the measurement files (defaults as ``run_estimate`` says), the env
    step rates, and which files gave them (the estimate's ``throughput`` ... ``env_rates``)."""
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
    shared = (merge_engine(read_gpu_throughput(path, gpu_slots) for path in gpu_throughput)
              if gpu_slots > 1 else {})
    if compile_speedup is None:
        compile_speedup = DEFAULT_COMPILE_SPEEDUP if Path(DEFAULT_COMPILE_SPEEDUP).exists() else ""
    compiled = any(j.compiled for j in jobs)
    compile_rows = read_compile_speedup(compile_speedup) if compile_speedup and compiled else []
    sources = {"throughput": ", ".join(throughput) or None,
               "engine_throughput": ", ".join(engine_throughput) or None,
               "engine_throughput_left_out": dict(engine_left_out),
               "gpu_throughput": ", ".join(gpu_throughput) or None, "env_rates": env_rates,
               "compile_speedup": (compile_speedup or None) if compiled else None}
    return (rates_for(jobs, measured, env, registry, engine, gpu, shared, gpu_slots, compile_rows),
            env, sources)


def run_estimate(scale: str, cores: int, throughput=None, env_rates: str | None = None,
                 config: str = DEFAULT_CONFIG, tasks=None, seeds=None, methods=None,
                 out: str | None = None, registry: str | None = None,
                 engine_throughput=None, thread_scaling=None, device: str | None = None,
                 gpus: int | None = None, gpu_throughput=None, student_width: str | None = None,
                 gpu_slots: int | None = None, compile: str | None = None,
                 compile_speedup: str | None = None) -> dict:
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
    for those jobs (default every benchmarks/results/engine_throughput_cuda*.json; the later
    measurement of a row wins), their rows of
    ``gpu_slots`` groups at once where that many share a GPU; ``student_width``: ours | paper for
    every task (default: the scale's `student_width` setting); ``gpu_slots``: training groups
    per GPU (default: the scale's `gpu_slots`, 1); ``compile``: every training group's
    engine.compile (default: the scale's `compile`, auto); ``compile_speedup``: the
    compile_speedup JSON that prices compiled groups (default benchmarks/results/
    compile_speedup.json if present; "": none, compiled groups at the eager rates)."""
    plan = load_scale(scale, config, tasks, seeds, registry)
    if student_width is not None:
        plan = replace(plan, student_widths={task: student_width for task in plan.tasks})
    methods = tuple(methods or PIPELINE_METHODS)
    if compile is not None:
        compile = compile_choice(compile, "--compile")
    jobs = jobs_of(plan, methods, device, compile)
    slots = gpu_slots if gpu_slots is not None else plan.gpu_slots
    if slots < 1:
        raise ValueError(f"--gpu-slots must be a positive integer, got {slots}")
    rates, env, sources = _rates_of(jobs, throughput, engine_throughput, env_rates, gpu_throughput,
                                    registry, slots, compile_speedup)
    on_gpu = any(j.device == "cuda" for j in jobs)
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
    threads, _ = plan_threads(jobs, hours, speedup, cores, gpus * slots)
    result = estimate(jobs, rates, cores, threads, speedup, gpus, slots)
    first = {(j.task, j.method): j for j in reversed(jobs) if j.stage == "train"}
    for row in result["rows"]:
        if row["stage"] == "train" and row["device"] == "cpu":
            job = first[(row["task"], row["method"])]
            row["thread_speedup"] = speedup(job, row["threads"])
            row["update_share"], row["thread_source"] = shares[job.rate_key()]
    result.update({"scale": asdict(plan), "methods": list(methods), **sources,
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
          f"{result['throughput'] or 'none'}; env {result['env_rates'] or 'none'}"
          + (f"; compiled update {result['compile_speedup'] or 'none (eager rates)'}"
             if any(r.get("compiled") for r in result["rows"]) else ""))
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
    cores, gpus, slots = result["cores"], result["gpus"], result.get("gpu_slots", 1)
    machine = f"{cores} cores" + (f" and {gpus} GPU{'s' if gpus > 1 else ''}" if gpus else "") + (
        f" ({slots} training groups per GPU)" if gpus and slots > 1 else "")
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
    cuda = [r for r in result["rows"] if r["device"] == "cuda"]
    if cuda:
        share = "one GPU" if slots == 1 else f"1/{slots} of a GPU"
        print(f"GPU jobs (one core and {share} each): per-seed wall rates of {result['gpu_throughput']}"
              + (f", measured with {slots} groups at once where measured" if slots > 1 else ""))
        alone = sorted({f"{r['task']}/{r['method']}" for r in cuda if r["source"].startswith("upper bound of the rate")})
        if alone:
            which = "every GPU job" if len(alone) == len(cuda) else ", ".join(alone)
            print(f"only solo GPU rates measured for {which}: they run at them, an upper bound "
                  f"of the rate with {slots} groups per GPU (benchmarks/engine_throughput.py "
                  f"--device cuda --concurrent {slots} measures it)")
    print(f"makespan on {machine} (list schedule of the job DAG, longest remaining chain first): "
          f"one thread per job {_hours(result['makespan_one_thread_h'])}; with the plan "
          f"{_hours(result['makespan_h'])} ({result['core_h']:,.0f} core-hours); its longest chain "
          f"{_hours(result['planned_chain_h'])} ({'; '.join(result['planned_chain'])})")
    measured = result.get("thread_scaling_cores")
    assumed = [f"{machine} free for the pipeline (threads on busy cores cost time)"]
    if measured and max((r.get("threads", 1) for r in result["rows"]), default=1) > measured:
        assumed.append(f"thread speed-ups beyond the measuring machine's {measured} cores extrapolated")
    if any(r.get("compiled") and r.get("threads", 1) > 1 for r in result["rows"]):
        assumed.append("thread speed-ups of compiled groups as measured on the eager update")
    assumed.append(result["threads_reproducible"])
    print("assumes: " + "; ".join(assumed))


def _hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.1f} min"
    return f"{h:,.1f} h" + (f" ({h / 24:.1f} days)" if h >= 48 else "")
