"""A training group's K environments, stepped in the training process or in worker processes.

Why: a group steps its K environments one after another, in the process that also runs the
update. Where an env step is slow (MuJoCo, dm_control) and K is large, worker processes step
slices of them at the same time. Serial stepping is the reference: a worker builds, seeds,
steps and resets each env exactly as the training process would, only elsewhere, so the
transitions are the same bit for bit (tested), and a checkpoint holds the same env states
(``envstate``) whichever way they were stepped, so a run resumes either way.

Workers ignore the stop signals: the training process receives them, checkpoints (which asks
the workers for their envs' states) and then closes them. A worker ends when its pipe closes,
so a killed training process leaves none behind.
"""

from __future__ import annotations

import multiprocessing
import signal
from typing import Callable

import gymnasium as gym
import numpy as np

from asymbench import envstate
from asymbench.runs import RunError


# --------------------------------------------------------------------------------------------
# What can be done to a slice of envs: the same functions serve both ways of stepping.
# --------------------------------------------------------------------------------------------
def _first_reset(envs: list[gym.Env], seeds: list[tuple[int, int]]) -> list:
    """Each env's first episode (seeded once), then its action space's seed."""
    obs = [env.reset(seed=env_seed)[0] for env, (env_seed, _) in zip(envs, seeds)]
    for env, (_, action_seed) in zip(envs, seeds):
        env.action_space.seed(action_seed)
    return obs


def _step(envs: list[gym.Env], actions) -> list[tuple]:
    """(observation, reward, terminated, truncated) of each env; the info is not used."""
    return [env.step(a)[:4] for env, a in zip(envs, actions)]


def _reset(envs: list[gym.Env], which: list[int]) -> list:
    return [envs[i].reset()[0] for i in which]


def _sample(envs: list[gym.Env], _) -> list[np.ndarray]:
    return [env.action_space.sample() for env in envs]


def _capture(envs: list[gym.Env], _) -> list[dict]:
    return [envstate.capture(env) for env in envs]


def _restore(envs: list[gym.Env], states: list[dict]) -> None:
    for env, state in zip(envs, states):
        envstate.restore(env, state)


OPERATIONS = {"first_reset": _first_reset, "step": _step, "reset": _reset, "sample": _sample,
              "capture": _capture, "restore": _restore}


def _serve(conn, make: Callable[[], gym.Env], count: int) -> None:
    """A worker: builds ``count`` envs and runs what the training process asks, in order."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    envs = [make() for _ in range(count)]
    try:
        while True:
            command, payload = conn.recv()
            if command == "close":
                break
            try:
                conn.send(("ok", OPERATIONS[command](envs, payload)))
            except Exception as exc:  # noqa: BLE001  (sent back, raised in the training process)
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    except EOFError:  # the training process is gone
        pass
    finally:
        for env in envs:
            env.close()


class EnvPool:
    """The K envs of a group: ``envs`` themselves (``workers`` 0), or ``workers`` processes
    (at most K) each holding a contiguous slice of K envs built by ``make``."""

    def __init__(self, envs: list[gym.Env], make: Callable[[], gym.Env], workers: int = 0):
        self.K = len(envs)
        self.envs = envs
        count = min(workers, self.K)
        self.slices = ([[int(k) for k in s] for s in np.array_split(np.arange(self.K), count)] if count
                       else [list(range(self.K))])
        self.conns, self.processes = [], []
        if count:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["asymbench.envpool"])
            for members in self.slices:
                mine, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(theirs, make, len(members)), daemon=True)
                process.start()
                theirs.close()
                self.conns.append(mine)
                self.processes.append(process)

    @property
    def workers(self) -> int:
        return len(self.processes)

    def _run(self, command: str, payloads: list) -> list:
        """``command`` on each slice with its payload (None: skip the slice); the results of
        the slices, in order (a skipped slice: [])."""
        if not self.conns:
            return [OPERATIONS[command](self.envs, payloads[0])]
        asked = [p is not None for p in payloads]
        for conn, payload, ask in zip(self.conns, payloads, asked):
            if ask:
                conn.send((command, payload))
        return [self._receive(i) if ask else [] for i, ask in enumerate(asked)]

    def _receive(self, i: int):
        try:
            status, result = self.conns[i].recv()
        except (EOFError, ConnectionError):
            raise RunError(f"environment worker {i} (pid {self.processes[i].pid}) ended unexpectedly "
                           f"(exit code {self.processes[i].exitcode})") from None
        if status == "error":
            raise RunError(f"environment worker {i}: {result}")
        return result

    def _per_member(self, values) -> list:
        return [[values[k] for k in members] for members in self.slices]

    def _joined(self, results: list) -> list:
        return [item for part in results for item in part]

    def first_reset(self, env_seeds: list[int], action_seeds: list[int]) -> list:
        return self._joined(self._run("first_reset", self._per_member(list(zip(env_seeds, action_seeds)))))

    def step(self, actions: np.ndarray) -> list[tuple]:
        """(observation, reward, terminated, truncated) of every member's env."""
        return self._joined(self._run("step", self._per_member(actions)))

    def reset(self, members) -> list:
        """The next episode's first observation of each of ``members``, in their order."""
        if not len(members):
            return []
        wanted = [[k - s[0] for k in members if k in s] or None for s in self.slices]
        got = dict(zip([k for s in self.slices for k in members if k in s],
                       self._joined(self._run("reset", wanted))))
        return [got[k] for k in members]

    def sample(self) -> list[np.ndarray]:
        """A uniform random action of every member, from its env's action space."""
        return self._joined(self._run("sample", [()] * len(self.slices)))

    def capture(self) -> list[dict]:
        return self._joined(self._run("capture", [()] * len(self.slices)))

    def restore(self, states: list[dict]) -> None:
        self._run("restore", self._per_member(states))

    def close(self) -> None:
        """Ends the workers (the envs of the training process are the caller's to close)."""
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        for conn in self.conns:
            conn.close()
        self.conns, self.processes = [], []
