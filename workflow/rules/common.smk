# Helper functions of the asymbench workflow: config checks, target lists and the command-line
# options each scale adds. Rules only wire these to `asymbench` commands.

import hashlib
import json
import math
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

from asymbench.acceleration import compile_choice
from asymbench.runs import damaged_json_files
from asymbench.tables import METHODS, RL_METHODS, TABLES, methods_of
from asymbench.tasks import RegistryError, load_registry


def load_pipeline_registry(config):
    """The task registry of config field `registry` (a YAML file; default: the packaged one),
    validated whole. Planning reads it here; every job that reads a registry gets the same file
    (`--registry`, see registry_option); evaluate, expert and distill read a run's config.json."""
    path = config.get("registry")
    if path is not None and (not isinstance(path, str) or not path):
        raise WorkflowError(f"config field 'registry': got {path!r}; expected the path of a task "
                            "registry YAML file")
    try:
        return load_registry(str(Path(path).resolve()) if path else None)
    except RegistryError as exc:
        raise WorkflowError(f"config field 'registry': {exc}") from None


REGISTRY = load_pipeline_registry(config)
# Result folder name -> `asymbench train --method`; "ours_no_cost" is Ours with --lam 0 (Table 5),
# "ours_as_sac" Ours with --asym-action-noise as_sac (the `mcc_grid` target).
TRAIN_METHOD = {"s_only": "s_only", "l_only": "l_only", "ours": "asym", "ours_no_cost": "asym",
                "fit": "fit", "ours_as_sac": "asym"}
# The `pareto` target's Ours runs: "ours_lam<factor>" = Ours at factor x its lambda, and
# "ours_as_sac_lam<factor>" the same with the sub-policies' noise as SAC's (pareto.smk).
PARETO_METHOD = r"ours(?:_as_sac)?_lam\d+(?:\.\d+)?"
# `pareto.variant` -> (the Ours folder of factor 1, the figure's file-name suffix)
PARETO_VARIANTS = {"dropped": ("ours", ""), "as_sac": ("ours_as_sac", "_as_sac")}


def pareto_factors():
    return [float(f) for f in config.get("pareto", {}).get("lambda_factors", [])]


def pareto_variant():
    return config.get("pareto", {}).get("variant", "dropped")


def pareto_method(factor, variant="dropped"):
    """Result folder of Ours at ``factor`` x lambda: "ours_lam0.333" (no exponent: 1e-5 ->
    "ours_lam0.00001"; as SAC: "ours_as_sac_lam0.333"). Factor 1 is Ours itself (of the
    variant) and, for the dropped noise, factor 0 is Ours without cost term: their runs are
    reused rather than trained twice."""
    import numpy as np

    ours = PARETO_VARIANTS[variant][0]
    if factor == 1:
        return ours
    if factor == 0 and variant == "dropped":
        return "ours_no_cost"
    return f"{ours}_lam" + np.format_float_positional(float(factor), trim="-")


def train_method_of(method):
    """`asymbench train --method` of a result folder name (pareto folders train `asym`)."""
    return "asym" if re.fullmatch(PARETO_METHOD, method) else TRAIN_METHOD[method]


def cost_weight(task, method):
    """`--lam` of a result folder: Ours the config's `lambda` override (None: the registry's),
    Ours without cost term 0, "ours_lam<f>" f x Ours' lambda; None for single-policy methods."""
    base = config["lambda"].get(task)
    if method in ("ours", "ours_as_sac"):
        return base
    if method == "ours_no_cost":
        return 0
    if re.fullmatch(PARETO_METHOD, method):
        factor = float(method.rsplit("_lam", 1)[1])
        return float(f"{factor * (REGISTRY[task].cost_weight if base is None else base):.12g}")
    return None


def _number(value):
    for kind in (int, float):
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    return value


def read_command_line_numbers(config):
    """`--config 'seeds=[0, 1]'` or `'lambda={Swimmer: 2e-4}'` arrive as strings (snakemake
    parses nested values with YAML's BaseLoader); read them as numbers so that the schema
    checks values, not their spelling. Anything that is no number stays as it is, for the
    schema to reject."""
    if isinstance(config.get("seeds"), list):
        config["seeds"] = [_number(s) if isinstance(s, str) else s for s in config["seeds"]]
    if isinstance(config.get("lambda"), dict):
        config["lambda"] = {t: _number(v) if isinstance(v, str) else v for t, v in config["lambda"].items()}
    if isinstance(config.get("pareto"), dict) and isinstance(config["pareto"].get("lambda_factors"), list):
        config["pareto"]["lambda_factors"] = [_number(f) if isinstance(f, str) else f
                                              for f in config["pareto"]["lambda_factors"]]
    if isinstance(config.get("grid"), dict) and isinstance(config["grid"].get("seeds"), str):
        config["grid"]["seeds"] = _number(config["grid"]["seeds"])
    # e.g. 'scales={smoke: {steps: 500, resources: {train: {runtime: 20}}}}' (merged into the scale)
    if isinstance(config.get("scales"), dict):
        config["scales"] = {name: _scale_numbers(s) for name, s in config["scales"].items()}


def _scale_numbers(value, key=None):
    """Numbers (and null) spelt as text in a scale's settings, read as such; task names stay text."""
    if isinstance(value, dict):
        return {k: _scale_numbers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return value if key == "tasks" else [_scale_numbers(v) for v in value]
    if isinstance(value, str) and key != "tasks":
        return None if value in ("null", "Null", "NULL", "~") else _number(value)
    return value


def _non_finite(value, field=""):
    """(field, value) of the first NaN / infinite number in the config (schemas let NaN pass)."""
    if isinstance(value, float) and not math.isfinite(value):
        return field, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{field}.{key}" if field else str(key))
        if found:
            return found
    return None


def check_config():
    """Fails before any job starts, naming the config field, where the schema cannot tell:
    task names (the registry lists them), the scale (the keys of `scales`) and NaN / inf."""
    bad = _non_finite(config)
    if bad:
        raise WorkflowError(f"config field '{bad[0]}': got {bad[1]}; expected a finite number")
    if config["scale"] not in config["scales"]:
        raise WorkflowError(f"config field 'scale': unknown scale '{config['scale']}'; "
                            f"defined scales: {', '.join(config['scales'])}")
    # Only the lists this run uses: another scale's may name tasks of another registry.
    name, s = config["scale"], config["scales"][config["scale"]]
    lists = ({"tasks": config["tasks"]} if config.get("tasks") else {f"scales.{name}.tasks": s["tasks"]})
    lists[f"scales.{name}.per_task"] = list(s.get("per_task", {}))
    lists["lambda"] = list(config["lambda"])
    for field, names in lists.items():
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise WorkflowError(f"config field '{field}': unknown task(s) {', '.join(unknown)}; "
                                f"known tasks: {', '.join(REGISTRY)}")


def check_results(scale):
    """Before any job starts: the evaluations and run summaries of this run's tasks are intact.
    A corrupt one would make every job that reads it fail, after Snakemake deleted that job's
    finished outputs; this error names the file and how to rebuild it, and nothing is deleted."""
    folders = [Path("results") / scale / task for task in tasks_of(scale)]
    for path, problem in damaged_json_files(folders, ("eval.json", "run.json")):
        maker = "`asymbench evaluate`" if path.name == "eval.json" else "its training group"
        raise WorkflowError(f"{path} is corrupt ({problem}): delete it and rerun snakemake, which "
                            f"rebuilds it ({maker}); nothing was run or deleted")


def task_entry_digest(wildcards):
    """A digest of the task's resolved registry entry (config `registry` or the packaged one):
    a `params` value of the training rules, so that a change to the entry retrains that
    task's runs (Snakemake's params rerun trigger), and only those."""
    settings = json.dumps(REGISTRY[wildcards.task].settings, sort_keys=True, default=str)
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


def alternatives(names):
    """A wildcard constraint matching exactly ``names``."""
    return "|".join(re.escape(n) for n in names)


def scale_of(wildcards):
    """The scale of a job: its {scale} wildcard, or for tables its {scaledir} ("" = paper)."""
    if "scale" in wildcards.keys():
        return wildcards.scale
    return Path(wildcards.scaledir).name or "paper"


def settings(wildcards):
    """The scale's settings; for a job with a {task} wildcard, with that task's `per_task`
    overrides of the scale merged in."""
    return task_settings(scale_of(wildcards), wildcards.task if "task" in wildcards.keys() else None)


def task_settings(scale, task=None):
    s = config["scales"][scale]
    return {**s, **s.get("per_task", {}).get(task, {})}


# ----------------------------------------------------------------------------- segments
# A run of budget T trains in segments that end at the scale's milestones, then at T: one job
# per segment, each resuming from the group checkpoint its predecessor left (train.smk).
def budget_of(scale, task):
    """Env steps of a task's training runs at a scale (the registry's budget unless set)."""
    return task_settings(scale, task)["steps"] or REGISTRY[task].total_steps


def milestones_of(scale, task):
    """The milestones below the budget at which a task's runs are snapshotted."""
    return list(task_settings(scale, task).get("milestones", []))


def segment_ends(scale, task):
    return milestones_of(scale, task) + [budget_of(scale, task)]


def check_milestones(scale):
    """Milestones increase and lie below each task's budget (the schema checks they are integers)."""
    for task in tasks_of(scale):
        steps, budget = milestones_of(scale, task), budget_of(scale, task)
        field = (f"scales.{scale}.per_task.{task}.milestones"
                 if "milestones" in config["scales"][scale].get("per_task", {}).get(task, {})
                 else f"scales.{scale}.milestones")
        if steps != sorted(set(steps)) or (steps and steps[-1] >= budget):
            raise WorkflowError(f"config field '{field}': got {steps} for task {task}; expected "
                                f"strictly increasing env steps below its budget of {budget:,}")


def previous_end(scale, task, step):
    """The segment end before ``step`` (0: the first segment)."""
    ends = segment_ends(scale, task)
    return ([0] + ends)[ends.index(int(step))]


def segment_dirs(wildcards, step):
    """A group's snapshot markers at ``step`` (its run.json files at the budget)."""
    seeds = seeds_of(wildcards.scale, wildcards.task)
    base = f"results/{wildcards.scale}/{wildcards.task}/{wildcards.method}"
    if int(step) == budget_of(wildcards.scale, wildcards.task):
        return [f"{base}/seed{s}/run.json" for s in seeds]
    return [f"{base}/milestones/{step}/seed{s}/snapshot.json" for s in seeds]


def segment_inputs(step_of):
    """Inputs of the segment ending at ``step_of(wildcards)``: its predecessor's snapshots and,
    for fit, the evaluations that set its width (`student_width` ours or ours_as_sac)."""

    def inputs(wildcards):
        start = previous_end(wildcards.scale, wildcards.task, step_of(wildcards))
        found = {"previous": segment_dirs(wildcards, start)} if start else {}
        if wildcards.method == "fit":
            found["width_from"] = student_width_inputs(wildcards)
        return found

    return inputs


def segment_options(step_of):
    """--segment-start of a segment (and fit's width)."""

    def options(wildcards, input):
        start = previous_end(wildcards.scale, wildcards.task, step_of(wildcards))
        parts = [f"--segment-start {start}" if start else ""]
        if wildcards.method == "fit":
            parts.append(student_width_option(wildcards, input))
        return " ".join(filter(None, parts))

    return options


def from_records(path):
    """A run folder's file, or with config `from_records` its collected record
    (results/<scale>/records/..., `workflow/campaign.sh collect`), made by no job: milestone
    tables and verdict figures are then rebuilt from the records alone, nothing trained."""
    if not config.get("from_records"):
        return path
    return re.sub(r"^results/([^/]+)/", r"results/\1/records/", path)


def milestone_eval(scale, task, method, seed, step):
    """The evaluation of a run at ``step``: a snapshot's, or the finished run's at the budget."""
    if int(step) == budget_of(scale, task):
        return from_records(result(scale, task, method, seed, "eval.json"))
    return from_records(f"results/{scale}/{task}/{method}/milestones/{step}/seed{seed}/eval.json")


def milestone_tasks(scale, step):
    return [t for t in tasks_of(scale) if int(step) in segment_ends(scale, t)]


def milestone_table_inputs(wildcards):
    scale, step = wildcards.scale, int(wildcards.step)
    tasks = milestone_tasks(scale, step)
    if not tasks:
        raise WorkflowError(f"no task of scale '{scale}' has a milestone at step {step:,}; its "
                            f"milestones: {sorted({m for t in tasks_of(scale) for m in segment_ends(scale, t)})}")
    return {m: [milestone_eval(scale, t, m, s, step) for t in tasks for s in seeds_of(scale, t)]
            for m in methods_of(wildcards.table)}


def milestone_label(wildcards):
    """The scale column of a milestone table: the scale, the milestone and its budget fraction."""
    scale, step = wildcards.scale, int(wildcards.step)
    fractions = sorted({step / budget_of(scale, t) for t in milestone_tasks(scale, step)})
    share = ", ".join(f"{100 * f:.3g}%" for f in fractions)
    return shlex.quote(f"{scale} at {step:,} env steps ({share} of the budget)")


MILESTONE_TABLES = ("table3", "table5")


def reached_ends(scale, task, methods):
    """The segment ends of a task that every run of ``methods`` has reached (markers on disk)."""
    return [step for step in segment_ends(scale, task)
            if all(Path(from_records(marker)).exists() for method in methods
                   for marker in segment_dirs(Wildcards(scale, task, method), step))]


def reached_milestone_tables(wildcards):
    """The `milestones` target: the tables (both protocols: one evaluation holds both) of every
    milestone that all of its tasks' runs of a table have reached (snapshots, or records, on disk), and each
    task's verdict figure over the milestones it reached; nothing is trained for it."""
    scale, targets = SCALE, []
    steps = sorted({m for t in tasks_of(scale) for m in segment_ends(scale, t)})
    for step in steps:
        for table in MILESTONE_TABLES:
            if all(step in reached_ends(scale, t, methods_of(table)) for t in milestone_tasks(scale, step)):
                targets += [f"paper_tables/{scale}/milestones/{step}/{protocoldir}{table}.{ext}"
                            for protocoldir in ("", "stochastic/") for ext in ("csv", "md", "tex")]
    targets += [f"results/{scale}/figures/verdict_{t}.{ext}" for t in tasks_of(scale)
                if reached_ends(scale, t, VERDICT_METHODS) for ext in ("png", "pdf", "csv")]
    if not targets:
        print(f"milestones: no milestone of scale '{scale}' is reached by every run of a table yet")
    return targets


VERDICT_METHODS = ("s_only", "l_only", "ours")  # asymbench.figures.MILESTONE_METHODS


def verdict_figure_inputs(wildcards):
    """Evaluations of S-only, L-only and Ours at every milestone the task's runs have reached
    (the first milestone if none is reached yet), named by method."""
    scale, task = wildcards.scale, wildcards.task
    steps = reached_ends(scale, task, VERDICT_METHODS) or segment_ends(scale, task)[:1]
    return {m: [milestone_eval(scale, task, m, s, step) for step in steps for s in seeds_of(scale, task)]
            for m in VERDICT_METHODS}


class Wildcards:
    """The wildcards a helper reads, for calls outside a job."""

    def __init__(self, scale, task, method):
        self.scale, self.task, self.method = scale, task, method


def tasks_of(scale):
    """Top-level `tasks`, when given, replace the scale's own list (likewise `seeds`)."""
    return config.get("tasks") or config["scales"][scale]["tasks"]


def seeds_of(scale, task=None):
    """Top-level `seeds`, else the grid's seed count for its task at its scales, else the task's
    `per_task` seeds in the scale, else the scale's."""
    s = config["scales"][scale]
    return (config.get("seeds") or grid_seeds(scale, task)
            or s.get("per_task", {}).get(task, {}).get("seeds") or s["seeds"])


def tables_dir(scale):
    """The paper scale's tables live in paper_tables/; every other scale's in its own folder."""
    return "paper_tables" if scale == "paper" else f"paper_tables/{scale}"


def resource(kind, key):
    """A per-scale job resource from config (`scales.<scale>.resources.<kind>.<key>`)."""
    return lambda wildcards: settings(wildcards)["resources"][kind][key]


def _options(pairs):
    """Command-line options for the values that are set (None: leave the registry's default)."""
    return " ".join(f"{flag} {value}" for flag, value in pairs if value is not None)


def registry_option(wildcards=None):
    """`--registry FILE` when the config names a registry (jobs read the file planning read)."""
    path = config.get("registry")
    return f"--registry {shlex.quote(str(Path(path).resolve()))}" if path else ""


def train_options(wildcards):
    s = settings(wildcards)
    asym = train_method_of(wildcards.method) == "asym"
    lam = cost_weight(wildcards.task, wildcards.method)
    options = _options([("--steps", s["steps"]), ("--learning-starts", s["learning_starts"]),
                        ("--master-learning-starts", s["master_learning_starts"] if asym else None),
                        ("--max-episode-steps", s["max_episode_steps"]),
                        ("--checkpoint-every", s["checkpoint_every"]), ("--lam", lam),
                        ("--asym-action-noise", "as_sac" if wildcards.method.startswith("ours_as_sac") else None),
                        ("--device", "cuda" if train_device(wildcards) == "cuda" else None),
                        ("--compile", train_compile(s)), ("--env-workers", s.get("env_workers") or None)])
    return " ".join(filter(None, [options, registry_option()]))


# ----------------------------------------------------------------------------- threads, device
# A training job's threads and device (train.smk): a scale's `train_threads` and `device`
# (per_task too), each one value or one per result folder, or for threads the plan of
# `asymbench estimate --out` named by config `thread_plan` (its scale's jobs only).
def per_method(value, method, default):
    """A setting given once (4) or per result folder ({ours: 4, fit: 2}; others: ``default``)."""
    if isinstance(value, dict):
        return value.get(method, default)
    return default if value is None else value


def load_thread_plan(config):
    """(scale, {(task, method): threads}) of config `thread_plan`; (None, {}) without one."""
    path = config.get("thread_plan")
    if not path:
        return None, {}
    try:
        data = json.loads(Path(path).read_text())
        plan = data["thread_plan"]
        threads = {(r["task"], r["method"]): r["threads"] for r in plan}
        scale = data["scale"]["name"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkflowError(f"config field 'thread_plan': {path} is not a plan of `asymbench estimate "
                            f"--out` ({type(exc).__name__}: {exc})") from None
    bad = {key: t for key, t in threads.items() if not isinstance(t, int) or t < 1}
    if bad:
        raise WorkflowError(f"config field 'thread_plan': {path} gives {bad}; expected threads >= 1")
    return scale, threads


THREAD_PLAN = load_thread_plan(config)


def train_threads(wildcards):
    """Threads of a training job: the thread plan's for its (task, method) where the plan is of
    its scale, else the scale's `train_threads` (default 1). --cores N caps them."""
    scale, planned = THREAD_PLAN
    if scale == wildcards.scale and (wildcards.task, wildcards.method) in planned:
        return planned[(wildcards.task, wildcards.method)]
    return per_method(settings(wildcards).get("train_threads"), wildcards.method, 1)


def train_device(wildcards):
    """cpu or cuda: the scale's `device` for the job's result folder (default cpu)."""
    return per_method(settings(wildcards).get("device"), wildcards.method, "cpu")


def train_compile(s):
    """--compile of a training job: the scale's `compile` where not auto, the CLI's default."""
    value = compile_choice(s.get("compile", "auto"))
    return None if value == "auto" else value


def gpu_slots(wildcards):
    """How many training groups share one GPU: the scale's `gpu_slots` (default 1)."""
    return settings(wildcards).get("gpu_slots", 1)


def train_gpu_slots(wildcards):
    """The `gpu_slot` resource of a training job, in 1/`gpu_slots` of a GPU: 1 on cuda (local:
    --resources gpu_slot=<GPUs x gpu_slots> admits that many at once), else 0."""
    return int(train_device(wildcards) == "cuda")


def train_gpus(wildcards):
    """The `gpu` resource of a training job (SLURM: --gpus=1): 1 on cuda where it has a GPU of
    its own (`gpu_slots` 1; local: --resources gpu=N still admits N at once), else 0."""
    return int(train_device(wildcards) == "cuda" and gpu_slots(wildcards) == 1)


def train_gres(wildcards):
    """The `gres` resource of a training job (SLURM: --gres): "shard:1" on cuda where
    `gpu_slots` > 1 groups share a GPU (SLURM's GPU sharding, configured by the site), else
    none."""
    return "shard:1" if train_device(wildcards) == "cuda" and gpu_slots(wildcards) > 1 else None


def train_cpus(wildcards, threads):
    """SLURM's cpus_per_task of a training job: its threads (the profile's default is 1)."""
    return threads


def expert_options(wildcards):
    s = settings(wildcards)
    return _options([("--trajectories", s["expert_trajectories"]), ("--length", s["expert_length"])])


def distill_options(wildcards):
    s = settings(wildcards)
    return _options([("--epochs", s["bc_epochs"] if wildcards.method == "bc" else None),
                     ("--steps", s["gail_steps"] if wildcards.method == "gail" else None)])


def evaluate_options(wildcards):
    s = settings(wildcards)
    return _options([("--episodes", s["eval_episodes"]), ("--seed", s["eval_seed"]),
                     ("--max-episode-steps", s["max_episode_steps"])])


def run_dir(wildcards, output):
    return str(Path(output.run).parent)


def group_dir(wildcards, output):
    """The folder holding a training group's seed<S>/ run folders."""
    return str(Path(output.runs[0]).parent.parent)


def input_run_dir(wildcards, input):
    return str(Path(input.run).parent)


def result(scale, task, method, seed, name):
    return f"results/{scale}/{task}/{method}/seed{seed}/{name}"


def table_inputs(wildcards):
    """Evaluation JSONs of every task and seed, named by method, for the methods a table reads."""
    scale = scale_of(wildcards)
    return {m: [result(scale, t, m, s, "eval.json") for t in tasks_of(scale) for s in seeds_of(scale, t)]
            for m in methods_of(wildcards.table)}


def curve_inputs(wildcards):
    return {m: [result(wildcards.scale, wildcards.task, m, s, "run.json")
                for s in seeds_of(wildcards.scale, wildcards.task)] for m in RL_METHODS}


def method_options(wildcards, input):
    """`asymbench tables` / `figures curves` options from a rule's inputs named by method,
    e.g. "--s-only a.json b.json --ours c.json d.json"."""
    return " ".join(f"--{name.replace('_', '-')} {' '.join(getattr(input, name))}"
                    for name in input.keys())


def figure_seed(wildcards):
    """The seed whose traced episode a timeline shows: the scale's first."""
    return seeds_of(wildcards.scale, wildcards.task)[0]


def timeline_input(name):
    return lambda wildcards: result(wildcards.scale, wildcards.task, "ours", figure_seed(wildcards), name)


def figures_of(scale):
    return [f"results/{scale}/figures/{kind}_{task}.{ext}" for task in tasks_of(scale)
            for kind in ("timeline", "curves", "tradeoff") for ext in ("png", "pdf")]


def committed_verdict_tables(wildcards):
    """Every table3.csv and noise x budget grid under paper_tables/ that exists now (the verdict
    figure across tasks)."""
    from asymbench.glance import table_files

    return [str(p) for p in table_files("paper_tables")]


def tables_of(scale, tables=("table3", "table4", "table5")):
    return [f"{tables_dir(scale)}/{table}.{ext}" for table in tables for ext in ("csv", "md", "tex")]


# ----------------------------------------------------------------------------- estimate
MEASUREMENTS = {"throughput": sorted(str(p) for p in Path("benchmarks/results").glob("train_throughput*.json")),
                "engine_throughput": sorted(str(p) for p in Path("benchmarks/results").glob("engine_throughput*.json")),
                "env_rates": [p for p in ["benchmarks/results/env_step_rate.json"] if Path(p).exists()],
                "thread_scaling": [p for p in ["benchmarks/results/thread_scaling.json"] if Path(p).exists()]}


def estimate_cores(wildcards):
    """--cores N of this invocation, else --jobs N (cluster executors), else 16."""
    for name in ("cores", "nodes"):
        try:
            value = getattr(workflow, name)
        except WorkflowError:
            value = None
        if isinstance(value, int) and value > 0:
            return value
    return 16


def estimate_options(wildcards, input):
    options = [f"--tasks {' '.join(tasks_of(SCALE))}"]
    if config.get("seeds"):  # else each task's seeds of the scale (its per_task ones included)
        options.append(f"--seeds {' '.join(str(s) for s in config['seeds'])}")
    # The engine files are inputs (a new measurement reruns the rule) but not options: by
    # default `asymbench estimate` reads those of one machine kind and leaves out GPU runs.
    options += [f"--{key.replace('_', '-')} {' '.join(paths)}" for key, paths in MEASUREMENTS.items()
                if paths and key != "engine_throughput"]
    if workflow.configfiles:
        options.append(f"--config {workflow.configfiles[-1]}")
    if registry_option():
        options.append(registry_option())
    return " ".join(options)


# ----------------------------------------------------------------------------- trade-off, Pareto
def tradeoff_inputs(wildcards):
    """Every method's evaluations of one task (the task's seeds), named by method (figures.smk)."""
    return {m: [result(wildcards.scale, wildcards.task, m, s, "eval.json")
                for s in seeds_of(wildcards.scale, wildcards.task)] for m in METHODS}


PARETO_BASELINES = ("s_only", "l_only", "fit", "bc", "gail")


def pareto_targets(wildcards):
    if not pareto_factors():
        raise WorkflowError("config field 'pareto.lambda_factors': the pareto target needs "
                            "at least one factor")
    suffix = PARETO_VARIANTS[pareto_variant()][1]
    return [f"results/{SCALE}/figures/pareto_{task}{suffix}.{ext}" for task in tasks_of(SCALE)
            for ext in ("png", "pdf", "csv")]


def pareto_inputs(wildcards):
    """Evaluations of one task: the baselines named by method, the sweep as lam0, lam1, ...
    (in the order of `pareto.lambda_factors`), of the variant the figure's name gives (with
    `from_records`, the collected records: the figure rebuilds with nothing trained)."""
    variant = next(v for v, (_, suffix) in PARETO_VARIANTS.items() if suffix == wildcards.variant)
    seeds = seeds_of(wildcards.scale, wildcards.task)

    def evaluations(method):
        return [from_records(result(wildcards.scale, wildcards.task, method, s, "eval.json")) for s in seeds]

    inputs = {m: evaluations(m) for m in PARETO_BASELINES}
    for i, factor in enumerate(pareto_factors()):
        inputs[f"lam{i}"] = evaluations(pareto_method(factor, variant))
    return inputs


def pareto_options(wildcards, input):
    """"--s-only a.json ... --point 0.1 b.json ..." for `asymbench figures pareto`."""
    options = [f"--{m.replace('_', '-')} {' '.join(getattr(input, m))}" for m in PARETO_BASELINES]
    options += [f"--point {factor:g} {' '.join(getattr(input, f'lam{i}'))}"
                for i, factor in enumerate(pareto_factors())]
    return " ".join(options)


# ----------------------------------------------------------------------------- noise x budget grid
# Ours' sub-policy noise settings of the grid (config `grid.variants`) and their result folders.
GRID_VARIANTS = {"dropped": "ours", "as_sac": "ours_as_sac"}


def grid_seeds(scale, task):
    """Seeds 0 .. `grid.seeds` - 1 of the grid's task at each of its scales (None elsewhere, or
    without `grid.seeds`): a larger count adds seeds of the same streams, the first unchanged."""
    grid = config.get("grid") or {}
    if grid.get("seeds") and task == grid.get("task") and scale in grid.get("scales", ()):
        return list(range(int(grid["seeds"])))
    return None


def grid_methods():
    """S-only, L-only and Ours of each noise setting of config `grid.variants` (default both)."""
    variants = (config.get("grid") or {}).get("variants") or list(GRID_VARIANTS)
    return ("s_only", "l_only", *(GRID_VARIANTS[v] for v in variants))


def grid_scales():
    """The scales of the `mcc_grid` target (config `grid`), each checked to give the task the
    chosen scale's seeds and milestones: the train rules, made for the chosen scale, serve them."""
    grid = config.get("grid")
    if not grid:
        return []
    task = grid["task"]
    if task not in REGISTRY:
        raise WorkflowError(f"config field 'grid.task': unknown task '{task}'; known tasks: {', '.join(REGISTRY)}")
    for scale in grid["scales"]:
        if scale not in config["scales"]:
            raise WorkflowError(f"config field 'grid.scales': unknown scale '{scale}'; defined "
                                f"scales: {', '.join(config['scales'])}")
        if task not in config["scales"][scale]["tasks"]:
            raise WorkflowError(f"config field 'grid.scales': scale '{scale}' has no task {task}")
    return list(grid["scales"])


def check_grid():
    """Fails before any job starts when the chosen scale is one of the grid's and another grid
    scale's seeds or milestones of the task differ from its own."""
    scales = grid_scales()
    task = config.get("grid", {}).get("task")
    if SCALE not in scales or task not in tasks_of(SCALE):
        return
    for scale in scales:
        for what, of in (("seeds", seeds_of), ("milestones", milestones_of)):
            if of(scale, task) != of(SCALE, task):
                raise WorkflowError(f"config field 'grid.scales': scale '{scale}' gives {task} the "
                                    f"{what} {of(scale, task)}, scale '{SCALE}' {of(SCALE, task)}; "
                                    "the grid's scales must agree on them")


def grid_targets(wildcards=None):
    grid = config.get("grid")
    if not grid:
        raise WorkflowError("config field 'grid': the mcc_grid target needs a grid (name, task, scales)")
    if SCALE not in grid_scales() or grid["task"] not in tasks_of(SCALE):
        raise WorkflowError(f"config field 'grid.scales': the mcc_grid target runs with one of "
                            f"its scales chosen and training {grid['task']} (--config "
                            f"scale={grid['scales'][0]}); the chosen scale is '{SCALE}'")
    return [f"{tables_dir(SCALE)}/variants/{grid['name']}.{ext}" for ext in ("csv", "md")]


def grid_inputs(wildcards):
    """Evaluations of the grid's task at every grid scale, named by method."""
    task = config["grid"]["task"]
    return {m: [from_records(result(scale, task, m, s, "eval.json")) for scale in grid_scales()
                for s in seeds_of(scale, task)] for m in grid_methods()}


def grid_label(wildcards):
    return shlex.quote(" + ".join(grid_scales()))


# ----------------------------------------------------------------------------- students' width
def student_width(wildcards):
    """`student_width` of the job's scale and task: ours (default), ours_as_sac or paper."""
    return settings(wildcards).get("student_width", "ours")


def student_width_inputs(wildcards):
    """The evaluations of every seed of the task whose mean Avg-FLOPs/Inf sets the one width of
    fit, BC and GAIL: Ours' (`student_width: ours`) or Ours-as-SAC's (`ours_as_sac`, its folder);
    none for `paper`."""
    if student_width(wildcards) == "paper":
        return []
    return [result(wildcards.scale, wildcards.task, student_width(wildcards), s, "eval.json")
            for s in seeds_of(wildcards.scale, wildcards.task)]


def student_width_option(wildcards, input):
    """`--width-from` Ours' evaluations, or `--width` the registry's paper_fit_width."""
    if student_width(wildcards) == "paper":
        width = REGISTRY[wildcards.task].paper_fit_width
        if width is None:
            raise WorkflowError(f"config field 'student_width': paper needs the registry's "
                                f"paper_fit_width of task {wildcards.task}, which it does not set")
        return f"--width {width}"
    return f"--width-from {' '.join(input.width_from)}"


# ----------------------------------------------------------------------------- aggregate over tasks
def aggregate_inputs(wildcards):
    """Evaluation JSONs of every task and seed of the scale, named by method, for the aggregate
    over tasks and its performance profile (tables.smk)."""
    from asymbench.tables import AGGREGATE_METHODS

    scale = scale_of(wildcards)
    return {m: [result(scale, t, m, s, "eval.json") for t in tasks_of(scale) for s in seeds_of(scale, t)]
            for m in AGGREGATE_METHODS}


def aggregate_of(scale):
    """The aggregate over tasks and its performance profile (deterministic protocol), asked for
    only where they can be computed: the scale's runs.csv (a checkpoint) is read first, so that
    no empty table or figure is ever written."""
    from asymbench.tables import aggregate_computable

    def targets(wildcards):
        runs = checkpoints.runs_table.get(scaledir="" if scale == "paper" else f"{scale}/").output.csv
        if not aggregate_computable(runs, registry=config.get("registry")):
            return []
        return [f"{tables_dir(scale)}/{name}" for name in
                ("aggregate.csv", "aggregate.md", "performance_profile.png", "performance_profile.pdf")]

    return targets


def runs_inputs(wildcards):
    """Evaluation JSONs of every task and seed of the scale, named by method, for runs.csv."""
    from asymbench.tables import METHODS

    scale = scale_of(wildcards)
    return {m: [result(scale, t, m, s, "eval.json") for t in tasks_of(scale) for s in seeds_of(scale, t)]
            for m in METHODS}


def protocol_of(wildcards):
    """The evaluation protocol of a table job: its {protocoldir} ("" or "stochastic/")."""
    return "stochastic" if wildcards.protocoldir else "deterministic"


def verdict_delta(wildcards=None):
    """`--delta` of the verdicts: the config's `verdict_delta` (default 0.2)."""
    return config.get("verdict_delta", 0.2)
