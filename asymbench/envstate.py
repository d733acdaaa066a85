"""An environment's state in and out of a checkpoint, so that a resumed run continues the very
episodes it was in, step for step.

Why not pickle: gymnasium pickles a MuJoCo env by rebuilding it from its constructor arguments,
so the simulation state, the episode counters and the random generators are lost (a pickled
Swimmer-v5 or walker-stand env continues differently; only MountainCar's plain ``state`` array
survives). Here the state is taken apart into plain arrays, numbers and generator states, which
``torch.load(weights_only=True)`` reads back without unpickling any live object:

- every wrapper's episode counters (TimeLimit's ``_elapsed_steps``, OrderEnforcing's
  ``_has_reset``);
- the env's and its action space's random generators;
- the simulation: MuJoCo's full integration state (``mj_getState`` with
  ``mjSTATE_INTEGRATION``: time, qpos, qvel, act, controls, applied forces, mocap, warm start)
  plus the body poses of the last forward pass, which goal tasks read between steps (Fetch
  moves its mocap relative to them); for dm_control the physics is MuJoCo too, plus the step
  counter of its episode and the task's random state; classic-control envs keep ``state``;
- a goal task's current goal.

``restore(env, capture(env))`` into a freshly built env of the same task continues bit for bit
(tested per paper task: step, capture, restore elsewhere, step both, compare).
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

WRAPPER_COUNTERS = ("_elapsed_steps", "_has_reset")
# What the last forward pass left in MjData that an env reads before its next forward pass.
FORWARD_POSES = ("xpos", "xquat", "xmat", "site_xpos", "site_xmat")
EPISODE_ARRAYS = ("state", "goal")  # classic control's physics state; a goal task's goal


class EnvStateError(RuntimeError):
    """An environment whose state asymbench does not know how to save."""


def _wrappers(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _mujoco_parts(env: gym.Env):
    """(model, data, dm_control Environment or None) of a MuJoCo-based env, else None."""
    unwrapped = env.unwrapped
    dm_env = getattr(unwrapped, "_env", None)
    if dm_env is not None and hasattr(dm_env, "physics"):  # shimmy's dm_control compatibility
        physics = dm_env.physics
        return physics.model.ptr, physics.data.ptr, dm_env
    model, data = getattr(unwrapped, "model", None), getattr(unwrapped, "data", None)
    if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
        return model, data, None
    return None


def _array(value) -> np.ndarray:
    return np.array(value, copy=True)


def capture(env: gym.Env) -> dict:
    """Everything ``restore`` needs to continue ``env`` where it is, as plain data."""
    unwrapped = env.unwrapped
    state = {"counters": [{name: getattr(w, name) for name in WRAPPER_COUNTERS if hasattr(w, name)}
                          for w in _wrappers(env)],
             "np_random": generator_state(unwrapped.np_random),
             "action_space": generator_state(env.action_space.np_random),
             "arrays": {name: _array(getattr(unwrapped, name)) for name in EPISODE_ARRAYS
                        if isinstance(getattr(unwrapped, name, None), np.ndarray)}}
    parts = _mujoco_parts(env)
    if parts is None and not state["arrays"]:
        raise EnvStateError(f"cannot checkpoint the state of {type(unwrapped).__name__}: it is "
                            "neither a MuJoCo, a dm_control nor a classic-control env")
    if parts is not None:
        model, data, dm_env = parts
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, physics, spec)
        state["mujoco"] = {"integration": physics,
                           **{name: _array(getattr(data, name)) for name in FORWARD_POSES}}
        if dm_env is not None:
            state["dm_control"] = {"step_count": dm_env._step_count,
                                   "reset_next_step": dm_env._reset_next_step,
                                   "task_random": generator_state(dm_env.task.random)}
    return state


def restore(env: gym.Env, state: dict) -> None:
    """Puts ``state`` (from ``capture`` of an env of the same task) into ``env``."""
    unwrapped = env.unwrapped
    for wrapper, counters in zip(_wrappers(env), state["counters"]):
        for name, value in counters.items():
            setattr(wrapper, name, value)
    set_generator_state(unwrapped.np_random, state["np_random"])
    set_generator_state(env.action_space.np_random, state["action_space"])
    for name, value in state["arrays"].items():
        setattr(unwrapped, name, value.copy())
    if "mujoco" in state:
        model, data, dm_env = _mujoco_parts(env)
        saved = state["mujoco"]
        mujoco.mj_setState(model, data, saved["integration"], mujoco.mjtState.mjSTATE_INTEGRATION)
        # dm_control's legacy step runs mj_step2 then mj_step1, so it expects the position and
        # velocity stages of the current state to be computed, as mj_step1 leaves them.
        mujoco.mj_step1(model, data)
        for name in FORWARD_POSES:
            getattr(data, name)[...] = saved[name]
        if dm_env is not None:
            dm = state["dm_control"]
            dm_env._step_count, dm_env._reset_next_step = dm["step_count"], dm["reset_next_step"]
            set_generator_state(dm_env.task.random, dm["task_random"])


def generator_state(rng) -> dict:
    """A numpy Generator's state, or a legacy RandomState's (dm_control's) as plain data."""
    if isinstance(rng, np.random.RandomState):
        kind, keys, pos, has_gauss, cached = rng.get_state()
        return {"legacy": kind, "keys": keys.copy(), "pos": int(pos), "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached)}
    return rng.bit_generator.state


def set_generator_state(rng, state: dict) -> None:
    if isinstance(rng, np.random.RandomState):
        rng.set_state((state["legacy"], state["keys"], state["pos"], state["has_gauss"],
                       state["cached_gaussian"]))
    else:
        rng.bit_generator.state = state
