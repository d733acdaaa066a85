"""A group folder's safety (issue 22): two checkpoints with a fallback, one writer at a time,
and numbers asymbench checks itself (lambda, the environments' rewards and observations)."""

import json
import os
import socket
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

import asymbench.engine as engine
from asymbench.engine import GROUP_CHECKPOINT, LOCK_FILE, PREVIOUS_CHECKPOINT, train_group
from asymbench.runs import RunError, load_state
from asymbench.train_config import TrainRequest


def _request(tmp_path, **kw):
    settings = dict(task="MountainCarContinuous", method="asym", seed=0, out=tmp_path, steps=300,
                    learning_starts=60, master_learning_starts=100, max_episode_steps=70,
                    checkpoint_every=100, progress=False)
    settings.update(kw)
    return TrainRequest(**settings)


def _curve(run):
    return pd.read_csv(run / "progress.csv").drop(columns="wall_s")


def _weights(run):
    return {name: torch.load(run / "model" / "master.pt", weights_only=True)["state_dict"][name]
            for name in torch.load(run / "model" / "master.pt", weights_only=True)["state_dict"]}


class Stop(Exception):
    pass


def _stop_after_saves(monkeypatch, n: int):
    save, calls = engine.GroupCheckpoint.save, []

    def save_then_stop(*args):
        save(*args)
        calls.append(1)
        if len(calls) == n:
            raise Stop

    monkeypatch.setattr(engine.GroupCheckpoint, "save", save_then_stop)
    return lambda: monkeypatch.setattr(engine.GroupCheckpoint, "save", save)


def test_the_previous_checkpoint_is_kept_and_a_damaged_latest_falls_back_to_it(tmp_path, monkeypatch, capsys):
    train_group(_request(tmp_path), [0, 1], tmp_path / "straight")
    out = tmp_path / "damaged"
    restore = _stop_after_saves(monkeypatch, 2)
    with pytest.raises(Stop):
        train_group(_request(tmp_path), [0, 1], out)
    restore()
    assert load_state(out / GROUP_CHECKPOINT)["state"]["step"] == 200
    assert load_state(out / PREVIOUS_CHECKPOINT)["state"]["step"] == 100  # kept after the new one
    (out / GROUP_CHECKPOINT).write_bytes(b"not a checkpoint")
    capsys.readouterr()
    train_group(_request(tmp_path), [0, 1], out)
    err = [line for line in capsys.readouterr().err.splitlines() if "falling back" in line]
    assert len(err) == 1 and "damaged" in err[0] and "step 100" in err[0]
    for seed in (0, 1):  # resumed at step 100 and bit-identical to the straight run
        pd.testing.assert_frame_equal(_curve(out / f"seed{seed}"), _curve(tmp_path / "straight" / f"seed{seed}"))
        a, b = _weights(out / f"seed{seed}"), _weights(tmp_path / "straight" / f"seed{seed}")
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (out / GROUP_CHECKPOINT).exists() and not (out / PREVIOUS_CHECKPOINT).exists()


def test_a_checkpoint_that_does_not_load_never_replaces_the_latest(tmp_path, monkeypatch):
    out = tmp_path / "g"
    restore = _stop_after_saves(monkeypatch, 1)
    with pytest.raises(Stop):
        train_group(_request(tmp_path), [0], out)
    restore()
    before = (out / GROUP_CHECKPOINT).read_bytes()
    monkeypatch.setattr(engine.torch, "save", lambda payload, path: open(path, "wb").write(b"truncated"))
    with pytest.raises(RunError, match="damaged"):
        train_group(_request(tmp_path), [0], out)
    assert (out / GROUP_CHECKPOINT).read_bytes() == before  # the good one stays the latest
    assert not (out / PREVIOUS_CHECKPOINT).exists()
    assert not list(out.glob(".*tmp"))


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "g"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out.mkdir()
        (out / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                 "started_utc": "2026-12-01T12:00:00Z"}))
        with pytest.raises(RunError) as refused:
            train_group(_request(tmp_path), [0], out)
        message = str(refused.value)
        assert "\n" not in message and f"pid {holder.pid}" in message and socket.gethostname() in message
        assert not (out / "seed0" / "config.json").exists()  # nothing written
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid  # the holder's lock stays
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_of_a_dead_process_is_taken_over_and_said(tmp_path, capsys):
    out = tmp_path / "g"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(),
                                             "started_utc": "2026-12-01T12:00:00Z"}))
    train_group(_request(tmp_path, method="l_only", steps=120), [0], out)
    err = [line for line in capsys.readouterr().err.splitlines() if "taking over the lock" in line]
    assert len(err) == 1 and f"pid {gone.pid}" in err[0]
    assert (out / "seed0" / "run.json").exists() and not (out / LOCK_FILE).exists()  # released


def test_a_lambda_that_overflows_the_master_s_reward_is_refused_before_training(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning reaches the user
        with pytest.raises(ValueError, match=r"lambda \(--lam\) 1e\+308 is too large") as refused:
            train_group(_request(tmp_path, cost_weight=1e308), [0], tmp_path / "g")
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "g" / "seed0" / "config.json").exists()


class _Faulty(gym.Wrapper):
    """From env step ``at`` (counted over the env's life) on, a NaN reward or observation."""

    def __init__(self, env, at: int, what: str):
        super().__init__(env)
        self.at, self.what, self.steps = at, what, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps >= self.at:
            if self.what == "reward":
                reward = float("nan")
            else:
                obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize("what", ["reward", "observation"])
def test_a_non_finite_env_output_stops_at_its_first_occurrence(tmp_path, monkeypatch, what):
    make_env = engine.make_env
    built = []

    def faulty_make_env(*args, **kwargs):
        env = make_env(*args, **kwargs)
        built.append(env)
        return _Faulty(env, 37, what) if len(built) == 2 else env  # the second member's env

    monkeypatch.setattr(engine, "make_env", faulty_make_env)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RunError) as stopped:
            train_group(_request(tmp_path, method="l_only", steps=200), [4, 5], tmp_path / "g")
    message = str(stopped.value)
    assert message == (f"task MountainCarContinuous, seed 5: the environment returned a non-finite {what} "
                       "at env step 37")
    assert not (tmp_path / "g" / LOCK_FILE).exists()
