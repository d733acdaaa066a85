"""Training and evaluation rates for ``asymbench estimate`` (whose schedule is
``asymbench.estimate``): per-seed env steps per CPU-second of each (task, trainer), read from the
benchmarks' JSON, and how threads speed a job up.

- training: ONE job per (task, method) trains all K seeds of the task together (the batched
  engine); its rate is the engine's per-seed rate at that K (``benchmarks/engine_throughput.py``:
  the "engine <trainer>" row of the task, trainer s_only, l_only, fit or asym, at the closest
  measured K). S-only and fit without a row of their own are narrower than L-only: the task's
  L-only row bounds their cost from above (labelled "upper bound"). A task without such a row
  gets its sb3 rate times the mean engine speedup of that trainer measured on the other
  (non-goal) tasks (S-only and fit: their own, else L-only's, an upper bound again); without any
  engine measurement, the sb3 rates ("sb3 engine rates"). Goal tasks (hindsight relabelling) use
  their engine rows like any other task; one without engine rows keeps the sb3 rate, the K seeds
  one after another in the one job (labelled so).
- engine rows come from every ``benchmarks/results/engine_throughput*.json`` measured on the
  CPU of one machine kind (CPU model and core count, the JSON's ``machine``): the machine of
  ``engine_throughput.json``, or this one where that file is absent. Other machines' files are
  left out, and GPU rows (``device`` cuda) everywhere, each named in the printed estimate. Where
  two files measured the same (task, trainer, K), the later measurement wins (its row's
  ``measured_utc``, else its file's ``finished_utc``; equal or unknown: the later file); the
  rate's source names its file. Files given explicitly (``--engine-throughput``) are all used,
  GPU rows excepted. Training groups on a GPU run at the per-seed WALL rates of the GPU engine
  measurements (``gpu_rate``); groups that share a GPU (``gpu_slots`` N) at the rates measured
  with N groups at once (``--concurrent N``), else at the solo ones, labelled an upper bound
  of the rate (``shared_gpu_rate``). Rows of concurrent groups never price a CPU job (they
  measure wall time).
- compiled training (``engine.compile``: ``on``, or ``auto`` on a CPU for a run of >= 100k env
  steps, as ``acceleration.auto_compiles`` decides for the run itself): the eager per-seed rate
  above times the compiled update's measured speed-up (``benchmarks/compile_speedup.py``:
  ``compile_factor``), its case named in the source; unmeasured, the eager rate (an upper bound
  of the cost, labelled).
- distillation (BC, GAIL), expert data and evaluation: one job per seed, at a measured rate per
  CPU-second (``benchmarks/train_throughput.py``, ``benchmarks/env_step_rate.py``).

A (task, trainer) that was not measured falls back, labelled as such in every output row, to the
measured speeds in the project's dependencies note, scaled by network width. A thread count only
speeds up the SAC update (``thread_scaling``: measured in benchmarks/results/thread_scaling.json,
or the issue-24 rule), the update's share of a job being 1 - its per-seed rate / the task's
env.step rate (Amdahl's law for the job).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asymbench.tasks import RegistryError, get_task


# A unit of work of the pipeline, at the rate of its trainer (the schedule, estimate.py, lists
# and orders them; the rates here price them).
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
    # fit's first segment, BC, GAIL: the folder whose final evaluations set their width (ours,
    # ours_as_sac: `student_width`); "": the registry's width, nothing to wait for
    width_from: str = "ours"
    compiled: bool = False  # a CPU training group whose update runs compiled (engine.compile)

    @property
    def k(self) -> int:
        return len(self.seeds)

    def label(self) -> str:
        seeds = f"K={self.k}" if self.stage == "train" else f"seed{self.seeds[0]}"
        at = f" to {self.end:,}" if self.stage == "train" and self.end else \
            f" at {self.end:,}" if self.end else ""
        return f"{self.method} {self.stage}{at} ({seeds})"

    def rate_key(self) -> tuple:
        """The key of its rate: (task, trainer), with the device where it is not the CPU, and
        "compiled" where its update runs compiled."""
        key = (self.task, self.trainer) if self.device == "cpu" else (self.task, self.trainer, self.device)
        return key + ("compiled",) if self.compiled else key

# The engine_throughput*.json row ("engine <row>") whose per-seed rate each trainer's group runs
# at, and, where the task has none, the row that bounds its cost from above: S-only and fit are
# narrower than L-only, so L-only's rate is an upper bound of their cost.
ENGINE_ROW = {"s_only": "s_only", "l_only": "l_only", "fit": "fit", "asym": "asym"}
UPPER_BOUND_ROW = {"s_only": "l_only", "fit": "l_only"}
# The SAC.learn reference an engine row's speedup is relative to, where the row does not name
# it (files before the s_only / fit rows had only the large one).
SB3_REFERENCE = {"s_only": "SAC.learn (small)", "fit": "SAC.learn (fit)"}


DEFAULT_ENGINE_THROUGHPUT = "benchmarks/results/engine_throughput.json"  # its machine: the kind
DEFAULT_ENGINE_GLOB = "benchmarks/results/engine_throughput*.json"         # all files, that kind's
DEFAULT_GPU_THROUGHPUT = "benchmarks/results/engine_throughput_cuda*.json"  # every GPU file
DEFAULT_COMPILE_SPEEDUP = "benchmarks/results/compile_speedup.json"


# Fallbacks: /work/shared/notes/dependencies.md, "Measured speeds" (single process, one torch
# thread, stable-baselines3 SAC, one gradient step of batch 256 per env step).
NOTE = "dependencies note"
NOTE_SAC_STEPS_PER_S = {32: 206.0, 64: 183.0, 256: 78.0}
NOTE_ENV_STEPS_PER_S = {"Swimmer": 12_000.0}
NOTE_INFERENCE_S = 79e-6  # actor forward at batch 1, PyTorch eager, [256, 256]
# Used only where neither a measurement nor the note has a figure: labelled "assumed".
ASSUMED = {"env": 3_000.0, "gail": 1_500.0, "bc": 5_000.0}


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
        if (not trainer.startswith("engine ") or (r.get("device") or file_device) != "cpu"
                or not _solo(r)):
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


def _solo(row: dict) -> bool:
    """A group measured alone: the rows that price a CPU job by its CPU time (``concurrent``
    rows measure wall time only)."""
    return (row.get("concurrent") or 1) == 1


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


def read_gpu_throughput(path: str | Path, concurrent: int = 1) -> dict[tuple[str, str], dict[int, EngineRow]]:
    """(task, "l_only" | "asym" | ...) -> {K: per-seed env steps per WALL second}, the "engine
    <trainer>" rows of benchmarks/engine_throughput.py run with ``--device cuda`` (on a GPU the
    host's CPU time no longer measures the work). ``concurrent`` N > 1: the rows of N groups
    trained at once on one GPU (``--concurrent N``), the mean of the N groups' rates."""
    data = _data(path)
    file_device = data.get("device") or "cpu"
    machine = data.get("machine") or {}
    where = f"{Path(path).name}, {machine.get('gpu') or 'GPU'}"
    found = {}
    for r in _rows(path, ("task", "trainer"), data):
        trainer = str(r["trainer"])
        if (not trainer.startswith("engine ") or (r.get("device") or file_device) != "cuda"
                or "error" in r or (r.get("concurrent") or 1) != concurrent):
            continue
        k, rate = r.get("K"), r.get("wall_steps_per_s")
        if not (isinstance(k, int) and k >= 1 and isinstance(rate, (int, float)) and rate > 0):
            raise ValueError(f"{path}: GPU row {r['task']}/{trainer} needs an integer K >= 1 and a "
                             "positive wall_steps_per_s")
        found.setdefault((r["task"], trainer[len("engine "):], k), []).append(r)
    rows = {}
    for (task, name, k), group in found.items():
        loads = [r["load"] for r in group if r.get("load")]
        label = where + (f", {concurrent} groups at once, mean of {len(group)}" if concurrent > 1 else "")
        rows.setdefault((task, name), {})[k] = EngineRow(
            k, float(np.mean([r["wall_steps_per_s"] for r in group])), group[0].get("speedup_vs_sb3"),
            label + (f", load {max(loads):.1f}" if loads else ""))
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


def shared_gpu_rate(task_name: str, trainer: str, k: int, slots: int, solo: dict, shared: dict,
                    env_rates: dict, registry: str | Path | None = None) -> Rate:
    """Per-seed wall rate of a training group on a GPU that ``slots`` groups share: ``gpu_rate``
    from the rows measured with ``slots`` groups at once (``shared``); where there are none,
    from the solo rows (``solo``), an upper bound of the rate, labelled as such."""
    if slots > 1 and shared:
        try:
            rate = gpu_rate(task_name, trainer, k, shared, env_rates, registry)
            return Rate(rate.per_cpu_s, f"{slots} per GPU: {rate.source}")
        except ValueError:  # no shared row of this trainer (or L-only): the solo rows
            pass
    rate = gpu_rate(task_name, trainer, k, solo, env_rates, registry)
    if slots > 1:
        return Rate(rate.per_cpu_s, f"upper bound of the rate, {slots} per GPU measured alone: {rate.source}")
    return rate


# ----------------------------------------------------------------------------- compiled update
@dataclass(frozen=True)
class CompileRow:
    """One compile_speedup.json case: compiled over eager per-seed CPU rate of one training group."""

    case: str
    task: str
    trainer: str  # s_only, l_only, fit or asym
    width: int    # the trainer's (asym: the large sub-policy's)
    speedup: float


def read_compile_speedup(path: str | Path) -> list[CompileRow]:
    """The cases of a benchmarks/compile_speedup.py JSON."""
    rows = []
    for r in _rows(path, ("case", "task", "method", "widths", "speedup")):
        widths = r["widths"] if isinstance(r["widths"], dict) else {}
        width = widths.get("large") or widths.get("policy")
        if not (isinstance(r["speedup"], (int, float)) and r["speedup"] > 0 and width):
            raise ValueError(f"{path}: case {r['case']} has no positive speedup or no width")
        rows.append(CompileRow(str(r["case"]), str(r["task"]), str(r["method"]), int(width),
                               float(r["speedup"])))
    return rows


def compile_factor(task_name: str, trainer: str, rows: list[CompileRow],
                   registry: str | Path | None = None) -> tuple[float, str]:
    """How much faster a compiled training group of ``trainer`` on ``task_name`` runs than the
    eager one, and whence: the task's own case of the trainer; else the cases of the same kind
    (Ours, or a plain SAC: the speed-up is the update's, which its width sets) nearest in width
    (their mean); none: 1, the eager rate (an upper bound of the cost)."""
    own = [r for r in rows if r.task == task_name and r.trainer == trainer]
    if own:
        return own[0].speedup, f"compiled x{own[0].speedup:.2f} (measured: {own[0].case})"
    kind = [r for r in rows if (r.trainer == "asym") == (trainer == "asym")]
    if kind:
        width = trainer_width(task_name, trainer, registry)
        gap = min(abs(np.log(r.width / width)) for r in kind)
        near = [r for r in kind if abs(np.log(r.width / width)) == gap]
        factor = float(np.mean([r.speedup for r in near]))
        return factor, (f"compiled x{factor:.2f} ({', '.join(r.case for r in near)}: the nearest "
                        f"width measured to {width})")
    return 1.0, "compiled, its speed-up not measured: the eager rate (an upper bound of the cost)"


def rates_for(jobs: list[Job], measured: dict, env_rates: dict | None = None,
              registry: str | Path | None = None, engine: dict | None = None,
              gpu: dict | None = None, gpu_shared: dict | None = None,
              gpu_slots: int = 1, compile_rows: list[CompileRow] | None = None) -> dict[tuple, Rate]:
    """``job.rate_key()`` -> rate of every job: training groups at the engine's per-seed rate at
    their K (a task's groups all have the same K; on a GPU that ``gpu_slots`` groups share,
    ``shared_gpu_rate``; compiled on a CPU, times ``compile_factor`` of ``compile_rows``), every
    other job at its measured rate."""
    env_rates, engine = env_rates or {}, engine or {}

    def sb3_rate(task, trainer):
        return measured.get((task, trainer)) or fallback_rate(task, trainer, measured, env_rates, registry)

    rates = {}
    for job in jobs:
        key = job.rate_key()
        if key in rates:
            continue
        if job.stage == "train" and job.device == "cuda":
            rates[key] = shared_gpu_rate(job.task, job.trainer, job.k, gpu_slots, gpu or {},
                                         gpu_shared or {}, env_rates, registry)
        elif job.stage == "train":
            rate = engine_rate(job.task, job.trainer, job.k, engine, sb3_rate, registry)
            if job.compiled:
                factor, why = compile_factor(job.task, job.trainer, compile_rows or [], registry)
                rate = Rate(rate.per_cpu_s * factor, f"{rate.source}; {why}")
            rates[key] = rate
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


def _paths(given, default_glob: str) -> list[str]:
    """None: the default files that exist; a path or a list: those."""
    if given is None:
        folder, pattern = default_glob.rsplit("/", 1)
        return sorted(str(p) for p in Path(folder).glob(pattern))
    return [str(given)] if isinstance(given, (str, Path)) else [str(p) for p in given]
