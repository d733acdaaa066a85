"""Tables 3, 4 and 5 of the paper, rebuilt from evaluation JSONs with the published numbers
beside, the verdicts on the paper's two claims, the aggregate over tasks and runs.csv (every
run as a tidy row). The numbers and their intervals are computed once, in
``asymbench.statistics``; this module loads and checks the inputs, lays out the tables and
renders them to CSV (full precision), Markdown and LaTeX. Its former statistical names
(``interval``, ``judge_claims``, ``iqm``, ...) are re-exported here.

Every reproduced number is the mean over training seeds with a 95% interval, plus a "best run"
view (the paper's Table 4 reports the highest score each method reached). A table's caption
(at most ``MAX_CAPTION`` characters) says what it is, its evaluation protocol and its budget as a
fraction of the paper's, and links the legend of every column (README, "Reading the tables");
a footnote line under it gives the scale, steps, seeds, episodes and the verdict margin. In the
Markdown and LaTeX the paper's number (with the paper's own digits) and the count of seeds
reaching the success threshold have columns of their own, and each column has one number of
decimals. Below the paper's budget a verdict reads "met at 5% of the budget" rather than
"reproduced" (the CSV keeps the verdict and adds ``budget_fraction``), and where Ours'
normalized score is above 1.5 the cell adds "L-only not converged".

Inputs are checked before anything is computed (``load_evaluations``): each eval.json must be an
evaluation object with finite numbers that agree with themselves (``mean_return`` the mean of
``returns``, shares in [0, 1]), given under the method it records, once (file, run folder, seed),
with one registry's widths per task; a table's runs of a task share one budget. A refusal is one
line naming the file and what to do.

What sits beside a published number is the same quantity the paper measured:

* **Score.** The mean evaluation return, except for tasks whose environment reports
  ``is_success`` (FetchPickAndPlace): there the paper's 0.351 / 0.980 / 0.935 are success rates,
  so the score is eval.json's ``success_rate`` and the row is labelled "(success rate)".
* **FLOPs/Inf** is eval.json's ``flops_per_inf`` (the paper's convention).
* **% steps large** is eval.json's ``large_share``, pooled over all evaluation steps: the share
  that ``flops_per_inf`` and ``flops_reduction_pct`` are computed from, so the % large and the
  FLOPs columns of a row rest on one definition of the share.

Intervals: the score columns of return tasks (unbounded) have Student-t 95% intervals over seeds;
every bounded column (success rate, % large, % FLOPs reduction, FLOPs/Inf) a percentile bootstrap
interval of the mean, clipped to its range. Where the score has a success threshold (the env's
``reward_threshold``; for goal tasks a success rate of ``GOAL_SUCCESS_RATE``) the cell also counts
the seeds that reach it.

Verdicts (one per task, in Table 3, and in Table 4 when S-only's evaluations are given too;
CSV spelling of n/a: "not applicable", which pandas does not read as missing):

(a) *Ours' return is comparable to L-only's*: a non-inferiority test with margin delta, fixed in
    advance (``DEFAULT_DELTA`` = 0.2; the pipeline's ``verdict_delta``). A run's normalized score
    is ``(R - mean R_S-only) / (mean R_L-only - mean R_S-only)``. The 95% interval of Ours' mean
    normalized score comes from a stratified bootstrap over independent runs: the seeds of
    S-only, L-only and Ours are resampled separately, so the uncertainty of the two means that
    normalize is carried into it (training runs of one seed are independent: nothing is
    paired). Lower bound >= 1 - delta: "reproduced"; upper bound < 1 - delta: "not reproduced";
    otherwise "inconclusive". "trivial" where S-only's mean is not below L-only's (no cost to
    save); "inconclusive" where the bootstrap interval of L-only - S-only reaches 0 (the scale of
    the normalization is unknown); "inconclusive (n < 3)" with fewer than ``MIN_SEEDS`` seeds of
    any of the three.
(b) *Ours' FLOPs reduction is at least the paper's* (Table 3), judged only where (a) is
    reproduced: the percentile bootstrap interval of Ours' mean reduction (the one of Table 3's
    "Ours % FLOPs reduction" column, computed once); lower bound >= the
    paper's: "reproduced"; upper bound < it: "not reproduced"; otherwise "inconclusive".
    Elsewhere "n/a (return claim not met)".

An Ours whose mean large share is below 1% or above 99% is flagged "degenerate (one
sub-policy)" in both cells (and (b) is n/a): its FLOPs reduction is that of one network.

Every bootstrap is seeded from ``BOOTSTRAP_SEED`` and the task (and column), so the same
evaluations give the same table, and a task's numbers do not depend on which other tasks are in
it.

**Across tasks** (``build_aggregate``; at least ``MIN_TASKS`` tasks whose L-only - S-only gap is
resolved, else it is refused and nothing is written; the pipeline asks for it only where
``aggregate_computable`` says so from runs.csv): the IQM of the normalized score per method with
stratified-bootstrap 95% intervals, the probability of improvement of Ours over L-only, fit, BC
and GAIL, and the performance profile; the estimators are rliable's (Agarwal et al. 2021),
computed in ``asymbench.statistics`` (rliable 1.2.0 does not import with pandas 3, see ``iqm``).

**The noise x budget grid** (``build_grid``): one task's Table 3 row for each training budget and
each setting of Ours' sub-policy exploration noise (``ours``: dropped, as the authors' script
runs; ``ours_as_sac``: as the paper's SAC), under both evaluation protocols, with Table 3's
verdicts; issue 20's MountainCarContinuous grid.

Inputs are given explicitly per method (``{"ours": [eval.json, ...], ...}``) so the pipeline's
declared inputs are exactly what is read.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from asymbench.runs import atomic_path, read_json
from asymbench.statistics import (  # noqa: F401  (re-exported: tables.X keeps working)
    AGGREGATE_METHODS, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, BOUNDS, CLAIM_METHODS, CLAIM_NOT_MET,
    DEFAULT_DELTA, DEGENERATE, DEGENERATE_PCT, INCONCLUSIVE, INCONCLUSIVE_FEW, MIN_SEEDS, MIN_TASKS,
    NOT_APPLICABLE, NOT_REPRODUCED, POI_BASELINES, REPRODUCED, TRIVIAL, Aggregate, Normalizer,
    Verdict, aggregate_rows, bootstrap_means, bootstrap_rng, check_delta, interval, iqm,
    iqm_interval, is_degenerate, judge_claims, mean_ci95, performance_profile, poi_interval,
    probability_of_improvement, task_metric, task_normalizer, verdict_at_least, verdict_return,
    with_score, FLOPS_REDUCTION_COLUMN, NOT_CONVERGED_SCORE, seeds_to_decide, solved_share)
from asymbench.tasks import load_registry

METHODS = ("s_only", "l_only", "ours", "ours_no_cost", "fit", "bc", "gail")
# Methods trained for an environment-step budget (the students' budget is GAIL's or BC's own).
RL_METHODS = ("s_only", "l_only", "ours", "ours_no_cost", "fit")
METHOD_LABELS = {"s_only": "S-only", "l_only": "L-only", "ours": "Ours", "ours_no_cost": "Ours, λ=0",
                 "fit": "fit", "bc": "BC", "gail": "GAIL", "ours_as_sac": "Ours, noise as SAC"}
# Ours whose sub-policies get the SAC's exploration noise (`--asym-action-noise as_sac`, the
# paper's description; "ours" runs the authors' script, which drops it): the noise x budget grid.
VARIANT_METHODS = ("ours_as_sac",)
# Ours trained at the registry's lambda times a factor (the `pareto` target): "ours_lam0.333".
PARETO_PREFIX = "ours_lam"
_PARETO_METHOD = re.compile(rf"{PARETO_PREFIX}(\d+(?:\.\d+)?)")

METRIC_LABELS = {"return": "return", "success_rate": "success rate"}
PROTOCOLS = ("deterministic", "stochastic")
PROTOCOL_LABELS = {"deterministic": "deterministic protocol (greedy master, SAC mean action)",
                   "stochastic": "stochastic protocol (master samples softmax(Q), SAC samples its action)"}

GOAL_SUCCESS_RATE = 0.9      # goal tasks: a seed "succeeds" at this evaluation success rate
LEGEND_ANCHOR = "reading-the-tables"  # README section with every column's legend


@dataclass(frozen=True)
class TableSpec:
    title: str
    published: str | None  # file in asymbench/data, its columns named as `columns`' keys
    columns: dict[str, tuple[str, str, str]]  # column -> (method, quantity, header label)


TABLES = {
    "table3": TableSpec(
        "Table 3: score of S-only, L-only and Ours, Ours' % steps by the large sub-policy and "
        "its % FLOPs reduction against L-only",
        "published_table3.csv",
        {"s_only_return": ("s_only", "return", "S-only return"),
         "l_only_return": ("l_only", "return", "L-only return"),
         "ours_return": ("ours", "return", "Ours return"),
         "ours_large_usage_pct": ("ours", "large_usage_pct", "Ours % steps large"),
         "ours_flops_reduction_pct": ("ours", "flops_reduction_pct", "Ours % FLOPs reduction")}),
    "table4": TableSpec(
        "Table 4: Ours against a policy of matching size trained from scratch (fit) and "
        "students distilled from L-only (GAIL, BC)",
        "published_table4.csv",
        {"l_only_return": ("l_only", "return", "L-only return"),
         "l_only_flops_per_inf": ("l_only", "flops_per_inf", "L-only FLOPs/Inf"),
         "ours_return": ("ours", "return", "Ours return"),
         "ours_avg_flops_per_inf": ("ours", "flops_per_inf", "Ours Avg-FLOPs/Inf"),
         "fit_return": ("fit", "return", "fit return"),
         "gail_return": ("gail", "return", "GAIL return"),
         "bc_return": ("bc", "return", "BC return"),
         "student_flops_per_inf": ("bc", "flops_per_inf", "students FLOPs/Inf"),
         "fit_flops_per_inf": ("fit", "flops_per_inf", "fit FLOPs/Inf")}),
    "table5": TableSpec(
        "Table 5: Ours with and without the cost term (λ = 0) in the master's reward",
        None,
        {"ours_return": ("ours", "return", "Ours return"),
         "ours_large_usage_pct": ("ours", "large_usage_pct", "Ours % steps large"),
         "ours_avg_flops_per_inf": ("ours", "flops_per_inf", "Ours Avg-FLOPs/Inf"),
         "ours_no_cost_return": ("ours_no_cost", "return", "Ours, λ=0 return"),
         "ours_no_cost_large_usage_pct": ("ours_no_cost", "large_usage_pct", "Ours, λ=0 % steps large"),
         "ours_no_cost_avg_flops_per_inf": ("ours_no_cost", "flops_per_inf",
                                            "Ours, λ=0 Avg-FLOPs/Inf")}),
}
# Header labels of the verdict columns (mean view only).
CLAIM_LABELS = {"return": "(a) Ours ≥ 1 − δ of L-only? (normalized score)",
                "flops": "(b) Ours' FLOPs red. ≥ paper's?"}

_EVAL_KEYS = ("task", "mean_return", "large_share", "flops_per_inf", "flops_reduction_pct",
              "total_steps", "episodes")


def is_pareto_method(method: str) -> bool:
    return _PARETO_METHOD.fullmatch(method) is not None


def pareto_factor(method: str) -> float:
    """The lambda factor of a pareto method name ("ours_lam0.333" -> 0.333)."""
    match = _PARETO_METHOD.fullmatch(method)
    if match is None:
        raise ValueError(f"'{method}' is no pareto method ({PARETO_PREFIX}<factor>)")
    return float(match[1])


def non_inferiority_sentence(summary: pd.DataFrame, delta: float) -> str:
    """Whether any cost weight of a Pareto sweep (one protocol's rows: ``lambda_factor``,
    ``claim_return_verdict``, ``flops_per_inf_mean``) is non-inferior by claim (a): "non-inferior
    (normalized score ≥ 0.8): λ×0.1, λ×1; the cheapest at 1,234 FLOPs/Inf; undecided: λ×3" or "no
    cost weight is shown non-inferior (...); undecided: λ×1" (undecided: the inconclusive ones, too
    few seeds to tell), or that S-only and L-only were not given to judge it."""
    sweep = summary[summary["lambda_factor"].notna()]
    if not sweep["claim_return_verdict"].astype(bool).any():
        return "claim (a) not judged: S-only and L-only not given"
    met = sweep[sweep["claim_return_verdict"] == REPRODUCED].sort_values("flops_per_inf_mean")
    undecided = ", ".join(f"λ×{f:g}" for f in sweep.loc[sweep["claim_return_verdict"].astype(str)
                                                           .str.startswith(INCONCLUSIVE), "lambda_factor"])
    undecided = f"; undecided: {undecided}" if undecided else ""
    if met.empty:
        return f"no cost weight is shown non-inferior (normalized score ≥ {1 - delta:g}){undecided}"
    names = ", ".join(f"λ×{f:g}" for f in met["lambda_factor"])
    return (f"non-inferior (normalized score ≥ {1 - delta:g}): {names}; the cheapest at "
            f"{met['flops_per_inf_mean'].iloc[0]:,.0f} FLOPs/Inf{undecided}")


def method_label(method: str) -> str:
    if is_pareto_method(method):
        return f"Ours, λ×{pareto_factor(method):g}"
    return METHOD_LABELS[method]


def methods_of(table: str) -> list[str]:
    """The methods whose evaluations ``table`` needs, in first-use order."""
    return list(dict.fromkeys(method for method, _, _ in TABLES[table].columns.values()))


def claims_of(table: str, methods=None) -> tuple[str, ...]:
    """The claims judged in ``table``: both, where its columns hold L-only and Ours and S-only
    is given too (``methods``: those given; default the table's own, so Table 4 has verdicts
    only when S-only is given, Table 5 never)."""
    own = set(methods_of(table))
    methods = own | set(own if methods is None else methods)
    return ("return", "flops") if {"l_only", "ours"} <= own and set(CLAIM_METHODS) <= methods else ()



def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"evaluation protocol: got {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return protocol


def _train_seed(data: dict, path: str | Path) -> int | None:
    """The training seed of an evaluation (not its episodes' seed, eval.json's ``seed``):
    ``train_seed`` if recorded, else the run folder's name (results/.../seed3/eval.json),
    else the run's config.json. None if none says."""
    if data.get("train_seed") is not None:
        return int(data["train_seed"])
    for folder in (Path(path).parent, Path(data.get("run") or Path(path).parent)):
        match = re.fullmatch(r"seed(\d+)", folder.name)
        if match:
            return int(match[1])
    config = Path(data.get("run") or Path(path).parent) / "config.json"
    if config.exists():
        seed = read_json(config).get("seed")
        return None if seed is None else int(seed)
    return None


def protocol_view(data: dict, path: str | Path, protocol: str = "deterministic") -> dict:
    """An evaluation's metrics under ``protocol``: the top level for the deterministic one, the
    ``stochastic`` dict laid over it for the stochastic one. An evaluation of one protocol only
    (eval.json's ``protocol`` "deterministic" or "stochastic") has it at the top level and
    cannot stand for the other."""
    recorded = data.get("protocol", "both")
    if recorded in PROTOCOLS and recorded != check_protocol(protocol):
        raise ValueError(f"evaluation {path} holds the {recorded} protocol only ('protocol': "
                         f"{recorded!r}); the {protocol} tables need an evaluation with both")
    if protocol == "deterministic" or recorded == "stochastic":
        return data
    sub = data.get("stochastic")
    if not isinstance(sub, dict):
        raise ValueError(f"evaluation {path} has no stochastic protocol (no 'stochastic' key): "
                         "evaluate its run again with the stochastic protocol, or use "
                         "--protocol deterministic")
    return {**data, **sub}


# Each role's eval.json records the trainer's method (training.METHODS, distill's bc / gail) or
# the role itself (synthetic evaluations).
_RECORDED_METHODS = {"s_only": {"s_only"}, "l_only": {"l_only"}, "fit": {"fit"}, "bc": {"bc"},
                     "gail": {"gail"}}
_REGENERATE = "delete it and rerun the pipeline (snakemake) to regenerate it"


class EvaluationError(ValueError):
    """An eval.json the tables cannot use, named, with what to do."""


def _number(data: dict, key: str, path, optional: bool = False) -> float:
    """``data[key]`` as a finite float, refused naming the file (None allowed if ``optional``)."""
    value = data.get(key)
    if value is None and optional:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EvaluationError(f"evaluation {path}: '{key}' is {value!r}, not a finite number; "
                              f"{_REGENERATE}")
    return float(value)


def _check_role(method: str, data: dict, path) -> None:
    """The eval's recorded method (and cost weight) fits the role it was given for."""
    recorded = data.get("method")
    allowed = _RECORDED_METHODS.get(method, {"asym"}) | {method}
    if recorded is not None and recorded not in allowed:
        raise EvaluationError(f"evaluation {path} is of method '{recorded}' but was given as "
                              f"--{method.replace('_', '-')}; pass each eval.json under its own method")
    weight = data.get("cost_weight")
    if method == "ours_no_cost" and weight not in (None, 0, 0.0):
        raise EvaluationError(f"evaluation {path} has cost weight {weight} but was given as "
                              "--ours-no-cost (lambda = 0); pass it under its own method")


def _check_values(data: dict, path) -> None:
    """The eval agrees with itself: mean_return is the mean of returns, shares in [0, 1]."""
    returns = data.get("returns")
    if returns is not None:
        if not isinstance(returns, list) or not returns:
            raise EvaluationError(f"evaluation {path}: 'returns' is not a list of numbers; {_REGENERATE}")
        values = [_number({"returns": r}, "returns", path) for r in returns]
        mean = _number(data, "mean_return", path)
        if not math.isclose(mean, float(np.mean(values)), rel_tol=1e-6, abs_tol=1e-6):
            raise EvaluationError(f"evaluation {path}: mean_return {mean:g} is not the mean of its "
                                  f"returns ({np.mean(values):g}); {_REGENERATE}")
    for key in ("large_share", "success_rate"):
        value = _number(data, key, path, optional=True)
        if not math.isnan(value) and not 0 <= value <= 1:
            raise EvaluationError(f"evaluation {path}: '{key}' is {value:g}, outside [0, 1]; {_REGENERATE}")


def _read_evaluation(path) -> dict:
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise EvaluationError(f"evaluation {path} holds a {type(raw).__name__}, not an evaluation "
                              f"object; {_REGENERATE}")
    return raw


def _evaluation_row(method: str, path, raw: dict, protocol: str) -> dict:
    data = protocol_view(raw, path, protocol)
    missing = [key for key in _EVAL_KEYS if key not in data]
    if missing:
        raise EvaluationError(f"evaluation {path} lacks {', '.join(missing)}; {_REGENERATE}")
    _check_role(method, raw, path)
    _check_values(data, path)
    share = _number(data, "large_share", path, optional=True)
    return {"method": method, "task": str(data["task"]), "path": str(path),
            "run": str(Path(raw.get("run") or Path(path).parent).resolve()),
            "seed": _train_seed(raw, path),
            "return": _number(data, "mean_return", path),
            "success_rate": _number(data, "success_rate", path, optional=True),
            "large_usage_pct": 100.0 * share,
            "flops_per_inf": _number(data, "flops_per_inf", path),
            "flops_per_inf_macs": _number(data, "flops_per_inf_macs", path, optional=True),
            "flops_reduction_pct": _number(data, "flops_reduction_pct", path),
            "flops_l_only": _number(data, "flops_l_only", path, optional=True),
            "cost_weight": _number(data, "cost_weight", path, optional=True),
            "total_steps": int(_number(data, "total_steps", path)),
            "episodes": int(_number(data, "episodes", path))}


def _check_distinct(rows: list[dict]) -> None:
    """Every evaluation is of its own run: no file, run folder or (method, task, seed) twice."""
    seen: dict[tuple, str] = {}
    for row in rows:
        for key in (("file", str(Path(row["path"]).resolve())), ("run", row["run"]),
                    ("seed", row["method"], row["task"], row["total_steps"], row["seed"])):
            if key[0] == "seed" and row["seed"] is None:
                continue
            if key in seen:
                what = {"file": "the same file", "run": "the same run folder",
                        "seed": f"the same training seed ({row['seed']}) of {row['method']}"}[key[0]]
                raise EvaluationError(f"evaluation {row['path']} and {seen[key]} are {what}: a table "
                                      "needs one evaluation per run; pass each run's eval.json once")
            seen[key] = row["path"]


def _check_same_widths(rows: list[dict]) -> None:
    """One L-only reference per task: every eval's FLOPs reduction is against the same L-only
    (eval.json's ``flops_l_only``, from the registry's large width it was trained with)."""
    reference: dict[str, tuple[float, str]] = {}
    for row in rows:
        flops = row["flops_l_only"]
        if math.isnan(flops):
            continue
        task = row["task"]
        if task in reference and not math.isclose(flops, reference[task][0], rel_tol=1e-9):
            raise EvaluationError(
                f"evaluation {row['path']} was made with another registry's widths than "
                f"{reference[task][1]} (L-only FLOPs/Inf {flops:g} against {reference[task][0]:g}); "
                "a table needs every run of a task trained with one registry")
        reference.setdefault(task, (flops, row["path"]))


def load_evaluations(paths: dict[str, list[str | Path]], protocol: str = "deterministic") -> pd.DataFrame:
    """One row per evaluation JSON: method, task, file, run folder, training seed and the
    quantities the tables use under ``protocol`` (NaN where an evaluation does not report one).
    Refuses (``EvaluationError``, naming the file) an eval that is not an evaluation object, has
    a missing, NaN or non-numeric value, disagrees with itself, was given for another method's
    role, is given twice (file, run folder or seed), or was trained with another registry's
    widths than the rest of its task."""
    rows = []
    for method, files in paths.items():
        if method not in METHODS + VARIANT_METHODS and not is_pareto_method(method):
            raise ValueError(f"unknown method '{method}'; known: "
                             f"{', '.join(METHODS + VARIANT_METHODS)} and {PARETO_PREFIX}<factor>")
        rows += [_evaluation_row(method, path, _read_evaluation(path), protocol) for path in files]
    _check_distinct(rows)
    _check_same_widths(rows)
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=None)
def _reward_threshold(env_id: str) -> float | None:
    """The environment's own ``reward_threshold`` where gymnasium registers it without an extra
    suite (dm_control and robotics ids are not looked up: they declare none)."""
    import gymnasium as gym

    try:
        threshold = gym.spec(env_id).reward_threshold
    except Exception:  # an id of a suite that is not registered: no threshold
        return None
    return None if threshold is None else float(threshold)


def success_threshold(task, metric: str) -> float | None:
    """The score at which a seed counts as having solved ``task``: a success rate of
    ``GOAL_SUCCESS_RATE`` on goal tasks, else the env's ``reward_threshold`` (None: no count)."""
    if metric == "success_rate":
        return GOAL_SUCCESS_RATE
    return _reward_threshold(task.env_id)



# ----------------------------------------------------------------------------- published numbers
def _joined(values) -> int | str:
    """A single budget as an int; differing budgets spelt out ("300/500") rather than hidden."""
    distinct = sorted(set(int(v) for v in values))
    return distinct[0] if len(distinct) == 1 else "/".join(map(str, distinct))


def _published_file(name: str) -> pd.DataFrame:
    path = resources.files("asymbench") / "data" / name
    with path.open() as f:
        return pd.read_csv(f).set_index("task")


@functools.lru_cache(maxsize=None)
def _published_strings(name: str) -> dict[tuple[str, str], str]:
    """The published numbers as the paper prints them ("5.7", not 5.70): (task, column) -> text."""
    path = resources.files("asymbench") / "data" / name
    with path.open() as f:
        table = pd.read_csv(f, dtype=str, keep_default_na=False).set_index("task")
    return {(task, column): text for task, row in table.iterrows() for column, text in row.items()}


def published_text(table: str, paper_task: str, column: str) -> str:
    """The paper's number for a cell, with the paper's own digits; "–" where it prints none."""
    name = TABLES[table].published
    text = "" if name is None else _published_strings(name).get((paper_task, column), "")
    return text.strip() or "–"


def _published(spec: TableSpec) -> pd.DataFrame | None:
    return None if spec.published is None else _published_file(spec.published)


def paper_reduction(task) -> float:
    """The paper's Table 3 % FLOPs reduction of Ours for a registry task (NaN if unpublished)."""
    table3 = _published_file("published_table3.csv")
    name = task.settings.get("paper_name", task.name)
    return float(table3.loc[name, "ours_flops_reduction_pct"]) if name in table3.index else math.nan


def published_points(task_name: str, registry=None) -> dict[str, tuple[float, float]]:
    """The paper's (FLOPs/Inf, score) per method for one task: Table 4's columns, plus S-only's
    Table 3 return at the small actor's FLOPs/Inf in the paper's convention (the paper prints no
    S-only FLOPs; the action dimension is solved from Table 4's L-only FLOPs,
    2 (d h + h h + 2 h a) + 3, with the paper's observation size d). Empty if unpublished."""
    task = load_registry(registry)[task_name]
    name = task.settings.get("paper_name", task_name)
    table3, table4 = _published_file("published_table3.csv"), _published_file("published_table4.csv")
    points = {}
    if name in table4.index:
        row = table4.loc[name]
        points = {"l_only": (row["l_only_flops_per_inf"], row["l_only_return"]),
                  "ours": (row["ours_avg_flops_per_inf"], row["ours_return"]),
                  "fit": (row["student_flops_per_inf"], row["fit_return"]),
                  "bc": (row["student_flops_per_inf"], row["bc_return"]),
                  "gail": (row["student_flops_per_inf"], row["gail_return"])}
        d, h_l, h_s = task.settings.get("paper_obs_dim"), task.large, task.small
        if d is not None and name in table3.index:
            act = ((row["l_only_flops_per_inf"] - 3) / 2 - d * h_l - h_l * h_l) / (2 * h_l)
            flops_small = 2 * (d * h_s + h_s * h_s + 2 * h_s * act) + 3
            points["s_only"] = (flops_small, table3.loc[name, "s_only_return"])
    return {m: (float(f), float(r)) for m, (f, r) in points.items()}


def published_normalized_scores() -> pd.Series:
    """Ours' normalized score in the paper's own Table 3, per task (all >= 0.8; Ant lowest, 0.84)."""
    t3 = _published_file("published_table3.csv")
    return (t3["ours_return"] - t3["s_only_return"]) / (t3["l_only_return"] - t3["s_only_return"])


# ----------------------------------------------------------------------------- tables
def _one_budget(runs: pd.DataFrame, table: str, task: str) -> int:
    """The env-step budget of one task's RL runs (students' runs: their own), refused if the runs
    were trained for different budgets (a table compares runs of one budget)."""
    rl_runs = runs[runs["method"].isin(RL_METHODS)]
    steps = sorted(set((rl_runs if len(rl_runs) else runs)["total_steps"]))
    if len(steps) != 1:
        first = {s: runs.loc[runs["total_steps"] == s, "path"].iloc[0] for s in steps}
        raise EvaluationError(f"{table}: task '{task}' mixes runs of {' and '.join(f'{s:,}' for s in steps)} "
                              f"env steps ({'; '.join(f'{s:,}: {p}' for s, p in first.items())}); "
                              "a table needs every run of a task trained for one budget")
    return int(steps[0])


def _column_fields(column: str, method: str, quantity: str, runs: pd.DataFrame, row: dict,
                   metric: str, threshold, published, reps: int) -> dict:
    """A reproduced column's ``_mean/_low/_high`` (its one interval), ``_best``, ``_paper`` and,
    for a score, ``_reached``."""
    quantity = "score" if quantity == "return" else quantity
    method_runs = runs[runs["method"] == method]
    kind = metric if quantity == "score" else quantity
    mean, low, high = interval(method_runs[quantity], kind, row["task"], column, reps=reps)
    best = method_runs.loc[method_runs["score"].idxmax(), quantity]
    paper = math.nan
    if published is not None and row["paper_task"] in published.index and column in published.columns:
        paper = float(published.loc[row["paper_task"], column])
    fields = {f"{column}_mean": mean, f"{column}_low": low, f"{column}_high": high,
              f"{column}_best": float(best), f"{column}_paper": paper}
    if quantity == "score":
        fields[f"{column}_reached"] = (int((method_runs["score"] >= threshold).sum())
                                       if threshold is not None else math.nan)
    return fields


def _claim_fields(verdicts: dict, columns, delta: float, budget_fraction: float) -> dict:
    """The verdict columns; claim (b)'s mean and interval are left out where the table has Ours'
    % FLOPs reduction column (the same numbers: one interval per quantity)."""
    fields = {"delta": delta, "degenerate": bool(verdicts["return"].flag),
              "l_only_not_converged": bool(budget_fraction < 1
                                           and verdicts["return"].mean > NOT_CONVERGED_SCORE)}
    for claim, verdict in verdicts.items():
        fields.update({f"claim_{claim}_verdict": verdict.verdict, f"claim_{claim}_reason": verdict.reason,
                       f"claim_{claim}_n": verdict.n})
        if not (claim == "flops" and FLOPS_REDUCTION_COLUMN in columns):
            fields.update({f"claim_{claim}_mean": verdict.mean, f"claim_{claim}_low": verdict.low,
                           f"claim_{claim}_high": verdict.high})
        fields[f"claim_{claim}_reference"] = verdict.reference
    return fields


def build_table(table: str, evaluations: pd.DataFrame, scale: str, registry=None,
                delta: float = DEFAULT_DELTA, protocol: str = "deterministic",
                reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """One row per task (registry order): the budget (and ``budget_fraction``, of the paper's),
    protocol and score ``metric``; for every reproduced column ``<col>_mean``, ``<col>_low`` and
    ``<col>_high`` (the 95% interval; see ``interval``), ``<col>_best`` (the seed with the best
    score), ``<col>_paper`` (the published number), and for score columns ``<col>_reached``
    (seeds at or above ``success_threshold``); then the verdicts
    ``claim_<claim>_{verdict,reason,n,mean,low,high,reference}`` (claim (b)'s mean/low/high only
    where the table has no Ours % FLOPs reduction column), ``degenerate`` and
    ``l_only_not_converged`` (see the module doc)."""
    spec = TABLES[table]
    delta = check_delta(delta)
    check_protocol(protocol)
    tasks = load_registry(registry)
    published = _published(spec)
    unknown = set(evaluations["task"]) - set(tasks)
    if unknown:
        raise ValueError(f"{table}: evaluations of tasks missing from the registry: {sorted(unknown)}")
    claims = claims_of(table, set(evaluations["method"]) | set(methods_of(table)))
    rows = []
    for name, task in tasks.items():
        runs = evaluations[evaluations["task"] == name]
        if runs.empty:
            continue
        needed = methods_of(table) + [m for m in CLAIM_METHODS if claims and m not in methods_of(table)]
        counts = {m: int((runs["method"] == m).sum()) for m in needed}
        if len(set(counts.values())) != 1 or 0 in counts.values():
            raise ValueError(f"{table}: task '{name}' needs the same number of runs per method, "
                             f"got {counts}")
        runs, metric = with_score(runs)
        steps = _one_budget(runs, table, name)
        threshold = success_threshold(task, metric)
        row = {"task": name, "paper_task": task.settings.get("paper_name", name), "scale": scale,
               "protocol": protocol, "n_seeds": next(iter(counts.values())), "train_steps": steps,
               "budget_fraction": steps / task.total_steps,
               "eval_episodes": _joined(runs["episodes"]), "metric": METRIC_LABELS[metric],
               "success_threshold": math.nan if threshold is None else threshold}
        for column, (method, quantity, _) in spec.columns.items():
            row.update(_column_fields(column, method, quantity, runs, row, metric, threshold,
                                      published, reps))
        if claims:
            verdicts = judge_claims(runs, paper_reduction(task), delta, name, reps=reps)
            row.update(_claim_fields(verdicts, spec.columns, delta, row["budget_fraction"]))
        rows.append(row)
    if not rows:
        raise ValueError(f"{table}: no evaluations given")
    return pd.DataFrame(rows)


def reduced_budget_tasks(df: pd.DataFrame, registry=None) -> list[str]:
    """The tasks whose rows were NOT made at the paper's budget (the registry's training steps
    and evaluation episodes), whatever the scale is called."""
    tasks = load_registry(registry)
    return [row.task for row in df.itertuples()
            if row.train_steps != tasks[row.task].total_steps
            or row.eval_episodes != tasks[row.task].eval_episodes]


def percent_text(fraction: float) -> str:
    """A budget fraction as a percentage: 0.05 -> "5%", 0.2 -> "20%", 0.003 -> "0.3%"."""
    pct = 100 * float(fraction)
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.1g}%"


def budget_fraction_text(fractions) -> str:
    """"the paper's budget", "5% of the paper's budget" or "2–20% of the paper's budget"."""
    fractions = sorted(set(round(float(f), 6) for f in fractions))
    if fractions == [1.0]:
        return "the paper's budget"
    low, high = percent_text(fractions[0]), percent_text(fractions[-1])
    return f"{low if low == high else low.rstrip('%') + '–' + high} of the paper's budget"


def _budget_text(df: pd.DataFrame, registry=None, seeds_column: str = "n_seeds") -> str:
    """"MountainCarContinuous: 100,000 env steps (100% of the paper's), 10 seeds, 200
    evaluation episodes per run; ..." (one group per budget)."""
    tasks = load_registry(registry)
    groups: dict[tuple, list[str]] = {}
    for row in df.itertuples():
        steps = row.train_steps
        fraction = (int(steps) / tasks[row.task].total_steps if str(steps).isdigit() else math.nan)
        key = (steps, fraction, getattr(row, seeds_column), row.eval_episodes)
        groups.setdefault(key, []).append(row.task)
    parts = []
    for (steps, fraction, seeds, episodes), names in groups.items():
        steps = f"{steps:,}" if isinstance(steps, int) else str(steps)
        share = "" if math.isnan(fraction) else f" ({percent_text(fraction)} of the paper's)"
        budget = (f"{steps} env steps{share}, {seeds} seed{'' if seeds == 1 else 's'}, {episodes} "
                  f"evaluation episode{'' if episodes == 1 else 's'} per run")
        parts.append(budget if len(groups) == 1 else f"{', '.join(names)}: {budget}")
    return "; ".join(parts)


def legend_link(out: str | Path | None) -> str:
    """The README's legend section, relative to a table written at ``out`` under paper_tables/."""
    if out is not None:
        parts = Path(out).absolute().parts[::-1]  # the file, its folders, ..., paper_tables
        if "paper_tables" in parts:
            return "../" * parts.index("paper_tables") + f"README.md#{LEGEND_ANCHOR}"
    return f"README.md#{LEGEND_ANCHOR}"


SHORT_TITLES = {"table3": "Table 3: score of S-only, L-only and Ours; Ours' % steps large and % FLOPs "
                           "reduction",
                "table4": "Table 4: Ours against fit (trained from scratch) and students of L-only "
                          "(GAIL, BC)",
                "table5": "Table 5: Ours with and without (λ = 0) the cost term"}
PROTOCOL_SHORT = {"deterministic": "deterministic protocol", "stochastic": "stochastic protocol"}
MAX_CAPTION = 300  # characters: what the table is, its protocol and budget; the rest in the footnote


def _where(link: str | None) -> str:
    return f"[README, Reading the tables]({link})" if link else "README.md, section 'Reading the tables'"


def caption(table: str, df: pd.DataFrame, registry=None, link: str | None = None) -> str:
    """What the table is, its protocol and its budget as a fraction of the paper's, then where
    the columns are explained (``link``: a Markdown link); at most ``MAX_CAPTION`` characters.
    Seeds, episodes and the margin are in ``footnote``."""
    return (f"{SHORT_TITLES[table]}; {PROTOCOL_SHORT[df['protocol'].iloc[0]]}, "
            f"{budget_fraction_text(df['budget_fraction'])}. Legend: {_where(link)}.")


def footnote(df: pd.DataFrame, registry=None, published: bool = True) -> str:
    """The line under a table: scale, budget per task, seeds, episodes, margin, what a cell holds."""
    text = (f"Scale '{df['scale'].iloc[0]}': {_budget_text(df, registry)}. Mean over seeds (95% "
            "interval)" + ("; paper: the published number" if published else
                           "; the paper publishes no numbers"))
    if "delta" in df.columns:
        text += f"; verdict margin δ = {df['delta'].iloc[0]:g}"
    return text + "."


def _fmt(x) -> str:
    """Three significant figures ("40.0", "0.325", "209", "5760"; whole numbers from 1000 on in
    full: FLOPs/Inf "8707"), "0" for zero, "–" for nothing."""
    if x is None:
        return "–"
    x = float(x)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0 or (x == round(x) and 1000 <= abs(x) < 1e15):
        return str(int(round(x)))
    if abs(x) >= 100:
        return str(int(round(x, -(int(math.floor(math.log10(abs(x)))) - 2))))
    text = f"{x:#.3g}"
    return f"{x:.2e}" if "e" in text else text.rstrip(".")


def column_decimals(values) -> int:
    """One decimal rule per column: enough decimals for three significant figures of the
    column's largest magnitude (0 from 100 on, at most 3)."""
    values = np.abs(np.asarray([v for v in values if v is not None], dtype=float))
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return 0
    return int(min(3, max(0, 2 - math.floor(math.log10(values.max())))))


def _fixed(x, decimals: int) -> str:
    """``x`` with ``decimals`` decimals ("–" for nothing, no "-0.0")."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    text = f"{x:,.{decimals}f}" if abs(x) >= 10_000 else f"{x:.{decimals}f}"
    return text.lstrip("-") if float(text.replace(",", "")) == 0 else text


def _interval_text(low: float, high: float, decimals: int | None = None) -> str:
    fmt = _fmt if decimals is None else (lambda v: _fixed(v, decimals))
    return f"({fmt(low)}, {fmt(high)})"


def _value_cell(mean: float, low: float, high: float, decimals: int | None = None) -> str:
    """"mean (low, high)"; the mean alone for a constant or one seed (``decimals``: fixed, else
    three significant figures)."""
    fmt = _fmt if decimals is None else (lambda v: _fixed(v, decimals))
    if math.isnan(low) or math.isnan(high) or fmt(low) == fmt(high) == fmt(mean):
        return fmt(mean)
    return f"{fmt(mean)} {_interval_text(low, high, decimals)}"


def verdict_word(verdict: str, budget_fraction: float = 1.0) -> str:
    """The verdict as written in cells and figure labels: below the paper's budget, "reproduced"
    reads "met at 5% of the budget" and "not reproduced" "not met at 5% of the budget"."""
    if budget_fraction < 1 and verdict in (REPRODUCED, NOT_REPRODUCED):
        return f"{'met' if verdict == REPRODUCED else 'not met'} at {percent_text(budget_fraction)} of the budget"
    return verdict


def verdict_cell(verdict: Verdict, budget_fraction: float = 1.0, not_converged: bool = False,
                 decimals: int = 2, reference: str | None = None) -> str:
    """A verdict as a table cell or figure label. Below the paper's budget "reproduced" reads
    "met at 5% of the budget" (and "not reproduced" "not met at ..."): nothing is reproduced
    before the budget the paper trained for; ``not_converged`` adds "L-only not converged"."""
    word = verdict_word(verdict.verdict, budget_fraction)
    if verdict.verdict == NOT_APPLICABLE:
        text = f"n/a ({verdict.reason})"
    elif math.isnan(verdict.low) or math.isnan(verdict.mean):
        text = word if verdict.verdict == verdict.reason or not verdict.reason else f"{word} ({verdict.reason})"
    else:
        sign = {REPRODUCED: "≥", NOT_REPRODUCED: "<"}.get(verdict.verdict, "vs")
        ref = reference if reference is not None else f"{verdict.reference:g}"
        text = f"{word}: {_value_cell(verdict.mean, verdict.low, verdict.high, decimals)} {sign} {ref}"
    for flag in (verdict.flag, "L-only not converged" if not_converged else ""):
        if flag and flag not in text:
            text += f"; {flag}"
    return text


def _row_verdict(row: dict, claim: str) -> Verdict:
    """A row's verdict; claim (b)'s mean and interval are those of Ours' % FLOPs reduction
    column where the table has one."""
    def get(field):
        key = f"claim_{claim}_{field}"
        return row[key] if key in row else row[f"{FLOPS_REDUCTION_COLUMN}_{field}"]

    reason = row[f"claim_{claim}_reason"]
    return Verdict(row[f"claim_{claim}_verdict"], reason if isinstance(reason, str) else "",
                   int(row[f"claim_{claim}_n"]), float(get("mean")), float(get("low")), float(get("high")),
                   float(row[f"claim_{claim}_reference"]), DEGENERATE if row.get("degenerate") else "")


def _claim_cell(row: dict, claim: str, decimals: int = 2) -> str:
    paper = row.get("paper_task")
    reference = (published_text("table3", paper, FLOPS_REDUCTION_COLUMN)
                 if claim == "flops" and isinstance(paper, str) else None)
    return verdict_cell(_row_verdict(row, claim), float(row.get("budget_fraction", 1.0)),
                        claim == "return" and bool(row.get("l_only_not_converged")), decimals,
                        reference if reference != "–" else None)


def _is_count(value) -> bool:
    return not (value is None or (isinstance(value, float) and math.isnan(value)))


def _column_cells(df: pd.DataFrame, table: str, column: str, view: str) -> tuple[list[str], list[list[str]]]:
    """The header(s) and per-row cells of one reproduced column: the value (fixed decimals for
    the column), then k/n reaching the threshold and the paper's number, each in its own column."""
    spec = TABLES[table]
    label = spec.columns[column][2]
    records = df.to_dict("records")
    if view == "mean":
        decimals = column_decimals([r[f"{column}_{f}"] for r in records for f in ("mean", "low", "high")])
        values = [_value_cell(r[f"{column}_mean"], r[f"{column}_low"], r[f"{column}_high"], decimals)
                  for r in records]
    else:
        decimals = column_decimals([r[f"{column}_best"] for r in records])
        values = [_fixed(r[f"{column}_best"], decimals) for r in records]
    headers, columns = [label], [values]
    if view == "mean" and any(_is_count(r.get(f"{column}_reached")) for r in records):
        headers.append(f"{label}: seeds ≥ threshold")
        columns.append([f"{int(r[f'{column}_reached'])}/{r['n_seeds']} ≥ {_fmt(r['success_threshold'])}"
                        if _is_count(r.get(f"{column}_reached")) else "–" for r in records])
    if spec.published:
        headers.append(f"{label}: paper")
        columns.append([published_text(table, r["paper_task"], column) for r in records])
    return headers, [list(cells) for cells in zip(*columns)]


def _cells(df: pd.DataFrame, table: str, view: str) -> tuple[list[str], list[list[str]]]:
    """Header and string rows of the 'mean' or 'best' view; the mean view ends with the verdicts."""
    spec = TABLES[table]
    claims = tuple(c for c in ("return", "flops") if f"claim_{c}_verdict" in df.columns) if view == "mean" else ()
    header = ["Task", "n", "steps", "episodes"]
    rows = [[r["task"] + (" (success rate)" if r["metric"] == METRIC_LABELS["success_rate"] else ""),
             str(r["n_seeds"]), _steps_text(r["train_steps"]), str(r["eval_episodes"])]
            for r in df.to_dict("records")]
    for column in spec.columns:
        headers, cells = _column_cells(df, table, column, view)
        header += headers
        rows = [row + extra for row, extra in zip(rows, cells)]
    flops_decimals = (column_decimals(df[[f"{FLOPS_REDUCTION_COLUMN}_{f}" for f in ("mean", "low", "high")]]
                                      .to_numpy().ravel()) if FLOPS_REDUCTION_COLUMN in spec.columns else 1)
    for claim in claims:
        header.append(CLAIM_LABELS[claim])
        decimals = 2 if claim == "return" else flops_decimals
        rows = [row + [_claim_cell(r, claim, decimals)] for row, r in zip(rows, df.to_dict("records"))]
    return header, rows


def _steps_text(steps) -> str:
    """Step counts one way everywhere: "100,000" ("300/500" budgets each so)."""
    return "/".join(f"{int(s):,}" for s in str(steps).split("/"))


VIEWS = (("mean", "Mean over seeds (95% interval)"), ("best", "Best run over seeds"))


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(r) + " |" for r in rows])


def to_markdown(table: str, df: pd.DataFrame, registry=None, link: str | None = None) -> str:
    parts = [f"**{caption(table, df, registry, link or legend_link(None))}**", ""]
    for view, heading in VIEWS:
        header, rows = _cells(df, table, view)
        parts += [f"*{heading}*", ""] + _markdown_table(header, rows) + [""]
    parts += [f"<sub>{footnote(df, registry, TABLES[table].published is not None)}</sub>", ""]
    return "\n".join(parts)


def _tex(text: str) -> str:
    for plain, latex in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                         ("#", r"\#"), ("±", r"$\pm$"), ("λ", r"$\lambda$"), ("δ", r"$\delta$"),
                         ("–", "--"), ("−", "$-$"), ("×", r"$\times$"), ("≥", r"$\geq$"),
                         ("≤", r"$\leq$"), ("∞", r"$\infty$"), ("<", "$<$"), (">", "$>$")):
        text = text.replace(plain, latex)
    return text


def to_latex(table: str, df: pd.DataFrame, registry=None) -> str:
    lines = [r"\begin{table*}", r"\centering", r"\scriptsize",
             rf"\caption{{{_tex(caption(table, df, registry))}}}",
             rf"\label{{tab:{table}_{df['scale'].iloc[0]}_{df['protocol'].iloc[0]}}}"]
    for view, heading in VIEWS:
        header, rows = _cells(df, table, view)
        lines += [rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}", r"\toprule",
                  rf"\multicolumn{{{len(header)}}}{{l}}{{\emph{{{_tex(heading)}}}}} \\",
                  " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
        lines += [r"\bottomrule", r"\end{tabular}", r"\par\medskip"]
    lines += [rf"{{\footnotesize {_tex(footnote(df, registry, TABLES[table].published is not None))}\par}}",
              r"\end{table*}"]
    return "\n".join(lines) + "\n"


def _write(renderings: dict[Path, str]) -> None:
    for path, text in renderings.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)


def write_table(table: str, paths: dict[str, list[str | Path]], scale: str, out_csv: str | Path,
                registry=None, delta: float = DEFAULT_DELTA, protocol: str = "deterministic",
                reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """Builds ``table`` and writes it as CSV (full precision) plus .md and .tex beside it (same
    stem), atomically."""
    delta, protocol = check_delta(delta), check_protocol(protocol)
    missing = [m for m in methods_of(table) if not paths.get(m)]
    if missing:
        raise ValueError(f"{table} needs evaluations of {', '.join(missing)}")
    df = build_table(table, load_evaluations(paths, protocol), scale, registry, delta, protocol, reps)
    out_csv = Path(out_csv)
    _write({out_csv: df.to_csv(index=False),
            out_csv.with_suffix(".md"): to_markdown(table, df, registry, legend_link(out_csv)),
            out_csv.with_suffix(".tex"): to_latex(table, df, registry)})
    return df


# ----------------------------------------------------------------------------- noise x budget grid
# Ours' sub-policy noise setting per method (`asym_action_noise`; train_config.py's choices).
GRID_NOISE = {"ours": "dropped", "ours_as_sac": "as_sac"}
GRID_NOISE_LABELS = {"dropped": "dropped (authors' script)", "as_sac": "as SAC (paper)"}
GRID_COLUMNS = ("s_only_return", "l_only_return", "ours_return", "ours_large_usage_pct",
                "ours_flops_reduction_pct")


def build_grid(paths: dict[str, list[str | Path]], scale: str, registry=None,
               delta: float = DEFAULT_DELTA, reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """One task's Table 3 row per (training budget, Ours' sub-policy noise, protocol): Ours of
    each noise setting (``ours``: dropped, ``ours_as_sac``: as SAC) against the S-only and
    L-only runs of its budget (an evaluation's ``total_steps``), judged by the same claims as
    Table 3 (``build_table``), under both evaluation protocols."""
    delta = check_delta(delta)
    missing = [m for m in ("s_only", "l_only") if not paths.get(m)]
    if missing or not any(paths.get(m) for m in GRID_NOISE):
        raise ValueError("the grid needs evaluations of s_only, l_only and ours and/or ours_as_sac"
                         + (f" (missing: {', '.join(missing)})" if missing else ""))
    rows = []
    for protocol in PROTOCOLS:
        runs = load_evaluations({m: f for m, f in paths.items() if f}, protocol)
        if runs["task"].nunique() != 1:
            raise ValueError(f"the grid is one task's; got evaluations of {sorted(set(runs['task']))}")
        for budget in sorted(set(runs["total_steps"])):
            at_budget = runs[runs["total_steps"] == budget]
            present = set(at_budget["method"])
            if not {"s_only", "l_only"} <= present:
                raise ValueError(f"grid: budget {budget:,} env steps has no "
                                 f"{' and '.join(sorted({'s_only', 'l_only'} - present))} "
                                 "evaluations to normalize Ours by")
            for method, noise in GRID_NOISE.items():
                ours = at_budget[at_budget["method"] == method]
                if ours.empty:
                    continue
                cell = pd.concat([at_budget[at_budget["method"].isin(("s_only", "l_only"))],
                                  ours.assign(method="ours")], ignore_index=True)
                row = build_table("table3", cell, scale, registry, delta, protocol, reps).iloc[0].to_dict()
                rows.append({"budget": int(budget), "noise": noise, **row, **_grid_extras(row)})
    noises = list(GRID_NOISE.values())
    rows.sort(key=lambda r: (r["budget"], noises.index(r["noise"]), PROTOCOLS.index(r["protocol"])))
    return pd.DataFrame(rows)


def _grid_extras(row: dict) -> dict:
    """Per method the share of seeds that solve the task (``<col>_solved_share``, ``_low``,
    ``_high``), and the seeds claim (a) would need to be decided (``seeds_to_decide``)."""
    extras = {}
    for column in ("s_only_return", "l_only_return", "ours_return"):
        share = solved_share(row.get(f"{column}_reached", math.nan), row["n_seeds"])
        extras.update(zip((f"{column}_solved_share", f"{column}_solved_low", f"{column}_solved_high"), share))
    extras["seeds_to_decide"] = seeds_to_decide(
        row["n_seeds"], *(float(row.get(f"claim_return_{k}", math.nan)) for k in ("mean", "low", "high", "reference")))
    return extras


def grid_caption(df: pd.DataFrame, link: str | None = None) -> str:
    """What the grid is, its protocols and budgets as fractions of the paper's, the legend."""
    budgets = ", ".join(f"{b:,}" for b in sorted(set(df["budget"])))
    noises = " or ".join(GRID_NOISE_LABELS[n] for n in GRID_NOISE.values() if n in set(df["noise"]))
    return (f"{df['task'].iloc[0]}: Ours with its sub-policies' exploration noise {noises}, "
            f"each against S-only and L-only of its budget "
            f"({budgets} env steps: {budget_fraction_text(df['budget_fraction'])}); both protocols. "
            f"Legend: {_where(link)}.")


def grid_footnote(df: pd.DataFrame) -> str:
    seeds = "/".join(str(n) for n in sorted(set(df["n_seeds"])))
    episodes = "/".join(str(e) for e in sorted(set(df["eval_episodes"])))
    return (f"Scale(s) {', '.join(sorted(set(df['scale'])))}: {seeds} seeds per method, {episodes} "
            "evaluation episodes per run; mean over seeds (95% interval); verdict margin δ = "
            f"{df['delta'].iloc[0]:g}.")


def grid_markdown(df: pd.DataFrame, link: str | None = None) -> str:
    header = ["budget", "Ours' sub-policy noise", "protocol", "n"]
    rows = [[f"{r['budget']:,}", GRID_NOISE_LABELS[r["noise"]], r["protocol"], str(r["n_seeds"])]
            for r in df.to_dict("records")]
    paper = ["paper", "–", "–", "–"]
    for column in GRID_COLUMNS:
        headers, cells = _column_cells(df, "table3", column, "mean")
        header += headers[:-1]  # the paper's number: the last row
        rows = [row + extra[:-1] for row, extra in zip(rows, cells)]
        paper += [published_text("table3", df["paper_task"].iloc[0], column)] + ["–"] * (len(headers) - 2)
    flops_decimals = column_decimals(df[[f"{FLOPS_REDUCTION_COLUMN}_{f}" for f in ("mean", "low", "high")]]
                                     .to_numpy().ravel())
    header += [CLAIM_LABELS["return"], CLAIM_LABELS["flops"],
               "seeds solving (S-only / L-only / Ours), 95% Wilson interval", "seeds per method (a) would need"]
    rows = [row + [_claim_cell(r, "return"), _claim_cell(r, "flops", flops_decimals), _solved_cell(r),
                   "–" if math.isnan(r["seeds_to_decide"]) else f"{r['seeds_to_decide']:,.0f}"]
            for row, r in zip(rows, df.to_dict("records"))]
    return "\n".join([f"**{grid_caption(df, link)}**", ""]
                     + _markdown_table(header, rows + [paper + ["", "", "", ""]])
                     + ["", f"<sub>{grid_footnote(df)}</sub>"]) + "\n"


def _solved_cell(row: dict) -> str:
    """"0% (0, 16) / 100% (84, 100) / 40% (17, 69)": each method's share of seeds solving."""
    def one(column):
        share = row[f"{column}_solved_share"]
        if math.isnan(share):
            return "–"
        return (f"{100 * share:.0f}% ({100 * row[f'{column}_solved_low']:.0f}, "
                f"{100 * row[f'{column}_solved_high']:.0f})")
    return " / ".join(one(c) for c in ("s_only_return", "l_only_return", "ours_return"))


def write_grid(paths: dict[str, list[str | Path]], scale: str, out_csv: str | Path, registry=None,
               delta: float = DEFAULT_DELTA, reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """Builds the grid and writes it as CSV (full precision) and .md beside it, atomically."""
    df = build_grid(paths, scale, registry, delta, reps)
    out_csv = Path(out_csv)
    _write({out_csv: df.to_csv(index=False),
            out_csv.with_suffix(".md"): grid_markdown(df, legend_link(out_csv))})
    return df


def normalized_scores(evaluations: pd.DataFrame, scale: str, registry=None, delta: float = DEFAULT_DELTA,
                      protocol: str = "deterministic", reps: int = BOOTSTRAP_RESAMPLES) -> Aggregate:
    """Every run's normalized score, per method and task, over the tasks whose normalization is
    resolved (claim (a)'s ``task_normalizer``: at least 3 seeds of S-only and L-only, L-only's
    mean above S-only's, the interval of the gap above 0); the others are listed as excluded."""
    delta, protocol = check_delta(delta), check_protocol(protocol)
    tasks = load_registry(registry)
    unknown = set(evaluations["task"]) - set(tasks)
    if unknown:
        raise ValueError(f"aggregate: evaluations of tasks missing from the registry: {sorted(unknown)}")
    methods = [m for m in AGGREGATE_METHODS if m in set(evaluations["method"])]
    missing = [m for m in CLAIM_METHODS if m not in methods]
    if missing:
        raise ValueError(f"aggregate needs evaluations of {', '.join(missing)}")
    kept, excluded, budget = [], {}, []
    scores: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for name in tasks:
        runs = evaluations[evaluations["task"] == name]
        if runs.empty:
            continue
        lacking = [m for m in methods if not (runs["method"] == m).any()]
        if lacking:
            raise ValueError(f"aggregate: task '{name}' has no evaluations of {', '.join(lacking)}")
        runs, metric = with_score(runs)
        budget.append({"task": name, "train_steps": _joined(runs.loc[runs["method"].isin(RL_METHODS), "total_steps"]),
                       "n_seeds": _joined(runs.groupby("method").size()),
                       "eval_episodes": _joined(runs["episodes"])})
        s, l = (runs.loc[runs["method"] == m, "score"].to_numpy(dtype=float) for m in ("s_only", "l_only"))
        norm = task_normalizer(s, l, reps=reps, rng=bootstrap_rng(name, "return"))
        if norm.problem is not None:
            excluded[name] = norm.problem
            continue
        kept.append(name)
        for m in methods:
            scores[m].append((runs.loc[runs["method"] == m, "score"].to_numpy(dtype=float) - norm.offset)
                             / norm.span)
    if not budget:
        raise ValueError("aggregate: no evaluations given")
    return Aggregate(kept, excluded, scores, pd.DataFrame(budget), scale, protocol, delta, registry)


def check_computed(agg: Aggregate) -> None:
    """Refuses an aggregate with too few tasks rather than write an empty table or figure (the
    pipeline asks for it only where ``aggregate_computable``)."""
    if not agg.computed:
        left = "; ".join(f"{t}: {why}" for t, why in agg.excluded.items()) or "none"
        raise ValueError(f"aggregate over tasks: {len(agg.tasks)} task(s) with a resolved normalization, "
                         f"fewer than {MIN_TASKS} (left out: {left}); nothing is computed, nothing written")


def build_aggregate(agg: Aggregate, reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """One row per method (``statistics.aggregate_rows``) with its label."""
    df = aggregate_rows(agg, reps)
    df.insert(df.columns.get_loc("method") + 1, "label", [METHOD_LABELS[m] for m in df["method"]])
    return df


def aggregate_caption(agg: Aggregate, link: str | None = None) -> str:
    fractions = [int(str(s).split("/")[-1]) / load_registry(agg.registry)[t].total_steps
                 for t, s in zip(agg.budget["task"], agg.budget["train_steps"])]
    return (f"Across tasks: IQM of the normalized score per method and P(Ours > method), "
            f"stratified-bootstrap 95% intervals; {PROTOCOL_SHORT[agg.protocol]}, "
            f"{budget_fraction_text(fractions)}. Legend: {_where(link)}.")


def aggregate_footnote(agg: Aggregate) -> str:
    left = (f" Left out: {'; '.join(f'{t} ({why})' for t, why in agg.excluded.items())}."
            if agg.excluded else "")
    return (f"Scale '{agg.scale}': {_budget_text(agg.budget, agg.registry)}. Tasks: "
            f"{', '.join(agg.tasks) or 'none'}.{left} Verdict margin δ = {agg.delta:g}.")


def aggregate_markdown(agg: Aggregate, df: pd.DataFrame, link: str | None = None) -> str:
    header = ["Method", "tasks", "runs", "IQM normalized score (95% interval)",
              "P(Ours > method) (95% interval)"]
    records = df.to_dict("records")
    rows = [[r["label"], str(r["n_tasks"]), str(r["n_runs"]), _value_cell(r["iqm"], r["iqm_low"], r["iqm_high"], 2),
             _value_cell(r["poi_ours_over"], r["poi_low"], r["poi_high"], 2)] for r in records]
    return "\n".join([f"**{aggregate_caption(agg, link or legend_link(None))}**", ""]
                     + _markdown_table(header, rows) + ["", f"<sub>{aggregate_footnote(agg)}</sub>"]) + "\n"


def write_aggregate(paths: dict[str, list[str | Path]], scale: str, out_csv: str | Path, registry=None,
                    delta: float = DEFAULT_DELTA, protocol: str = "deterministic",
                    reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """The aggregate over tasks as CSV (full precision) and .md beside it (same stem), atomically."""
    agg = normalized_scores(load_evaluations(paths, check_protocol(protocol)), scale, registry, delta,
                            protocol, reps)
    check_computed(agg)
    df = build_aggregate(agg, reps)
    out_csv = Path(out_csv)
    _write({out_csv: df.to_csv(index=False),
            out_csv.with_suffix(".md"): aggregate_markdown(agg, df, legend_link(out_csv))})
    return df


# ----------------------------------------------------------------------------- the runs as data
# runs.csv's columns, in order (docs/runs-csv.md documents each).
RUNS_COLUMNS = ("scale", "task", "method", "seed", "train_steps", "protocol", "episodes", "return",
                "success_rate", "large_share", "flops_per_inf", "flops_reduction_pct", "cost_weight",
                "run", "eval_json", "commit")


def _run_commit(run: str) -> str:
    """The git commit the run was trained at (its run.json's or snapshot.json's provenance)."""
    for marker in ("run.json", "snapshot.json"):
        path = Path(run) / marker
        if path.exists():
            data = read_json(path)
            commit = (data.get("provenance") or {}).get("git_commit") if isinstance(data, dict) else None
            return commit or ""
    return ""


def build_runs(paths: dict[str, list[str | Path]], scale: str, registry=None) -> pd.DataFrame:
    """One tidy row per (task, method, seed, budget, protocol): every evaluation given, under
    each protocol it holds, with its run folder and commit (``RUNS_COLUMNS``)."""
    frames = []
    for protocol in PROTOCOLS:
        usable = {m: [p for p in files if _holds(p, protocol)] for m, files in paths.items()}
        runs = load_evaluations({m: f for m, f in usable.items() if f}, protocol)
        if len(runs):
            frames.append(runs.assign(protocol=protocol))
    if not frames:
        raise ValueError("runs: no evaluations given")
    runs = pd.concat(frames, ignore_index=True)
    order = {m: i for i, m in enumerate(paths)}
    tasks = list(load_registry(registry).keys())
    runs = runs.assign(scale=scale, train_steps=runs["total_steps"], large_share=runs["large_usage_pct"] / 100,
                       eval_json=runs["path"], commit=[_run_commit(r) for r in runs["run"]],
                       _task=[tasks.index(t) if t in tasks else len(tasks) for t in runs["task"]],
                       _method=runs["method"].map(order))
    runs = runs.sort_values(["_task", "task", "_method", "seed", "train_steps", "protocol"], kind="stable")
    return runs[list(RUNS_COLUMNS)].reset_index(drop=True)


def _holds(path, protocol: str) -> bool:
    """Whether an evaluation holds ``protocol`` (one-protocol evaluations hold only theirs)."""
    data = _read_evaluation(path)
    recorded = data.get("protocol", "both")
    if recorded in PROTOCOLS:
        return recorded == protocol
    return protocol == "deterministic" or isinstance(data.get("stochastic"), dict)


def write_runs(paths: dict[str, list[str | Path]], scale: str, out_csv: str | Path,
               registry=None) -> pd.DataFrame:
    """runs.csv: ``build_runs`` written atomically (full precision)."""
    df = build_runs(paths, scale, registry)
    _write({Path(out_csv): df.to_csv(index=False)})
    return df


def read_runs(runs_csv: str | Path, protocol: str = "deterministic") -> pd.DataFrame:
    """The rows of runs.csv under ``protocol``, in ``load_evaluations``' shape."""
    df = pd.read_csv(runs_csv)
    df = df[df["protocol"] == check_protocol(protocol)]
    return df.rename(columns={"train_steps": "total_steps", "eval_json": "path"}).assign(
        large_usage_pct=100 * df["large_share"])


def aggregate_computable(runs_csv: str | Path, protocol: str = "deterministic", registry=None) -> bool:
    """Whether the scale whose runs.csv this is has the aggregate over tasks (at least MIN_TASKS
    tasks with a resolved normalization): the pipeline requests the aggregate and the
    performance profile only then, so that no empty table or figure is written."""
    runs = read_runs(runs_csv, protocol)
    runs = runs[runs["method"].isin(AGGREGATE_METHODS)]
    return normalized_scores(runs, "", registry, protocol=protocol).computed
