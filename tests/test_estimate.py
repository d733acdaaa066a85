import json

import pytest
import yaml

from asymbench.cli import main
from asymbench.estimate import (NOTE_SAC_STEPS_PER_S, Job, Rate, estimate, fallback_rate,
                                jobs_of, load_scale, note_sac_seconds_per_step, read_throughput,
                                wall_time_bounds)
from asymbench.tasks import get_task


def test_cpu_hours_are_work_over_rate_summed_and_wall_time_is_bounded_by_cores_and_chain():
    jobs = [Job("Swimmer", "l_only", seed, "train", "l_only", 7200.0) for seed in (0, 1, 2)]
    jobs.append(Job("Swimmer", "s_only", 0, "train", "s_only", 3600.0))
    rates = {("Swimmer", "l_only"): Rate(2.0, "measured"), ("Swimmer", "s_only"): Rate(4.0, "measured")}
    result = estimate(jobs, rates, cores=2)
    # 3 x 7200 / 2 / 3600 = 3 h, plus 3600 / 4 / 3600 = 0.25 h
    assert result["total_cpu_h"] == pytest.approx(3.25)
    assert result["cpu_h_by_method"] == pytest.approx({"l_only": 3.0, "s_only": 0.25})
    assert result["longest_job_h"] == pytest.approx(1.0)
    assert result["wall_h_lower"] == pytest.approx(max(3.25 / 2, 1.0))
    assert result["wall_h_upper"] == pytest.approx(3.25 / 2 + 1.0)
    # With many cores the longest job bounds the wall time from below.
    assert estimate(jobs, rates, cores=100)["wall_h_lower"] == pytest.approx(1.0)


def test_dependent_jobs_form_a_chain_longer_than_any_one_job():
    rates = {("Ant", t): Rate(1.0, "measured") for t in ("asym", "fit", "eval")}
    jobs = [Job("Ant", "ours", 0, "train", "asym", 3600.0 * 2),
            Job("Ant", "ours", 0, "evaluate", "eval", 1800.0),
            Job("Ant", "fit", 0, "train", "fit", 3600.0)]
    result = estimate(jobs, rates, cores=64)
    assert result["longest_job_h"] == pytest.approx(2.0)
    assert result["longest_chain_h"] == pytest.approx(2.0 + 0.5 + 1.0)  # fit waits for Ours' eval
    assert result["wall_h_lower"] == pytest.approx(3.5)


def test_wall_time_bounds_reject_no_cores():
    assert wall_time_bounds(100.0, 10, 4.0) == (10.0, 14.0)
    with pytest.raises(ValueError, match="cores"):
        wall_time_bounds(1.0, 0, 1.0)


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


def _config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"scale": "tiny", "scales": {"tiny": {
        "tasks": ["Swimmer"], "seeds": [0, 1], "steps": None, "eval_episodes": 2,
        "expert_trajectories": 3, "expert_length": 10, "bc_epochs": 4, "gail_steps": 500,
        "max_episode_steps": 100}}}))
    return path


def test_job_list_follows_the_config_and_the_registry(tmp_path):
    scale = load_scale("tiny", _config(tmp_path))
    assert scale.steps == {"Swimmer": get_task("Swimmer").total_steps}  # steps: null -> registry
    jobs = jobs_of(scale)
    trains = [j for j in jobs if j.stage == "train"]
    assert len(trains) == 2 * 5  # 2 seeds x (s_only, l_only, ours, ours_no_cost, fit)
    assert {j.trainer for j in trains if j.method.startswith("ours")} == {"asym"}
    bc = next(j for j in jobs if j.method == "bc")
    assert bc.work == 4 * 3 * 10  # epochs x trajectories x length
    assert next(j for j in jobs if j.method == "gail").work == 500
    assert next(j for j in jobs if j.stage == "evaluate").work == 2 * 100


def test_unknown_scale_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown scale 'huge'.*tiny"):
        load_scale("huge", _config(tmp_path))
    with pytest.raises(ValueError, match="unknown scale 'short'"):
        load_scale("short", tmp_path / "missing.yaml", seeds=[0])


def test_paper_scale_without_a_config_needs_seeds(tmp_path):
    with pytest.raises(ValueError, match="--seeds"):
        load_scale("paper", tmp_path / "missing.yaml")
    scale = load_scale("paper", tmp_path / "missing.yaml", tasks=["walker-stand"], seeds=[0, 1, 2])
    assert scale.seeds == (0, 1, 2) and scale.steps["walker-stand"] == get_task("walker-stand").total_steps


def test_cli_prints_the_estimate_and_writes_json(tmp_path, capsys):
    out = tmp_path / "estimate.json"
    code = main(["estimate", "--scale", "tiny", "--config", str(_config(tmp_path)), "--cores", "4",
                 "--throughput", str(tmp_path / "none.json"), "--out", str(out)])
    assert code == 2 and "cannot read measurements" in capsys.readouterr().err
    assert main(["estimate", "--scale", "tiny", "--config", str(_config(tmp_path)), "--cores", "4",
                 "--methods", "l_only", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert "CPU-hours" in printed and "wall time on 4 cores" in printed
    assert result["total_cpu_h"] == pytest.approx(sum(r["cpu_h"] for r in result["rows"]))
    assert main(["estimate", "--scale", "nope", "--config", str(_config(tmp_path))]) == 2
    assert "unknown scale 'nope'" in capsys.readouterr().err
