"""The ``asymbench`` command line: a thin layer over the library that the Snakemake rules call.

Each subcommand parses its arguments and calls one library function; heavy imports happen
inside the handlers so ``asymbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

METHODS_SAC = ("s_only", "l_only", "fit")
METHODS_TRAIN = METHODS_SAC + ("asym",)


def _registry_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=None,
                        help="task registry YAML (default: the packaged data/tasks.yaml)")


# ----------------------------------------------------------------------------- tasks / flops
def _add_tasks(sub) -> None:
    p = sub.add_parser("tasks", help="list the registry's tasks and their main settings")
    _registry_arg(p)
    p.set_defaults(handler=_run_tasks)


def _run_tasks(args) -> None:
    from asymbench.tasks import load_registry

    tasks = load_registry(args.registry)  # validated whole before anything is printed
    print(f"{'task':22} {'env id':30} {'small':>5} {'large':>5} {'lambda':>8} {'steps':>9}")
    for name, task in tasks.items():
        print(f"{name:22} {task.env_id:30} {task.small:5d} {task.large:5d} "
              f"{task.cost_weight:8.1e} {task.total_steps:9d}")


def _add_flops(sub) -> None:
    p = sub.add_parser("flops", help="FLOPs/Inf of the small, large and master networks per task")
    p.add_argument("--tasks", nargs="*", default=None, help="task names (default: all)")
    _registry_arg(p)
    p.set_defaults(handler=_run_flops)


def _run_flops(args) -> None:
    from asymbench.networks import flops_table

    print(flops_table(args.tasks, args.registry).to_string(index=False))


# ----------------------------------------------------------------------------- train / evaluate
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train S-only / L-only / fit SAC or the asymmetric agent",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", required=True)
    p.add_argument("--method", required=True, choices=METHODS_TRAIN,
                   help="asym: master DQN + small and large SAC sub-policies")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one run (default: seed 0); --out is its folder")
    seeds.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="train these seeds together; --out is the parent of their seed<S>/ folders")
    p.add_argument("--out", required=True, help="run folder (created; resumed if it holds a checkpoint)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the stacked networks and buffers live (the "
                        "environments and the master stay on the CPU)")
    p.add_argument("--steps", type=int, default=None, help="env steps (default: the task's paper budget)")
    p.add_argument("--lam", type=float, default=None,
                   help="asym: cost weight lambda (default: the registry's; 0 = no cost term)")
    p.add_argument("--width", type=int, default=None, help="fit: hidden width of actor and critics")
    p.add_argument("--width-from", default=None, nargs="+",
                   help="fit: asym evaluation JSON(s); the width whose FLOPs/Inf is closest to their "
                        "mean Avg-FLOPs/Inf")
    p.add_argument("--learning-starts", type=int, default=None,
                   help="override the registry's SAC learning_starts (reduced-budget scales)")
    p.add_argument("--master-learning-starts", type=int, default=None,
                   help="override the registry's master learning_starts (env steps)")
    p.add_argument("--max-episode-steps", type=int, default=None,
                   help="override the task's episode limit (reduced-budget scales)")
    p.add_argument("--timeouts", choices=("terminal", "bootstrap"), default=None,
                   help="store time-outs as terminal (the authors' convention) or bootstrap through "
                        "them (default: the registry's `timeouts`)")
    p.add_argument("--asym-action-noise", choices=("dropped", "as_sac"), default=None,
                   help="asym: exploration noise of the sub-policies: dropped (the authors' script) "
                        "or the task's sac.action_noise (the paper) (default: the registry's)")
    p.add_argument("--checkpoint-every", type=int, default=50000, help="env steps between checkpoints")
    p.add_argument("--until", type=int, default=None,
                   help="end this segment at this env step, a milestone below the "
                        "budget (every schedule still follows the budget); writes the snapshot "
                        "OUT/milestones/<until>/seed<S>/ and keeps the checkpoint there")
    p.add_argument("--segment-start", type=int, default=None,
                   help="the milestone the previous segment ended at: the group's checkpoint must "
                        "stand there (a segment of a pipeline never silently restarts from step 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 and 2 give bit-identical runs, tested; the pipeline "
                   "sets it from config `train_threads` / `thread_plan`)")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="the SAC update through torch.compile (needs a C++ compiler): auto (default: "
                        "what measured faster on the device type, compiled on a CPU for runs of "
                        "100,000 env steps or more, else eager; a resumed run keeps its mode), on "
                        "(agrees with eager to float rounding) or off (eager, the bit-exact "
                        "reference); config.json's `runtime` records which ran")
    p.add_argument("--env-workers", type=int, default=0,
                   help="worker processes that step the group's environments, at most one per "
                        "seed (0: this process, one after another; the transitions are the same; "
                        "on a CPU serial measured faster, docs/performance.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _registry_arg(p)
    p.set_defaults(handler=_run_train)


def _run_train(args) -> None:
    import torch

    from asymbench.engine import member_dirs, train_group
    from asymbench.runs import UsageError
    from asymbench.train_config import TrainRequest

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible to PyTorch on this machine")
    request = TrainRequest(
        task=args.task, method=args.method, seed=0, out=args.out, steps=args.steps,
        cost_weight=args.lam, width=args.width, width_from=args.width_from,
        learning_starts=args.learning_starts, master_learning_starts=args.master_learning_starts,
        max_episode_steps=args.max_episode_steps, checkpoint_every=args.checkpoint_every,
        timeouts=args.timeouts, asym_action_noise=args.asym_action_noise,
        threads=args.threads, progress=not args.quiet, registry=args.registry, compile=args.compile,
        env_workers=args.env_workers)
    seeds = args.seeds or [0 if args.seed is None else args.seed]
    dirs = member_dirs(args.out, seeds) if args.seeds else [Path(args.out)]
    train_group(request, seeds, args.out, dirs, device=args.device, until=args.until,
                segment_start=args.segment_start)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="deterministic and stochastic evaluation of a finished run",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a finished run folder (train or distill)")
    p.add_argument("--episodes", type=int, default=None, help="default: the task's (200)")
    p.add_argument("--seed", type=int, default=1000,
                   help="seed of the first evaluation episode (episode seeds must stay below 2**31)")
    p.add_argument("--protocol", choices=("both", "deterministic", "stochastic"), default="both",
                   help="deterministic: greedy master, mean actions; stochastic: the master samples "
                        "softmax(Q) and the networks sample their actions (the authors' second "
                        "evaluation); both: deterministic metrics at the top level, stochastic "
                        "ones under 'stochastic', same episode seeds")
    p.add_argument("--out", required=True, help="evaluation JSON to write")
    p.add_argument("--trace", default=None, help="per-step trace CSV of the first episode")
    p.add_argument("--frames", default=None,
                   help="folder for rendered frames of the first episode (start and switches)")
    p.add_argument("--max-episode-steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args) -> None:
    from asymbench.evaluation import evaluate_run

    result = evaluate_run(args.run, episodes=args.episodes, seed=args.seed, out=args.out,
                          trace=args.trace, frames=args.frames, max_episode_steps=args.max_episode_steps,
                          threads=args.threads, protocol=args.protocol, task=_run_task(args.run))
    rows = [("deterministic" if args.protocol != "stochastic" else "stochastic", result)]
    if "stochastic" in result:
        rows.append(("stochastic", result["stochastic"]))
    for name, r in rows:
        print(f"{result['task']} {result['method']} ({name}): return {r['mean_return']:.2f} "
              f"± {r['std_return']:.2f} over {r['episodes']} episodes, "
              f"large share {r['large_share']}, {r['flops_per_inf']:.0f} FLOPs/Inf "
              f"({r['flops_reduction_pct']:.1f}% fewer than L-only)")


# ----------------------------------------------------------------------------- expert / distill
def _add_expert(sub) -> None:
    p = sub.add_parser("expert", help="expert data for BC / GAIL: deterministic rollouts of an "
                       "L-only teacher", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--teacher", required=True, help="a finished l_only run folder")
    p.add_argument("--out", required=True, help="expert data file to write (.npz)")
    p.add_argument("--trajectories", type=int, default=None,
                   help="episodes (default: the registry's distill.expert_trajectories, 25)")
    p.add_argument("--length", type=int, default=None,
                   help="state-action pairs kept per episode (default: distill.expert_length, 50)")
    p.add_argument("--seed", type=int, default=0,
                   help="episode i is reset with seed + i (seeds must stay below 2**31)")
    p.add_argument("--pairs", choices=("first", "evenly"), default=None,
                   help="first: each episode's first LENGTH steps; evenly: LENGTH steps evenly "
                        "spaced over the whole episode (default: the registry's "
                        "distill.expert_pairs, first)")
    p.add_argument("--max-episode-steps", type=int, default=None,
                   help="default: the teacher run's own override")
    _registry_arg(p)
    p.set_defaults(handler=_run_expert)


def _run_expert(args) -> None:
    from asymbench.distillation import make_expert_data

    data = make_expert_data(args.teacher, args.out, trajectories=args.trajectories,
                            length=args.length, seed=args.seed,
                            max_episode_steps=args.max_episode_steps, registry=args.registry,
                            pairs=args.pairs)
    print(f"{data.task}: {data.meta['trajectories']} episodes, {data.n_pairs} state-action pairs "
          f"({data.meta['pairs']}) -> {args.out} (mean return of the kept steps "
          f"{data.meta['mean_snippet_return']:.2f})")


def _add_distill(sub) -> None:
    p = sub.add_parser("distill", help="BC / GAIL student of an L-only teacher (imitation)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--method", required=True, choices=("bc", "gail"))
    p.add_argument("--teacher", required=True, help="a finished l_only run folder")
    p.add_argument("--expert", required=True, help="expert data from `asymbench expert`")
    p.add_argument("--out", required=True, help="run folder to create")
    width = p.add_mutually_exclusive_group(required=True)
    width.add_argument("--width", type=int, default=None, help="student hidden width")
    width.add_argument("--width-from", default=None, nargs="+",
                       help="asym evaluation JSON(s), one per seed; the width whose FLOPs/Inf is "
                            "closest to their mean Avg-FLOPs/Inf (as train --method fit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None,
                   help="gail: generator env steps (default: the registry's distill.gail_steps)")
    p.add_argument("--epochs", type=int, default=None,
                   help="bc: epochs over the expert data (default: distill.bc_epochs)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    _registry_arg(p)
    p.set_defaults(handler=_run_distill)


def _run_distill(args) -> None:
    from asymbench.distillation import distill

    distill(args.method, args.teacher, args.expert, args.out, seed=args.seed, width=args.width,
            width_from=args.width_from, steps=args.steps, epochs=args.epochs,
            threads=args.threads, registry=args.registry, progress=not args.quiet)


# ----------------------------------------------------------------------------- tables / figures
def _add_tables(sub) -> None:
    # asymbench.tables.METHODS + VARIANT_METHODS, spelt out: importing pandas/scipy here would
    # slow every command (tests/test_tables.py checks the two agree).
    methods = ("s_only", "l_only", "ours", "ours_no_cost", "fit", "bc", "gail", "ours_as_sac")
    p = sub.add_parser("tables", help="rebuild Table 3, 4 or 5 from evaluation JSONs (CSV + .md + .tex), "
                       "the aggregate over tasks (CSV + .md), or one task's grid of Ours' "
                       "sub-policy noise x training budget, both protocols (CSV + .md)")
    p.add_argument("table", choices=("table3", "table4", "table5", "aggregate", "grid", "runs", "glance"),
                   help="runs: every evaluation as one tidy row per task, method, seed, budget and "
                        "protocol (runs.csv; docs/runs-csv.md); glance: every Table 3 and grid under --root in "
                        "one table, written into README.md (between its glance marker lines) and "
                        "ROOT/README.md")
    p.add_argument("--scale", help="the budget's name, written into every row and caption")
    p.add_argument("--out", help="CSV to write; .md and .tex go beside it")
    p.add_argument("--root", default="paper_tables", help="glance: the folder of the tables")
    p.add_argument("--readme", default="README.md", help="glance: the README to write the table into")
    p.add_argument("--results", default="results",
                   help="glance: the folder whose <scale>/figures/pareto_*.csv (cost-weight sweeps) "
                        "join the findings of docs/results.md")
    p.add_argument("--check", action="store_true",
                   help="glance: write nothing; fail if README.md or ROOT/README.md is stale")
    p.add_argument("--protocol", choices=("deterministic", "stochastic"), default="deterministic",
                   help="which evaluation protocol's metrics to read (stochastic: eval.json's "
                        "'stochastic' entry)")
    p.add_argument("--delta", type=float, default=0.2,
                   help="verdict margin: Ours' return claim holds when its normalized score's 95%% "
                        "interval lies at or above 1 - delta (0 < delta < 1)")
    for method in methods:
        p.add_argument(f"--{method.replace('_', '-')}", dest=method, nargs="+", default=[],
                       metavar="EVAL_JSON", help=f"evaluations of {method}, one per seed")
    _registry_arg(p)
    p.set_defaults(handler=_run_tables)


def _run_tables(args) -> None:
    if args.table == "glance":
        from asymbench.glance import write_glance

        rows = write_glance(args.root, args.readme, args.registry, args.check, args.results)
        print(f"glance ({len(rows)} rows from {args.root}) -> "
              f"{'up to date' if args.check else f'{args.readme}, {args.root}/README.md'}")
        return
    from asymbench.runs import UsageError
    from asymbench.tables import (METHODS, VARIANT_METHODS, write_aggregate, write_grid, write_runs,
                                  write_table)

    for dest in ("scale", "out"):
        if getattr(args, dest) is None:
            raise UsageError(f"argument --{dest}: required for {args.table} (only glance runs without it)")
    paths = {m: getattr(args, m) for m in METHODS + VARIANT_METHODS if getattr(args, m)}
    if args.table == "runs":
        df = write_runs(paths, args.scale, args.out, args.registry)
        print(f"runs ({args.scale}, {len(df)} rows: task x method x seed x budget x protocol) -> {args.out}")
        return
    if args.table == "grid":
        df = write_grid(paths, args.scale, args.out, args.registry, args.delta)
        print(f"grid ({args.scale}, {len(df)} rows: budget x noise x protocol) -> {args.out}")
        return
    if args.table == "aggregate":
        df = write_aggregate(paths, args.scale, args.out, args.registry, args.delta, args.protocol)
        print(f"aggregate ({args.scale}, {args.protocol}, {df['n_tasks'].iloc[0]} tasks) -> {args.out}")
        return
    df = write_table(args.table, paths, args.scale, args.out, args.registry, args.delta, args.protocol)
    print(f"{args.table} ({args.scale}, {args.protocol}, {len(df)} tasks) -> {args.out}")


def _add_figures(sub) -> None:
    methods = ("s_only", "l_only", "ours", "ours_no_cost", "fit")  # asymbench.tables.RL_METHODS
    p = sub.add_parser("figures", help="sub-policy timeline (Figs. 2/3) or learning curves, PNG/PDF")
    kinds = p.add_subparsers(dest="figure", required=True)
    t = kinds.add_parser("timeline", help="per-step reward of a traced episode, by sub-policy")
    t.add_argument("--trace", required=True, help="TRACE.csv from `asymbench evaluate --trace`")
    t.add_argument("--eval", required=True, help="the same evaluation's JSON")
    t.add_argument("--frames", default=None, help="frames folder from `asymbench evaluate --frames`")
    t.add_argument("--run-seed", type=int, required=True, help="training seed of the run, for the title")
    t.add_argument("--seed-choice", choices=("first", "learned"), default="first",
                   help="how the seed was chosen, stated in the title: the scale's first seed (the "
                        "pipeline's) or a seed chosen because it learned")
    c = kinds.add_parser("curves", help="episode return against env steps, per method")
    c.add_argument("--task", required=True)
    for method in methods:
        c.add_argument(f"--{method.replace('_', '-')}", dest=method, nargs="+", default=[],
                       metavar="RUN_JSON", help=f"run.json of each {method} run")
    r = kinds.add_parser("tradeoff", help="score against Avg-FLOPs/Inf of every method, paper beside")
    f = kinds.add_parser("pareto", help="Ours at several cost weights, baselines, non-dominated front")
    f.add_argument("--point", nargs="+", action="append", default=[], metavar=("FACTOR", "EVAL_JSON"),
                   help="a lambda factor then its seeds' evaluations (repeat per factor)")
    f.add_argument("--csv", default=None, help="also write the plotted numbers as CSV")
    f.add_argument("--variant", choices=("dropped", "as_sac"), default="dropped",
                   help="Ours' sub-policy noise in the sweep (named in the title)")
    f.add_argument("--protocol", dest="protocols", nargs="+", choices=("deterministic", "stochastic"),
                   default=["deterministic", "stochastic"], help="one panel per evaluation protocol")
    f.add_argument("--delta", type=float, default=0.2,
                   help="claim (a)'s margin: a cost weight is non-inferior at normalized score >= 1 - delta")
    for q in (r, f):
        q.add_argument("--task", required=True)
        _registry_arg(q)
        for method in ("s_only", "l_only", "ours", "ours_no_cost", "fit", "bc", "gail"):  # tables.METHODS
            q.add_argument(f"--{method.replace('_', '-')}", dest=method, nargs="+", default=[],
                           metavar="EVAL_JSON", help=f"evaluations of {method}, one per seed")
    pp = kinds.add_parser("profile", help="performance profile across tasks: share of runs above "
                          "each normalized score, per method (rliable's)")
    _registry_arg(pp)
    for method in ("s_only", "l_only", "ours", "fit", "bc", "gail"):  # tables.AGGREGATE_METHODS
        pp.add_argument(f"--{method.replace('_', '-')}", dest=method, nargs="+", default=[],
                        metavar="EVAL_JSON", help=f"evaluations of {method}, every task and seed")
    pp.add_argument("--protocol", choices=("deterministic", "stochastic"), default="deterministic")
    pp.add_argument("--delta", type=float, default=0.2, help="verdict margin, marked at 1 - delta")
    v = kinds.add_parser("verdict", help="claim (a) at every milestone of one task: scores and "
                         "Ours' normalized score against 1 - delta, best over training")
    v.add_argument("--task", required=True)
    _registry_arg(v)
    for method in ("s_only", "l_only", "ours"):  # figures.MILESTONE_METHODS
        v.add_argument(f"--{method.replace('_', '-')}", dest=method, nargs="+", required=True,
                       metavar="EVAL_JSON", help=f"evaluations of {method}, every milestone and seed")
    v.add_argument("--delta", type=float, default=0.2, help="verdict margin, marked at 1 - delta")
    v.add_argument("--csv", default=None, help="also write the plotted numbers and the "
                   "best-over-training scores as CSV")
    for q in (t, c, r, f, pp, v):
        q.add_argument("--scale", required=True, help="the budget's name, for the title")
        q.add_argument("--out", required=True, nargs="+", help="figure files (.png, .pdf, ...)")
    a = kinds.add_parser("verdicts", help="Ours' normalized score across tasks, from every Table 3 "
                         "and grid (budgets, milestones, noise settings, both protocols) against 1 - delta and the paper")
    a.add_argument("--tables", nargs="*", default=None, metavar="TABLE_CSV",
                   help="the tables (default: every table3.csv and grid (variants/*.csv) under --root)")
    a.add_argument("--root", default="paper_tables", help="the folder of the tables")
    a.add_argument("--out", nargs="+", default=["paper_tables/verdicts.png", "paper_tables/verdicts.pdf"],
                   help="figure files (.png, .pdf, ...)")
    _registry_arg(a)
    p.set_defaults(handler=_run_figures)


def _run_figures(args) -> None:
    from asymbench import figures
    from asymbench.tables import METHODS, RL_METHODS

    if args.figure == "verdicts":
        from asymbench import glance

        paths = glance.table_files(args.root) if args.tables is None else args.tables
        glance.verdicts_figure(glance.read_rows(paths, args.root, args.registry), args.out)
    elif args.figure == "timeline":
        figures.timeline(args.trace, args.eval, args.frames, args.scale, args.run_seed, args.out,
                         args.seed_choice)
    elif args.figure == "curves":
        runs = {m: getattr(args, m) for m in RL_METHODS if getattr(args, m)}
        figures.learning_curves(args.task, runs, args.scale, args.out)
    elif args.figure == "verdict":
        evaluations = {m: getattr(args, m) for m in figures.MILESTONE_METHODS}
        figures.milestone_verdicts(args.task, evaluations, args.scale, args.out, args.csv,
                                   args.delta, args.registry)
    elif args.figure == "profile":
        evaluations = {m: getattr(args, m) for m in METHODS if getattr(args, m, None)}
        figures.performance_profile(evaluations, args.scale, args.out, args.delta, args.protocol,
                                    args.registry)
    else:
        evaluations = {m: getattr(args, m) for m in METHODS if getattr(args, m)}
        if args.figure == "tradeoff":
            figures.tradeoff(args.task, evaluations, args.scale, args.out, args.registry)
        else:
            points = {}
            for factor, *paths in args.point:
                if not paths:
                    raise ValueError(f"--point {factor}: no evaluation files")
                points[float(factor)] = paths
            figures.pareto(args.task, points, evaluations, args.scale, args.out, args.csv,
                           args.registry, variant=args.variant, protocols=args.protocols,
                           delta=args.delta)
    print(f"figure -> {', '.join(args.out)}")


# ----------------------------------------------------------------------------- estimate
def _add_estimate(sub) -> None:
    p = sub.add_parser("estimate", help="expected CPU-hours and wall time of a pipeline scale, "
                       "from measured throughputs (benchmarks/)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scale", required=True, help="a scale of the pipeline config (paper, short, ...)")
    p.add_argument("--cores", type=int, default=16,
                   help="cores of the machine (a job holds one per thread; threads are planned for them)")
    p.add_argument("--throughput", nargs="*", default=None,
                   help="benchmarks/train_throughput.py JSONs (default: every benchmarks/results/"
                   "train_throughput*.json; none given: use the labelled fallbacks only)")
    p.add_argument("--engine-throughput", nargs="*", default=None,
                   help="benchmarks/engine_throughput.py JSONs: the batched engine's per-seed "
                   "rates of training groups (default: every benchmarks/results/"
                   "engine_throughput*.json run on the CPU of engine_throughput.json's machine "
                   "kind; the later measurement of a row wins; none given: the sb3 rates)")
    p.add_argument("--env-rates", default=None,
                   help="benchmarks/env_step_rate.py JSON, for evaluation jobs (default: "
                   "benchmarks/results/env_step_rate.json if present)")
    p.add_argument("--config", default="config/config.yaml", help="the pipeline config")
    p.add_argument("--tasks", nargs="+", default=None, help="replace the scale's tasks")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="replace the scale's seeds (every task's, per_task ones included)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="result folders to count (default: all the pipeline builds)")
    p.add_argument("--thread-scaling", nargs="?", const="", default=None,
                   help="benchmarks/thread_scaling.py JSON: update speed-up per width and thread "
                   "count, from which threads per training job are planned (default: benchmarks/"
                   "results/thread_scaling.json if present; given without a file: issue 24's "
                   "2-thread measurement and Amdahl's law)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="every training job's device (default: the scale's `device` setting)")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs of the machine (default: 1 where a training job runs on one)")
    p.add_argument("--gpu-throughput", nargs="+", default=None,
                   help="benchmarks/engine_throughput.py --device cuda JSONs, for training jobs "
                   "on a GPU (default: every benchmarks/results/engine_throughput_cuda*.json)")
    p.add_argument("--gpu-slots", type=int, default=None,
                   help="training groups that share one GPU: their rates are those measured with "
                   "that many at once (--concurrent), else the solo ones, labelled as an upper "
                   "bound (default: the scale's `gpu_slots`, 1)")
    p.add_argument("--student-width", choices=("ours", "ours_as_sac", "paper"), default=None,
                   help="the width of fit, BC and GAIL: ours or ours_as_sac (from that folder's "
                   "evaluations, which they wait for) or paper (the registry's paper_fit_width) "
                   "(default: the scale's `student_width` setting)")
    p.add_argument("--compile", choices=("auto", "on", "off"), default=None,
                   help="every training group's engine.compile: auto compiles CPU runs of >= 100k "
                   "env steps, as training does (default: the scale's `compile` setting, auto)")
    p.add_argument("--compile-speedup", nargs="?", const="", default=None,
                   help="benchmarks/compile_speedup.py JSON: the compiled update's speed-up, which "
                   "prices compiled CPU groups (default: benchmarks/results/compile_speedup.json if "
                   "present; given without a file: none, compiled groups at the eager rates)")
    p.add_argument("--out", default=None, help="also write the estimate as JSON (its thread_plan: "
                   "the pipeline's config `thread_plan`)")
    _registry_arg(p)
    p.set_defaults(handler=_run_estimate)


def _run_estimate(args) -> None:
    from asymbench.estimate import run_estimate

    run_estimate(args.scale, args.cores, throughput=args.throughput, env_rates=args.env_rates,
                 config=args.config, tasks=args.tasks, seeds=args.seeds, methods=args.methods,
                 out=args.out, registry=args.registry, engine_throughput=args.engine_throughput,
                 thread_scaling=args.thread_scaling, device=args.device, gpus=args.gpus,
                 gpu_throughput=args.gpu_throughput, student_width=args.student_width,
                 gpu_slots=args.gpu_slots, compile=args.compile, compile_speedup=args.compile_speedup)


# ----------------------------------------------------------------------------- export
def _add_export(sub) -> None:
    p = sub.add_parser("export", help="a finished run's deployed policy as dependency-free C99 "
                       "(policy.c/.h, bench.c harness)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a finished run folder (train or distill)")
    p.add_argument("--out", required=True, help="folder to write the export into")
    p.add_argument("--format", default="c", choices=("c",), help="c only (ONNX: see asymbench.export)")
    p.add_argument("--master-streams", default="all", choices=("all", "advantage"),
                   help="advantage: drop the dueling master's value stream (same argmax up to ties)")
    p.add_argument("--prefix", default="asymbench_",
                   help="starts every C symbol (upper-cased: every macro), so several exported "
                        "policies link into one program; a C identifier")
    p.add_argument("--registry", default=None,
                   help="task registry YAML, for a run that recorded no task settings (older "
                        "runs); a run that did needs none")
    p.set_defaults(handler=_run_export)


def _run_export(args) -> None:
    from asymbench.export import check_prefix, export_run

    check_prefix(args.prefix)  # before the run is loaded: a bad name costs nothing
    m = export_run(args.run, args.out, args.format, args.master_streams,
                   task=_run_task(args.run, args.registry), prefix=args.prefix)
    print(f"{m['source']}: {', '.join(m['networks'])}{' + master' if m['has_master'] else ''} "
          f"-> {args.out} (build: cd {args.out} && {m['build']})")


COMMANDS = [_add_tasks, _add_flops, _add_train, _add_evaluate, _add_expert, _add_distill,
            _add_tables, _add_figures, _add_estimate, _add_export]


# ----------------------------------------------------------------------------- argument checks
# Every failure becomes one line on stderr naming the bad value and what would be accepted;
# usage errors (bad arguments, paths, registries, run folders) exit with 2, anything else with 1;
# `--debug` (or ASYMBENCH_DEBUG=1) adds the traceback. Checks run before a command writes anything.

# option dest -> least accepted integer, for every command that has the option
AT_LEAST = {"seed": 0, "seeds": 0, "run_seed": 0, "threads": 1, "steps": 1, "episodes": 1,
            "max_episode_steps": 1, "learning_starts": 0, "master_learning_starts": 0,
            "checkpoint_every": 1, "until": 1, "env_workers": 0, "segment_start": 0, "width": 1, "trajectories": 1,
            "length": 1, "epochs": 1, "cores": 1, "gpus": 0, "gpu_slots": 1}
# command -> (option dest, kind) of what it reads ...
INPUTS = {"train": [("width_from", "file")], "evaluate": [("run", "dir")],
          "expert": [("teacher", "dir")],
          "distill": [("teacher", "dir"), ("expert", "file"), ("width_from", "file")],
          "figures": [("trace", "file"), ("eval", "file"), ("frames", "dir"), ("tables", "file")],
          "export": [("run", "dir")]}
# ... and writes (files written by a failed command are removed, so nothing looks finished)
OUTPUTS = {"train": [("out", "dir")], "distill": [("out", "dir")], "export": [("out", "dir")],
           "evaluate": [("out", "file"), ("trace", "file"), ("frames", "dir")],
           "expert": [("out", "file")], "tables": [("out", "file")], "figures": [("out", "file")],
           "estimate": [("out", "file")]}
POSITIONAL = {"run": "RUN"}


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _flag(dest: str) -> str:
    return POSITIONAL.get(dest) or "--" + dest.replace("_", "-")


def _values(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _check_numbers(args) -> None:
    from asymbench.runs import UsageError

    for dest, least in AT_LEAST.items():
        for value in _values(getattr(args, dest, None)):
            if isinstance(value, int) and not isinstance(value, bool) and value < least:
                raise UsageError(f"argument {_flag(dest)}: got {value}; expected an integer >= {least}")
    seeds = _values(getattr(args, "seeds", None))
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"argument --seeds: got {' '.join(map(str, seeds))}; expected distinct seeds")
    lam = getattr(args, "lam", None)
    if lam is not None and not (math.isfinite(lam) and lam >= 0):
        raise UsageError(f"argument --lam: got {lam}; expected a finite number >= 0 (0: no cost term)")


def _check_train(args) -> None:
    from asymbench.runs import UsageError, check_checkpoint, read_asym_evaluation
    from asymbench.tasks import get_task

    task = get_task(args.task, args.registry)  # loads (and validates) the whole registry first
    if args.lam is not None and args.method != "asym":
        raise UsageError(f"argument --lam: applies to --method asym only (the master's cost "
                         f"weight); --method {args.method} has no cost term")
    for dest in ("width", "width_from"):
        if getattr(args, dest, None) is not None and args.method != "fit":
            raise UsageError(f"argument {_flag(dest)}: applies to --method fit only; --method "
                             f"{args.method} takes its widths from the registry (small / large)")
    if args.method == "fit" and (args.width is None) == (getattr(args, "width_from", None) is None):
        raise UsageError("--method fit needs exactly one of --width W and --width-from ASYM_EVAL.json")
    for path in _values(getattr(args, "width_from", None)):
        read_asym_evaluation(path, task.name)
    out = Path(args.out)
    for folder in [out] + [out / f"seed{s}" for s in _values(getattr(args, "seeds", None))]:
        check_checkpoint(folder)


def _check_args(args) -> None:
    from asymbench import runs

    _check_numbers(args)
    for dest, kind in INPUTS.get(args.command, ()):
        for path in _values(getattr(args, dest, None)):
            (runs.check_input_dir if kind == "dir" else runs.check_input_file)(path, _flag(dest))
    if args.command == "tables":  # evaluation JSONs, one option per method
        for dest, value in vars(args).items():
            if dest not in ("out", "registry") and isinstance(value, list):
                for path in value:
                    runs.check_input_file(path, _flag(dest))
    for dest, kind in OUTPUTS.get(args.command, ()):
        for path in _values(getattr(args, dest, None)):
            (runs.check_output_dir if kind == "dir" else runs.check_output_file)(path, _flag(dest))
    if getattr(args, "registry", None) is not None:  # a registry given is validated whole
        from asymbench.tasks import load_registry

        load_registry(args.registry)
    if args.command == "train":
        _check_train(args)


def _run_task(run: str, registry: str | None = None):
    """A finished run's own task (config.json's task_settings), passed on explicitly to the
    command on it, so a run of a task from a user's registry file needs no registry
    (``registry``: where a run that recorded none finds its task)."""
    from asymbench.runs import CONFIG_FILE, load_finished_run
    from asymbench.tasks import task_from_config

    config, _ = load_finished_run(run)
    return task_from_config(config, registry, source=Path(run) / CONFIG_FILE)


def _stat(path: Path):
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _snapshot_outputs(args) -> list[tuple[Path, str, object]]:
    """The output files (and an evaluation's frames folder) a command may write, as they are now."""
    snapshot = []
    for dest, kind in OUTPUTS.get(args.command, ()):
        if kind == "file" or (args.command == "evaluate" and dest == "frames"):
            for path in _values(getattr(args, dest, None)):
                path = Path(path)
                extra = ([path.with_suffix(".md"), path.with_suffix(".tex")]
                         if args.command == "tables" else [])
                snapshot += [(p, kind, _stat(p)) for p in [path] + extra]
    return snapshot


def _remove_partial_outputs(snapshot) -> None:
    """After a failure: removes the outputs this command created or rewrote."""
    import shutil

    for path, kind, before in snapshot:
        after = _stat(path)
        if after is None or after == before:
            continue
        if kind == "dir":
            if before is None:
                shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except OSError:
                pass


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _add_debug(parser: argparse.ArgumentParser, top: bool) -> None:
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show the Python traceback of an error")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_debug(child, top=False)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="asymbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    _add_debug(parser, top=True)
    return parser


HISTORY_FILE = "train.log"


class _History:
    """A stream that also appends its lines to a training group's OUT/train.log, once that
    folder exists: the group's whole history, which no rerun overwrites (a workflow deletes the
    log of a job it reruns). Progress-bar redraws (carriage returns) stay on the terminal."""

    def __init__(self, stream, path: Path):
        self.stream, self.path = stream, path

    def write(self, text: str) -> int:
        if "\r" not in text and self.path.parent.is_dir():
            with open(self.path, "a") as history:
                history.write(text)
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # argparse's usage errors: one line, SystemExit(2)
    if args.command != "train":
        return _main(args)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (_History(s, Path(args.out) / HISTORY_FILE) for s in streams)
    try:
        return _main(args)
    finally:
        sys.stdout, sys.stderr = streams


def _main(args) -> int:
    debug = args.debug or os.environ.get("ASYMBENCH_DEBUG", "") not in ("", "0")
    prog = f"asymbench {args.command}"
    snapshot = _snapshot_outputs(args)
    from asymbench.runs import Interrupted, RunError
    from asymbench.tasks import RegistryError

    try:
        _check_args(args)
        args.handler(args)
    except Interrupted as exc:  # a training job stopped by a signal, its checkpoint written
        print(f"{prog}: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        _remove_partial_outputs(snapshot)
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure: one line (the traceback only with --debug)
        _remove_partial_outputs(snapshot)
        if debug:
            import traceback

            traceback.print_exc()
        usage = isinstance(exc, (RegistryError, RunError, ValueError, FileNotFoundError,
                                 IsADirectoryError, NotADirectoryError, PermissionError))
        hint = "" if usage or debug else " (an internal error: rerun with --debug for the traceback)"
        print(f"{prog}: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return 2 if usage else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
