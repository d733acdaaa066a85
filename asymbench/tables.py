"""Tables 3, 4 and 5 of the paper, rebuilt from evaluation JSONs with the published numbers beside.

Every reproduced number is the mean over training seeds with a 95% confidence half-width
(Student's t, as seeds are few), plus a "best run" view because the paper's Table 4 reports
the highest score each method reached. Each table carries the budget it was made with
(scale, seeds, training steps, evaluation episodes) in its columns and in its caption, so a
reduced-budget number can never pass for a paper-scale one.

Inputs are given explicitly per method (``{"ours": [eval.json, ...], ...}``) so the pipeline's
declared inputs are exactly what is read.
"""

from __future__ import annotations

import math
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

_EVAL_KEYS = ("task", "mean_return", "large_share", "flops_per_inf", "flops_reduction_pct",
              "total_steps", "episodes")


def methods_of(table: str) -> list[str]:
    """The methods whose evaluations ``table`` needs, in first-use order."""
    return list(dict.fromkeys(method for method, _, _ in TABLES[table].columns.values()))


def load_evaluations(paths: dict[str, list[str | Path]]) -> pd.DataFrame:
    """One row per evaluation JSON: method, task, file and the quantities the tables use."""
    rows = []
    for method, files in paths.items():
        if method not in METHODS:
            raise ValueError(f"unknown method '{method}'; known: {', '.join(METHODS)}")
        for path in files:
            data = read_json(path)
            missing = [key for key in _EVAL_KEYS if key not in data]
            if missing:
                raise ValueError(f"evaluation {path} lacks {', '.join(missing)}")
            share = data["large_share"]
            rows.append({"method": method, "task": data["task"], "path": str(path),
                         "return": float(data["mean_return"]),
                         "large_usage_pct": math.nan if share is None else 100.0 * share,
                         "flops_per_inf": float(data["flops_per_inf"]),
                         "flops_reduction_pct": float(data["flops_reduction_pct"]),
                         "total_steps": int(data["total_steps"]),
                         "episodes": int(data["episodes"])})
    return pd.DataFrame(rows)


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% confidence half-width (Student's t with n-1 dof); NaN half-width for n < 2."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan
    sem = values.std(ddof=1) / math.sqrt(len(values))
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * sem)


def _joined(values) -> int | str:
    """A single budget as an int; differing budgets spelt out ("300/500") rather than hidden."""
    distinct = sorted(set(int(v) for v in values))
    return distinct[0] if len(distinct) == 1 else "/".join(map(str, distinct))


def _published(spec: TableSpec) -> pd.DataFrame | None:
    if spec.published is None:
        return None
    path = resources.files("asymbench") / "data" / spec.published
    with path.open() as f:
        return pd.read_csv(f).set_index("task")


def build_table(table: str, evaluations: pd.DataFrame, scale: str, registry=None) -> pd.DataFrame:
    """One row per task (registry order): scale columns, then for every reproduced column
    ``<col>_mean``, ``<col>_ci95``, ``<col>_best`` (the seed with the best return) and
    ``<col>_paper`` (the published number; empty where the paper has none)."""
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
        rl_runs = runs[runs["method"].isin(RL_METHODS)]
        row = {"task": name, "paper_task": task.settings.get("paper_name", name), "scale": scale,
               "n_seeds": next(iter(counts.values())), "train_steps": _joined(rl_runs["total_steps"]),
               "eval_episodes": _joined(runs["episodes"])}
        for column, (method, quantity, _) in spec.columns.items():
            method_runs = runs[runs["method"] == method]
            mean, ci = mean_ci95(method_runs[quantity])
            best = method_runs.loc[method_runs["return"].idxmax(), quantity]
            paper = math.nan
            if (published is not None and row["paper_task"] in published.index
                    and column in published.columns):
                paper = float(published.loc[row["paper_task"], column])
            row.update({f"{column}_mean": mean, f"{column}_ci95": ci, f"{column}_best": float(best),
                        f"{column}_paper": paper})
        rows.append(row)
    if not rows:
        raise ValueError(f"{table}: no evaluations given")
    return pd.DataFrame(rows)


def is_paper_budget(df: pd.DataFrame, scale: str, registry=None) -> bool:
    """True only for the paper scale run at every task's registry budget and episode count."""
    tasks = load_registry(registry)
    return scale == "paper" and all(
        row.train_steps == tasks[row.task].total_steps and row.eval_episodes == tasks[row.task].eval_episodes
        for row in df.itertuples())


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
    if not is_paper_budget(df, scale, registry):
        text += (" NOT the paper's scale (the paper: 2M steps, 100k for MountainCarContinuous, "
                 "200 evaluation episodes): read trends, not values.")
    if (df["n_seeds"] == 1).any():
        text += " One seed (n=1): no confidence interval, mean and best are that seed's number."
    text += (" 'Mean over seeds': mean ± 95% CI half-width (t-distribution). "
             "'Best run over seeds': per method, the seed with the highest mean return (the "
             "paper's Table 4 reports each method's best run).")
    text += (" The paper's published number is in brackets." if spec.published else
             " The paper publishes no numbers for this table.")
    return text


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    magnitude = abs(x)
    return f"{x:.0f}" if magnitude >= 1000 else f"{x:.1f}" if magnitude >= 1 else f"{x:.3f}"


def _cells(df: pd.DataFrame, table: str, view: str) -> tuple[list[str], list[list[str]]]:
    """Header and string rows of the 'mean' or 'best' view: "value ± ci [paper]" per cell."""
    spec = TABLES[table]
    header = ["Task", "n", "steps", "episodes"] + [label for _, _, label in spec.columns.values()]
    rows = []
    for row in df.to_dict("records"):
        cells = [row["task"], str(row["n_seeds"]), str(row["train_steps"]), str(row["eval_episodes"])]
        for column in spec.columns:
            if view == "mean":
                ci = row[f"{column}_ci95"]
                cell = _fmt(row[f"{column}_mean"]) + ("" if row["n_seeds"] == 1 else f" ± {_fmt(ci)}")
            else:
                cell = _fmt(row[f"{column}_best"])
            if spec.published:
                cell += f" [{_fmt(row[f'{column}_paper'])}]"
            cells.append(cell)
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
                         ("#", r"\#"), ("±", r"$\pm$"), ("λ", r"$\lambda$"), ("–", "--")):
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
