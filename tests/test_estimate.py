import json
from pathlib import Path

import pytest
import yaml

from asymbench.cli import main
from asymbench.estimate import (Job, dependencies, estimate, jobs_of, load_scale, plan_threads,
                                run_estimate, simulate, wall_time_bounds)
from asymbench.rates import (NOTE_SAC_STEPS_PER_S, Rate, ThreadScaling, engine_files, engine_rate,
                             fallback_rate, gpu_rate, job_speedup, merge_engine,
                             note_sac_seconds_per_step, rates_for, read_engine_throughput,
                             read_gpu_throughput, read_thread_scaling, read_throughput, update_share)
from asymbench.tasks import get_task

CAR, WALKER, FINGER = "MountainCarContinuous", "walker-stand", "finger-spin"


# ----------------------------------------------------------------------------- arithmetic
def test_a_training_group_costs_k_times_steps_over_the_per_seed_rate_and_bounds_the_wall_time():
    jobs = [Job("Swimmer", "l_only", (0, 1, 2), "train", "l_only", 3 * 7200.0),
            Job("Swimmer", "s_only", (0, 1, 2), "train", "s_only", 3 * 1200.0)]
    rates = {("Swimmer", "l_only"): Rate(2.0, "measured"), ("Swimmer", "s_only"): Rate(4.0, "measured")}
    result = estimate(jobs, rates, cores=2)
    # one job of 3 x 7200 / 2 / 3600 = 3 h, one of 3 x 1200 / 4 / 3600 = 0.25 h
    assert result["total_cpu_h"] == pytest.approx(3.25)
    assert result["cpu_h_by_method"] == pytest.approx({"l_only": 3.0, "s_only": 0.25})
    row = next(r for r in result["rows"] if r["method"] == "l_only")
    assert (row["jobs"], row["K"], row["cpu_h_per_job"]) == (1, 3, pytest.approx(3.0))
    # the group is one single-threaded job: it alone bounds the wall time from below
    assert result["longest_job_h"] == pytest.approx(3.0)
    assert result["wall_h_lower"] == pytest.approx(max(3.25 / 2, 3.0))
    assert result["wall_h_upper"] == pytest.approx(3.25 / 2 + 3.0)


def test_fit_waits_for_every_evaluation_of_ours_and_students_for_ours_and_expert_data():
    rates = {("Ant", t): Rate(1.0, "measured") for t in ("asym", "fit", "eval", "l_only", "bc")}
    hour = 3600.0
    jobs = [Job("Ant", "ours", (0, 1), "train", "asym", 2 * hour),                  # 2 h
            Job("Ant", "ours", (0,), "evaluate", "eval", 0.5 * hour),
            Job("Ant", "ours", (1,), "evaluate", "eval", 1.5 * hour),              # the slow one
            Job("Ant", "fit", (0, 1), "train", "fit", 2 * hour),
            Job("Ant", "fit", (0,), "evaluate", "eval", 0.25 * hour),
            Job("Ant", "fit", (1,), "evaluate", "eval", 0.25 * hour)]
    result = estimate(jobs, rates, cores=64)
    assert result["longest_job_h"] == pytest.approx(2.0)
    # Ours' group -> its slower evaluation -> fit's group -> one of fit's evaluations
    assert result["longest_chain_h"] == pytest.approx(2.0 + 1.5 + 2.0 + 0.25)
    assert result["longest_chain"] == ["Ant: ours train (K=2) -> ours evaluate (seed1) -> "
                                       "fit train (K=2) -> fit evaluate (seed0)"]
    assert result["wall_h_lower"] == pytest.approx(5.75)

    # BC of seed 0 waits for Ours' evaluation of seed 0 and for the expert data, which waits
    # for the L-only group: 10 h + 1 h + 1 h is longer than Ours' 2 h + 0.5 h.
    jobs = [Job("Ant", "ours", (0,), "train", "asym", 2 * hour),
            Job("Ant", "ours", (0,), "evaluate", "eval", 0.5 * hour),
            Job("Ant", "l_only", (0,), "train", "l_only", 10 * hour),
            Job("Ant", "expert", (0,), "expert", "eval", 1 * hour),
            Job("Ant", "bc", (0,), "distill", "bc", 1 * hour)]
    result = estimate(jobs, rates, cores=64)
    assert result["longest_chain_h"] == pytest.approx(12.0)
    assert result["longest_chain"] == ["Ant: l_only train (K=1) -> expert expert (seed0) -> bc distill (seed0)"]


def test_students_at_the_paper_width_do_not_wait_for_ours():
    """`student_width: paper` (``width_from`` ""): fit and BC start without Ours'
    evaluations, so the chain is the longer of the two groups, not their sum."""
    rates = {("Ant", t): Rate(1.0, "measured") for t in ("asym", "fit", "eval", "l_only", "bc")}
    hour = 3600.0
    jobs = [Job("Ant", "ours", (0,), "train", "asym", 2 * hour),
            Job("Ant", "ours", (0,), "evaluate", "eval", 0.5 * hour),
            Job("Ant", "fit", (0,), "train", "fit", 3 * hour, width_from=""),
            Job("Ant", "fit", (0,), "evaluate", "eval", 0.25 * hour),
            Job("Ant", "expert", (0,), "expert", "eval", 0.1 * hour),
            Job("Ant", "bc", (0,), "distill", "bc", 0.1 * hour, width_from="")]
    assert dependencies(jobs)[2] == [] and dependencies(jobs)[5] == [4]
    result = estimate(jobs, rates, cores=64)
    assert result["longest_chain_h"] == pytest.approx(3.25)
    assert result["longest_chain"] == ["Ant: fit train (K=1) -> fit evaluate (seed0)"]


def test_the_scales_student_width_reaches_the_jobs(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("scales:\n  tiny:\n    tasks: [MountainCarContinuous, Swimmer]\n    seeds: [0]\n"
                      "    steps: 1000\n    eval_episodes: 1\n    student_width: paper\n"
                      "    per_task: {Swimmer: {student_width: ours}}\n")
    plan = load_scale("tiny", config)
    assert plan.student_widths == {"MountainCarContinuous": "paper", "Swimmer": "ours"}
    waits = {(j.task, j.method): j.width_from for j in jobs_of(plan)
             if j.method in ("fit", "bc", "gail") and j.stage in ("train", "distill")}
    assert waits == {("MountainCarContinuous", m): "" for m in ("fit", "bc", "gail")} | \
        {("Swimmer", m): "ours" for m in ("fit", "bc", "gail")}


def test_students_sized_by_ours_as_sac_wait_for_its_runs_which_the_estimate_adds(tmp_path):
    """`student_width: ours_as_sac`: fit, BC and GAIL take Ours-as-SAC's width, so its group is
    trained (and priced) even where the methods do not name it, and they wait for its evaluations."""
    config = tmp_path / "config.yaml"
    config.write_text("scales:\n  tiny:\n    tasks: [MountainCarContinuous]\n    seeds: [0, 1]\n"
                      "    steps: 1000\n    eval_episodes: 1\n    student_width: ours_as_sac\n")
    plan = load_scale("tiny", config)
    jobs = jobs_of(plan, ("l_only", "fit", "bc"))
    trains = {j.method: j for j in jobs if j.stage == "train"}
    assert set(trains) == {"ours_as_sac", "l_only", "fit"} and trains["ours_as_sac"].trainer == "asym"
    needs = dependencies(jobs)
    sized = {i for i, j in enumerate(jobs) if j.method == "ours_as_sac" and j.stage == "evaluate"}
    for i, job in enumerate(jobs):
        if job.method in ("fit", "bc") and job.stage in ("train", "distill"):
            assert sized <= set(needs[i]), job
    assert not any(j.method == "ours_as_sac" for j in jobs_of(plan, ("l_only", "ours")))


def test_wall_time_bounds_reject_no_cores():
    assert wall_time_bounds(100.0, 10, 4.0) == (10.0, 14.0)
    with pytest.raises(ValueError, match="cores"):
        wall_time_bounds(1.0, 0, 1.0)


# ----------------------------------------------------------------------------- measurements
def _engine_json(tmp_path, rows=None, name="engine_throughput.json"):
    rows = rows if rows is not None else [
        {"task": CAR, "trainer": "SAC.learn (large)", "K": 1, "per_seed_steps_per_cpu_s": 100.0,
         "speedup_vs_sb3": 1.0, "load": 3.0},
        {"task": CAR, "trainer": "engine l_only", "K": 5, "per_seed_steps_per_cpu_s": 300.0,
         "speedup_vs_sb3": 3.0, "load": 3.0},
        {"task": CAR, "trainer": "engine asym", "K": 5, "per_seed_steps_per_cpu_s": 200.0,
         "speedup_vs_sb3": 2.0, "load": 3.0},
        {"task": CAR, "trainer": "engine l_only", "K": 10, "per_seed_steps_per_cpu_s": 500.0,
         "speedup_vs_sb3": 5.0, "load": 3.0},
        {"task": CAR, "trainer": "engine asym", "K": 10, "per_seed_steps_per_cpu_s": 400.0,
         "speedup_vs_sb3": 4.0, "load": 3.0},
        # walker-stand: no speedup column, so it is read off its SAC.learn row
        {"task": WALKER, "trainer": "SAC.learn (large)", "K": 1, "per_seed_steps_per_cpu_s": 50.0},
        {"task": WALKER, "trainer": "engine l_only", "K": 5, "per_seed_steps_per_cpu_s": 50.0 * 2.0},
        {"task": WALKER, "trainer": "engine asym", "K": 5, "per_seed_steps_per_cpu_s": 50.0 * 1.0}]
    path = tmp_path / name
    path.write_text(json.dumps({"rows": rows}))
    return path


def _sb3_json(tmp_path):
    path = tmp_path / "train_throughput.json"
    path.write_text(json.dumps({"rows": [
        {"task": t, "trainer": tr, "steps_per_cpu_s": rate, "load": 2.0}
        for t in (CAR, WALKER, FINGER, "FetchPickAndPlace")
        for tr, rate in (("s_only", 80.0), ("l_only", 40.0), ("fit", 50.0), ("asym", 20.0),
                         ("bc", 4000.0), ("gail", 800.0))]}))
    return path


def test_engine_rates_come_from_the_row_of_the_closest_measured_k(tmp_path):
    engine = read_engine_throughput(_engine_json(tmp_path))
    sb3 = lambda task, trainer: pytest.fail("a measured task needs no sb3 rate")  # noqa: E731
    rate = engine_rate(CAR, "asym", 10, engine, sb3)
    assert rate.per_cpu_s == 400.0 and rate.source.startswith("engine asym measured K=10")
    assert engine_rate(CAR, "l_only", 7, engine, sb3).per_cpu_s == 300.0   # 7: closer to 5
    assert engine_rate(CAR, "l_only", 20, engine, sb3).per_cpu_s == 500.0  # beyond: the largest
    # S-only and fit run at L-only's rate, labelled as an upper bound of their cost
    for trainer in ("s_only", "fit"):
        rate = engine_rate(CAR, trainer, 10, engine, sb3)
        assert rate.per_cpu_s == 500.0
        assert rate.source.startswith("upper bound: engine l_only measured K=10")


def test_an_unmeasured_task_gets_its_sb3_rate_times_the_mean_engine_speedup_elsewhere(tmp_path):
    engine = read_engine_throughput(_engine_json(tmp_path))
    assert engine[(WALKER, "l_only")][5].speedup == pytest.approx(2.0)  # from its SAC.learn row
    measured = read_throughput(_sb3_json(tmp_path))
    rates = rates_for([Job(FINGER, m, (0, 1, 2, 3, 4), "train", t, 5.0)
                       for m, t in (("l_only", "l_only"), ("ours", "asym"), ("fit", "fit"))],
                      measured, engine=engine)
    # at K=5 both measured tasks' K=5 rows: L-only speedups 3 and 2, asym 2 and 1
    assert rates[(FINGER, "l_only")].per_cpu_s == pytest.approx(40.0 * 2.5)
    assert rates[(FINGER, "asym")].per_cpu_s == pytest.approx(40.0 * 1.5)  # on sb3 L-only's rate
    assert rates[(FINGER, "fit")].per_cpu_s == pytest.approx(40.0 * 2.5)
    assert rates[(FINGER, "l_only")].source.startswith("extrapolated: sb3 L-only rate (measured) x 2.50")
    assert rates[(FINGER, "fit")].source.startswith("upper bound: extrapolated")


def test_without_engine_measurements_training_groups_run_at_the_sb3_rates(tmp_path):
    measured = read_throughput(_sb3_json(tmp_path))
    jobs = [Job(CAR, "s_only", (0, 1), "train", "s_only", 2.0),
            Job(WALKER, "ours", (0, 1), "train", "asym", 2.0)]
    rates = rates_for(jobs, measured, engine={})
    assert rates[(CAR, "s_only")].per_cpu_s == 80.0 and rates[(WALKER, "asym")].per_cpu_s == 20.0
    assert all(r.source.startswith("sb3 engine rates: measured") for r in rates.values())
    # nothing measured: the note's fallback, still labelled
    note = rates_for(jobs, {}, engine={})[(CAR, "s_only")]
    assert note.source.startswith("sb3 engine rates: fallback")


def test_goal_tasks_train_their_seeds_one_after_another_at_the_sb3_rate(tmp_path):
    engine = read_engine_throughput(_engine_json(tmp_path))
    measured = read_throughput(_sb3_json(tmp_path))
    job = Job("FetchPickAndPlace", "ours", (0, 1, 2), "train", "asym", 3 * 7200.0)
    rate = rates_for([job], measured, engine=engine)[("FetchPickAndPlace", "asym")]
    assert rate.per_cpu_s == 20.0 and "goal task: seeds one after another" in rate.source
    assert estimate([job], {("FetchPickAndPlace", "asym"): rate}, 4)["total_cpu_h"] == pytest.approx(0.3)


# ----------------------------------------------------------------------------- engine rows of S-only / fit,
# several files, goal tasks
AMD = {"cpu": "AMD EPYC", "cpu_count": 2}


def _engine_file(folder, name, rows, machine=AMD, device="cpu", finished="2026-11-27T02:00:00+00:00"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"benchmark": "engine_throughput", "machine": machine,
                                "finished_utc": finished, "device": device, "rows": rows}))
    return path


def _engine_row(task, trainer, k, rate, **extra):
    return {"task": task, "trainer": f"engine {trainer}", "K": k, "per_seed_steps_per_cpu_s": rate,
            "device": "cpu", **extra}


def test_s_only_and_fit_use_their_own_engine_rows_and_l_only_as_an_upper_bound_without(tmp_path):
    rows = [{"task": CAR, "trainer": "SAC.learn (large)", "K": 1, "width": 64,
             "per_seed_steps_per_cpu_s": 100.0},
            {"task": CAR, "trainer": "SAC.learn (small)", "K": 1, "width": 8,
             "per_seed_steps_per_cpu_s": 200.0},
            _engine_row(CAR, "l_only", 5, 300.0),
            # as benchmarks/engine_throughput.py writes it; no speedup: read off its reference
            _engine_row(CAR, "s_only", 5, 900.0, reference="SAC.learn (small)", reference_width=8),
            _engine_row(CAR, "fit", 5, 700.0, speedup_vs_sb3=3.5, reference="SAC.learn (fit)"),
            _engine_row(WALKER, "l_only", 5, 400.0, speedup_vs_sb3=2.0)]
    engine = read_engine_throughput(_engine_file(tmp_path, "engine_throughput.json", rows))
    assert engine[(CAR, "s_only")][5].speedup == pytest.approx(900.0 / 200.0)
    assert engine[(CAR, "l_only")][5].speedup == pytest.approx(300.0 / 100.0)
    sb3 = lambda task, trainer: pytest.fail("a measured task needs no sb3 rate")  # noqa: E731
    for trainer, rate in (("s_only", 900.0), ("fit", 700.0)):
        own = engine_rate(CAR, trainer, 5, engine, sb3)
        assert own.per_cpu_s == rate
        assert own.source.startswith(f"engine {trainer} measured K=5 (engine_throughput.json")
        assert "upper bound" not in own.source
        # walker-stand has no S-only / fit row: its L-only row bounds them, labelled
        bound = engine_rate(WALKER, trainer, 5, engine, sb3)
        assert bound.per_cpu_s == 400.0
        assert bound.source.startswith("upper bound: engine l_only measured K=5")
    # finger-spin has no row at all: its sb3 S-only rate x the S-only speedup measured elsewhere
    measured = read_throughput(_sb3_json(tmp_path))
    rates = rates_for([Job(FINGER, "s_only", (0, 1, 2, 3, 4), "train", "s_only", 5.0)],
                      measured, engine=engine)
    s_only = rates[(FINGER, "s_only")]
    assert s_only.per_cpu_s == pytest.approx(80.0 * 4.5)
    assert s_only.source.startswith("extrapolated: sb3 S-only rate (measured) x 4.50 (mean engine s_only")


def test_default_engine_files_are_this_machine_kinds_cpu_runs_and_the_later_measurement_wins(
        tmp_path, monkeypatch, capsys):
    results = tmp_path / "benchmarks" / "results"
    config = _config(tmp_path)
    _engine_file(results, "engine_throughput.json", [_engine_row(CAR, "l_only", 3, 300.0),
                                                     _engine_row(CAR, "asym", 3, 150.0),
                                                     _engine_row(WALKER, "l_only", 3, 111.0)],
                 finished="2026-11-27T02:00:00+00:00")
    # the same machine, measured later: its CAR l_only K=3 row replaces the first file's
    _engine_file(results, "engine_throughput_a_later.json",
                 [_engine_row(CAR, "l_only", 3, 333.0, measured_utc="2026-11-28T01:00:00+00:00")],
                 finished="2026-11-28T01:00:00+00:00")
    # the same machine, measured EARLIER, though its name sorts last: it does not win
    _engine_file(results, "engine_throughput_z_earlier.json", [_engine_row(CAR, "asym", 3, 99.0)],
                 finished="2026-11-26T01:00:00+00:00")
    # a GPU run and another machine's CPU: left out, however fast
    _engine_file(results, "engine_throughput_cuda.json",
                 [_engine_row(CAR, "l_only", 3, 9999.0, device="cuda"),
                  _engine_row(WALKER, "l_only", 3, 9999.0, device="cuda")], device="cuda",
                 machine={"cpu": "Intel Xeon", "cpu_count": 16, "gpu": "H100"},
                 finished="2026-11-29T01:00:00+00:00")
    _engine_file(results, "engine_throughput_host_cpu.json", [_engine_row(WALKER, "l_only", 3, 8888.0)],
                 machine={"cpu": "Intel Xeon", "cpu_count": 16, "gpu": "H100"},
                 finished="2026-11-29T01:00:00+00:00")
    monkeypatch.chdir(tmp_path)
    used, left_out = engine_files()
    assert [p.split("/")[-1] for p in used] == ["engine_throughput.json", "engine_throughput_a_later.json",
                                                "engine_throughput_z_earlier.json"]
    assert {p.split("/")[-1]: why.split(",")[0] for p, why in left_out.items()} == {
        "engine_throughput_cuda.json": "GPU run",
        "engine_throughput_host_cpu.json": "another machine: Intel Xeon"}

    result = run_estimate("tiny", 2, throughput=[], config=config, env_rates=None,
                          methods=["l_only", "ours"])
    rows = {(r["task"], r["method"]): r for r in result["rows"] if r["stage"] == "train"}
    assert rows[(CAR, "l_only")]["rate_per_cpu_s"] == 333.0
    assert "engine_throughput_a_later.json" in rows[(CAR, "l_only")]["source"]
    assert rows[(CAR, "ours")]["rate_per_cpu_s"] == 150.0
    assert "(engine_throughput.json" in rows[(CAR, "ours")]["source"]
    assert rows[(WALKER, "l_only")]["rate_per_cpu_s"] == 111.0
    assert "cuda" not in result["engine_throughput"] and "host_cpu" not in result["engine_throughput"]
    printed = capsys.readouterr().out
    assert "not used: engine_throughput_cuda.json (GPU run" in printed

    # Given explicitly, a file is used whatever its machine, but GPU rows never are.
    cuda = str(results / "engine_throughput_cuda.json")
    assert read_engine_throughput(cuda) == {}
    result = run_estimate("tiny", 2, throughput=[], config=config, env_rates=None, methods=["l_only"],
                          engine_throughput=[cuda, str(results / "engine_throughput_host_cpu.json")])
    rows = {(r["task"], r["method"]): r for r in result["rows"] if r["stage"] == "train"}
    assert rows[(WALKER, "l_only")]["rate_per_cpu_s"] == 8888.0
    assert result["engine_throughput_left_out"] == {cuda: "no CPU engine rows"}
    assert rows[(CAR, "l_only")]["source"].startswith("sb3 engine rates")  # no CPU row, no speedup


def test_rows_of_one_file_without_times_the_later_file_wins(tmp_path):
    first = read_engine_throughput(_engine_json(tmp_path, [_engine_row(CAR, "asym", 5, 1.0)], "a.json"))
    second = read_engine_throughput(_engine_json(tmp_path, [_engine_row(CAR, "asym", 5, 2.0)], "b.json"))
    assert merge_engine([first, second])[(CAR, "asym")][5].per_cpu_s == 2.0
    assert merge_engine([second, first])[(CAR, "asym")][5].per_cpu_s == 1.0


def test_a_goal_task_uses_its_engine_rows_when_measured_and_the_sb3_rate_when_not(tmp_path):
    fetch = "FetchPickAndPlace"
    measured = read_throughput(_sb3_json(tmp_path))
    jobs = [Job(fetch, m, (0, 1, 2), "train", t, 3 * 7200.0)
            for m, t in (("s_only", "s_only"), ("l_only", "l_only"), ("ours", "asym"))]
    engine = read_engine_throughput(_engine_file(tmp_path, "engine_throughput.json", [
        _engine_row(fetch, "l_only", 5, 120.0, speedup_vs_sb3=1.5),
        _engine_row(CAR, "asym", 5, 400.0, speedup_vs_sb3=3.0)]))
    rates = rates_for(jobs, measured, engine=engine)
    assert rates[(fetch, "l_only")].per_cpu_s == 120.0
    assert rates[(fetch, "l_only")].source.startswith("engine l_only measured K=5")
    assert rates[(fetch, "s_only")].per_cpu_s == 120.0  # like any task: L-only bounds S-only
    assert rates[(fetch, "s_only")].source.startswith("upper bound: engine l_only")
    # no asym row for the goal task: the sb3 rate, not another task's speedup
    assert rates[(fetch, "asym")].per_cpu_s == 20.0
    assert "goal task: seeds one after another" in rates[(fetch, "asym")].source
    # and another task does not borrow the goal task's speedup
    other = rates_for([Job(FINGER, "l_only", (0, 1), "train", "l_only", 2.0)], measured, engine=engine)
    assert other[(FINGER, "l_only")].source.startswith("sb3 engine rates")


def test_a_malformed_engine_json_is_refused_with_its_path(tmp_path):
    path = _engine_json(tmp_path, [{"task": CAR, "trainer": "engine asym", "K": 0,
                                    "per_seed_steps_per_cpu_s": 10.0}], name="bad_engine.json")
    with pytest.raises(ValueError, match="bad_engine.json.*K"):
        read_engine_throughput(path)
    (tmp_path / "rowless.json").write_text(json.dumps({"rows": [{"K": 5}]}))
    with pytest.raises(ValueError, match="rowless.json"):
        read_engine_throughput(tmp_path / "rowless.json")


def test_reads_a_throughput_json_and_measured_rates_win_over_fallbacks(tmp_path):
    path = tmp_path / "train_throughput.json"
    path.write_text(json.dumps({"rows": [
        {"task": "Swimmer", "trainer": "asym", "steps_per_s": 20.0, "steps_per_cpu_s": 25.0, "load": 3.2},
        {"task": "Swimmer", "trainer": "gail", "steps_per_s": 900.0, "steps_per_cpu_s": 1000.0}]}))
    measured = read_throughput(path)
    assert measured[("Swimmer", "asym")].per_cpu_s == 25.0  # CPU-time rate preferred
    assert "measured" in measured[("Swimmer", "asym")].source
    # An unmeasured task's GAIL borrows the measured tasks' rate, and says so.
    gail = fallback_rate("Ant", "gail", measured, {})
    assert gail.per_cpu_s == 1000.0 and gail.source.startswith("fallback")


def test_a_malformed_throughput_json_is_refused_with_its_path(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"rows": [{"trainer": "asym"}]}))
    with pytest.raises(ValueError, match="bad.json"):
        read_throughput(path)


def test_fallback_scales_the_note_by_width_and_adds_both_sub_policies_for_asym():
    assert note_sac_seconds_per_step(256) == pytest.approx(1 / NOTE_SAC_STEPS_PER_S[256])
    assert note_sac_seconds_per_step(8) == note_sac_seconds_per_step(32)  # overhead floor
    assert note_sac_seconds_per_step(64) < note_sac_seconds_per_step(128) < note_sac_seconds_per_step(256)
    task = get_task("Swimmer")
    asym = fallback_rate("Swimmer", "asym", {}, {})
    expected = 1 / (note_sac_seconds_per_step(task.small) + note_sac_seconds_per_step(task.large))
    assert asym.per_cpu_s == pytest.approx(expected) and asym.source.startswith("fallback")


# ----------------------------------------------------------------------------- the job list
def _config(tmp_path, **top):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"scale": "tiny", **top, "scales": {"tiny": {
        "tasks": [CAR, WALKER], "seeds": [0, 1], "steps": 1000, "eval_episodes": 2,
        "expert_trajectories": 3, "expert_length": 10, "bc_epochs": 4, "gail_steps": 500,
        "max_episode_steps": 100,
        "per_task": {CAR: {"seeds": [0, 1, 2], "steps": None, "eval_episodes": 5}}}}}))
    return path


def test_per_task_overrides_are_merged_into_the_scale_as_the_workflow_does(tmp_path):
    scale = load_scale("tiny", _config(tmp_path))
    assert scale.seeds == {CAR: (0, 1, 2), WALKER: (0, 1)}
    assert scale.steps == {CAR: get_task(CAR).total_steps, WALKER: 1000}  # null -> registry
    assert scale.eval_steps == {CAR: 5 * 100, WALKER: 2 * 100}
    assert scale.gail_steps == {CAR: 500, WALKER: 500}                   # not overridden
    # top-level seeds (config or --seeds) replace every task's, per_task ones included
    assert set(load_scale("tiny", _config(tmp_path, seeds=[7])).seeds.values()) == {(7,)}
    assert set(load_scale("tiny", _config(tmp_path), seeds=[3, 4]).seeds.values()) == {(3, 4)}
    assert load_scale("tiny", _config(tmp_path), tasks=[WALKER]).tasks == (WALKER,)


def test_one_training_job_per_task_and_method_and_every_other_job_per_seed(tmp_path):
    scale = load_scale("tiny", _config(tmp_path))
    jobs = jobs_of(scale)
    trains = [j for j in jobs if j.stage == "train"]
    assert len(trains) == 2 * 5  # 2 tasks x (s_only, l_only, ours, ours_no_cost, fit)
    car = {j.method: j for j in trains if j.task == CAR}
    assert car["ours"].seeds == (0, 1, 2) and car["ours"].trainer == "asym"
    assert car["ours"].work == 3 * get_task(CAR).total_steps  # K x steps
    assert {j.work for j in trains if j.task == WALKER} == {2 * 1000}
    count = lambda task, stage: sum(j.task == task and j.stage == stage for j in jobs)  # noqa: E731
    assert count(CAR, "evaluate") == 3 * 7 and count(WALKER, "evaluate") == 2 * 7
    assert count(CAR, "distill") == 3 * 2 and count(CAR, "expert") == 3
    bc = next(j for j in jobs if j.method == "bc")
    assert bc.work == 4 * 3 * 10 and len(bc.seeds) == 1  # epochs x trajectories x length
    assert next(j for j in jobs if j.method == "gail").work == 500


def test_unknown_scale_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown scale 'huge'.*tiny"):
        load_scale("huge", _config(tmp_path))
    with pytest.raises(ValueError, match="unknown scale 'short'"):
        load_scale("short", tmp_path / "missing.yaml", seeds=[0])


def test_paper_scale_without_a_config_needs_seeds(tmp_path):
    with pytest.raises(ValueError, match="--seeds"):
        load_scale("paper", tmp_path / "missing.yaml")
    scale = load_scale("paper", tmp_path / "missing.yaml", tasks=[WALKER], seeds=[0, 1, 2])
    assert scale.seeds == {WALKER: (0, 1, 2)} and scale.steps[WALKER] == get_task(WALKER).total_steps


def test_the_repository_scales_resolve_with_their_per_task_seeds():
    verify = load_scale("verify")
    assert len(verify.seeds[CAR]) == 20 and len(verify.seeds[WALKER]) == 5  # the grid's 20 seeds
    assert verify.steps[CAR] == get_task(CAR).total_steps
    assert {len(s) for s in load_scale("paper").seeds.values()} == {5}


# ----------------------------------------------------------------------------- the command
def test_the_estimate_adds_up_groups_at_the_engine_rates(tmp_path, capsys):
    result = run_estimate("tiny", 2, throughput=[_sb3_json(tmp_path)],
                          engine_throughput=[_engine_json(tmp_path)], config=_config(tmp_path),
                          env_rates=None, compile="off")
    rows = {(r["task"], r["method"], r["stage"]): r for r in result["rows"]}
    ours = rows[(CAR, "ours", "train")]   # K = 3: the K=5 row is the closest
    assert (ours["jobs"], ours["K"], ours["rate_per_cpu_s"]) == (1, 3, 200.0)
    assert ours["cpu_h"] == pytest.approx(3 * get_task(CAR).total_steps / 200.0 / 3600)
    walker = rows[(WALKER, "s_only", "train")]
    assert walker["cpu_h"] == pytest.approx(2 * 1000 / 100.0 / 3600)
    assert "upper bound" in walker["source"]
    assert rows[(CAR, "bc", "distill")]["jobs"] == 3 and rows[(WALKER, "gail", "evaluate")]["jobs"] == 2
    assert result["total_cpu_h"] == pytest.approx(sum(r["cpu_h"] for r in result["rows"]))
    printed = capsys.readouterr().out
    assert f"{CAR} 3, {WALKER} 2" in printed and "engine asym measured K=5" in printed


def test_cli_prints_the_estimate_and_writes_json(tmp_path, capsys):
    out = tmp_path / "estimate.json"
    code = main(["estimate", "--scale", "tiny", "--config", str(_config(tmp_path)), "--cores", "4",
                 "--throughput", str(tmp_path / "none.json"), "--out", str(out)])
    assert code == 2 and "cannot read measurements" in capsys.readouterr().err
    assert main(["estimate", "--scale", "tiny", "--config", str(_config(tmp_path)), "--cores", "4",
                 "--engine-throughput", str(_engine_json(tmp_path)),
                 "--methods", "l_only", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert "CPU-hours" in printed and "wall time on 4 cores" in printed
    assert "engine l_only measured K=5" in printed
    assert result["total_cpu_h"] == pytest.approx(sum(r["cpu_h"] for r in result["rows"]))
    assert result["scale"]["seeds"] == {CAR: [0, 1, 2], WALKER: [0, 1]}
    # --engine-throughput with no file: the sb3 rates, labelled
    assert main(["estimate", "--scale", "tiny", "--config", str(_config(tmp_path)),
                 "--engine-throughput", "--methods", "l_only"]) == 0
    assert "sb3 engine rates" in capsys.readouterr().out
    assert main(["estimate", "--scale", "nope", "--config", str(_config(tmp_path))]) == 2
    assert "unknown scale 'nope'" in capsys.readouterr().err


def _compile_json(tmp_path, cases):
    """A benchmarks/compile_speedup.py JSON of (case, task, method, widths, speedup) cases."""
    path = tmp_path / "compile_speedup.json"
    path.write_text(json.dumps({"benchmark": "compile_speedup", "rows": [
        {"case": c, "task": t, "method": m, "widths": w, "speedup": x} for c, t, m, w, x in cases]}))
    return path


def test_compiled_groups_run_at_the_eager_rate_times_the_measured_speedup(tmp_path, capsys):
    """`auto` compiles CPU groups whose budget is >= 100k env steps, as training does: MountainCar
    (100k) is priced compiled, walker-stand at 1,000 steps eager; --compile off prices all eager."""
    speedups = _compile_json(tmp_path, [
        ("car_ours", CAR, "asym", {"small": 8, "large": 64}, 2.0),
        ("walker_l_only", WALKER, "l_only", {"policy": 64}, 1.5),
        ("walker_wide", WALKER, "fit", {"policy": 256}, 1.2)])
    common = dict(throughput=[_sb3_json(tmp_path)], engine_throughput=[_engine_json(tmp_path)],
                  config=_config(tmp_path), env_rates=None, compile_speedup=str(speedups))
    result = run_estimate("tiny", 2, **common)
    rows = {(r["task"], r["method"]): r for r in result["rows"] if r["stage"] == "train"}
    assert rows[(CAR, "ours")]["compiled"] and rows[(CAR, "ours")]["rate_per_cpu_s"] == pytest.approx(400.0)
    assert "compiled x2.00 (measured: car_ours)" in rows[(CAR, "ours")]["source"]
    # L-only: no MountainCar case; the SAC case nearest its width (64) is walker-stand's
    assert rows[(CAR, "l_only")]["rate_per_cpu_s"] == pytest.approx(300.0 * 1.5)  # its K=5 row
    assert "walker_l_only: the nearest width measured to 64" in rows[(CAR, "l_only")]["source"]
    assert not rows[(WALKER, "ours")]["compiled"] and rows[(WALKER, "ours")]["rate_per_cpu_s"] == 50.0
    assert "compiled update " + str(speedups) in capsys.readouterr().out
    eager = run_estimate("tiny", 2, **common, compile="off")
    assert not any(r.get("compiled") for r in eager["rows"])
    assert eager["total_cpu_h"] > result["total_cpu_h"]
    # on: every CPU group compiled, walker-stand's too; without a measurement the eager rate, said
    on = run_estimate("tiny", 2, **{**common, "compile_speedup": ""}, compile="on")
    walker = next(r for r in on["rows"] if (r["task"], r["method"], r["stage"]) == (WALKER, "ours", "train"))
    assert walker["compiled"] and walker["rate_per_cpu_s"] == 50.0
    assert "speed-up not measured: the eager rate (an upper bound of the cost)" in walker["source"]


def test_the_scales_compile_setting_reaches_the_jobs_and_gpu_groups_stay_eager(tmp_path, capsys):
    config = _config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["scales"]["tiny"]["per_task"][CAR]["compile"] = False  # YAML's unquoted off
    config.write_text(yaml.safe_dump(data))
    scale = load_scale("tiny", config)
    assert scale.compile == {CAR: "off", WALKER: "auto"}
    assert not any(j.compiled for j in jobs_of(scale))
    assert all(j.compiled for j in jobs_of(scale, compile="on") if j.stage == "train")
    assert not any(j.compiled for j in jobs_of(scale, device="cuda", compile="on"))
    data["scales"]["tiny"]["compile"] = "fast"
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="scale 'tiny': compile must be one of auto, on, off, got 'fast'"):
        load_scale("tiny", config)
    with pytest.raises(SystemExit):
        main(["estimate", "--scale", "tiny", "--config", str(_config(tmp_path)), "--compile", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- what the pipeline runs
def test_segments_snapshot_evaluations_and_both_protocols_are_counted(tmp_path):
    config = _config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["scales"]["tiny"].update(milestones=[200, 500])
    data["scales"]["tiny"]["per_task"][CAR]["milestones"] = [50000]
    config.write_text(yaml.safe_dump(data))
    scale = load_scale("tiny", config)
    jobs = jobs_of(scale, ("ours", "bc"))
    walker = [j for j in jobs if j.task == WALKER and j.method == "ours"]
    segments = [j for j in walker if j.stage == "train"]
    # one job per segment (to 200, 500, then the budget of 1000), K x its steps each
    assert [(j.end, j.work) for j in segments] == [(200, 2 * 200), (500, 2 * 300), (1000, 2 * 500)]
    evaluations = [j for j in walker if j.stage == "evaluate"]
    assert sorted((j.end, j.seeds[0]) for j in evaluations) == [(e, s) for e in (200, 500, 1000) for s in (0, 1)]
    # --protocol both: twice the episodes' env steps, BC's evaluations too
    assert {j.work for j in evaluations} == {2 * 2 * 100}
    assert {j.work for j in jobs if (j.task, j.method, j.stage) == (WALKER, "bc", "evaluate")} == {2 * 2 * 100}
    assert sum(j.task == CAR and j.stage == "train" for j in jobs) == 2
    # the segments follow each other; each snapshot's evaluation waits for its segment
    needs = dependencies(jobs)
    index = {j: i for i, j in enumerate(jobs)}
    assert needs[index[segments[0]]] == [] and needs[index[segments[2]]] == [index[segments[1]]]
    assert all(needs[index[j]] == [index[segments[[200, 500, 1000].index(j.end)]]] for j in evaluations)


def test_bc_gail_and_fit_wait_for_every_ours_evaluation():
    hour = 3600.0
    rates = {("Ant", t): Rate(1.0, "measured") for t in ("asym", "fit", "eval", "l_only", "bc")}
    jobs = [Job("Ant", "ours", (0, 1), "train", "asym", 2 * hour),
            Job("Ant", "ours", (0,), "evaluate", "eval", 0.5 * hour),
            Job("Ant", "ours", (1,), "evaluate", "eval", 3 * hour),      # the slow seed
            Job("Ant", "l_only", (0, 1), "train", "l_only", 1 * hour),
            Job("Ant", "expert", (0,), "expert", "eval", 0.1 * hour),
            Job("Ant", "bc", (0,), "distill", "bc", 1 * hour),
            Job("Ant", "fit", (0, 1), "train", "fit", 0.5 * hour, 100),
            Job("Ant", "fit", (0, 1), "train", "fit", 0.5 * hour, 200)]
    needs = dependencies(jobs)
    assert sorted(needs[5]) == [1, 2, 4]           # BC of seed 0: both Ours evaluations, its expert data
    assert sorted(needs[6]) == [1, 2] and needs[7] == [6]  # fit's first segment; its second
    result = estimate(jobs, rates, cores=64)
    # Ours -> the slow evaluation of seed 1 -> BC of seed 0: 2 + 3 + 1
    assert result["longest_chain_h"] == pytest.approx(6.0)
    assert "ours evaluate (seed1) -> bc distill (seed0)" in result["longest_chain"][0]


# ----------------------------------------------------------------------------- the schedule and the thread plan
def test_the_list_schedule_holds_a_core_per_thread_and_waits_for_dependencies():
    assert simulate([1.0, 1.0], [[], []], cores=1) == pytest.approx(2.0)
    assert simulate([1.0, 1.0], [[], []], cores=2) == pytest.approx(1.0)
    assert simulate([1.0, 1.0], [[], [0]], cores=2) == pytest.approx(2.0)
    # a 2-thread job holds both cores: the other job waits for it
    assert simulate([1.0, 1.0], [[], []], cores=2, threads=[2, 1]) == pytest.approx(2.0)
    # GPU jobs share the GPUs: two on one GPU run one after the other
    assert simulate([1.0, 1.0], [[], []], cores=4, gpus_needed=[1, 1], gpus=1) == pytest.approx(2.0)
    # the longest remaining chain starts first: 3 h + 1 h after it, beside two 2 h jobs
    assert simulate([3.0, 1.0, 2.0, 2.0], [[], [0], [], []], cores=2) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="needs 3 cores"):
        simulate([1.0], [[]], cores=2, threads=[3])


def test_the_plan_gives_the_critical_path_more_threads_and_never_a_longer_makespan():
    hour = 3600.0
    jobs = [Job("Ant", "ours", (0,), "train", "asym", 12 * hour, 100),
            Job("Ant", "ours", (0,), "train", "asym", 12 * hour, 200),
            Job("Ant", "ours", (0,), "evaluate", "eval", 0.5 * hour, 200),
            Job("Ant", "fit", (0,), "train", "fit", 8 * hour, 200),
            Job("Ant", "s_only", (0,), "train", "s_only", 2 * hour, 200),
            Job("Ant", "l_only", (0,), "train", "l_only", 3 * hour, 200)]
    rates = {("Ant", t): Rate(1.0, "measured") for t in ("asym", "fit", "eval", "s_only", "l_only")}
    scaling = ThreadScaling({256: {1: 1.0, 2: 1.8}}, "test")
    speedup = lambda job, t: scaling.speedup(256, t)  # noqa: E731
    hours = [j.work / 3600.0 for j in jobs]
    plan, makespan = plan_threads(jobs, hours, speedup, cores=4)
    assert plan[("Ant", "ours")] > 1 and plan[("Ant", "fit")] > 1      # Ours -> eval -> fit
    assert plan[("Ant", "s_only")] == plan[("Ant", "l_only")] == 1     # off the critical path
    result = estimate(jobs, rates, 4, plan, speedup)
    assert result["makespan_one_thread_h"] == pytest.approx(24.0 + 0.5 + 8.0)
    assert result["makespan_h"] == pytest.approx(makespan) and makespan < result["makespan_one_thread_h"]
    ours = next(r for r in result["rows"] if r["method"] == "ours" and r["stage"] == "train")
    assert ours["threads"] == plan[("Ant", "ours")]
    assert ours["wall_h"] == pytest.approx(24.0 / speedup(None, ours["threads"]))
    # one core: nothing to plan
    assert plan_threads(jobs, hours, speedup, cores=1)[0] == {g: 1 for g in plan}


def test_thread_speedups_are_measured_where_measured_and_amdahl_fitted_beyond(tmp_path):
    rows = [{"kind": "update", "task": t, "width": w, "threads": n, "speedup": s, "load": 1.2}
            for t in ("walker-stand", "Ant") for w, n, s in ((64, 1, 1.0), (64, 2, 1.25), (256, 1, 1.0),
                                                             (256, 2, 1.6), (256, 4, 2.3))]
    rows.append({"kind": "sgemm", "threads": 2, "gflops": 100.0})
    path = tmp_path / "thread_scaling.json"
    path.write_text(json.dumps({"machine": {"cpu": "AMD EPYC", "cpu_count": 4}, "rows": rows}))
    scaling = read_thread_scaling(path)
    assert scaling.speedup(256, 2) == pytest.approx(1.6) and scaling.speedup(256, 4) == pytest.approx(2.3)
    assert scaling.cores == 4 and "thread_scaling.json (AMD EPYC, 4 cores, load 1.2)" == scaling.source
    # beyond T = 4: Amdahl's law with the fraction fitted to T = 2 and 4; more threads, more speed-up
    p = scaling.fraction(256)
    assert 0 < p < 1 and scaling.speedup(256, 8) == pytest.approx(1 / ((1 - p) + p / 8))
    assert scaling.speedup(256, 4) < scaling.speedup(256, 8) < 1 / (1 - p)
    # one measured point at width 64 gives its fraction exactly; widths between are interpolated
    assert scaling.fraction(64) == pytest.approx(2 * (1 - 1 / 1.25))
    assert scaling.fraction(64) < scaling.fraction(128) < scaling.fraction(256)
    assert scaling.fraction(8) == scaling.fraction(64)
    # a job: only its update share speeds up
    assert job_speedup(0.5, scaling, 256, 2) == pytest.approx(1 / (0.5 + 0.5 / 1.6))
    job = Job("Ant", "ours", (0,), "train", "asym", 1.0)
    assert update_share(job, Rate(60.0, "m"), {"Ant": Rate(600.0, "m")})[0] == pytest.approx(0.9)
    assert update_share(job, Rate(60.0, "m"), {})[0] == 1.0


def test_the_estimate_plans_threads_and_writes_the_plan_for_the_pipeline(tmp_path, capsys):
    out = tmp_path / "plan.json"
    result = run_estimate("tiny", 4, throughput=[_sb3_json(tmp_path)], config=_config(tmp_path),
                          engine_throughput=[_engine_json(tmp_path)], env_rates=None,
                          thread_scaling="", out=str(out))
    printed = capsys.readouterr().out
    assert "issue 24's measurement" in printed and "Amdahl" in printed
    assert "one thread per job" in printed and "with the plan" in printed
    assert result["makespan_h"] <= result["makespan_one_thread_h"] * (1 + 1e-9)
    written = json.loads(out.read_text())
    groups = {(r["task"], r["method"]) for r in written["thread_plan"]}
    assert groups == {(t, m) for t in (CAR, WALKER) for m in ("s_only", "l_only", "ours", "ours_no_cost", "fit")}
    assert written["scale"]["name"] == "tiny" and all(r["threads"] >= 1 for r in written["thread_plan"])
    assert "bit-identical" in written["threads_reproducible"]


# ----------------------------------------------------------------------------- a GPU
def _gpu_json(tmp_path):
    path = tmp_path / "engine_throughput_cuda.json"
    path.write_text(json.dumps({"device": "cuda", "machine": {"gpu": "NVIDIA H100"}, "rows": [
        {"task": CAR, "trainer": "SAC.learn (large)", "device": "cpu", "K": 1, "wall_steps_per_s": 170.0},
        {"task": CAR, "trainer": "engine l_only", "device": "cuda", "K": 10, "wall_steps_per_s": 700.0,
         "load": 8.0},
        {"task": CAR, "trainer": "engine asym", "device": "cuda", "K": 10, "wall_steps_per_s": 600.0},
        {"task": CAR, "trainer": "engine asym", "device": "cuda", "K": 50, "wall_steps_per_s": 2000.0}]}))
    return path


def test_gpu_jobs_run_at_the_measured_wall_rates_and_say_so(tmp_path):
    gpu = read_gpu_throughput(_gpu_json(tmp_path))
    assert set(gpu) == {(CAR, "l_only"), (CAR, "asym")}
    rate = gpu_rate(CAR, "asym", 50, gpu, {})
    assert rate.per_cpu_s == 2000.0 and "GPU engine asym measured K=50" in rate.source
    assert "NVIDIA H100" in rate.source
    # fewer members than measured: a group step costs no less, so the per-seed rate scales by K
    assert gpu_rate(CAR, "asym", 5, gpu, {}).per_cpu_s == pytest.approx(600.0 * 5 / 10)
    assert gpu_rate(CAR, "fit", 10, gpu, {}).source.startswith("upper bound: GPU engine l_only")
    # another task: the closest width's row, with its own env.step in place of that task's
    env = {CAR: Rate(10_000.0, "m"), WALKER: Rate(1_000.0, "m")}
    walker = gpu_rate(WALKER, "l_only", 10, gpu, env)
    assert 1 / walker.per_cpu_s == pytest.approx(1 / 700.0 + 1 / 1_000.0 - 1 / 10_000.0)
    assert f"of {CAR}" in walker.source and "this task's env.step" in walker.source
    with pytest.raises(ValueError, match="no GPU engine measurement"):
        gpu_rate(CAR, "asym", 5, {}, {})


def test_device_cuda_puts_training_on_the_gpu_rates_one_gpu_at_a_time(tmp_path, capsys):
    result = run_estimate("tiny", 4, throughput=[_sb3_json(tmp_path)], config=_config(tmp_path),
                          engine_throughput=[_engine_json(tmp_path)], env_rates=None,
                          methods=["l_only", "ours"], device="cuda", gpu_throughput=[_gpu_json(tmp_path)])
    trains = [r for r in result["rows"] if r["stage"] == "train"]
    assert {r["device"] for r in trains} == {"cuda"} and result["gpus"] == 1
    assert all("GPU engine" in r["source"] for r in trains)
    # one GPU: the training jobs run one after the other
    assert result["makespan_h"] >= sum(r["cpu_h"] for r in trains) * (1 - 1e-9)
    assert "engine_throughput_cuda.json" in capsys.readouterr().out
    # the scale's own setting, per method
    config = _config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["scales"]["tiny"]["device"] = {"ours": "cuda"}
    config.write_text(yaml.safe_dump(data))
    jobs = jobs_of(load_scale("tiny", config), ("l_only", "ours"))
    assert {(j.method, j.device) for j in jobs if j.stage == "train"} == {("l_only", "cpu"), ("ours", "cuda")}


def test_groups_sharing_a_gpu_run_at_the_concurrent_rates_or_say_the_solo_ones_bound_them(tmp_path, capsys):
    """`asymbench estimate --gpus 1 --gpu-slots 4` (or a scale's `gpu_slots: 4`): the GPU
    training jobs run four at a time on the GPU, at the rates of engine_throughput.py
    --concurrent 4 (the mean of the four groups); a trainer measured only alone runs at its solo
    rate, labelled an upper bound, and one line says so."""
    path = _gpu_json(tmp_path)
    data = json.loads(path.read_text())
    data["rows"] += [{"task": CAR, "trainer": "engine l_only", "device": "cuda", "K": 10, "concurrent": 4,
                      "group": i, "wall_steps_per_s": rate} for i, rate in enumerate((300.0, 320.0, 340.0, 360.0))]
    path.write_text(json.dumps(data))
    common = ["estimate", "--scale", "tiny", "--cores", "4", "--throughput", str(_sb3_json(tmp_path)),
              "--engine-throughput", str(_engine_json(tmp_path)), "--methods", "l_only", "ours",
              "--device", "cuda", "--gpus", "1", "--gpu-throughput", str(path)]
    results = {}
    for slots, config in ((1, _config(tmp_path)), (4, _config(tmp_path)), ("scale", _config(tmp_path))):
        if slots == "scale":
            data = yaml.safe_load(config.read_text())
            data["scales"]["tiny"]["gpu_slots"] = 4
            config.write_text(yaml.safe_dump(data))
        out = tmp_path / f"estimate_{slots}.json"
        extra = ["--gpu-slots", str(slots)] if slots != "scale" else []
        assert main(common + ["--config", str(config), "--out", str(out)] + extra) == 0
        results[slots] = (json.loads(out.read_text()), capsys.readouterr().out)
    shared, printed = results[4]
    assert results["scale"][0]["rows"] == shared["rows"] and shared["gpu_slots"] == 4
    trains = {(r["task"], r["method"]): r for r in shared["rows"] if r["stage"] == "train"}
    car = trains[(CAR, "l_only")]   # K = 3 of the measured K = 10: scaled by 3/10
    assert car["rate_per_cpu_s"] == pytest.approx(330.0 * 3 / 10)
    assert "4 per GPU" in car["source"] and "4 groups at once, mean of 4" in car["source"]
    ours = trains[(CAR, "ours")]
    assert ours["rate_per_cpu_s"] == pytest.approx(600.0 * 3 / 10)
    assert ours["source"].startswith("upper bound of the rate, 4 per GPU measured alone")
    assert f"only solo GPU rates measured for {CAR}/ours, {WALKER}/ours" in printed
    assert "1/4 of a GPU each" in printed and "4 training groups per GPU" in printed
    alone = results[1][0]
    assert "only solo GPU rates" not in results[1][1]
    assert shared["makespan_h"] < alone["makespan_h"]   # four at once on the one GPU
    assert main(common + ["--config", str(_config(tmp_path)), "--gpu-slots", "0"]) == 2
    assert "--gpu-slots" in capsys.readouterr().err


# ----------------------------------------------------------------------------- threads keep a run's numbers
def test_training_with_two_threads_is_bit_identical_to_one(tmp_path):
    """asymbench train --threads T: the same learning curve and weights at 1 and 2 threads
    (Swimmer, width 256: the update's matmuls are large enough for torch to split them)."""
    import torch

    from asymbench.engine import train_group
    from asymbench.train_config import TrainRequest

    def run(threads):
        out = tmp_path / f"T{threads}"
        request = TrainRequest(task="Swimmer", method="l_only", seed=0, out=out, steps=140,
                               learning_starts=100, max_episode_steps=40, checkpoint_every=10**9,
                               progress=False, threads=threads)
        train_group(request, [0, 1], out)
        curves = [(out / f"seed{s}" / "progress.csv").read_text().splitlines() for s in (0, 1)]
        curves = [[line.rsplit(",", 1)[0] for line in c] for c in curves]  # wall_s aside
        zips = sorted((out).rglob("*.zip"))
        return curves, {z.relative_to(out): _zip_tensors(z) for z in zips}

    previous = torch.get_num_threads()
    try:
        one, two = run(1), run(2)
    finally:
        torch.set_num_threads(previous)
    assert one[0] == two[0] and len(one[0][0]) > 1
    assert one[1].keys() == two[1].keys() and one[1]
    for name, tensors in one[1].items():
        assert tensors.keys() == two[1][name].keys()
        assert all(torch.equal(t, two[1][name][k]) for k, t in tensors.items()), name


def _zip_tensors(path):
    """Every tensor of an SB3 model zip, by file and name."""
    import io
    import zipfile

    import torch

    found = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith(".pth"):
                state = torch.load(io.BytesIO(z.read(name)), map_location="cpu", weights_only=False)
                for key, value in (state.items() if isinstance(state, dict) else ()):
                    if isinstance(value, torch.Tensor):
                        found[f"{name}/{key}"] = value
    return found


def test_the_grid_seed_count_reaches_the_estimate(tmp_path):
    """As in the DAG (common.smk's seeds_of): `grid.seeds` gives the grid's task seeds 0 .. N-1
    at the grid's scales, and no other task or scale."""
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    config["grid"] = {"name": "g", "task": "MountainCarContinuous", "scales": ["verify"], "seeds": 12}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = load_scale("verify", path)
    assert plan.seeds["MountainCarContinuous"] == tuple(range(12))
    assert plan.seeds["walker-stand"] == tuple(config["scales"]["verify"]["seeds"])
    assert load_scale("verify_200k", path).seeds["MountainCarContinuous"] == tuple(
        config["scales"]["verify_200k"]["seeds"])
