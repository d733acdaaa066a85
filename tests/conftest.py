"""Shared fixtures: tiny finished runs, trained once per test session."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from asymbench.engine import train_group  # noqa: E402
from asymbench.train_config import TrainRequest  # noqa: E402

# A budget that exercises every code path (random warm-up, SAC and master updates, episode
# ends, macros cut by episode ends) in seconds: 50-step episodes, learning after 100 steps.
TINY = dict(steps=400, learning_starts=100, master_learning_starts=10, max_episode_steps=50,
            checkpoint_every=10_000, progress=False)


def train_one(request: TrainRequest) -> dict:
    """One seed's run in ``request.out`` (``asymbench train --seed S --out OUT``): the one
    training loop, a group of one."""
    return train_group(request, [request.seed], request.out, [request.out])[0]


@pytest.fixture(scope="session")
def asym_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "asym"
    train_one(TrainRequest(task="MountainCarContinuous", method="asym", seed=3, out=out, **TINY))
    return out


@pytest.fixture(scope="session")
def l_only_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "l_only"
    train_one(TrainRequest(task="MountainCarContinuous", method="l_only", seed=3, out=out, **TINY))
    return out
