"""The agents: SAC policies built from the registry, and the asymmetric agent's parts.

Every SAC here (S-only, L-only, fit, and both sub-policies of the asymmetric agent) is built by
``make_sac`` from the same registry settings, so the baselines and the sub-policies differ only
in width. The master (a DQN over the two choices {small, large}, as the authors ran it) is
``asymbench.master``.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC, HerReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.utils import LinearSchedule

SUB_POLICIES = ("small", "large")  # the master's action i picks SUB_POLICIES[i]


def _silent_logger() -> Logger:
    # The training loop calls .train() directly; SB3 records its losses into a logger that must exist.
    return Logger(folder=None, output_formats=[])


def make_action_noise(settings: dict | None, act_dim: int):
    if not settings:
        return None
    mean, sigma = np.zeros(act_dim), settings["sigma"] * np.ones(act_dim)
    if settings["type"] == "ornstein_uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(mean=mean, sigma=sigma)
    return NormalActionNoise(mean=mean, sigma=sigma)


def make_sac(sac_settings: dict, env: gym.Env, width: int, seed: int,
             buffer_size: int | None = None, her: dict | None = None) -> SAC:
    """A stable-baselines3 SAC whose actor and critics have two hidden layers of ``width``.

    ``buffer_size`` overrides the registry's, so a sub-policy that will share another's buffer
    does not allocate its own million-transition one. ``her`` (goal tasks, dict observations)
    makes the buffer SB3's HerReplayBuffer; the policy then concatenates the dict's parts in
    the order ``make_env`` flattens them, so the deployed actor takes the flat observation.
    """
    lr = sac_settings["learning_rate"]
    if sac_settings["lr_schedule"] == "linear":
        lr = LinearSchedule(lr, 0.0, 1.0)
    model = SAC(
        "MultiInputPolicy" if her else "MlpPolicy", env,
        replay_buffer_class=HerReplayBuffer if her else None,
        replay_buffer_kwargs=dict(her) if her else None,
        learning_rate=lr,
        buffer_size=buffer_size or sac_settings["buffer_size"],
        learning_starts=sac_settings["learning_starts"],
        batch_size=sac_settings["batch_size"],
        tau=sac_settings["tau"],
        gamma=sac_settings["gamma"],
        ent_coef=sac_settings["ent_coef"] if sac_settings["ent_coef"] == "auto"
        else float(sac_settings["ent_coef"]),
        policy_kwargs={"net_arch": [width, width]},
        seed=seed, device="cpu", verbose=0,
    )
    model.set_logger(_silent_logger())
    return model


def load_sac(path: Path, env: gym.Env | None = None) -> SAC:
    model = SAC.load(path, env=env, device="cpu")
    model.set_logger(_silent_logger())
    return model


class DeployedActor(torch.nn.Module):
    """Deterministic SAC action at deployment: tanh(mu(trunk(obs))), rescaled to the bounds.

    The log-std head is evaluated too, as SB3's actor does (and as the paper's FLOPs count it).
    """

    def __init__(self, latent_pi: torch.nn.Module, mu: torch.nn.Module, log_std: torch.nn.Module,
                 action_space: gym.spaces.Box):
        super().__init__()
        self.latent_pi, self.mu, self.log_std = latent_pi, mu, log_std
        self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))

    @classmethod
    def from_sac(cls, sac: SAC) -> "DeployedActor":
        return cls(sac.actor.latent_pi, sac.actor.mu, sac.actor.log_std, sac.action_space)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        latent = self.latent_pi(obs)
        self.log_std(latent)
        squashed = torch.tanh(self.mu(latent))
        return self.low + 0.5 * (squashed + 1.0) * (self.high - self.low)
