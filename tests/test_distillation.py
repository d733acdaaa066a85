"""BC / GAIL distillation of an L-only teacher: expert data, students, run folders, bad input.

The teacher here is a stable-baselines3 SAC run folder written by hand in the contract's layout
(config.json + model/policy.zip + run.json). Its actor is untrained but its weights are set so
that its action depends strongly (and non-linearly) on the state: imitating it is then
measurable, which a near-constant freshly initialised actor would not allow.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from asymbench import distillation as dist
from asymbench.cli import main
from asymbench.networks import deployed_flops, fit_width
from asymbench.runs import RunError, provenance, read_json, write_json
from asymbench.tasks import get_task, make_env

TASK = "MountainCarContinuous"
LIMIT = 200  # the teacher run's max_episode_steps override


def _make_teacher(run_dir, method="l_only", finished=True, task=TASK):
    from stable_baselines3 import SAC

    torch.manual_seed(0)
    env = make_env(get_task(TASK), seed=0, max_episode_steps=LIMIT)
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [16, 16]}, seed=0, device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # features that vary over MountainCar's small (pos, vel) range
        first = model.actor.latent_pi[0]
        first.weight.copy_(torch.randn(first.weight.shape, generator=generator)
                           * torch.tensor([10.0, 100.0]))
        first.bias.copy_(torch.randn(first.bias.shape, generator=generator) * 3)
        model.actor.mu.weight.mul_(2.0)
        model.actor.mu.bias.zero_()
    (run_dir / "model").mkdir(parents=True)
    model.save(run_dir / "model" / "policy.zip")
    write_json(run_dir / "config.json", {
        "task": task, "method": method, "seed": 0, "widths": {"policy": 16},
        "task_settings": get_task(TASK).settings, "overrides": {"max_episode_steps": LIMIT}})
    if finished:
        write_json(run_dir / "run.json", {"steps": 0, "wall_time_s": 0.0, "steps_per_s": None,
                                          "provenance": provenance()})
    return run_dir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("distill")


@pytest.fixture(scope="module")
def teacher(workdir):
    return _make_teacher(workdir / "teacher")


@pytest.fixture(scope="module")
def expert(workdir, teacher):
    return dist.make_expert_data(teacher, workdir / "expert.npz", trajectories=8, length=40,
                                 seed=3)


def _r2(pred, target):
    return 1.0 - np.mean((pred - target) ** 2) / np.var(target)


# ----------------------------------------------------------------------------- expert data
def test_expert_data_is_the_teachers_deterministic_rollouts(teacher, expert):
    from stable_baselines3 import SAC

    data = dist.load_expert_data(expert.path, task=TASK, obs_dim=2, act_dim=1)
    assert data.meta["task"] == TASK and (data.obs_dim, data.act_dim) == (2, 1)
    assert data.meta["max_episode_steps"] == LIMIT  # taken from the teacher run's override
    assert len(data.trajectories) == 8 and data.n_pairs == 8 * 40
    model = SAC.load(teacher / "model" / "policy.zip", device="cpu")
    env = make_env(get_task(TASK), max_episode_steps=LIMIT)
    for i, traj in enumerate(data.trajectories):
        assert traj.obs.shape == (41, 2) and traj.acts.shape == (40, 1)
        assert not traj.terminal  # cut after 40 steps, not ended by the env
        first, _ = env.reset(seed=3 + i)
        np.testing.assert_allclose(traj.obs[0], first)
        teacher_acts, _ = model.predict(traj.obs[:-1], deterministic=True)
        np.testing.assert_allclose(traj.acts, teacher_acts, atol=1e-6)
    obs, acts = data.arrays()
    assert obs.shape == (320, 2) and acts.shape == (320, 1)
    assert np.std(acts) > 0.05  # the fixture teacher's actions do depend on the state


def test_expert_cli_uses_the_registry_defaults(teacher, tmp_path, capsys):
    out = tmp_path / "e.npz"
    assert main(["expert", "--teacher", str(teacher), "--out", str(out)]) == 0
    data = dist.load_expert_data(out)
    distill = get_task(TASK).distill
    assert len(data.trajectories) == distill["expert_trajectories"]
    assert {len(t) for t in data.trajectories} == {distill["expert_length"]}
    assert str(out) in capsys.readouterr().out


def _rewrite(src, dst, **changes):
    with np.load(src) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes.pop("meta", {}))
    arrays["meta"] = np.asarray(json.dumps(meta))
    arrays.update(changes)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return dst


def test_bad_expert_files_are_rejected_naming_file_and_problem(expert, tmp_path):
    src = expert.path
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    cases = {
        "does not exist": tmp_path / "missing.npz",
        "not a readable": garbage,
        "empty": _rewrite(src, tmp_path / "empty.npz", lengths=np.zeros(0, np.int64),
                          terminal=np.zeros(0, bool), obs=np.zeros((0, 2), np.float32),
                          acts=np.zeros((0, 1), np.float32), rews=np.zeros(0, np.float32)),
        "'acts' has shape": _rewrite(src, tmp_path / "short.npz", acts=np.zeros((5, 1), np.float32)),
        "'obs' has shape": _rewrite(src, tmp_path / "wide.npz", obs=np.zeros((328, 3), np.float32)),
        "NaN": _rewrite(src, tmp_path / "nan.npz",
                        acts=np.full((320, 1), np.nan, np.float32)),
        "unknown format": _rewrite(src, tmp_path / "v9.npz", meta={"format": 9}),
    }
    for problem, path in cases.items():
        with pytest.raises(dist.ExpertDataError, match=problem) as info:
            dist.load_expert_data(path)
        assert str(path) in str(info.value)
    with pytest.raises(dist.ExpertDataError, match="task 'MountainCarContinuous'.*not 'Swimmer'"):
        dist.load_expert_data(src, task="Swimmer")
    with pytest.raises(dist.ExpertDataError, match="observations have 2 dims.* has 8"):
        dist.load_expert_data(src, obs_dim=8)


# ----------------------------------------------------------------------------- students
def test_bc_student_imitates_the_teacher(teacher, expert, workdir):
    out = workdir / "bc"
    summary = dist.distill("bc", teacher, expert.path, out, seed=0, width=32, epochs=60,
                           progress=False)
    curve = summary["bc"]["curve"]
    assert len(curve) == 61 and curve[-1]["loss"] < curve[0]["loss"]
    assert curve[-1]["action_mse"] < 0.2 * curve[0]["action_mse"]

    policy = dist.load_student(out)
    obs, acts = expert.arrays()
    student_acts, _ = policy.predict(obs, deterministic=True)
    assert _r2(student_acts, acts) > 0.8  # far better than predicting the mean action

    config, run = read_json(out / "config.json"), read_json(out / "run.json")
    assert config["method"] == "bc" and config["task"] == TASK and config["seed"] == 0
    assert config["widths"] == {"policy": 32}
    assert config["overrides"]["max_episode_steps"] == LIMIT
    assert config["teacher"] == str(teacher) and config["expert"] == str(expert.path)
    assert config["settings"]["bc"]["epochs"] == 60
    assert run["provenance"]["versions"]["imitation"] and run["wall_time_s"] > 0

    module = dist.student_deployed_module(policy)
    with torch.no_grad():
        mean = module(torch.as_tensor(obs))
    np.testing.assert_allclose(np.clip(mean.numpy(), -1, 1), student_acts, atol=1e-6)
    assert deployed_flops(module, 2, two_head_actor=False) == 2 * (2 * 32 + 32 * 32 + 32 * 1)


def test_bc_is_reproducible_for_a_seed(teacher, expert, tmp_path):
    params = []
    for name in ("a", "b"):
        dist.distill("bc", teacher, expert.path, tmp_path / name, seed=5, width=8, epochs=3,
                     progress=False)
        params.append(torch.nn.utils.parameters_to_vector(
            dist.load_student(tmp_path / name).parameters()))
    assert torch.equal(params[0], params[1])


def test_gail_runs_end_to_end_and_writes_a_loadable_student(teacher, expert, tmp_path, capsys):
    out = tmp_path / "gail"
    rc = main(["distill", "--method", "gail", "--teacher", str(teacher), "--expert",
               str(expert.path), "--out", str(out), "--width", "8", "--steps", "2048"])
    assert rc == 0
    assert "gail round 1/1" in capsys.readouterr().out
    run, config = read_json(out / "run.json"), read_json(out / "config.json")
    assert run["steps"] == 2048 and run["steps_per_s"] > 0
    assert config["method"] == "gail" and config["total_steps"] == 2048
    assert config["settings"]["gail"]["generator"] == "ppo"
    partial = tmp_path / "partial"  # a budget that is not a whole number of rounds
    dist.distill("gail", teacher, expert.path, partial, width=4, steps=3000, progress=False)
    assert read_json(partial / "config.json")["total_steps"] == 2048
    assert read_json(partial / "run.json")["steps"] == 2048
    policy = dist.load_student(out)
    assert [m.out_features for m in policy.mlp_extractor.policy_net
            if isinstance(m, torch.nn.Linear)] == [8, 8]
    with open(out / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(dist.PROGRESS_COLUMNS)
    # 8 envs x 256 steps with a 200-step limit: every env finished exactly one episode
    assert len(rows) == 8 and all(int(r["episode_length"]) == LIMIT for r in rows)


# ----------------------------------------------------------------------------- bad input
def test_width_from_an_asym_evaluation(teacher, expert, tmp_path):
    evaluation = tmp_path / "asym.json"
    write_json(evaluation, {"task": TASK, "method": "asym", "flops_per_inf": 4603.0})
    task = get_task(TASK)
    width, info = dist.resolve_width(task, 2, 1, width_from=evaluation)
    assert width == fit_width(4603.0, 2, 1) and info["target_flops_per_inf"] == 4603.0
    for bad, problem in (({"task": TASK, "method": "fit", "flops_per_inf": 9.0}, "'fit' run"),
                         ({"task": "Swimmer", "method": "asym", "flops_per_inf": 9.0}, "Swimmer"),
                         ({"task": TASK, "method": "asym", "flops_per_inf": -1}, "positive")):
        write_json(evaluation, bad)
        with pytest.raises(ValueError, match=problem):
            dist.distill("bc", teacher, expert.path, tmp_path / "x", width_from=evaluation)
    with pytest.raises(ValueError, match="exactly one"):
        dist.distill("bc", teacher, expert.path, tmp_path / "x")
    with pytest.raises(ValueError, match="exactly one"):
        dist.distill("bc", teacher, expert.path, tmp_path / "x", width=8, width_from=evaluation)


def test_bad_teachers_and_outputs_are_refused_with_the_reason(teacher, expert, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(teacher, unfinished)
    (unfinished / "run.json").unlink()
    fit_run = tmp_path / "fit"
    shutil.copytree(teacher, fit_run)
    config = read_json(fit_run / "config.json")
    write_json(fit_run / "config.json", dict(config, method="fit"))
    for bad, problem in ((tmp_path / "nowhere", "does not exist"),
                         (unfinished, "unfinished"), (fit_run, "'fit' run")):
        with pytest.raises(RunError, match=problem):
            dist.distill("bc", bad, expert.path, tmp_path / "out", width=8)
        with pytest.raises(RunError, match=problem):
            dist.make_expert_data(bad, tmp_path / "e.npz")

    swimmer_expert = _rewrite(expert.path, tmp_path / "swimmer.npz", meta={"task": "Swimmer"})
    with pytest.raises(dist.ExpertDataError, match="task 'Swimmer' demonstrations"):
        dist.distill("gail", teacher, swimmer_expert, tmp_path / "out", width=8)
    with pytest.raises(ValueError, match="at least one generator round of 2048"):
        dist.distill("gail", teacher, expert.path, tmp_path / "out", width=8, steps=100)
    assert not (tmp_path / "out").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="unknown distillation method"):
        dist.distill("dagger", teacher, expert.path, tmp_path / "out", width=8)
    finished = tmp_path / "finished"  # its own: another test's student may run on another worker
    finished.mkdir()
    (finished / dist.FINISHED_FILE).write_text("{}")
    with pytest.raises(RunError, match="already holds a finished run"):
        dist.distill("bc", teacher, expert.path, finished, width=8)


def test_cli_reports_bad_input_as_an_error(teacher, tmp_path, capsys):
    rc = main(["distill", "--method", "bc", "--teacher", str(tmp_path / "nowhere"),
               "--expert", str(tmp_path / "e.npz"), "--out", str(tmp_path / "o"), "--width", "8"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = main(["distill", "--method", "bc", "--teacher", str(teacher),
               "--expert", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o"),
               "--width", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and "missing.npz" in err and "does not exist" in err
    with pytest.raises(SystemExit):  # argparse: --width and --width-from are exclusive
        main(["distill", "--method", "bc", "--teacher", str(teacher), "--expert", "e.npz",
              "--out", "o", "--width", "8", "--width-from", "x.json"])


# ----------------------------------------------------------------------------- with the trainer
def test_students_of_a_trained_teacher_go_through_evaluate(l_only_run, asym_run, tmp_path):
    """The whole chain on the trainer's own runs (tests/conftest.py): expert data from an L-only
    run, a student sized from an asym evaluation, and `asymbench evaluate` on the student."""
    from asymbench.evaluation import evaluate_run

    asym_eval = evaluate_run(asym_run, episodes=1, out=tmp_path / "asym.json")
    expert = dist.make_expert_data(l_only_run, tmp_path / "e.npz", trajectories=3, length=10)
    out = tmp_path / "bc"
    dist.distill("bc", l_only_run, expert.path, out, width_from=tmp_path / "asym.json",
                 epochs=2, progress=False)
    width = fit_width(asym_eval["flops_per_inf"], 2, 1)
    result = evaluate_run(out, episodes=2, out=tmp_path / "bc.json")
    assert result["method"] == "bc" and result["width"] == width
    assert result["flops_per_inf"] == 2 * (2 * width + width * width + width)
    teacher_limit = read_json(l_only_run / "config.json")["max_episode_steps"]
    assert teacher_limit and result["max_episode_steps"] == teacher_limit
    # the stochastic protocol samples the student's Gaussian (clipped to the bounds)
    sampled = result["stochastic"]
    assert sampled["returns"] != result["returns"] and sampled["flops_per_inf"] == result["flops_per_inf"]
    assert sampled["large_share"] is None and sampled["episodes"] == 2


def test_stochastic_student_action_is_its_gaussian_clipped(teacher, expert, tmp_path):
    from asymbench.evaluation import _DeployedStudent, sample_action

    out = tmp_path / "bc"
    dist.distill("bc", teacher, expert.path, out, width=8, epochs=1, progress=False)
    policy = dist.load_student(out)
    with torch.no_grad():
        policy.log_std.fill_(-1.0)
    net = _DeployedStudent(dist.student_deployed_module(policy), policy.action_space, policy.log_std)
    x = torch.tensor([[-0.5, 0.01]])

    class FixedNoise:
        def __init__(self, value):
            self.value = value

        def standard_normal(self, shape):
            return np.full(shape, self.value)

    with torch.no_grad():
        mean = policy.get_distribution(x).distribution.mean
        np.testing.assert_allclose(sample_action(net, x, FixedNoise(0.0)).numpy(),
                                   torch.clamp(mean, -1, 1).numpy(), atol=1e-6)
        np.testing.assert_allclose(sample_action(net, x, FixedNoise(0.5)).numpy(),
                                   torch.clamp(mean + np.exp(-1.0) * 0.5, -1, 1).numpy(), atol=1e-6)
        assert sample_action(net, x, FixedNoise(1e3)).item() == 1.0  # clipped to the bound


# ----------------------------------------------------------------------------- issue 20 item 5
def test_students_share_one_width_from_ours_mean_over_seeds(teacher, expert, tmp_path):
    """BC and GAIL, every seed, get the width fit gets: the one matching Ours' mean
    Avg-FLOPs/Inf over seeds (train --method fit --width-from with the same files)."""
    from asymbench.train_config import TrainRequest, widths

    paths = []
    for seed, flops in enumerate((3000.0, 4100.0, 7000.0)):
        paths.append(tmp_path / f"ours{seed}.json")
        write_json(paths[-1], {"task": TASK, "method": "asym", "flops_per_inf": flops})
    width, info = dist.resolve_width(get_task(TASK), 2, 1, width_from=paths)
    assert width == fit_width(np.mean([3000.0, 4100.0, 7000.0]), 2, 1)
    assert width != fit_width(3000.0, 2, 1)  # not the first seed's own
    assert info["target_flops_per_inf"] == pytest.approx(4700.0)
    assert info["target_flops_per_inf_each"] == [3000.0, 4100.0, 7000.0]
    fit = widths(TrainRequest(task=TASK, method="fit", seed=0, out=tmp_path,
                               width_from=[str(p) for p in paths]), get_task(TASK))
    assert fit["policy"] == width
    out = tmp_path / "bc"
    assert main(["distill", "--method", "bc", "--teacher", str(teacher), "--expert", str(expert.path),
                 "--width-from", *map(str, paths), "--out", str(out), "--epochs", "1",
                 "--quiet"]) == 0
    config = read_json(out / "config.json")
    assert config["widths"]["policy"] == width
    assert config["settings"]["student"]["width_source"] == [str(p) for p in paths]


def test_evenly_subsampled_expert_pairs_span_the_whole_episode(teacher, tmp_path, capsys):
    first = dist.make_expert_data(teacher, tmp_path / "first.npz", trajectories=3, length=10, seed=3)
    evenly = dist.make_expert_data(teacher, tmp_path / "even.npz", trajectories=3, length=10,
                                   seed=3, pairs="evenly")
    assert first.meta["pairs"] == "first" and evenly.meta["pairs"] == "evenly"
    assert first.n_pairs == evenly.n_pairs == 30
    data = dist.load_expert_data(evenly.path, task=TASK, obs_dim=2, act_dim=1)
    assert len(data.trajectories) == 30 and {len(t) for t in data.trajectories} == {1}
    # the teacher's 200-step episodes (LIMIT): steps 0, 22, ..., 199 of each
    assert data.meta["kept_steps"] == [dist.evenly_spaced_steps(LIMIT, 10)] * 3
    assert dist.evenly_spaced_steps(LIMIT, 10)[0] == 0 and dist.evenly_spaced_steps(LIMIT, 10)[-1] == LIMIT - 1
    assert dist.evenly_spaced_steps(5, 10) == [0, 1, 2, 3, 4]
    # the first kept pair of every episode is the first pair of `first`; each pair is a true
    # transition (the next observation of that step)
    env = make_env(get_task(TASK), max_episode_steps=LIMIT)
    from stable_baselines3 import SAC

    model = SAC.load(teacher / "model" / "policy.zip", device="cpu")
    for episode in range(3):
        pairs = data.trajectories[10 * episode:10 * (episode + 1)]
        np.testing.assert_allclose(pairs[0].obs[0], first.trajectories[episode].obs[0])
        np.testing.assert_allclose(pairs[0].obs[1], first.trajectories[episode].obs[1])
        obs, _ = env.reset(seed=3 + episode)
        for t in range(LIMIT):
            action, _ = model.predict(obs, deterministic=True)
            kept = data.meta["kept_steps"][episode]
            if t in kept:
                pair = pairs[kept.index(t)]
                np.testing.assert_allclose(pair.obs[0], obs, atol=1e-6)
                np.testing.assert_allclose(pair.acts[0], action, atol=1e-6)
            obs, *_ = env.step(action)
            if t in kept:
                np.testing.assert_allclose(pair.obs[1], obs, atol=1e-6)
    # the CLI's named setting, recorded in the data and in a student's config.json
    out = tmp_path / "cli.npz"
    assert main(["expert", "--teacher", str(teacher), "--out", str(out), "--trajectories", "2",
                 "--length", "5", "--pairs", "evenly"]) == 0
    assert "(evenly)" in capsys.readouterr().out
    student = tmp_path / "bc"
    dist.distill("bc", teacher, out, student, width=8, epochs=1, progress=False)
    settings = read_json(student / "config.json")["settings"]
    assert settings["expert_pairs_drawn"] == "evenly" and settings["expert_episodes"] == 2
    assert get_task(TASK).distill["expert_pairs"] == "first"


def test_expert_seeds_stay_below_the_training_range(teacher, tmp_path):
    with pytest.raises(ValueError, match=r"2\*\*31"):
        dist.make_expert_data(teacher, tmp_path / "x.npz", trajectories=3, length=2, seed=2**31 - 2)
    assert not (tmp_path / "x.npz").exists()


def test_a_goal_task_teacher_trained_with_relabelling_gives_flat_expert_data(tmp_path):
    from asymbench.train_config import TrainRequest

    from conftest import train_one

    teacher_dir = tmp_path / "fetch_teacher"
    train_one(TrainRequest(task="FetchPickAndPlace", method="l_only", seed=0, out=teacher_dir,
                       steps=120, learning_starts=100, progress=False))
    data = dist.make_expert_data(teacher_dir, tmp_path / "fetch.npz", trajectories=2, length=10)
    assert (data.obs_dim, data.act_dim) == (31, 4)
    obs, acts = data.arrays()
    assert obs.shape == (20, 31) and np.all(np.abs(acts) <= 1.0)
