"""``asymbench train`` for one seed (the one training loop, asymbench.engine.train_group, as a
group of one): the run folder, the shared buffer and the master's macros, resumes, refusals."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

import asymbench.engine as engine
import asymbench.train_config as train_config
from asymbench.agents import SUB_POLICIES, load_sac, make_sac
from asymbench.engine import Group, master_step_costs
from asymbench.master import MasterGroup, load_master
from asymbench.networks import costs, sac_actor_flops
from asymbench.runs import RunError, load_state
from asymbench.stacked import StackedHerReplay, StackedReplay
from asymbench.tasks import get_task, make_env
from asymbench.train_config import TrainRequest, resolve_config

from conftest import TINY, train_one


def test_finished_asym_run_has_models_curve_and_provenance(asym_run):
    config = json.loads((asym_run / "config.json").read_text())
    summary = json.loads((asym_run / "run.json").read_text())
    assert config["method"] == "asym" and config["widths"] == {"small": 8, "large": 64}
    assert config["cost_weight"] == get_task("MountainCarContinuous").cost_weight
    assert (config["engine"], config["timeouts"], config["asym_action_noise"]) == ("batched", "terminal", "dropped")
    assert summary["steps"] == TINY["steps"] and summary["steps_per_s"] > 0
    assert summary["provenance"]["versions"]["stable-baselines3"] == "2.9.2"
    assert {p.name for p in (asym_run / "model").iterdir()} == {"small.zip", "large.zip", "master.pt"}
    # The master learns on the env-step schedule: from the first env step t > learning_starts at
    # which its buffer holds a batch (32 macros of 5 steps: t = 159) to the last, t = 399.
    assert summary["master_updates"] == TINY["steps"] - (32 * 5 - 1)
    assert summary["master_target_syncs"] == 0  # syncs at t = 500, 1000, ...
    assert load_master(asym_run / "model" / "master.pt").q_net.value is not None  # dueling
    assert not (asym_run / engine.GROUP_CHECKPOINT).exists()
    curve = pd.read_csv(asym_run / "progress.csv")
    assert list(curve["step"]) == [50 * (i + 1) for i in range(len(curve))]  # 50-step episodes
    assert curve["large_share"].between(0, 1).all()
    # both sub-policies learned: their deployed weights moved from those SB3 gives seed 3
    env = make_env(get_task("MountainCarContinuous"))
    for name in SUB_POLICIES:
        trained = load_sac(asym_run / "model" / f"{name}.zip").actor.state_dict()
        initial = make_sac(config["sac"], env, config["widths"][name], 3, buffer_size=1).actor.state_dict()
        assert all(not torch.equal(trained[key], initial[key]) for key in trained if key.endswith("weight"))


def test_sub_policies_share_one_replay_buffer():
    config = resolve_config(TrainRequest(task="MountainCarContinuous", method="asym", seed=0, out="x",
                                         steps=100))
    group = Group(TrainRequest(task="MountainCarContinuous", method="asym", seed=0, out="x"), config, [0], "cpu")
    assert isinstance(group.buffer, StackedReplay) and set(group.slots) == {"small", "large"}
    assert isinstance(group.master, MasterGroup) and group.master.members == 1 and group.master.obs_dim == 2


def test_rerun_of_a_finished_run_does_nothing(asym_run, capsys):
    before = (asym_run / "run.json").read_text()
    train_one(TrainRequest(task="MountainCarContinuous", method="asym", seed=3, out=asym_run, **TINY))
    assert "already reached step" in capsys.readouterr().out
    assert (asym_run / "run.json").read_text() == before


RESUME_RUN = dict(task="MountainCarContinuous", method="asym", seed=1, steps=600, learning_starts=100,
                  master_learning_starts=50, max_episode_steps=50, checkpoint_every=300,
                  cost_weight=0.01, progress=False)
TRAIN = ("import sys, asymbench.engine as e, asymbench.train_config as t\n"
         "r = t.TrainRequest(out=sys.argv[1], **{kwargs})\n"
         "e.train_group(r, [r.seed], r.out, [r.out])\n")
# A child process that trains, and dies hard (no cleanup, like SIGKILL) right after writing its
# first checkpoint; then a fresh process resumes the run.
KILLED_AFTER_CHECKPOINT = ("import os, asymbench.engine as e\n"
                           "save = e.GroupCheckpoint.save\n"
                           "def save_and_die(*args):\n    save(*args)\n    os._exit(9)\n"
                           "e.GroupCheckpoint.save = save_and_die\n") + TRAIN


def _weights(run):
    weights = {f"{name}.{key}": value for name in SUB_POLICIES
               for key, value in load_sac(run / "model" / f"{name}.zip").policy.state_dict().items()}
    saved = torch.load(run / "model" / "master.pt", weights_only=True)["state_dict"]
    return {**weights, **{f"master.{key}": value for key, value in saved.items()}}


def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    first = subprocess.run([sys.executable, "-c", KILLED_AFTER_CHECKPOINT.format(kwargs=RESUME_RUN),
                            str(killed)], capture_output=True, text=True, timeout=600)
    assert first.returncode == 9, first.stderr
    saved = load_state(killed / engine.GROUP_CHECKPOINT)
    assert saved["state"]["step"] == 300 and not (killed / "run.json").exists()

    # The checkpoint's buffers: each master transition is one macro (5 steps; episodes are 50),
    # rewarded with the sum of its env rewards minus lambda * n * c(w); time-outs are terminal.
    shared = saved["buffer"]["tensors"]
    master = saved["master"]["replay"]
    c = costs(sac_actor_flops(2, 1, 8), sac_actor_flops(2, 1, 64))
    n_macros = int(master["size"][0])
    assert n_macros == saved["buffer"]["pos"] // 5 == 60
    env_rewards = shared["reward"][0, : n_macros * 5].double().numpy().reshape(n_macros, 5).sum(axis=1)
    chosen = [SUB_POLICIES[int(a)] for a in master["choice"][0, :n_macros]]
    expected = env_rewards - 0.01 * 5 * np.array([c[w] for w in chosen])
    np.testing.assert_allclose(master["reward"][0, :n_macros], expected, rtol=1e-5, atol=1e-6)
    assert {"small", "large"} == set(chosen)  # epsilon-greedy tries both early on
    episode_ends = np.arange(n_macros) % 10 == 9  # 50-step time-outs, stored as terminal
    np.testing.assert_array_equal(master["done"][0, :n_macros], episode_ends.astype(np.float32))
    np.testing.assert_array_equal(shared["done"][0, :300].numpy(), (np.arange(300) % 50 == 49).astype(np.float32))
    assert saved["noises"] == [None]  # asym_action_noise: dropped (MountainCar's OU is not used)

    second = subprocess.run([sys.executable, "-c", TRAIN.format(kwargs=RESUME_RUN), str(killed)],
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "at step 300 of 600" in second.stdout and "resuming" in second.stdout
    train_one(TrainRequest(out=whole, **RESUME_RUN))

    columns = [c for c in train_config.PROGRESS_COLUMNS if c != "wall_s"]
    pd.testing.assert_frame_equal(pd.read_csv(killed / "progress.csv")[columns],
                                  pd.read_csv(whole / "progress.csv")[columns])
    a, b = _weights(killed), _weights(whole)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert json.loads((killed / "run.json").read_text())["master_updates"] == \
        json.loads((whole / "run.json").read_text())["master_updates"]


def _train_to_first_checkpoint(monkeypatch, request: TrainRequest) -> dict:
    """Trains until the first checkpoint is written, then stops; returns the checkpoint."""
    class Stop(Exception):
        pass

    save = engine.GroupCheckpoint.save

    def save_and_stop(*args):
        save(*args)
        raise Stop

    monkeypatch.setattr(engine.GroupCheckpoint, "save", save_and_stop)
    with pytest.raises(Stop):
        train_one(request)
    return load_state(Path(request.out) / engine.GROUP_CHECKPOINT)


def test_bootstrap_timeouts_are_not_terminal(tmp_path, monkeypatch):
    registry = tmp_path / "tasks.yaml"
    text = (Path(train_config.__file__).parent / "data" / "tasks.yaml").read_text()
    registry.write_text(text.replace("  timeouts: terminal ", "  timeouts: bootstrap "))
    saved = _train_to_first_checkpoint(monkeypatch, TrainRequest(
        task="MountainCarContinuous", method="asym", seed=0, out=tmp_path / "run", steps=200,
        learning_starts=100, master_learning_starts=10, max_episode_steps=50, checkpoint_every=100,
        progress=False, registry=str(registry)))
    assert saved["state"]["episodes"][0] == 2  # two 50-step time-outs ...
    assert not saved["buffer"]["tensors"]["done"][0, :100].any()  # ... neither stored as terminal
    assert not saved["master"]["replay"]["done"][0, :20].any()  # the master bootstraps through them too


def test_random_warm_up_follows_the_masters_learning_starts_for_asym(tmp_path, monkeypatch):
    calls = []
    sample = gym.spaces.Box.sample
    monkeypatch.setattr(gym.spaces.Box, "sample", lambda self, *a, **kw: calls.append(1) or sample(self, *a, **kw))
    common = dict(task="MountainCarContinuous", seed=0, steps=150, learning_starts=10,
                  max_episode_steps=50, checkpoint_every=10_000, progress=False)
    train_one(TrainRequest(method="asym", out=tmp_path / "asym", master_learning_starts=120, **common))
    assert len(calls) == 120  # uniform random actions until the MASTER's learning start
    calls.clear()
    train_one(TrainRequest(method="l_only", out=tmp_path / "l_only", **common))
    assert len(calls) == 10   # a single SAC until its own


def test_flops_counting_leaves_the_torch_random_stream_alone():
    config = resolve_config(TrainRequest(task="Swimmer", method="asym", seed=0, out="x", steps=10))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    master_step_costs(config, 8, 2)
    assert torch.equal(torch.get_rng_state(), state)


def test_resume_with_a_different_config_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / engine.GROUP_CHECKPOINT).write_bytes(b"")
    (out / "config.json").write_text("{}")
    with pytest.raises(RunError, match="different config"):
        train_one(TrainRequest(task="MountainCarContinuous", method="l_only", seed=0, out=out, **TINY))


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="ppo"), "unknown method 'ppo'"),
    (dict(task="Hopper"), "unknown task 'Hopper'"),
    (dict(method="asym", cost_weight=-1.0), "lambda"),
    (dict(method="fit"), "--width or --width-from"),
    (dict(steps=0), "--steps"),
])
def test_bad_requests_fail_before_training(tmp_path, kwargs, message):
    request = dict(task="MountainCarContinuous", method="l_only", seed=0, out=tmp_path / "r")
    request.update(kwargs)
    with pytest.raises((ValueError, RunError), match=message):
        train_one(TrainRequest(**request))
    assert not (tmp_path / "r" / "config.json").exists()


def test_fit_width_comes_from_ours_measured_average(tmp_path):
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"task": "MountainCarContinuous", "method": "asym",
                                      "flops_per_inf": 4440.0}))
    config = resolve_config(TrainRequest(task="MountainCarContinuous", method="fit", seed=0,
                                         out="x", width_from=str(evaluation)))
    assert config["widths"] == {"policy": 45}  # 4413 FLOPs, the closest to 4440
    evaluation.write_text(json.dumps({"task": "Swimmer", "method": "asym", "flops_per_inf": 1.0}))
    with pytest.raises(RunError, match="not an evaluation of an asym run"):
        resolve_config(TrainRequest(task="MountainCarContinuous", method="fit", seed=0, out="x",
                                    width_from=str(evaluation)))


def test_goal_task_relabels_a_shared_buffer_and_deploys_on_the_flat_observation(tmp_path):
    from asymbench.agents import DeployedActor

    request = TrainRequest(task="FetchPickAndPlace", method="asym", seed=0, out="x", steps=200)
    config = resolve_config(request)
    assert config["her"] == {"goal_selection_strategy": "future", "n_sampled_goal": 4}
    task = get_task("FetchPickAndPlace")
    group = Group(request, config, [0], "cpu")
    assert isinstance(group.buffer, StackedHerReplay) and set(group.slots) == {"small", "large"}
    assert group.master.obs_dim == 31  # the master sees the flat observation
    # the deployed actor takes make_env's flat observation and acts as the dict policy does
    dict_obs, _ = make_env(task, flatten=False).reset(seed=4)
    flat_obs, _ = make_env(task).reset(seed=4)
    large = group.sb3["large"][0]
    expected = large.predict(dict_obs, deterministic=True)[0]
    actor = DeployedActor.from_sac(large)
    np.testing.assert_allclose(actor(torch.as_tensor(flat_obs)[None])[0].detach().numpy(), expected,
                               rtol=1e-5, atol=1e-6)


def test_quiet_run_logs_a_line_per_checkpoint(tmp_path, capsys):
    """Without a progress bar, a run prints a line at each checkpoint."""
    train_one(TrainRequest(task="MountainCarContinuous", method="l_only", seed=0, out=tmp_path / "run",
                           **dict(TINY, checkpoint_every=150)))
    lines = [line for line in capsys.readouterr().out.splitlines() if "checkpoint at step" in line]
    assert len(lines) == 2 and "step 150 of 400" in lines[0] and "step 300 of 400" in lines[1]


def test_a_run_recorded_before_a_task_setting_existed_is_the_same_config():
    """Resuming a run whose config.json predates a task setting (here pad_observation and
    distill.expert_pairs) works where today's value is the packaged default, which is what the
    run ran with; any other value, or any other difference, is a different config."""
    import copy

    from asymbench.train_config import same_config

    config = resolve_config(TrainRequest(task="walker-stand", method="asym", seed=0, out="x"))
    old = copy.deepcopy(config)
    del old["registry_version"], old["task_settings"]["pad_observation"]
    del old["task_settings"]["distill"]["expert_pairs"]
    assert same_config(old, config)
    padded = copy.deepcopy(config)
    padded["task_settings"]["pad_observation"] = 30
    assert not same_config(old, padded)
    evenly = copy.deepcopy(config)
    evenly["task_settings"]["distill"]["expert_pairs"] = "evenly"
    assert not same_config(old, evenly)
    other = copy.deepcopy(config)
    other["task_settings"]["sac"]["learning_starts"] += 1
    assert not same_config(old, other)
