"""Seed streams (asymbench.seeding): disjoint per seed and per purpose, training envs seeded
once from a range the evaluation never uses."""

from __future__ import annotations

import numpy as np
import torch

from asymbench import seeding
from asymbench.engine import train_group
from asymbench.train_config import TrainRequest


def test_env_seeds_are_distinct_and_outside_the_evaluation_range():
    seeds = [seeding.run_streams(s).env_seed for s in range(2000)]
    assert len(set(seeds)) == len(seeds)
    assert all(s in seeding.TRAINING_ENV_SEEDS and s not in seeding.EVALUATION_SEEDS for s in seeds)


def test_streams_of_one_seed_and_of_neighbouring_seeds_differ():
    a, b = seeding.run_streams(0), seeding.run_streams(1)
    draws = [a.actions.random(8), a.batches.random(8), a.master.random(8), b.actions.random(8)]
    assert len({tuple(d) for d in draws}) == len(draws)
    assert not torch.equal(torch.randn(8, generator=a.policy_noise), torch.randn(8, generator=b.policy_noise))
    # the same seed gives the same streams
    assert np.array_equal(seeding.run_streams(0).actions.random(8), draws[0])


def test_training_envs_are_seeded_once_and_continue_their_own_generator(tmp_path, monkeypatch):
    """Over many short episodes, every member's env is reset with a seed exactly once, with its
    own training seed; every later reset is unseeded (no seed shared between members, none
    equal to an evaluation seed)."""
    import gymnasium as gym

    import asymbench.engine

    resets, make_env = [], asymbench.engine.make_env

    class RecordingResets(gym.Wrapper):
        def reset(self, *, seed=None, options=None):
            resets.append(seed)
            return self.env.reset(seed=seed, options=options)

    monkeypatch.setattr(asymbench.engine, "make_env", lambda *a, **kw: RecordingResets(make_env(*a, **kw)))
    request = TrainRequest(task="MountainCarContinuous", method="asym", seed=0, out=tmp_path, steps=600,
                           learning_starts=50, master_learning_starts=100, max_episode_steps=20,
                           checkpoint_every=10_000, progress=False)
    train_group(request, [0, 1, 2], tmp_path / "g")
    seeded = [seed for seed in resets if seed is not None]
    assert sorted(seeded) == sorted(seeding.run_streams(s).env_seed for s in (0, 1, 2))
    assert len(resets) >= 3 * (600 // 20)       # every episode end reset the env

