# Helper functions of the asymbench workflow: config checks, target lists and the command-line
# options each scale adds. Rules only wire these to `asymbench` commands.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from asymbench.tables import RL_METHODS, TABLES, methods_of
from asymbench.tasks import load_registry

REGISTRY = load_registry()
# Result folder name -> `asymbench train --method`; "ours_no_cost" is Ours with --lam 0 (Table 5).
TRAIN_METHOD = {"s_only": "s_only", "l_only": "l_only", "ours": "asym", "ours_no_cost": "asym",
                "fit": "fit"}


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


def check_config():
    """Fails before any job starts, naming the config field, where the schema cannot tell:
    task names (the registry lists them) and the scale (the keys of `scales`)."""
    if config["scale"] not in config["scales"]:
        raise WorkflowError(f"config field 'scale': unknown scale '{config['scale']}'; "
                            f"defined scales: {', '.join(config['scales'])}")
    lists = {f"scales.{name}.tasks": s["tasks"] for name, s in config["scales"].items()}
    lists["tasks"] = config.get("tasks", [])
    lists["lambda"] = list(config["lambda"])
    for field, names in lists.items():
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise WorkflowError(f"config field '{field}': unknown task(s) {', '.join(unknown)}; "
                                f"known tasks: {', '.join(REGISTRY)}")


def alternatives(names):
    """A wildcard constraint matching exactly ``names``."""
    return "|".join(re.escape(n) for n in names)


def scale_of(wildcards):
    """The scale of a job: its {scale} wildcard, or for tables its {scaledir} ("" = paper)."""
    if "scale" in wildcards.keys():
        return wildcards.scale
    return Path(wildcards.scaledir).name or "paper"


def settings(wildcards):
    return config["scales"][scale_of(wildcards)]


def tasks_of(scale):
    """Top-level `tasks`, when given, replace the scale's own list (likewise `seeds`)."""
    return config.get("tasks") or config["scales"][scale]["tasks"]


def seeds_of(scale):
    return config.get("seeds") or config["scales"][scale]["seeds"]


def tables_dir(scale):
    """The paper scale's tables live in paper_tables/; every other scale's in its own folder."""
    return "paper_tables" if scale == "paper" else f"paper_tables/{scale}"


def resource(kind, key):
    """A per-scale job resource from config (`scales.<scale>.resources.<kind>.<key>`)."""
    return lambda wildcards: settings(wildcards)["resources"][kind][key]


def _options(pairs):
    """Command-line options for the values that are set (None: leave the registry's default)."""
    return " ".join(f"{flag} {value}" for flag, value in pairs if value is not None)


def train_options(wildcards):
    s = settings(wildcards)
    asym = TRAIN_METHOD[wildcards.method] == "asym"
    lam = {"ours": config["lambda"].get(wildcards.task), "ours_no_cost": 0}.get(wildcards.method)
    return _options([("--steps", s["steps"]), ("--learning-starts", s["learning_starts"]),
                     ("--master-learning-starts", s["master_learning_starts"] if asym else None),
                     ("--max-episode-steps", s["max_episode_steps"]),
                     ("--checkpoint-every", s["checkpoint_every"]), ("--lam", lam)])


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


def input_run_dir(wildcards, input):
    return str(Path(input.run).parent)


def result(scale, task, method, seed, name):
    return f"results/{scale}/{task}/{method}/seed{seed}/{name}"


def table_inputs(wildcards):
    """Evaluation JSONs of every task and seed, named by method, for the methods a table reads."""
    scale = scale_of(wildcards)
    return {m: [result(scale, t, m, s, "eval.json") for t in tasks_of(scale) for s in seeds_of(scale)]
            for m in methods_of(wildcards.table)}


def curve_inputs(wildcards):
    return {m: [result(wildcards.scale, wildcards.task, m, s, "run.json")
                for s in seeds_of(wildcards.scale)] for m in RL_METHODS}


def method_options(wildcards, input):
    """`asymbench tables` / `figures curves` options from a rule's inputs named by method,
    e.g. "--s-only a.json b.json --ours c.json d.json"."""
    return " ".join(f"--{name.replace('_', '-')} {' '.join(getattr(input, name))}"
                    for name in input.keys())


def figure_seed(wildcards):
    """The seed whose traced episode a timeline shows: the scale's first."""
    return seeds_of(wildcards.scale)[0]


def timeline_input(name):
    return lambda wildcards: result(wildcards.scale, wildcards.task, "ours", figure_seed(wildcards), name)


def figures_of(scale):
    return [f"results/{scale}/figures/{kind}_{task}.{ext}" for task in tasks_of(scale)
            for kind in ("timeline", "curves") for ext in ("png", "pdf")]


def tables_of(scale, tables=("table3", "table4", "table5")):
    return [f"{tables_dir(scale)}/{table}.{ext}" for table in tables for ext in ("csv", "md", "tex")]


# ----------------------------------------------------------------------------- estimate
MEASUREMENTS = {"throughput": sorted(str(p) for p in Path("benchmarks/results").glob("train_throughput*.json")),
                "env_rates": [p for p in ["benchmarks/results/env_step_rate.json"] if Path(p).exists()]}


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
    options = [f"--tasks {' '.join(tasks_of(SCALE))}",
               f"--seeds {' '.join(str(s) for s in seeds_of(SCALE))}"]
    options += [f"--{key.replace('_', '-')} {' '.join(paths)}" for key, paths in MEASUREMENTS.items()
                if paths]
    if workflow.configfiles:
        options.append(f"--config {workflow.configfiles[-1]}")
    return " ".join(options)
