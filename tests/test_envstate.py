"""Environment states saved and restored (asymbench.envstate): a restored env continues bit for
bit, on every paper task, through episode ends; and the state survives the checkpoint format."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from asymbench import envstate
from asymbench.runs import load_state
from asymbench.tasks import get_task, make_env

TASKS = ["MountainCarContinuous", "Swimmer", "Ant", "FetchPickAndPlace", "walker-stand", "finger-spin"]


def _flat(obs) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in obs.values()]) if isinstance(obs, dict) else np.asarray(obs)


def _roll(env, steps: int, seed: int) -> list:
    """Random actions for ``steps`` steps, resetting (unseeded) at episode ends."""
    rng, out = np.random.default_rng(seed), []
    for _ in range(steps):
        action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((_flat(obs).copy(), float(reward), bool(terminated), bool(truncated)))
        if terminated or truncated:
            out.append((_flat(env.reset()[0]).copy(), "reset"))
    return out


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b))


@pytest.mark.parametrize("task_name", TASKS)
def test_restored_env_continues_bit_for_bit(task_name):
    """Step an env into its second episode, capture, restore into another env of the task that
    has lived differently, then step both alike past two more episode ends."""
    task = get_task(task_name)
    make = lambda seed: make_env(task, seed=seed, max_episode_steps=40,  # noqa: E731
                                 flatten=task_name != "FetchPickAndPlace")
    original, other = make(5), make(99)
    _roll(original, 57, seed=0)   # mid-episode of the second episode
    _roll(other, 13, seed=1)
    buffer = io.BytesIO()
    torch.save(envstate.capture(original), buffer)
    buffer.seek(0)
    envstate.restore(other, load_state(buffer))   # through the checkpoint format (no pickled objects)
    after_original, after_other = _roll(original, 100, seed=2), _roll(other, 100, seed=2)
    assert sum(1 for row in after_original if row[1] == "reset") >= 2
    assert _same(after_original, after_other)


def test_restore_is_needed_for_the_continuation():
    """Without the restore the second env does not continue the first (the test can fail)."""
    task = get_task("walker-stand")
    original, other = make_env(task, seed=5, max_episode_steps=40), make_env(task, seed=99, max_episode_steps=40)
    _roll(original, 57, seed=0)
    assert not _same(_roll(original, 30, seed=2), _roll(other, 30, seed=2))


def test_unknown_env_is_refused_by_name():
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.unwrapped.state = list(env.unwrapped.state)  # no array state, no MuJoCo: nothing known
    with pytest.raises(envstate.EnvStateError, match="CartPoleEnv"):
        envstate.capture(env)
