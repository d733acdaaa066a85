import json
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from asymbench.agents import SUB_POLICIES, load_sac
from asymbench.networks import costs, sac_actor_flops
from asymbench.runs import RunError
from asymbench.training import TrainRequest, _build, resolve_config, train
from asymbench.tasks import get_task, make_env

from conftest import TINY


def test_finished_asym_run_has_models_curve_and_provenance(asym_run):
    config = json.loads((asym_run / "config.json").read_text())
    summary = json.loads((asym_run / "run.json").read_text())
    assert config["method"] == "asym" and config["widths"] == {"small": 8, "large": 64}
    assert config["cost_weight"] == get_task("MountainCarContinuous").cost_weight
    assert summary["steps"] == TINY["steps"] and summary["steps_per_s"] > 0
    assert summary["provenance"]["versions"]["stable-baselines3"] == "2.9.2"
    assert {p.name for p in (asym_run / "model").iterdir()} == {"small.zip", "large.zip", "master.zip"}
    assert not (asym_run / "checkpoint").exists()
    curve = pd.read_csv(asym_run / "progress.csv")
    assert list(curve["step"]) == [50 * (i + 1) for i in range(len(curve))]  # 50-step episodes
    assert curve["large_share"].between(0, 1).all()
    # both sub-policies learned (one gradient step per env step after learning starts)
    small, large = (load_sac(asym_run / "model" / f"{n}.zip") for n in SUB_POLICIES)
    assert small._n_updates == large._n_updates == TINY["steps"] - TINY["learning_starts"]


def test_sub_policies_share_one_replay_buffer():
    config = resolve_config(TrainRequest(task="MountainCarContinuous", method="asym", seed=0, out="x",
                                         steps=100))
    policies, master = _build(config, make_env(get_task("MountainCarContinuous"), seed=0))
    assert policies["small"].replay_buffer is policies["large"].replay_buffer
    assert master.action_space.n == 2


def test_rerun_of_a_finished_run_does_nothing(asym_run, capsys):
    before = (asym_run / "run.json").read_text()
    train(TrainRequest(task="MountainCarContinuous", method="asym", seed=3, out=asym_run, **TINY))
    assert "already finished" in capsys.readouterr().out
    assert (asym_run / "run.json").read_text() == before


def test_killed_run_resumes_to_the_same_step_count_and_master_reward_has_the_cost(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "asymbench.cli", "train", "--task", "MountainCarContinuous",
           "--method", "asym", "--seed", "1", "--out", str(out), "--steps", "600",
           "--learning-starts", "100", "--master-learning-starts", "10", "--max-episode-steps", "50",
           "--checkpoint-every", "200", "--lam", "0.01", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    latest = out / "checkpoint" / "latest.json"
    deadline = time.time() + 300
    while not latest.exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest.exists() and not (out / "run.json").exists()

    # The checkpoint's buffers: each master transition is one macro (5 steps; episodes are 50),
    # rewarded with the sum of its env rewards minus lambda * n * c(w).
    folder = out / "checkpoint" / json.loads(latest.read_text())["dir"]
    shared = pickle.load(open(folder / "replay.pkl", "rb"))
    master = pickle.load(open(folder / "master_replay.pkl", "rb"))
    c = costs(sac_actor_flops(2, 1, 8), sac_actor_flops(2, 1, 64))
    n_macros = master.pos
    assert n_macros == shared.pos // 5
    env_rewards = shared.rewards[: n_macros * 5, 0].reshape(n_macros, 5).sum(axis=1)
    chosen = [SUB_POLICIES[int(a)] for a in master.actions[:n_macros, 0, 0]]
    expected = env_rewards - 0.01 * 5 * np.array([c[w] for w in chosen])
    np.testing.assert_allclose(master.rewards[:n_macros, 0], expected, rtol=1e-5, atol=1e-6)
    assert {"small", "large"} == set(chosen)  # epsilon-greedy tries both early on

    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "resuming at step" in result.stdout
    assert json.loads((out / "run.json").read_text())["steps"] == 600
    assert pd.read_csv(out / "progress.csv")["step"].is_monotonic_increasing


def test_resume_with_a_different_config_is_refused(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "latest.json").write_text('{"step": 1, "dir": "step1"}')
    (out / "config.json").write_text("{}")
    with pytest.raises(RunError, match="different config"):
        train(TrainRequest(task="MountainCarContinuous", method="l_only", seed=0, out=out, **TINY))


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
        train(TrainRequest(**request))
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
    from stable_baselines3 import HerReplayBuffer

    from asymbench.agents import DeployedActor

    config = resolve_config(TrainRequest(task="FetchPickAndPlace", method="asym", seed=0, out="x",
                                         steps=200))
    assert config["her"] == {"goal_selection_strategy": "future", "n_sampled_goal": 4}
    task = get_task("FetchPickAndPlace")
    policies, master = _build(config, make_env(task, seed=0, flatten=False))
    assert isinstance(policies["small"].replay_buffer, HerReplayBuffer)
    assert policies["small"].replay_buffer is policies["large"].replay_buffer
    assert master.observation_space.shape == (31,)  # the master sees the flat observation
    # the deployed actor takes make_env's flat observation and acts as the dict policy does
    dict_obs, _ = make_env(task, flatten=False).reset(seed=4)
    flat_obs, _ = make_env(task).reset(seed=4)
    large = policies["large"]
    expected = large.predict(dict_obs, deterministic=True)[0]
    actor = DeployedActor.from_sac(large)
    np.testing.assert_allclose(actor(torch.as_tensor(flat_obs)[None])[0].detach().numpy(), expected,
                               rtol=1e-5, atol=1e-6)
