"""Every Table 3 at a glance: `asymbench tables glance` and `asymbench figures verdicts`."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from asymbench.cli import main
from asymbench.glance import END, FINDINGS_END, FINDINGS_START, START

ROOT = Path(__file__).resolve().parents[1]
ASYMBENCH = Path(sys.executable).parent / "asymbench"
S_ONLY, L_ONLY = [10.0, 12.0, 14.0, 11.0, 13.0], [90.0, 92.0, 88.0, 91.0, 89.0]


def write_evals(root: Path, task: str, ours: list[float], steps: int, share: float = 0.3,
                as_sac: list[float] = ()) -> dict:
    """S-only, L-only and Ours evaluations (docs/contract.md) of one task, one per score; with
    ``as_sac``, Ours with its sub-policy noise as SAC's too (method ours_as_sac)."""
    paths = {}
    for method, scores in (("s_only", S_ONLY), ("l_only", L_ONLY), ("ours", ours), ("ours_as_sac", as_sac)):
        paths[method] = []
        for seed, score in enumerate(scores):
            path = root / task / method / f"seed{seed}" / "eval.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            flops = 1000.0 if method == "l_only" else 200.0
            path.write_text(json.dumps({
                "stochastic": {"mean_return": score, "large_share": 0.5, "flops_per_inf": 600.0,
                               "flops_reduction_pct": 40.0},
                "task": task, "method": method, "run": str(path.parent), "seed": 1000,
                "episodes": 2, "total_steps": steps, "returns": [score] * 2, "mean_return": score,
                "std_return": 0.0, "success_rate": None,
                "large_share": {"s_only": 0.0, "l_only": 1.0}.get(method, share),
                "flops_per_inf": flops, "flops_l_only": 1000.0,
                "flops_reduction_pct": 100 * (1 - flops / 1000.0), "latency_us": {}}))
            paths[method].append(str(path))
    return {m: files for m, files in paths.items() if files}


def build_table3(out: Path, evals: dict, protocol_args=()) -> None:
    args = ["tables", "table3", "--scale", "mine", "--out", str(out), *protocol_args]
    for method, files in evals.items():
        args += [f"--{method.replace('_', '-')}", *files]
    assert main(args) == 0


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A folder with a README holding the glance markers and two Table 3s: walker-stand at 10%
    of the paper's budget (reproduced) and MountainCar at the paper's (not reproduced)."""
    (tmp_path / "README.md").write_text(f"# title\n\n{START}\nold\n{END}\n\nafter\n")
    build_table3(tmp_path / "paper_tables" / "mine" / "table3.csv",
                 write_evals(tmp_path / "e1", "walker-stand", [95, 97, 99, 96, 98], 200_000))
    build_table3(tmp_path / "paper_tables" / "mine" / "milestones" / "100000" / "table3.csv",
                 write_evals(tmp_path / "e2", "MountainCarContinuous", [20, 25, 15, 22, 18], 100_000))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_glance_writes_one_row_per_table_row_into_both_readmes(checkout):
    assert main(["tables", "glance"]) == 0
    readme = (checkout / "README.md").read_text()
    assert readme.startswith("# title\n\n" + START) and readme.endswith(END + "\n\nafter\n")
    block = readme.split(START)[1].split(END)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 2
    walker = next(r for r in rows if r.startswith("| walker-stand"))
    table = pd.read_csv(checkout / "paper_tables" / "mine" / "table3.csv").iloc[0]
    assert f"{table['claim_return_mean']:.3g} ({table['claim_return_low']:.3g}, " \
           f"{table['claim_return_high']:.3g})" in walker
    assert "200k (10%)" in walker and "| reproduced |" in walker  # walker-stand's budget: 2M
    assert "(paper_tables/mine/table3.md)" in walker
    mcc = next(r for r in rows if r.startswith("| MountainCarContinuous"))
    assert "100k (100%)" in mcc and "| not reproduced |" in mcc and "| n/a [1] |" in mcc
    assert "[1] return claim not met." in block
    assert "(paper_tables/mine/milestones/100000/table3.md)" in mcc
    tables_readme = (checkout / "paper_tables" / "README.md").read_text()
    assert "(mine/table3.md)" in tables_readme and "(../docs/reading-tables.md)" in tables_readme
    assert main(["tables", "glance", "--check"]) == 0


def test_grids_join_the_glance_with_their_noise_and_without_repeating_table3(checkout):
    """A noise x budget grid (`asymbench tables grid`) gives one row per noise and protocol; its
    row that repeats Table 3's (same budget, protocol, noise dropped, seeds) is shown once."""
    evals = write_evals(checkout / "g", "MountainCarContinuous", [20, 25, 15, 22, 18], 100_000,
                        as_sac=[85, 90, 95, 88, 92])
    build_table3(checkout / "paper_tables" / "other" / "table3.csv",
                 {m: f for m, f in evals.items() if m != "ours_as_sac"})
    args = ["tables", "grid", "--scale", "other", "--out", str(checkout / "paper_tables" / "other" / "variants" / "g.csv")]
    for method, files in evals.items():
        args += [f"--{method.replace('_', '-')}", *files]
    assert main(args) == 0
    (checkout / "docs").mkdir()
    (checkout / "docs" / "results.md").write_text(f"# r\n\n{FINDINGS_START}\n{FINDINGS_END}\n")
    assert main(["tables", "glance"]) == 0
    block = (checkout / "README.md").read_text().split(START)[1].split(END)[0]
    rows = [line for line in block.splitlines() if line.startswith("| MountainCarContinuous | other |")]
    cells = [[c.strip() for c in r.split("|")[1:-1]] for r in rows]
    assert sorted((c[3], c[4]) for c in cells) == [
        ("as SAC (paper)", "deterministic"), ("as SAC (paper)", "stochastic"),
        ("dropped (authors' script)", "deterministic"), ("dropped (authors' script)", "stochastic")]
    links = {(c[3], c[4]): c[-1] for c in cells}
    assert links[("dropped (authors' script)", "deterministic")] == "[table](paper_tables/other/table3.md)"
    assert links[("as SAC (paper)", "stochastic")] == "[table](paper_tables/other/variants/g.md)"
    as_sac = next(c for c in cells if c[3].startswith("as SAC") and c[4] == "deterministic")
    assert as_sac[7] == "reproduced"
    findings = (checkout / "docs" / "results.md").read_text().split(FINDINGS_START)[1]
    assert "**MountainCarContinuous** (the paper's Ours: return 93.5, 44.5% of steps large)" in findings
    as_sac_line = next(line for line in findings.splitlines()
                       if line.startswith("| as SAC (paper) | 100k (100%) | deterministic | 5 |"))
    assert "| 96% |" in as_sac_line  # mean 90 of the paper's 93.5
    assert "(../paper_tables/other/variants/g.md)" in as_sac_line
    assert "Claim (a) holds: noise as SAC at 100k, deterministic; noise as SAC at 100k, stochastic." in findings
    assert "Claim (a) fails: noise dropped at 100k, deterministic" in findings
    assert main(["tables", "glance", "--check"]) == 0
    (checkout / "docs" / "results.md").write_text(f"# r\n\n{FINDINGS_START}\nold\n{FINDINGS_END}\n")
    assert main(["tables", "glance", "--check"]) == 2
    assert main(["figures", "verdicts"]) == 0
    assert "budgets: 10%, 100% of the paper's" in Image.open(checkout / "paper_tables" / "verdicts.png").info["Title"]


def pareto_sweep(checkout: Path, scale: str, points: dict) -> Path:
    """`asymbench figures pareto` of MountainCar (Ours-as-SAC) at ``scale``: each factor's
    Ours scores (``points``) beside write_evals' S-only and L-only; returns its CSV."""
    csv = checkout / "results" / scale / "figures" / "pareto_MountainCarContinuous_as_sac.csv"
    args = ["figures", "pareto", "--task", "MountainCarContinuous", "--scale", scale, "--variant", "as_sac",
            "--out", str(csv.with_suffix(".png")), "--csv", str(csv)]
    for factor, scores in points.items():
        evals = write_evals(checkout / f"sweep_{scale}_{factor}", "MountainCarContinuous", scores, 100_000)
        for path in map(Path, evals["ours"]):  # a sweep's runs train `asym` (workflow: pareto.smk)
            path.write_text(json.dumps({**json.loads(path.read_text()), "method": "asym"}))
        args += ["--point", str(factor), *evals["ours"]]
    args += ["--s-only", *evals["s_only"], "--l-only", *evals["l_only"]]
    assert main(args) == 0
    return csv


def test_cost_weight_sweeps_join_the_findings_one_sentence_per_protocol(checkout, capsys):
    """A committed Pareto sweep (results/<scale>/figures/pareto_*.csv) adds its setting and, per
    protocol, whether any cost weight is non-inferior and at what FLOPs; smoke sweeps are left out,
    and the check fails once the sweep changes."""
    (checkout / "docs").mkdir()
    results_md = checkout / "docs" / "results.md"
    results_md.write_text(f"# r\n\n{FINDINGS_START}\n{FINDINGS_END}\n")
    # S-only ~12, L-only ~90: λ×1 (~90) is non-inferior, λ×10 (~20) is not, λ×3 (bimodal) undecided
    csv = pareto_sweep(checkout, "mine", {1: [90, 92, 88, 91, 89], 3: [90, 15, 95, 14, 92],
                                          10: [20, 25, 15, 22, 18]})
    pareto_sweep(checkout, "smoke", {1: [1, 2, 3, 4, 5]})
    assert main(["tables", "glance"]) == 0
    findings = results_md.read_text().split(FINDINGS_START)[1]
    [sweep] = [line for line in findings.splitlines() if line.startswith("Cost-weight sweep")]
    assert sweep.startswith("Cost-weight sweep ([figure](../results/mine/figures/"
                            "pareto_MountainCarContinuous_as_sac.png)): Ours, sub-policy noise as SAC (paper), "
                            "at 100k (100%), scale mine, 5 seeds per weight, λ × 1, 3, 10.")
    assert ("Deterministic protocol: non-inferior (normalized score ≥ 0.8): λ×1; the cheapest at 200 "
            "FLOPs/Inf; undecided: λ×3; FLOPs/Inf of L-only 1,000, of the paper's Ours 4,440.") in sweep
    # every method's stochastic evaluation scores as its deterministic one, at 600 FLOPs/Inf
    assert "Stochastic protocol: non-inferior (normalized score ≥ 0.8): λ×1; the cheapest at 600" in sweep
    assert "smoke" not in findings and "**MountainCarContinuous**" in findings
    assert main(["tables", "glance", "--check"]) == 0
    pareto_sweep(checkout, "mine", {3: [90, 15, 95, 14, 92], 10: [20, 25, 15, 22, 18]})
    assert main(["tables", "glance", "--check"]) == 2
    assert main(["tables", "glance"]) == 0
    assert ("Deterministic protocol: no cost weight is shown non-inferior (normalized score ≥ 0.8); "
            "undecided: λ×3;") in results_md.read_text()
    pd.read_csv(csv).drop(columns="variant").to_csv(csv, index=False)
    assert main(["tables", "glance"]) == 2
    assert "no column variant; rebuild it with `snakemake pareto`" in capsys.readouterr().err


def test_check_fails_when_a_table_changed_and_names_the_file(checkout, capsys):
    assert main(["tables", "glance"]) == 0
    build_table3(checkout / "paper_tables" / "mine" / "stochastic" / "table3.csv",
                 write_evals(checkout / "e3", "walker-stand", [50, 55, 45, 52, 48], 200_000))
    assert main(["tables", "glance", "--check"]) == 2
    err = capsys.readouterr().err
    assert "README.md differs from the tables" in err and len(err.strip().splitlines()) == 1


def test_no_tables_say_so_and_smoke_tables_are_left_out(checkout):
    for table in (checkout / "paper_tables").rglob("table3.csv"):
        table.unlink()
    grid = checkout / "paper_tables" / "smoke" / "variants" / "g.csv"
    evals = write_evals(checkout / "e5", "MountainCarContinuous", [1, 2, 3, 4, 5], 300, as_sac=[1, 2, 3, 4, 5])
    args = ["tables", "grid", "--scale", "smoke", "--out", str(grid)]
    for method, files in evals.items():
        args += [f"--{method.replace('_', '-')}", *files]
    assert main(args) == 0
    smoke = checkout / "paper_tables" / "smoke" / "table3.csv"
    build_table3(smoke, write_evals(checkout / "e4", "walker-stand", [95, 97, 99, 96, 98], 300))
    assert main(["tables", "glance"]) == 0
    assert "No Table 3 or grid is committed under `paper_tables/` yet" in (checkout / "README.md").read_text()


def test_missing_markers_and_columns_are_one_line_errors(checkout, capsys):
    (checkout / "README.md").write_text("# no markers\n")
    assert main(["tables", "glance"]) == 2
    assert "add them where the table should go" in capsys.readouterr().err
    (checkout / "README.md").write_text(f"{START}\n{END}\n")
    pd.DataFrame({"task": ["walker-stand"]}).to_csv(checkout / "paper_tables" / "mine" / "table3.csv")
    assert main(["tables", "glance"]) == 2
    assert "no column train_steps, claim_return_verdict, claim_return_mean" in capsys.readouterr().err


def test_verdicts_figure_titles_the_budgets_in_the_png(checkout):
    assert main(["figures", "verdicts"]) == 0
    title = Image.open(checkout / "paper_tables" / "verdicts.png").info["Title"]
    assert "budgets: 10%, 100% of the paper's" in title
    assert (checkout / "paper_tables" / "verdicts.pdf").stat().st_size > 1000


def test_readme_glance_block_is_what_the_command_writes_now():
    result = subprocess.run([str(ASYMBENCH), "tables", "glance", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_committed_verdict_figure_names_its_budgets():
    """With Table 3s or grids committed, their verdict figure is committed too and names its
    budgets; without any, no (empty) figure is committed."""
    tracked = subprocess.run(["git", "ls-files", "paper_tables"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    figure = "paper_tables/verdicts.png"
    tables = [t for t in tracked if not t.startswith("paper_tables/smoke/")
              and (t.endswith("/table3.csv") or ("/variants/" in t and t.endswith(".csv")))]
    assert (figure in tracked) == bool(tables), tables
    if tables:
        title = Image.open(ROOT / figure).info["Title"]
        assert title.startswith("Ours' normalized score per task") and "of the paper's" in title


def test_other_tables_still_need_scale_and_out(tmp_path, capsys):
    assert main(["tables", "table3", "--out", str(tmp_path / "t3.csv")]) == 2
    assert "argument --scale: required for table3" in capsys.readouterr().err
    assert not (tmp_path / "t3.csv").exists()
