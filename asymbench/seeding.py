"""Every random stream of a training run, drawn from one ``numpy.random.SeedSequence(seed)``.

Why: seeding streams with ``seed + episode`` or ``seed + constant`` makes the streams of
different seeds overlap (seed s's episode e is seed s+1's episode e-1), and a long run's
training resets reached the evaluation seeds (1000, 1001, ...). Here each stream is a child of
the run's SeedSequence (``spawn``), so no two streams of any two seeds share numbers, and the
training environment takes one seed, at its first reset, from ``TRAINING_ENV_SEEDS``, a range
the evaluation never uses (``EVALUATION_SEEDS``). After that first reset the environment
continues its own generator from episode to episode, as the authors' training env did (seeded
once, never reseeded).

The initial weights are not drawn here: every network starts from the weights
stable-baselines3 (SAC) or torch (the master) gives the run's seed, so a member of a group
starts exactly where a plain ``SAC(seed=s)`` would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TRAINING_ENV_SEEDS = range(2**31, 2**32)   # reset seeds of training envs (dm_control takes < 2**32)
EVALUATION_SEEDS = range(0, 2**31)         # reset seeds of evaluation episodes
STREAMS = ("env", "action_space", "actions", "batches", "policy_noise", "master")


@dataclass
class RunStreams:
    """The random streams of one run (one member of a group)."""

    env_seed: int                    # the training env's only reset seed, in TRAINING_ENV_SEEDS
    action_space_seed: int           # uniform random actions of the warm-up
    actions: np.random.Generator     # exploration noise added to the policy's actions
    batches: np.random.Generator     # replay-buffer indices (and hindsight goals)
    policy_noise: torch.Generator    # the SAC's Gaussian sampling, acting and updating
    master: np.random.Generator      # the master's epsilon-greedy choices and replay sampling


def run_streams(seed: int) -> RunStreams:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"a run's seed must be an integer >= 0, got {seed!r}")
    children = dict(zip(STREAMS, np.random.SeedSequence(int(seed)).spawn(len(STREAMS))))

    def word(name: str) -> int:
        return int(children[name].generate_state(1, np.uint32)[0])

    return RunStreams(
        env_seed=TRAINING_ENV_SEEDS.start + word("env") % len(TRAINING_ENV_SEEDS),
        action_space_seed=word("action_space"),
        actions=np.random.default_rng(children["actions"]),
        batches=np.random.default_rng(children["batches"]),
        policy_noise=torch.Generator().manual_seed(int(children["policy_noise"].generate_state(1, np.uint64)[0])),
        master=np.random.default_rng(children["master"]),
    )


def check_episode_seeds(seed: int, episodes: int, flag: str = "--seed") -> None:
    """Evaluation-style episode seeds ``seed .. seed + episodes - 1`` must lie in
    [0, 2**31): training's reset seeds are [2**31, 2**32)."""
    last = seed + episodes - 1
    if seed < 0 or last >= EVALUATION_SEEDS.stop:
        raise ValueError(f"{flag} {seed} with {episodes} episodes uses reset seeds {seed}..{last}; "
                         f"expected seeds in [0, 2**31) (training resets with [2**31, 2**32)), "
                         f"i.e. {flag} <= {EVALUATION_SEEDS.stop - episodes}")
