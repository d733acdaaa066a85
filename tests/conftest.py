"""Shared fixtures: tiny finished runs, trained once per test session."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from asymbench.training import TrainRequest, train  # noqa: E402

# A budget that exercises every code path (random warm-up, SAC and master updates, episode
# ends, macros cut by episode ends) in seconds: 50-step episodes, learning after 100 steps.
TINY = dict(steps=400, learning_starts=100, master_learning_starts=10, max_episode_steps=50,
            checkpoint_every=10_000, progress=False)


@pytest.fixture(scope="session")
def asym_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "asym"
    train(TrainRequest(task="MountainCarContinuous", method="asym", seed=3, out=out, **TINY))
    return out


@pytest.fixture(scope="session")
def l_only_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "l_only"
    train(TrainRequest(task="MountainCarContinuous", method="l_only", seed=3, out=out, **TINY))
    return out
