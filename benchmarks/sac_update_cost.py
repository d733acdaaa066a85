"""Where a SAC training step's time goes, and how much a leaner update would save (one thread).

    .venv/bin/python benchmarks/sac_update_cost.py [--task Swimmer] [--widths 8 64 256] [--updates 300] [--compile]

Per gradient step (batch as the task's registry says, 256 for most), CPU time (the best of 5
timed chunks) of:
  sb3_call      ``SAC.train(gradient_steps=1)``: what asymbench's loop (and SAC.learn) calls
                once per env step;
  sb3_batched   ``SAC.train(gradient_steps=8) / 8``: the same updates, one call per 8 steps;
  lean          the same math on the same SB3 networks, written out: batch indexed from torch
                tensors, no .item() logging, fused Adam, one foreach lerp for the target update;
  sample        the replay-buffer sample alone (SB3 ReplayBuffer.sample);
  lean_compiled (--compile) the lean update with torch.compile'd actor and critic networks
                (backward pass and optimiser steps stay eager).
It bounds what a fused SAC update could save without changing the algorithm. The lean update
is a timing sketch, not a trainer (asymbench trains with SB3's).
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (sets the thread environment first)
from _common import load, print_table, write_results

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import SAC

from asymbench.tasks import get_task, make_env


def fill(model: SAC, env, n: int, rng) -> None:
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    for _ in range(n):
        model.replay_buffer.add(rng.standard_normal((1, obs_dim)).astype(np.float32),
                                rng.standard_normal((1, obs_dim)).astype(np.float32),
                                rng.uniform(-1, 1, (1, act_dim)).astype(np.float32),
                                rng.standard_normal(1), np.array([False]), [{}])


def lean_update(model: SAC, batch_size: int):
    """One SAC update (SB3's math: auto entropy, twin critics, polyak) with less overhead."""
    buf, actor, critic, target = model.replay_buffer, model.actor, model.critic, model.critic_target
    n = buf.size()
    data = [torch.as_tensor(a[:n, 0]) for a in (buf.observations, buf.actions, buf.next_observations)]
    rewards, dones = torch.as_tensor(buf.rewards[:n]), torch.as_tensor(buf.dones[:n])
    opts = [torch.optim.Adam(actor.parameters(), lr=3e-4, fused=True),
            torch.optim.Adam(critic.parameters(), lr=3e-4, fused=True),
            torch.optim.Adam([model.log_ent_coef], lr=3e-4, fused=True)]
    params, target_params = list(critic.parameters()), list(target.parameters())
    gamma, tau, target_entropy = model.gamma, model.tau, model.target_entropy

    def step():
        idx = torch.randint(0, n, (batch_size,))
        obs, act, next_obs = (d[idx] for d in data)
        rew, done = rewards[idx], dones[idx]
        pi, logp = actor.action_log_prob(obs)
        logp = logp.reshape(-1, 1)
        alpha_loss = -(model.log_ent_coef * (logp + target_entropy).detach()).mean()
        alpha = model.log_ent_coef.detach().exp()
        opts[2].zero_grad(set_to_none=True)
        alpha_loss.backward()
        opts[2].step()
        with torch.no_grad():
            next_pi, next_logp = actor.action_log_prob(next_obs)
            next_q = torch.min(*target(next_obs, next_pi)) - alpha * next_logp.reshape(-1, 1)
            y = rew + (1 - done) * gamma * next_q
        q1, q2 = critic(obs, act)
        critic_loss = 0.5 * (F.mse_loss(q1, y) + F.mse_loss(q2, y))
        opts[1].zero_grad(set_to_none=True)
        critic_loss.backward()
        opts[1].step()
        actor_loss = (alpha * logp - torch.min(*critic(obs, pi))).mean()
        opts[0].zero_grad(set_to_none=True)
        actor_loss.backward()
        opts[0].step()
        with torch.no_grad():
            torch._foreach_lerp_(target_params, params, tau)
    return step


def cpu_us(fn, calls: int, per_call: int = 1, chunks: int = 5) -> float:
    """CPU microseconds per unit: the best of ``chunks`` timed chunks (noise only adds time)."""
    fn()  # warm-up
    best, n = float("inf"), max(1, calls // chunks)
    for _ in range(chunks):
        start = time.process_time_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time_ns() - start) / 1e3 / (n * per_call))
    return best


def measure(task_name: str, width: int, updates: int, compile_networks: bool = False) -> dict:
    task = get_task(task_name)
    env = make_env(task, seed=0)
    batch = task.sac["batch_size"]
    model = SAC("MlpPolicy", env, buffer_size=20_000, learning_starts=0, batch_size=batch,
                gamma=task.sac["gamma"], policy_kwargs={"net_arch": [width, width]}, seed=0,
                device="cpu", verbose=0)
    model._setup_learn(1)  # creates the logger that train() records into
    fill(model, env, 10_000, np.random.default_rng(0))
    load_before = load()
    row = {"task": task_name, "width": width, "batch": batch,
           "sample_us": cpu_us(lambda: model.replay_buffer.sample(batch), updates),
           "sb3_call_us": cpu_us(lambda: model.train(1, batch), updates),
           "sb3_batched_us": cpu_us(lambda: model.train(8, batch), max(5, updates // 8), 8),
           "lean_us": cpu_us(lean_update(model, batch), updates)}
    row["lean_saving_pct"] = 100 * (1 - row["lean_us"] / row["sb3_call_us"])
    if compile_networks:  # torch.compile of the actor's and critics' forward passes only
        for module in [*model.critic.q_networks, *model.critic_target.q_networks,
                       model.actor.latent_pi, model.actor.mu, model.actor.log_std]:
            module.compile()
        row["lean_compiled_us"] = cpu_us(lean_update(model, batch), updates)
    row["load"] = max(load_before, load())
    env.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="Swimmer")
    parser.add_argument("--widths", nargs="+", type=int, default=[8, 64, 256])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--compile", action="store_true",
                        help="also time the lean update with torch.compile'd networks (needs a C compiler)")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/sac_update_cost.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rows = [measure(args.task, w, args.updates, args.compile) for w in args.widths]
    print_table(rows, ["task", "width", "batch", "sample_us", "sb3_call_us", "sb3_batched_us",
                       "lean_us", "lean_saving_pct", "lean_compiled_us", "load"],
                {k: ".0f" for k in ("sample_us", "sb3_call_us", "sb3_batched_us", "lean_us", "lean_compiled_us")}
                | {"lean_saving_pct": ".0f"})
    print("CPU microseconds per gradient step (best of 5 chunks)")
    write_results("sac_update_cost", {"settings": vars(args), "rows": rows}, started, args.out)


if __name__ == "__main__":
    main()
