"""Tables 3, 4 and 5 of the paper, rebuilt from evaluation JSONs with the published numbers beside.

Every reproduced number is the mean over training seeds with a 95% confidence half-width
(Student's t, as seeds are few), plus a "best run" view because the paper's Table 4 reports
the highest score each method reached. Each table carries the budget it was made with
(scale, seeds, training steps, evaluation episodes) in its columns and in its caption, so a
reduced-budget number can never pass for a paper-scale one.

What sits beside a published number is the same quantity the paper measured:

* **Score.** The "return" columns hold the mean evaluation return, except for tasks whose
  environment reports ``is_success`` (FetchPickAndPlace): there the paper's 0.351 / 0.980 /
  0.935 are success rates (the authors' wrapper ends an episode on success with reward 1), so the
  cell holds eval.json's ``success_rate`` and the row is labelled "(success rate)".
* **FLOPs/Inf** is eval.json's ``flops_per_inf``, the paper's convention (2 x the
  multiply-accumulates of the weight matrices, + 3 for a SAC actor's heads), not thop's MAC
  count (``flops_per_inf_macs``).
* **% steps large** is the large sub-policy's share of steps averaged per episode, as the
  authors computed it (``large_share_per_episode``); evaluations without that key fall back to
  the share over all evaluation steps (``large_share``), and the caption says so.

Verdicts on the paper's two claims (columns ``claim_return_*`` and ``claim_flops_*`` of every
table holding both L-only and Ours; one per task):

(a) *Ours' return is not below L-only's.* Per training seed run by both, d = Ours - L-only (the
    score above); 95% t-interval of the mean of d. Entirely >= 0: "reproduced". Entirely < 0:
    "not reproduced". Containing 0: "reproduced" only if the interval is precise enough to call
    the two comparable, i.e. its half-width is at most ``PRECISION`` (0.1) x |L-only's mean| over
    the paired seeds, so that it rules out a loss of more than 20% of L-only's score (the paper's
    own largest loss against L-only is 11%, finger-spin); a wider one cannot tell "comparable"
    from "clearly worse": "inconclusive".
(b) *Ours' FLOPs reduction is at least the paper's* (Table 3's % FLOPs reduction): 95%
    t-interval of Ours' reduction over seeds. Lower bound >= the paper's number: "reproduced";
    upper bound < it: "not reproduced"; otherwise "inconclusive". "n/a" where the paper has no
    number for the task.

Both are "inconclusive" with fewer than ``MIN_SEEDS`` (3) seeds (paired seeds for (a)): a
t-interval over 2 seeds is too wide to decide and one seed has none.

Inputs are given explicitly per method (``{"ours": [eval.json, ...], ...}``) so the pipeline's
declared inputs are exactly what is read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from asymbench.runs import atomic_path, read_json
from asymbench.tasks import load_registry

METHODS = ("s_only", "l_only", "ours", "ours_no_cost", "fit", "bc", "gail")
# Methods trained for an environment-step budget (the students' budget is GAIL's or BC's own).
RL_METHODS = ("s_only", "l_only", "ours", "ours_no_cost", "fit")
METHOD_LABELS = {"s_only": "S-only", "l_only": "L-only", "ours": "Ours", "ours_no_cost": "Ours, λ=0",
                 "fit": "fit", "bc": "BC", "gail": "GAIL"}
# Ours trained at the registry's lambda times a factor (the `pareto` target): "ours_lam0.333".
PARETO_PREFIX = "ours_lam"
_PARETO_METHOD = re.compile(rf"{PARETO_PREFIX}(\d+(?:\.\d+)?)")

METRIC_LABELS = {"return": "return", "success_rate": "success rate"}
MIN_SEEDS = 3      # fewer (paired) seeds: every verdict is "inconclusive"
# Claim (a): a CI containing 0 must have half-width <= PRECISION * |L-only mean|; it then rules
# out a loss of more than 2 * PRECISION = 20% of L-only's score (the largest loss the paper itself
# reports against L-only is 11%, finger-spin). Wider: the seeds cannot tell "comparable" apart
# from "clearly worse".
PRECISION = 0.1
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_APPLICABLE = (
    "reproduced", "not reproduced", "inconclusive", "n/a")


@dataclass(frozen=True)
class TableSpec:
    title: str
    published: str | None  # file in asymbench/data, its columns named as `columns`' keys
    columns: dict[str, tuple[str, str, str]]  # column -> (method, quantity, header label)


TABLES = {
    "table3": TableSpec(
        "Table 3: returns of S-only, L-only and Ours; Ours' share of steps by the large "
        "sub-policy and its FLOPs reduction against L-only",
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
CLAIM_LABELS = {"return": "Ours ≥ L-only? (paired diff.)", "flops": "FLOPs red. ≥ paper?"}

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


def method_label(method: str) -> str:
    if is_pareto_method(method):
        return f"Ours, λ×{pareto_factor(method):g}"
    return METHOD_LABELS[method]


def methods_of(table: str) -> list[str]:
    """The methods whose evaluations ``table`` needs, in first-use order."""
    return list(dict.fromkeys(method for method, _, _ in TABLES[table].columns.values()))


def claims_of(table: str) -> tuple[str, ...]:
    """The claims judged in ``table``: both, where it holds L-only and Ours."""
    return ("return", "flops") if {"l_only", "ours"} <= set(methods_of(table)) else ()


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


def _optional(value) -> float:
    return math.nan if value is None else float(value)


def load_evaluations(paths: dict[str, list[str | Path]]) -> pd.DataFrame:
    """One row per evaluation JSON: method, task, file, training seed and the quantities the
    tables use (NaN where an evaluation does not report one)."""
    rows = []
    for method, files in paths.items():
        if method not in METHODS and not is_pareto_method(method):
            raise ValueError(f"unknown method '{method}'; known: {', '.join(METHODS)} "
                             f"and {PARETO_PREFIX}<factor>")
        for path in files:
            data = read_json(path)
            missing = [key for key in _EVAL_KEYS if key not in data]
            if missing:
                raise ValueError(f"evaluation {path} lacks {', '.join(missing)}")
            per_episode = data.get("large_share_per_episode")
            share = per_episode if per_episode is not None else data["large_share"]
            rows.append({"method": method, "task": data["task"], "path": str(path),
                         "seed": _train_seed(data, path),
                         "return": float(data["mean_return"]),
                         "success_rate": _optional(data.get("success_rate")),
                         "large_usage_pct": math.nan if share is None else 100.0 * share,
                         "large_share_per_episode": per_episode is not None or share is None,
                         "flops_per_inf": float(data["flops_per_inf"]),
                         "flops_per_inf_macs": _optional(data.get("flops_per_inf_macs")),
                         "flops_reduction_pct": float(data["flops_reduction_pct"]),
                         "cost_weight": _optional(data.get("cost_weight")),
                         "total_steps": int(data["total_steps"]),
                         "episodes": int(data["episodes"])})
    return pd.DataFrame(rows)


def task_metric(runs: pd.DataFrame) -> str:
    """"success_rate" where every evaluation of the task reports one (goal tasks: the paper's
    numbers there are success rates), else "return"."""
    return "success_rate" if len(runs) and runs["success_rate"].notna().all() else "return"


def with_score(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``runs`` (one task) with a ``score`` column: the task's metric (see task_metric)."""
    metric = task_metric(runs)
    return runs.assign(score=runs[metric]), metric


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% confidence half-width (Student's t with n-1 dof); NaN half-width for n < 2."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan
    sem = values.std(ddof=1) / math.sqrt(len(values))
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * sem)


# ----------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Verdict:
    verdict: str   # reproduced / not reproduced / inconclusive / n/a
    n: int         # seeds the interval is over (paired seeds for claim (a))
    mean: float
    ci95: float
    reason: str

    def cell(self, reference: str = "") -> str:
        if self.n == 0:
            return f"{self.verdict} ({self.reason})"
        spread = "" if math.isnan(self.ci95) else f" ± {_fmt(self.ci95)}"
        return f"{self.verdict} ({_fmt(self.mean)}{spread}{reference}, n={self.n})"


def verdict_not_below(ours: dict[int, float], l_only: dict[int, float], precision: float = PRECISION,
                      min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim (a): Ours' score is not below L-only's, from seed-paired differences (module doc)."""
    seeds = sorted(set(ours) & set(l_only))
    if len(seeds) < min_seeds:
        mean = float(np.mean([ours[s] - l_only[s] for s in seeds])) if seeds else math.nan
        return Verdict(INCONCLUSIVE, len(seeds), mean, math.nan,
                       f"{len(seeds)} paired seed{'' if len(seeds) == 1 else 's'} < {min_seeds}")
    mean, ci = mean_ci95([ours[s] - l_only[s] for s in seeds])
    low, high = mean - ci, mean + ci
    tolerance = precision * abs(float(np.mean([l_only[s] for s in seeds])))
    if high < 0:
        return Verdict(NOT_REPRODUCED, len(seeds), mean, ci, "CI of Ours - L-only below 0")
    if low >= 0:
        return Verdict(REPRODUCED, len(seeds), mean, ci, "CI of Ours - L-only at or above 0")
    if ci <= tolerance:
        return Verdict(REPRODUCED, len(seeds), mean, ci,
                       f"CI contains 0, half-width <= {precision:g} x |L-only mean|")
    return Verdict(INCONCLUSIVE, len(seeds), mean, ci,
                   f"CI contains 0 but half-width > {precision:g} x |L-only mean|")


def verdict_at_least(values, paper: float, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim (b): Ours' FLOPs reduction is at least the paper's (module doc)."""
    values = [float(v) for v in values]
    mean = float(np.mean(values)) if values else math.nan
    if paper is None or math.isnan(paper):
        return Verdict(NOT_APPLICABLE, len(values), mean, math.nan, "no published number")
    if len(values) < min_seeds:
        return Verdict(INCONCLUSIVE, len(values), mean, math.nan,
                       f"{len(values)} seed{'' if len(values) == 1 else 's'} < {min_seeds}")
    mean, ci = mean_ci95(values)
    if mean - ci >= paper:
        return Verdict(REPRODUCED, len(values), mean, ci, "CI lower bound >= paper")
    if mean + ci < paper:
        return Verdict(NOT_REPRODUCED, len(values), mean, ci, "CI upper bound < paper")
    return Verdict(INCONCLUSIVE, len(values), mean, ci, "CI contains the paper's number")


def _by_seed(runs: pd.DataFrame, method: str, column: str) -> dict[int, float]:
    rows = runs[(runs["method"] == method) & runs["seed"].notna()]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows[column])}


def judge_claims(runs: pd.DataFrame, paper_reduction: float) -> dict[str, Verdict]:
    """Both claims for one task's scored evaluations (``with_score``)."""
    ours = runs[runs["method"] == "ours"]
    return {"return": verdict_not_below(_by_seed(runs, "ours", "score"), _by_seed(runs, "l_only", "score")),
            "flops": verdict_at_least(ours["flops_reduction_pct"], paper_reduction)}


# ----------------------------------------------------------------------------- published numbers
def _joined(values) -> int | str:
    """A single budget as an int; differing budgets spelt out ("300/500") rather than hidden."""
    distinct = sorted(set(int(v) for v in values))
    return distinct[0] if len(distinct) == 1 else "/".join(map(str, distinct))


def _published_file(name: str) -> pd.DataFrame:
    path = resources.files("asymbench") / "data" / name
    with path.open() as f:
        return pd.read_csv(f).set_index("task")


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


# ----------------------------------------------------------------------------- tables
def build_table(table: str, evaluations: pd.DataFrame, scale: str, registry=None) -> pd.DataFrame:
    """One row per task (registry order): scale columns, the score's ``metric``, then for every
    reproduced column ``<col>_mean``, ``<col>_ci95``, ``<col>_best`` (the seed with the best
    score) and ``<col>_paper`` (the published number; empty where the paper has none), then the
    verdicts ``claim_<claim>_{verdict,n,mean,ci95,reason}`` (see the module doc)."""
    spec = TABLES[table]
    tasks = load_registry(registry)
    published = _published(spec)
    unknown = set(evaluations["task"]) - set(tasks)
    if unknown:
        raise ValueError(f"{table}: evaluations of tasks missing from the registry: {sorted(unknown)}")
    rows = []
    for name, task in tasks.items():
        runs = evaluations[evaluations["task"] == name]
        if runs.empty:
            continue
        counts = {m: int((runs["method"] == m).sum()) for m in methods_of(table)}
        if len(set(counts.values())) != 1 or 0 in counts.values():
            raise ValueError(f"{table}: task '{name}' needs the same number of runs per method, "
                             f"got {counts}")
        runs, metric = with_score(runs)
        rl_runs = runs[runs["method"].isin(RL_METHODS)]
        shares = runs[runs["method"].isin(("ours", "ours_no_cost"))]
        row = {"task": name, "paper_task": task.settings.get("paper_name", name), "scale": scale,
               "n_seeds": next(iter(counts.values())), "train_steps": _joined(rl_runs["total_steps"]),
               "eval_episodes": _joined(runs["episodes"]), "metric": METRIC_LABELS[metric],
               "large_share": ("per episode" if shares["large_share_per_episode"].all()
                               else "over all steps")}
        for column, (method, quantity, _) in spec.columns.items():
            quantity = "score" if quantity == "return" else quantity
            method_runs = runs[runs["method"] == method]
            mean, ci = mean_ci95(method_runs[quantity])
            best = method_runs.loc[method_runs["score"].idxmax(), quantity]
            paper = math.nan
            if (published is not None and row["paper_task"] in published.index
                    and column in published.columns):
                paper = float(published.loc[row["paper_task"], column])
            row.update({f"{column}_mean": mean, f"{column}_ci95": ci, f"{column}_best": float(best),
                        f"{column}_paper": paper})
        if claims_of(table):
            reference = paper_reduction(task)
            for claim, verdict in judge_claims(runs, reference).items():
                row.update({f"claim_{claim}_verdict": verdict.verdict, f"claim_{claim}_n": verdict.n,
                            f"claim_{claim}_mean": verdict.mean, f"claim_{claim}_ci95": verdict.ci95,
                            f"claim_{claim}_reason": verdict.reason})
            row["claim_flops_paper"] = reference
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


CLAIMS_RULE = (
    " Verdicts on the paper's claims, per task, from 95% t-intervals: 'Ours ≥ L-only?': the "
    "mean difference Ours - L-only of the score over the training seeds run by both (paired by "
    "seed); reproduced if the interval lies at or above 0, or contains 0 with a half-width of at "
    f"most {PRECISION:g} × |L-only's mean| (then it rules out a loss of more than "
    f"{200 * PRECISION:g}% of L-only's score; the paper's largest is 11%); not "
    "reproduced if it lies below 0; otherwise inconclusive. 'FLOPs red. ≥ paper?': Ours' % FLOPs "
    "reduction over seeds against the paper's Table 3 number; reproduced if the interval's lower "
    "bound is at or above it, not reproduced if its upper bound is below it, otherwise "
    f"inconclusive. Both are inconclusive with fewer than {MIN_SEEDS} (paired) seeds.")


def caption(table: str, df: pd.DataFrame, registry=None) -> str:
    """States what the numbers are and the budget that made them, flagging reduced budgets."""
    spec = TABLES[table]
    scale = df["scale"].iloc[0]
    by_steps = df.groupby("train_steps", sort=False)["task"].apply(list)
    steps = "; ".join(f"{s} for {', '.join(t)}" if len(by_steps) > 1 else str(s)
                      for s, t in by_steps.items())
    seeds = _joined(df["n_seeds"])
    text = (f"{spec.title}. Scale '{scale}': {steps} environment steps per training run, "
            f"{seeds} seed{'' if seeds == 1 else 's'} per method, {_joined(df['eval_episodes'])} "
            "evaluation episodes per run.")
    reduced = reduced_budget_tasks(df, registry)
    if reduced:
        text += (f" NOT the paper's budget for {', '.join(reduced)} (the paper: 2M steps, 100k for "
                 "MountainCarContinuous, 200 evaluation episodes): read trends, not values.")
    else:
        text += (" Every task at the paper's budget (its training steps and 200 evaluation "
                 "episodes); the paper does not say how many seeds it ran.")
    if (df["n_seeds"] == 1).any():
        text += " One seed (n=1): no confidence interval, mean and best are that seed's number."
    text += (" 'Mean over seeds': mean ± 95% CI half-width (t-distribution). "
             "'Best run over seeds': per method, the seed with the highest mean score (the "
             "paper's Table 4 reports each method's best run).")
    success = df.loc[df["metric"] == METRIC_LABELS["success_rate"], "task"].tolist()
    if success:
        text += (f" Rows marked '(success rate)' ({', '.join(success)}): the return columns hold "
                 "the success rate over the evaluation episodes, not the mean return, because the "
                 "paper's numbers for this task are success rates (the authors' environment "
                 "wrapper ends an episode on success with reward 1).")
    text += (" FLOPs/Inf in the paper's convention: 2 × the multiply-accumulates of the weight "
             "matrices, + 3 for a SAC actor's heads (thop's MAC count is not what is shown).")
    if any(quantity == "large_usage_pct" for _, quantity, _ in spec.columns.values()):
        text += (" % steps large: the large sub-policy's share of each evaluation episode's steps, "
                 "averaged over episodes (the authors' measure)")
        fallback = df.loc[df["large_share"] != "per episode", "task"].tolist()
        text += (f"; for {', '.join(fallback)} the evaluations lack it and the share over all "
                 "evaluation steps is shown." if fallback else ".")
    if claims_of(table):
        text += CLAIMS_RULE
    text += (" The paper's published number is in brackets." if spec.published else
             " The paper publishes no numbers for this table.")
    return text


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    magnitude = abs(x)
    return f"{x:.0f}" if magnitude >= 1000 else f"{x:.1f}" if magnitude >= 1 else f"{x:.3f}"


def _claim_cell(row: dict, claim: str) -> str:
    verdict = Verdict(row[f"claim_{claim}_verdict"], int(row[f"claim_{claim}_n"]),
                      row[f"claim_{claim}_mean"], row[f"claim_{claim}_ci95"], row[f"claim_{claim}_reason"])
    if verdict.verdict == NOT_APPLICABLE:
        return f"{verdict.verdict} ({verdict.reason})"
    reference = f" vs {_fmt(row['claim_flops_paper'])}" if claim == "flops" else ""
    return verdict.cell(reference)


def _cells(df: pd.DataFrame, table: str, view: str) -> tuple[list[str], list[list[str]]]:
    """Header and string rows of the 'mean' or 'best' view: "value ± ci [paper]" per cell; the
    mean view ends with the verdicts."""
    spec = TABLES[table]
    claims = claims_of(table) if view == "mean" else ()
    header = (["Task", "n", "steps", "episodes"] + [label for _, _, label in spec.columns.values()]
              + [CLAIM_LABELS[c] for c in claims])
    rows = []
    for row in df.to_dict("records"):
        task = row["task"] + (" (success rate)" if row["metric"] == METRIC_LABELS["success_rate"] else "")
        cells = [task, str(row["n_seeds"]), str(row["train_steps"]), str(row["eval_episodes"])]
        for column in spec.columns:
            if view == "mean":
                ci = row[f"{column}_ci95"]
                cell = _fmt(row[f"{column}_mean"]) + ("" if row["n_seeds"] == 1 else f" ± {_fmt(ci)}")
            else:
                cell = _fmt(row[f"{column}_best"])
            if spec.published:
                cell += f" [{_fmt(row[f'{column}_paper'])}]"
            cells.append(cell)
        cells += [_claim_cell(row, c) for c in claims]
        rows.append(cells)
    return header, rows


def to_markdown(table: str, df: pd.DataFrame, registry=None) -> str:
    parts = [f"**{caption(table, df, registry)}**", ""]
    for view, heading in (("mean", "Mean over seeds ± 95% CI"), ("best", "Best run over seeds")):
        header, rows = _cells(df, table, view)
        parts += [f"*{heading}*", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" for _ in header) + "|"]
        parts += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    return "\n".join(parts)


def _tex(text: str) -> str:
    for plain, latex in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                         ("#", r"\#"), ("±", r"$\pm$"), ("λ", r"$\lambda$"), ("–", "--"),
                         ("×", r"$\times$"), ("≥", r"$\geq$"), ("≤", r"$\leq$")):
        text = text.replace(plain, latex)
    return text


def to_latex(table: str, df: pd.DataFrame, registry=None) -> str:
    lines = [r"\begin{table*}", r"\centering", r"\scriptsize",
             rf"\caption{{{_tex(caption(table, df, registry))}}}",
             rf"\label{{tab:{table}_{df['scale'].iloc[0]}}}"]
    for view, heading in (("mean", "Mean over seeds $\\pm$ 95\\% CI"), ("best", "Best run over seeds")):
        header, rows = _cells(df, table, view)
        lines += [rf"\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}", r"\toprule",
                  rf"\multicolumn{{{len(header)}}}{{l}}{{\emph{{{heading}}}}} \\",
                  " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
        lines += [r"\bottomrule", r"\end{tabular}", r"\par\medskip"]
    lines.append(r"\end{table*}")
    return "\n".join(lines) + "\n"


def write_table(table: str, paths: dict[str, list[str | Path]], scale: str, out_csv: str | Path,
                registry=None) -> pd.DataFrame:
    """Builds ``table`` and writes it as CSV plus .md and .tex beside it (same stem), atomically."""
    missing = [m for m in methods_of(table) if not paths.get(m)]
    if missing:
        raise ValueError(f"{table} needs evaluations of {', '.join(missing)}")
    df = build_table(table, load_evaluations(paths), scale, registry)
    out_csv = Path(out_csv)
    renderings = {out_csv: df.to_csv(index=False, float_format="%.6g"),
                  out_csv.with_suffix(".md"): to_markdown(table, df, registry),
                  out_csv.with_suffix(".tex"): to_latex(table, df, registry)}
    for path, text in renderings.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return df
