"""Tables 3, 4 and 5 of the paper, rebuilt from evaluation JSONs with the published numbers
beside, the verdicts on the paper's two claims, and the aggregate over tasks.

Every reproduced number is the mean over training seeds with a 95% interval, plus a "best run"
view (the paper's Table 4 reports the highest score each method reached). Each table states the
budget it was made with (scale, seeds, training steps, evaluation episodes), the evaluation
protocol and the verdict margin in its caption; the legend of every column is one README
section ("Reading the tables") that the caption names.

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
    reproduced: percentile bootstrap interval of Ours' mean reduction; lower bound >= the
    paper's: "reproduced"; upper bound < it: "not reproduced"; otherwise "inconclusive".
    Elsewhere "n/a (return claim not met)".

An Ours whose mean large share is below 1% or above 99% is flagged "degenerate (one
sub-policy)" in both cells (and (b) is n/a): its FLOPs reduction is that of one network.

Every bootstrap is seeded from ``BOOTSTRAP_SEED`` and the task (and column), so the same
evaluations give the same table, and a task's numbers do not depend on which other tasks are in
it.

**Across tasks** (``build_aggregate``; at least ``MIN_TASKS`` tasks whose L-only - S-only gap is
resolved, else nothing is computed): the IQM of the normalized score per method with
stratified-bootstrap 95% intervals, the probability of improvement of Ours over L-only, fit, BC
and GAIL, and the performance profile; the estimators are rliable's (Agarwal et al. 2021),
computed here (rliable 1.2.0 does not import with pandas 3, see ``iqm``).

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
import zlib
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

DEFAULT_DELTA = 0.2          # claim (a)'s non-inferiority margin (the paper's own lowest: Ant, 0.84)
MIN_SEEDS = 3                # fewer seeds of S-only, L-only or Ours: "inconclusive (n < 3)"
MIN_TASKS = 3                # fewer normalizable tasks: no aggregate
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20210531    # the paper's arXiv date; any fixed number does
DEGENERATE_PCT = 1.0         # mean large share < 1% or > 99%: one sub-policy
GOAL_SUCCESS_RATE = 0.9      # goal tasks: a seed "succeeds" at this evaluation success rate
LEGEND_ANCHOR = "reading-the-tables"  # README section with every column's legend

# NOT_APPLICABLE is spelt out in the CSV (pandas reads "n/a" as a missing value); cells say "n/a".
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_APPLICABLE, TRIVIAL = (
    "reproduced", "not reproduced", "inconclusive", "not applicable", "trivial")
INCONCLUSIVE_FEW = f"inconclusive (n < {MIN_SEEDS})"
DEGENERATE = "degenerate (one sub-policy)"
CLAIM_NOT_MET = "return claim not met"


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
CLAIM_METHODS = ("s_only", "l_only", "ours")
# Range of each bounded quantity (its interval is a clipped percentile bootstrap).
BOUNDS = {"success_rate": (0.0, 1.0), "large_usage_pct": (0.0, 100.0),
          "flops_reduction_pct": (-math.inf, 100.0), "flops_per_inf": (0.0, math.inf)}

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


def claims_of(table: str, methods=None) -> tuple[str, ...]:
    """The claims judged in ``table``: both, where its columns hold L-only and Ours and S-only
    is given too (``methods``: those given; default the table's own, so Table 4 has verdicts
    only when S-only is given, Table 5 never)."""
    own = set(methods_of(table))
    methods = own | set(own if methods is None else methods)
    return ("return", "flops") if {"l_only", "ours"} <= own and set(CLAIM_METHODS) <= methods else ()


def check_delta(delta: float) -> float:
    """The verdict margin, refused unless 0 < delta < 1."""
    try:
        delta = float(delta)
    except (TypeError, ValueError):
        raise ValueError(f"verdict margin delta: got {delta!r}; expected a number in (0, 1)") from None
    if not 0 < delta < 1:
        raise ValueError(f"verdict margin delta: got {delta:g}; expected a number in (0, 1) "
                         f"(Ours must reach 1 - delta of L-only's normalized score; default "
                         f"{DEFAULT_DELTA:g})")
    return delta


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


def _optional(value) -> float:
    return math.nan if value is None else float(value)


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


def load_evaluations(paths: dict[str, list[str | Path]], protocol: str = "deterministic") -> pd.DataFrame:
    """One row per evaluation JSON: method, task, file, training seed and the quantities the
    tables use under ``protocol`` (NaN where an evaluation does not report one)."""
    rows = []
    for method, files in paths.items():
        if method not in METHODS + VARIANT_METHODS and not is_pareto_method(method):
            raise ValueError(f"unknown method '{method}'; known: "
                             f"{', '.join(METHODS + VARIANT_METHODS)} and {PARETO_PREFIX}<factor>")
        for path in files:
            raw = read_json(path)
            data = protocol_view(raw, path, protocol)
            missing = [key for key in _EVAL_KEYS if key not in data]
            if missing:
                raise ValueError(f"evaluation {path} lacks {', '.join(missing)}")
            share = data["large_share"]
            rows.append({"method": method, "task": data["task"], "path": str(path),
                         "seed": _train_seed(raw, path),
                         "return": float(data["mean_return"]),
                         "success_rate": _optional(data.get("success_rate")),
                         "large_usage_pct": math.nan if share is None else 100.0 * share,
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


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% confidence half-width (Student's t with n-1 dof); NaN half-width for n < 2."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan
    sem = values.std(ddof=1) / math.sqrt(len(values))
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * sem)


# ----------------------------------------------------------------------------- bootstrap
def bootstrap_rng(*keys) -> np.random.Generator:
    """The generator of one bootstrap: fixed by ``BOOTSTRAP_SEED`` and ``keys`` (task, column)."""
    return np.random.default_rng([BOOTSTRAP_SEED, zlib.crc32("|".join(map(str, keys)).encode())])


def bootstrap_means(values, rng: np.random.Generator, reps: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """``reps`` means of ``values`` resampled with replacement (one stratum)."""
    values = np.asarray(values, dtype=float)
    return values[rng.integers(0, len(values), size=(reps, len(values)))].mean(axis=1)


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def interval(values, quantity: str, *keys, reps: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """(mean, low, high) of ``values`` over seeds: the Student-t 95% interval for an unbounded
    quantity (a return), a percentile bootstrap of the mean, clipped to the quantity's range
    (``BOUNDS``), for a bounded one. A constant gives low = high = the constant; one seed NaN
    bounds."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) == 1:
        return mean, math.nan, math.nan
    if np.all(values == values[0]):
        return mean, mean, mean
    if quantity not in BOUNDS:
        _, half = mean_ci95(values)
        return mean, mean - half, mean + half
    low, high = _percentiles(bootstrap_means(values, bootstrap_rng(*keys, quantity), reps))
    lo_bound, hi_bound = BOUNDS[quantity]
    return mean, float(np.clip(low, lo_bound, hi_bound)), float(np.clip(high, lo_bound, hi_bound))


# ----------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Verdict:
    verdict: str   # reproduced / not reproduced / inconclusive / inconclusive (n < 3) / trivial / n/a
    reason: str
    n: int         # the fewest seeds of the methods the verdict rests on
    mean: float    # (a) Ours' mean normalized score; (b) Ours' mean % FLOPs reduction
    low: float     # 95% interval
    high: float
    reference: float  # what it is compared with: (a) 1 - delta; (b) the paper's reduction
    flag: str = ""    # DEGENERATE where Ours uses one sub-policy

    def cell(self) -> str:
        if self.verdict == NOT_APPLICABLE:
            text = f"n/a ({self.reason})"
        elif math.isnan(self.low) or math.isnan(self.mean):
            text = self.verdict if self.verdict == self.reason or not self.reason else (
                f"{self.verdict} ({self.reason})")
        else:
            sign = {REPRODUCED: "≥", NOT_REPRODUCED: "<"}.get(self.verdict, "vs")
            text = f"{self.verdict}: {_value_cell(self.mean, self.low, self.high)} {sign} {_fmt(self.reference)}"
        if self.flag and self.flag not in text:
            text += f"; {self.flag}"
        return text


@dataclass(frozen=True)
class Normalizer:
    """A task's normalization: score -> (score - offset) / span, with offset = mean S-only and
    span = mean L-only - mean S-only. ``problem`` says why it cannot be used (else None)."""
    offset: float
    span: float
    span_samples: np.ndarray | None  # bootstrap means of L-only minus S-only's
    offset_samples: np.ndarray | None
    problem: str | None
    verdict: str | None  # the claim-(a) verdict a problem implies


def task_normalizer(s_only, l_only, *keys, reps: int = BOOTSTRAP_RESAMPLES,
                    min_seeds: int = MIN_SEEDS, rng: np.random.Generator | None = None) -> Normalizer:
    """The normalization of one task from its S-only and L-only scores (independent runs, each
    resampled separately; the first two draws of the task's claim-(a) bootstrap)."""
    s_only, l_only = np.asarray(s_only, dtype=float), np.asarray(l_only, dtype=float)
    if min(len(s_only), len(l_only)) == 0:
        return Normalizer(math.nan, math.nan, None, None, "no S-only or L-only runs", INCONCLUSIVE_FEW)
    offset, span = float(s_only.mean()), float(l_only.mean() - s_only.mean())
    if min(len(s_only), len(l_only)) < min_seeds:
        return Normalizer(offset, span, None, None,
                          f"fewer than {min_seeds} seeds of S-only or L-only",
                          f"inconclusive (n < {min_seeds})")
    rng = bootstrap_rng(*keys) if rng is None else rng
    s_means, l_means = bootstrap_means(s_only, rng, reps), bootstrap_means(l_only, rng, reps)
    if span <= 0:
        return Normalizer(offset, span, l_means - s_means, s_means,
                          "S-only not worse than L-only", TRIVIAL)
    if _percentiles(l_means - s_means)[0] <= 0:
        return Normalizer(offset, span, l_means - s_means, s_means,
                          "the 95% interval of L-only − S-only reaches 0", INCONCLUSIVE)
    return Normalizer(offset, span, l_means - s_means, s_means, None, None)


def verdict_return(s_only, l_only, ours, delta: float = DEFAULT_DELTA, *keys,
                   reps: int = BOOTSTRAP_RESAMPLES, min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim (a): Ours' mean normalized score is at least 1 - delta (non-inferiority; module doc)."""
    delta = check_delta(delta)
    ours = np.asarray(ours, dtype=float)
    n = min(len(s_only), len(l_only), len(ours))
    rng = bootstrap_rng(*keys, "return")
    norm = task_normalizer(s_only, l_only, reps=reps, min_seeds=min_seeds, rng=rng)
    threshold = 1 - delta
    point = (float(ours.mean()) - norm.offset) / norm.span if len(ours) and norm.span > 0 else math.nan
    if n < min_seeds:
        few = f"inconclusive (n < {min_seeds})"
        return Verdict(few, few, n, point, math.nan, math.nan, threshold)
    if norm.problem is not None:
        return Verdict(norm.verdict, norm.problem, n, point, math.nan, math.nan, threshold)
    o_means = bootstrap_means(ours, rng, reps)
    with np.errstate(divide="ignore", invalid="ignore"):
        samples = (o_means - norm.offset_samples) / norm.span_samples
    # The few resamples (< 2.5%) in which L-only is not above S-only have no normalization:
    # counted as the worst case, so they can only widen the interval downwards.
    samples = np.where(norm.span_samples > 0, samples, -np.inf)
    low, high = _percentiles(samples)
    if low >= threshold:
        return Verdict(REPRODUCED, f"95% interval at or above 1 − δ = {threshold:g}", n, point, low,
                       high, threshold)
    if high < threshold:
        return Verdict(NOT_REPRODUCED, f"95% interval below 1 − δ = {threshold:g}", n, point, low,
                       high, threshold)
    return Verdict(INCONCLUSIVE, f"95% interval contains 1 − δ = {threshold:g}", n, point, low, high,
                   threshold)


def verdict_at_least(values, paper: float, *keys, reps: int = BOOTSTRAP_RESAMPLES,
                     min_seeds: int = MIN_SEEDS) -> Verdict:
    """Claim (b): Ours' mean FLOPs reduction is at least the paper's (percentile bootstrap)."""
    values = np.asarray([float(v) for v in values], dtype=float)
    mean = float(values.mean()) if len(values) else math.nan
    paper = math.nan if paper is None else float(paper)
    if math.isnan(paper):
        return Verdict(NOT_APPLICABLE, "no published number", len(values), mean, math.nan, math.nan, paper)
    if len(values) < min_seeds:
        few = f"inconclusive (n < {min_seeds})"
        return Verdict(few, few, len(values), mean, math.nan, math.nan, paper)
    _, low, high = interval(values, "flops_reduction_pct", *keys, "claim", reps=reps)
    if low >= paper:
        return Verdict(REPRODUCED, "95% interval at or above the paper's", len(values), mean, low, high, paper)
    if high < paper:
        return Verdict(NOT_REPRODUCED, "95% interval below the paper's", len(values), mean, low, high, paper)
    return Verdict(INCONCLUSIVE, "95% interval contains the paper's", len(values), mean, low, high, paper)


def is_degenerate(large_usage_pct) -> bool:
    """Ours' mean share of steps by the large sub-policy is below 1% or above 99%."""
    values = np.asarray(large_usage_pct, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return False
    share = float(values.mean())
    return share < DEGENERATE_PCT or share > 100 - DEGENERATE_PCT


def judge_claims(runs: pd.DataFrame, paper_reduction: float, delta: float = DEFAULT_DELTA,
                 key: str = "", reps: int = BOOTSTRAP_RESAMPLES) -> dict[str, Verdict]:
    """Both claims for one task's scored evaluations (``with_score``); ``key`` (the task name)
    seeds the bootstraps."""
    def scores(method):
        return runs.loc[runs["method"] == method, "score"].to_numpy(dtype=float)

    ours = runs[runs["method"] == "ours"]
    flag = DEGENERATE if is_degenerate(ours["large_usage_pct"]) else ""
    a = verdict_return(scores("s_only"), scores("l_only"), scores("ours"), delta, key, reps=reps)
    a = Verdict(**{**a.__dict__, "flag": flag})
    if a.verdict != REPRODUCED or flag:
        reason = CLAIM_NOT_MET if a.verdict != REPRODUCED else DEGENERATE
        b = Verdict(NOT_APPLICABLE, reason, len(ours), float(ours["flops_reduction_pct"].mean()),
                    math.nan, math.nan, paper_reduction, flag)
    else:
        b = verdict_at_least(ours["flops_reduction_pct"], paper_reduction, key, reps=reps)
    return {"return": a, "flops": b}


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


def published_normalized_scores() -> pd.Series:
    """Ours' normalized score in the paper's own Table 3, per task (all >= 0.8; Ant lowest, 0.84)."""
    t3 = _published_file("published_table3.csv")
    return (t3["ours_return"] - t3["s_only_return"]) / (t3["l_only_return"] - t3["s_only_return"])


# ----------------------------------------------------------------------------- tables
def build_table(table: str, evaluations: pd.DataFrame, scale: str, registry=None,
                delta: float = DEFAULT_DELTA, protocol: str = "deterministic",
                reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """One row per task (registry order): the budget, protocol and score ``metric``; for every
    reproduced column ``<col>_mean``, ``<col>_low`` and ``<col>_high`` (the 95% interval; see
    ``interval``), ``<col>_best`` (the seed with the best score), ``<col>_paper`` (the published
    number), and for score columns ``<col>_reached`` (seeds at or above ``success_threshold``);
    then the verdicts ``claim_<claim>_{verdict,reason,n,mean,low,high,reference}`` and
    ``degenerate`` (see the module doc)."""
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
        rl_runs = runs[runs["method"].isin(RL_METHODS)]
        threshold = success_threshold(task, metric)
        row = {"task": name, "paper_task": task.settings.get("paper_name", name), "scale": scale,
               "protocol": protocol, "n_seeds": next(iter(counts.values())),
               "train_steps": _joined(rl_runs["total_steps"] if len(rl_runs) else runs["total_steps"]),
               "eval_episodes": _joined(runs["episodes"]), "metric": METRIC_LABELS[metric],
               "success_threshold": math.nan if threshold is None else threshold}
        for column, (method, quantity, _) in spec.columns.items():
            quantity = "score" if quantity == "return" else quantity
            method_runs = runs[runs["method"] == method]
            kind = metric if quantity == "score" else quantity
            mean, low, high = interval(method_runs[quantity], kind, name, column, reps=reps)
            best = method_runs.loc[method_runs["score"].idxmax(), quantity]
            paper = math.nan
            if (published is not None and row["paper_task"] in published.index
                    and column in published.columns):
                paper = float(published.loc[row["paper_task"], column])
            row.update({f"{column}_mean": mean, f"{column}_low": low, f"{column}_high": high,
                        f"{column}_best": float(best), f"{column}_paper": paper})
            if quantity == "score":
                reached = (int((method_runs["score"] >= threshold).sum()) if threshold is not None
                           else math.nan)
                row[f"{column}_reached"] = reached
        if claims:
            verdicts = judge_claims(runs, paper_reduction(task), delta, name, reps=reps)
            row["delta"] = delta
            row["degenerate"] = bool(verdicts["return"].flag)
            for claim, verdict in verdicts.items():
                row.update({f"claim_{claim}_verdict": verdict.verdict,
                            f"claim_{claim}_reason": verdict.reason, f"claim_{claim}_n": verdict.n,
                            f"claim_{claim}_mean": verdict.mean, f"claim_{claim}_low": verdict.low,
                            f"claim_{claim}_high": verdict.high,
                            f"claim_{claim}_reference": verdict.reference})
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


def _budget_text(df: pd.DataFrame, registry=None, seeds_column: str = "n_seeds") -> str:
    """"MountainCarContinuous: 100000 env steps, 10 seeds, 200 episodes; ..." (one group per
    budget), flagging the tasks not at the paper's budget."""
    groups: dict[tuple, list[str]] = {}
    for row in df.itertuples():
        key = (row.train_steps, getattr(row, seeds_column), row.eval_episodes)
        groups.setdefault(key, []).append(row.task)
    parts = []
    for (steps, seeds, episodes), names in groups.items():
        budget = (f"{steps} env steps, {seeds} seed{'' if seeds == 1 else 's'}, {episodes} "
                  f"evaluation episode{'' if episodes == 1 else 's'} per run")
        parts.append(budget if len(groups) == 1 else f"{', '.join(names)}: {budget}")
    reduced = reduced_budget_tasks(df, registry)
    if reduced:
        parts.append(f"NOT the paper's budget for {', '.join(reduced)}")
    else:
        parts.append("the paper's budget")
    return "; ".join(parts)


def legend_link(out: str | Path | None) -> str:
    """The README's legend section, relative to a table written at ``out`` under paper_tables/."""
    if out is not None:
        parts = Path(out).absolute().parts[::-1]  # the file, its folders, ..., paper_tables
        if "paper_tables" in parts:
            return "../" * parts.index("paper_tables") + f"README.md#{LEGEND_ANCHOR}"
    return f"README.md#{LEGEND_ANCHOR}"


def caption(table: str, df: pd.DataFrame, registry=None, link: str | None = None) -> str:
    """Two sentences: what the table holds, under which protocol and budget (reduced budgets
    flagged) and margin; then where the columns are explained (``link``: a Markdown link)."""
    spec = TABLES[table]
    protocol = df["protocol"].iloc[0]
    text = (f"{spec.title}; {PROTOCOL_LABELS[protocol]}, scale '{df['scale'].iloc[0]}' "
            f"({_budget_text(df, registry)}); mean over seeds (95% interval)"
            + (" [paper]" if spec.published else ", the paper publishes no numbers"))
    if "delta" in df.columns:
        text += f"; verdict margin δ = {df['delta'].iloc[0]:g}"
    where = f"[README, Reading the tables]({link})" if link else "README.md, section 'Reading the tables'"
    return text + f". Columns, intervals and verdicts: {where}."


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


def _interval_text(low: float, high: float) -> str:
    return f"({_fmt(low)}, {_fmt(high)})"


def _value_cell(mean: float, low: float, high: float) -> str:
    """"mean (low, high)"; the mean alone for a constant or one seed."""
    if math.isnan(low) or math.isnan(high) or _fmt(low) == _fmt(high) == _fmt(mean):
        return _fmt(mean)
    return f"{_fmt(mean)} {_interval_text(low, high)}"


def _claim_cell(row: dict, claim: str) -> str:
    def get(field):
        return row[f"claim_{claim}_{field}"]

    verdict = Verdict(get("verdict"), get("reason") if isinstance(get("reason"), str) else "",
                      int(get("n")), float(get("mean")), float(get("low")), float(get("high")),
                      float(get("reference")), DEGENERATE if row.get("degenerate") else "")
    return verdict.cell()


def _cells(df: pd.DataFrame, table: str, view: str) -> tuple[list[str], list[list[str]]]:
    """Header and string rows of the 'mean' or 'best' view: "mean (low, high); k/n ≥ t [paper]"
    per cell; the mean view ends with the verdicts."""
    spec = TABLES[table]
    claims = tuple(c for c in ("return", "flops") if f"claim_{c}_verdict" in df.columns) if view == "mean" else ()
    header = (["Task", "n", "steps", "episodes"] + [label for _, _, label in spec.columns.values()]
              + [CLAIM_LABELS[c] for c in claims])
    rows = []
    for row in df.to_dict("records"):
        task = row["task"] + (" (success rate)" if row["metric"] == METRIC_LABELS["success_rate"] else "")
        cells = [task, str(row["n_seeds"]), str(row["train_steps"]), str(row["eval_episodes"])]
        for column in spec.columns:
            if view == "mean":
                cell = _value_cell(row[f"{column}_mean"], row[f"{column}_low"], row[f"{column}_high"])
                reached = row.get(f"{column}_reached", math.nan)
                if not (reached is None or (isinstance(reached, float) and math.isnan(reached))):
                    cell += f"; {int(reached)}/{row['n_seeds']} ≥ {_fmt(row['success_threshold'])}"
            else:
                cell = _fmt(row[f"{column}_best"])
            if spec.published:
                cell += f" [{_fmt(row[f'{column}_paper'])}]"
            cells.append(cell)
        cells += [_claim_cell(row, c) for c in claims]
        rows.append(cells)
    return header, rows


VIEWS = (("mean", "Mean over seeds (95% interval)"), ("best", "Best run over seeds"))


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(r) + " |" for r in rows])


def to_markdown(table: str, df: pd.DataFrame, registry=None, link: str | None = None) -> str:
    parts = [f"**{caption(table, df, registry, link or legend_link(None))}**", ""]
    for view, heading in VIEWS:
        header, rows = _cells(df, table, view)
        parts += [f"*{heading}*", ""] + _markdown_table(header, rows) + [""]
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
    lines.append(r"\end{table*}")
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
# Ours' sub-policy noise setting per method (`asym_action_noise`; training.py's choices).
GRID_NOISE = {"ours": "dropped", "ours_as_sac": "as_sac"}
GRID_NOISE_LABELS = {"dropped": "dropped (the authors' script)", "as_sac": "as SAC (the paper)"}
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


def solved_share(reached: int, n: int) -> tuple[float, float, float]:
    """(share, low, high): the share of ``n`` seeds whose score reached the success threshold,
    with its Wilson 95% interval. For an outcome that is bimodal over seeds (a seed solves the
    task or it does not) this is the number a reader needs beside the mean."""
    if n == 0 or reached is None or (isinstance(reached, float) and math.isnan(reached)):
        return math.nan, math.nan, math.nan
    ci = stats.binomtest(int(reached), int(n)).proportion_ci(method="wilson")
    return int(reached) / int(n), float(ci.low), float(ci.high)


def seeds_to_decide(n: int, mean: float, low: float, high: float, reference: float) -> float:
    """Seeds per method at which claim (a)'s interval would exclude ``reference`` if the spread
    observed at ``n`` seeds held: the bootstrap half-width on the side of the reference shrinks
    as 1/sqrt(n). NaN where the interval already excludes it or no interval was computed."""
    if any(math.isnan(v) for v in (mean, low, high)) or not low < reference <= high:
        return math.nan
    if mean == reference:
        return math.inf
    half = (mean - low) if mean > reference else (high - mean)
    return float(math.ceil(round(n * (half / abs(mean - reference)) ** 2, 9)))


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
    seeds = "/".join(str(n) for n in sorted(set(df["n_seeds"])))
    episodes = "/".join(str(e) for e in sorted(set(df["eval_episodes"])))
    budgets = ", ".join(f"{b:,}" for b in sorted(set(df["budget"])))
    where = f"[README, Reading the tables]({link})" if link else "README.md, section 'Reading the tables'"
    return (f"{df['task'].iloc[0]}: Ours with its sub-policies' exploration noise dropped (the "
            f"authors' script) or as SAC's (the paper), trained for {budgets} env steps, each "
            f"against S-only and L-only of its budget, under both evaluation protocols; scale(s) "
            f"{', '.join(sorted(set(df['scale'])))}, {seeds} seeds per method, {episodes} evaluation "
            f"episodes per run, mean over seeds (95% interval) [paper: "
            f"{_grid_paper(df, 'ours_return')} at {_grid_paper(df, 'ours_large_usage_pct')}% large], "
            f"verdict margin δ = {df['delta'].iloc[0]:g}. Columns, intervals and verdicts: {where}.")


def _grid_paper(df: pd.DataFrame, column: str) -> str:
    return _fmt(df[f"{column}_paper"].iloc[0])


def grid_markdown(df: pd.DataFrame, link: str | None = None) -> str:
    header = (["budget", "Ours' sub-policy noise", "protocol", "n"]
              + [TABLES["table3"].columns[c][2] for c in GRID_COLUMNS]
              + [CLAIM_LABELS["return"], CLAIM_LABELS["flops"],
                 "seeds solving (S-only / L-only / Ours), 95% Wilson interval",
                 "seeds per method (a) would need"])
    rows = []
    for row in df.to_dict("records"):
        cells = [f"{row['budget']:,}", GRID_NOISE_LABELS[row["noise"]], row["protocol"], str(row["n_seeds"])]
        for column in GRID_COLUMNS:
            cell = _value_cell(row[f"{column}_mean"], row[f"{column}_low"], row[f"{column}_high"])
            reached = row.get(f"{column}_reached", math.nan)
            if not (reached is None or (isinstance(reached, float) and math.isnan(reached))):
                cell += f"; {int(reached)}/{row['n_seeds']} ≥ {_fmt(row['success_threshold'])}"
            cells.append(cell)
        cells += [_claim_cell(row, "return"), _claim_cell(row, "flops"), _solved_cell(row),
                  "–" if math.isnan(row["seeds_to_decide"]) else f"{row['seeds_to_decide']:,.0f}"]
        rows.append(cells)
    first = df.iloc[0]
    paper = (["paper", "–", "–", "–"] + [_fmt(first[f"{c}_paper"]) for c in GRID_COLUMNS] + ["", "", "", ""])
    return "\n".join([f"**{grid_caption(df, link)}**", ""] + _markdown_table(header, rows + [paper])) + "\n"


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


# ----------------------------------------------------------------------------- across tasks
AGGREGATE_METHODS = ("s_only", "l_only", "ours", "fit", "bc", "gail")
POI_BASELINES = ("l_only", "fit", "bc", "gail")


def iqm(per_task) -> float:
    """Interquartile mean of the scores of every run of every task (rliable's
    ``metrics.aggregate_iqm``: the 25% trimmed mean of all scores pooled; with unequal runs per
    task, a task with more runs weighs more)."""
    return float(stats.trim_mean(np.concatenate([np.ravel(t) for t in per_task]), 0.25, axis=None))


def probability_of_improvement(x_per_task, y_per_task) -> float:
    """P(X > Y) averaged over tasks, a tie counting one half (rliable's
    ``metrics.probability_of_improvement``: the Mann-Whitney U statistic / (m n) per task)."""
    values = []
    for x, y in zip(x_per_task, y_per_task):
        x, y = np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float)[None, :]
        values.append(float(((x > y) + 0.5 * (x == y)).mean()))
    return float(np.mean(values))


def _resampled(per_task, rng: np.random.Generator, reps: int) -> list[np.ndarray]:
    """Per task, ``reps`` resamples of its runs (stratified: runs never cross tasks)."""
    out = []
    for scores in per_task:
        scores = np.asarray(scores, dtype=float)
        out.append(scores[rng.integers(0, len(scores), size=(reps, len(scores)))])
    return out


def iqm_interval(per_task, rng: np.random.Generator, reps: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Stratified-bootstrap 95% percentile interval of ``iqm`` (rliable's get_interval_estimates
    with its StratifiedBootstrap)."""
    pooled = np.concatenate(_resampled(per_task, rng, reps), axis=1)
    return _percentiles(stats.trim_mean(pooled, 0.25, axis=1))


def poi_interval(x_per_task, y_per_task, rng: np.random.Generator,
                 reps: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Stratified bootstrap, X and Y resampled independently within each task (rliable's
    StratifiedIndependentBootstrap), 95% percentile interval of the probability of improvement."""
    xs, ys = _resampled(x_per_task, rng, reps), _resampled(y_per_task, rng, reps)
    per_task = [((x[:, :, None] > y[:, None, :]) + 0.5 * (x[:, :, None] == y[:, None, :])).mean(axis=(1, 2))
                for x, y in zip(xs, ys)]
    return _percentiles(np.mean(per_task, axis=0))


def performance_profile(per_task, taus, rng: np.random.Generator | None = None,
                        reps: int = 2_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of runs with a normalized score above each tau (mean over tasks of each task's
    fraction; rliable's run-score distribution), and its stratified-bootstrap 95% band."""
    taus = np.asarray(taus, dtype=float)
    profile = np.mean([(np.asarray(t, dtype=float)[:, None] > taus).mean(axis=0) for t in per_task], axis=0)
    if rng is None:
        return profile, np.full_like(profile, np.nan), np.full_like(profile, np.nan)
    samples = np.mean([(r[:, :, None] > taus).mean(axis=1) for r in _resampled(per_task, rng, reps)], axis=0)
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    return profile, low, high


@dataclass
class Aggregate:
    """Normalized scores per method and task (``scores[method]``: one array per task of
    ``tasks``), the tasks left out and why, and the budget rows (one per task)."""
    tasks: list[str]
    excluded: dict[str, str]
    scores: dict[str, list[np.ndarray]]
    budget: pd.DataFrame
    scale: str
    protocol: str
    delta: float
    registry: object = None

    @property
    def computed(self) -> bool:
        return len(self.tasks) >= MIN_TASKS


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


def build_aggregate(agg: Aggregate, reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """One row per method: IQM of the normalized score with its stratified-bootstrap 95%
    interval, and the probability that Ours improves on the method (baselines of
    ``POI_BASELINES``); NaN throughout (and ``note`` saying why) with fewer than MIN_TASKS tasks."""
    rows = []
    note = "" if agg.computed else (f"fewer than {MIN_TASKS} tasks with a resolved normalization: "
                                    "nothing computed")
    for method, per_task in agg.scores.items():
        row = {"scale": agg.scale, "protocol": agg.protocol, "delta": agg.delta, "method": method,
               "label": METHOD_LABELS[method], "n_tasks": len(agg.tasks), "tasks": " ".join(agg.tasks),
               "excluded": "; ".join(f"{t}: {why}" for t, why in agg.excluded.items()),
               "n_runs": int(sum(len(t) for t in per_task)), "iqm": math.nan, "iqm_low": math.nan,
               "iqm_high": math.nan, "poi_ours_over": math.nan, "poi_low": math.nan,
               "poi_high": math.nan, "note": note}
        if agg.computed:
            row["iqm"] = iqm(per_task)
            row["iqm_low"], row["iqm_high"] = iqm_interval(per_task, bootstrap_rng("aggregate", "iqm", method), reps)
            if method in POI_BASELINES:
                ours = agg.scores["ours"]
                row["poi_ours_over"] = probability_of_improvement(ours, per_task)
                row["poi_low"], row["poi_high"] = poi_interval(ours, per_task,
                                                               bootstrap_rng("aggregate", "poi", method), reps)
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate_caption(agg: Aggregate, link: str | None = None) -> str:
    kept = ", ".join(agg.tasks) if agg.tasks else "none"
    left = (f"; left out: {'; '.join(f'{t} ({why})' for t, why in agg.excluded.items())}"
            if agg.excluded else "")
    where = f"[README, Reading the tables]({link})" if link else "README.md, section 'Reading the tables'"
    return (f"Across tasks: IQM of the normalized score per method and the probability that Ours "
            f"improves on each baseline, with stratified-bootstrap 95% intervals; "
            f"{PROTOCOL_LABELS[agg.protocol]}, scale '{agg.scale}' ({_budget_text(agg.budget, agg.registry)}), tasks "
            f"{kept}{left}, verdict margin δ = {agg.delta:g}. Columns and estimators: {where}.")


def aggregate_markdown(agg: Aggregate, df: pd.DataFrame, link: str | None = None) -> str:
    parts = [f"**{aggregate_caption(agg, link or legend_link(None))}**", ""]
    if not agg.computed:
        parts.append(f"Fewer than {MIN_TASKS} tasks with a resolved normalization "
                     f"({len(agg.tasks)}): nothing is computed.")
        return "\n".join(parts) + "\n"
    header = ["Method", "tasks", "runs", "IQM normalized score (95% interval)",
              "P(Ours > method) (95% interval)"]
    rows = [[r["label"], str(r["n_tasks"]), str(r["n_runs"]), _value_cell(r["iqm"], r["iqm_low"], r["iqm_high"]),
             _value_cell(r["poi_ours_over"], r["poi_low"], r["poi_high"])] for r in df.to_dict("records")]
    return "\n".join(parts + _markdown_table(header, rows)) + "\n"


def write_aggregate(paths: dict[str, list[str | Path]], scale: str, out_csv: str | Path, registry=None,
                    delta: float = DEFAULT_DELTA, protocol: str = "deterministic",
                    reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """The aggregate over tasks as CSV (full precision) and .md beside it (same stem), atomically."""
    agg = normalized_scores(load_evaluations(paths, check_protocol(protocol)), scale, registry, delta,
                            protocol, reps)
    df = build_aggregate(agg, reps)
    out_csv = Path(out_csv)
    _write({out_csv: df.to_csv(index=False),
            out_csv.with_suffix(".md"): aggregate_markdown(agg, df, legend_link(out_csv))})
    return df
