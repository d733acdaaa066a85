"""The statistics behind the tables and figures, each quantity and its interval computed once:
Student-t and percentile-bootstrap intervals over seeds, the verdicts on the paper's two claims
(non-inferiority of Ours' normalized score; Ours' FLOPs reduction against the paper's), the
degenerate flag, and the rliable-style aggregates across tasks (IQM, probability of improvement,
performance profile). ``asymbench.tables`` renders them; the definitions are in its module doc.

Every bootstrap is seeded from ``BOOTSTRAP_SEED`` and its keys (task, column), so the same
evaluations give the same numbers wherever they are shown.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


DEFAULT_DELTA = 0.2          # claim (a)'s non-inferiority margin (the paper's own lowest: Ant, 0.84)
MIN_SEEDS = 3                # fewer seeds of S-only, L-only or Ours: "inconclusive (n < 3)"
MIN_TASKS = 3                # fewer normalizable tasks: no aggregate
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20210531    # the paper's arXiv date; any fixed number does
DEGENERATE_PCT = 1.0         # mean large share < 1% or > 99%: one sub-policy

# NOT_APPLICABLE is spelt out in the CSV (pandas reads "n/a" as a missing value); cells say "n/a".
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_APPLICABLE, TRIVIAL = (
    "reproduced", "not reproduced", "inconclusive", "not applicable", "trivial")
INCONCLUSIVE_FEW = f"inconclusive (n < {MIN_SEEDS})"
DEGENERATE = "degenerate (one sub-policy)"
CLAIM_NOT_MET = "return claim not met"

CLAIM_METHODS = ("s_only", "l_only", "ours")
# Table 3's column of Ours' % FLOPs reduction: claim (b) judges its interval (same bootstrap keys).
FLOPS_REDUCTION_COLUMN = "ours_flops_reduction_pct"
# Ours' mean normalized score above this below the paper's budget: L-only has not learned yet.
NOT_CONVERGED_SCORE = 1.5
# Range of each bounded quantity (its interval is a clipped percentile bootstrap).
BOUNDS = {"success_rate": (0.0, 1.0), "large_usage_pct": (0.0, 100.0),
          "flops_reduction_pct": (-math.inf, 100.0), "flops_per_inf": (0.0, math.inf)}


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
    _, low, high = interval(values, "flops_reduction_pct", *keys, reps=reps)
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
        # keyed as Table 3's Ours % FLOPs reduction column: one interval for both
        b = verdict_at_least(ours["flops_reduction_pct"], paper_reduction, key, FLOPS_REDUCTION_COLUMN,
                             reps=reps)
    return {"return": a, "flops": b}



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


def aggregate_rows(agg: Aggregate, reps: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """One row per method: IQM of the normalized score with its stratified-bootstrap 95%
    interval, and the probability that Ours improves on the method (baselines of
    ``POI_BASELINES``; NaN for the others). Only for a computed aggregate (``agg.computed``)."""
    if not agg.computed:
        raise ValueError(f"aggregate over tasks: fewer than {MIN_TASKS} tasks with a resolved normalization")
    rows = []
    for method, per_task in agg.scores.items():
        row = {"scale": agg.scale, "protocol": agg.protocol, "delta": agg.delta, "method": method,
               "n_tasks": len(agg.tasks), "tasks": " ".join(agg.tasks),
               "excluded": "; ".join(f"{t}: {why}" for t, why in agg.excluded.items()),
               "n_runs": int(sum(len(t) for t in per_task)), "iqm": iqm(per_task),
               "poi_ours_over": math.nan, "poi_low": math.nan, "poi_high": math.nan}
        row["iqm_low"], row["iqm_high"] = iqm_interval(per_task, bootstrap_rng("aggregate", "iqm", method), reps)
        if method in POI_BASELINES:
            ours = agg.scores["ours"]
            row["poi_ours_over"] = probability_of_improvement(ours, per_task)
            row["poi_low"], row["poi_high"] = poi_interval(ours, per_task, bootstrap_rng("aggregate", "poi", method),
                                                           reps)
        rows.append(row)
    columns = ["scale", "protocol", "delta", "method", "n_tasks", "tasks", "excluded", "n_runs", "iqm",
               "iqm_low", "iqm_high", "poi_ours_over", "poi_low", "poi_high"]
    return pd.DataFrame(rows)[columns]
