"""K stable-baselines3 SACs as stacked tensors: the networks, the whole update as one
static-shape function (``StackedSAC.gradient_step``, eager or compiled), and the members'
replay buffers (``StackedReplay``; ``StackedHerReplay`` relabels goals as SB3's HER does).
The group and its env-step loop that use them are ``asymbench.engine``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from stable_baselines3.common.utils import LinearSchedule

from asymbench.networks import StackedLinear, StackedMLP
from asymbench.runs import RunError

LOG_STD_MIN, LOG_STD_MAX = -20, 2  # stable-baselines3's clamp of the actor's log-std
SQUASH_EPS = 1e-6                  # stable-baselines3's epsilon in the tanh log-det correction


def to_device(array, device) -> torch.Tensor:
    """A host array on ``device``. For a GPU the copy goes through pinned memory without
    blocking, so the host never waits for the GPU here: the only per-step synchronisation left
    is reading the actions back for the environments. (PyTorch's pinned-memory cache keeps a
    block until its copy has run, so reusing it is safe.)"""
    tensor = torch.as_tensor(array)
    if torch.device(device).type == "cpu":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


# --------------------------------------------------------------------------------------------
# K SAC agents with stacked weights
# --------------------------------------------------------------------------------------------
def squashed_gaussian(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor):
    """``tanh(mean + std * noise)`` and its log-probability, SB3's operations in SB3's order."""
    std = torch.ones_like(mean) * log_std.exp()
    gaussian = mean + noise * std
    action = torch.tanh(gaussian)
    log_prob = (-((gaussian - mean) ** 2) / (2 * std ** 2) - std.log()
                - math.log(math.sqrt(2 * math.pi))).sum(-1)
    log_prob = log_prob - torch.log(1 - action ** 2 + SQUASH_EPS).sum(-1)
    return action, log_prob


def adam_in_graph(params: list[torch.Tensor], grads, states: list[dict], lr: torch.Tensor, group: dict) -> None:
    """``torch.optim.Adam``'s step (no weight decay, no amsgrad) on its own state, with the
    step counts and learning rate as tensors, so dynamo traces it into the update's graph
    (``optimizer.step`` would break the graph). The arithmetic is Adam's in another order:
    equal to float rounding, not bit for bit. An optimizer's weights share one step count."""
    (beta1, beta2), eps = group["betas"], group["eps"]
    steps = [state["step"] for state in states]
    exp_avgs, exp_avg_sqs = [state["exp_avg"] for state in states], [state["exp_avg_sq"] for state in states]
    torch._foreach_add_(steps, 1)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    step_size = lr / (1 - beta1 ** steps[0])
    denom = torch._foreach_div(torch._foreach_sqrt(exp_avg_sqs), torch.sqrt(1 - beta2 ** steps[0]))
    torch._foreach_add_(denom, eps)
    updates = torch._foreach_div(exp_avgs, denom)
    torch._foreach_mul_(updates, step_size)
    torch._foreach_sub_(params, updates)


class StackedSAC:
    """K stable-baselines3 SACs of one width, as stacked tensors. Critic members 0..K-1 are
    each seed's first Q-network, K..2K-1 its second, so both critics run as one stack."""

    def __init__(self, members: int, obs_dim: int, act_dim: int, width: int, settings: dict,
                 device: str = "cpu", compiled: bool = False):
        self.members, self.act_dim, self.settings = members, act_dim, settings
        self.trunk = StackedMLP(members, obs_dim, [width, width], None).to(device)
        self.mu = StackedLinear(members, width, act_dim).to(device)
        self.log_std = StackedLinear(members, width, act_dim).to(device)
        self.critic = StackedMLP(2 * members, obs_dim + act_dim, [width, width], 1).to(device)
        self.critic_target = StackedMLP(2 * members, obs_dim + act_dim, [width, width], 1).to(device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.actor_params = [*self.trunk.parameters(), *self.mu.parameters(), *self.log_std.parameters()]
        lr = settings["learning_rate"]
        self.lr_schedule = (LinearSchedule(lr, 0.0, 1.0) if settings["lr_schedule"] == "linear"
                            else (lambda _: lr))
        self.actor_optimizer = torch.optim.Adam(self.actor_params, lr=lr, foreach=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, foreach=True)
        self.target_entropy = -float(act_dim)
        if settings["ent_coef"] == "auto":
            self.log_ent_coef = torch.zeros(members, device=device, requires_grad=True)
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=lr, foreach=True)
        else:
            self.log_ent_coef = None
            self.fixed_ent_coef = torch.full((members, 1, 1), float(settings["ent_coef"]), device=device)
        # The gradient step's inputs, preallocated: ``update`` copies a batch and its noise in,
        # so the step always reads the same tensors (static shapes, one compiled graph).
        batch = settings["batch_size"]
        empty = lambda *shape: torch.zeros(members, batch, *shape, device=device)  # noqa: E731
        self.inputs = {"obs": empty(obs_dim), "next_obs": empty(obs_dim), "action": empty(act_dim),
                       "reward": empty(), "done": empty(), "noise_pi": empty(act_dim),
                       "noise_next": empty(act_dim)}
        self.compiled = compiled
        self.lr = torch.tensor(float(lr), device=device)  # read by the compiled step's Adam
        self._configure_optimizers()
        if compiled:
            # Dynamo traces torch.autograd.grad (``_descend``) rather than breaking the graph
            # there. Every stack is one more guarded entry on the same code; past the limit
            # dynamo would run the step eagerly, silently slow: room for many, and an error
            # rather than that fallback.
            torch._dynamo.config.trace_autograd_ops = True
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            torch._dynamo.config.fail_on_recompile_limit_hit = True
        # On a CPU the graph's ~60 kernel calls go through a C++ wrapper rather than Python's
        # (~5% of a compiled update, for ~20 s more compilation per stack shape).
        options = {"cpp_wrapper": True} if torch.device(device).type == "cpu" else None
        self._step = (torch.compile(self.gradient_step, dynamic=False, options=options) if compiled
                      else self.gradient_step)

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = [self.actor_optimizer, self.critic_optimizer]
        return optimizers + ([self.ent_coef_optimizer] if self.log_ent_coef is not None else [])

    def _configure_optimizers(self) -> None:
        """Eager, Adam is today's ``optimizer.step`` (a float learning rate, host-side bias
        corrections): bit for bit the update the fixtures were recorded with. Compiled, the
        update never calls ``optimizer.step``: ``adam_in_graph`` updates the optimizers' own
        state (so checkpoints keep their format), created here as Adam creates it, its step
        counts beside the weights."""
        for optimizer in self._optimizers():
            for group in optimizer.param_groups:
                group["capturable"], group["lr"] = False, float(group["lr"])
                for param in group["params"] if self.compiled else []:
                    if not optimizer.state[param]:
                        optimizer.state[param] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(param),
                                                  "exp_avg_sq": torch.zeros_like(param)}
            for state in optimizer.state.values():
                state["step"] = state["step"].to(self.lr.device if self.compiled else "cpu")

    # --- policy ------------------------------------------------------------------------
    def _mean_log_std(self, obs: torch.Tensor):
        latent = self.trunk(obs)
        if torch.compiler.is_compiling() and self.act_dim > 1:
            # Compiled, both heads are one product: MKL runs a product a few columns wide at a
            # fraction of its speed, and these (forward and backward) were ~15% of a walker update.
            heads = torch.baddbmm(torch.cat([self.mu.bias, self.log_std.bias], -1), latent,
                                  torch.cat([self.mu.weight, self.log_std.weight], -1))
            mean, log_std = heads.split(self.act_dim, -1)
        else:
            mean, log_std = self.mu(latent), self.log_std(latent)
        return mean, torch.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, noise: torch.Tensor):
        """Squashed Gaussian action and its log-probability, as SB3's actor computes them:
        ``a = tanh(mu + std * noise)``; obs ``[K, B, obs]``, noise ``[K, B, act]``."""
        return squashed_gaussian(*self._mean_log_std(obs), noise)

    def ent_coef(self) -> torch.Tensor:
        if self.log_ent_coef is None:
            return self.fixed_ent_coef
        return torch.exp(self.log_ent_coef.detach()).view(-1, 1, 1)

    def q_values(self, obs: torch.Tensor, action: torch.Tensor, target: bool = False,
                 detach: bool = False) -> torch.Tensor:
        """Both critics' values, ``[2K, B, 1]``: rows 0..K-1 the first critic, K..2K-1 the second."""
        x = torch.cat([obs, action], dim=-1).repeat(2, 1, 1)
        return (self.critic_target if target else self.critic)(x, detach)

    # --- one gradient step for every member ----------------------------------------------
    def update(self, batch: dict, noise_pi: torch.Tensor, noise_next: torch.Tensor,
               progress_remaining: float) -> None:
        """What ``SAC.train(gradient_steps=1)`` does, for all K members at once: the batch and
        noise go into the preallocated inputs, the learning rate follows its schedule, and
        ``gradient_step`` (eager or compiled) does the rest."""
        lr = self.lr_schedule(progress_remaining)
        if self.compiled:
            self.lr.fill_(lr)
        else:
            for optimizer in self._optimizers():
                for group in optimizer.param_groups:
                    group["lr"] = lr
        for name, value in (*batch.items(), ("noise_pi", noise_pi), ("noise_next", noise_next)):
            self.inputs[name].copy_(value)
        self._step()

    def gradient_step(self) -> None:
        """One gradient step of every member on ``self.inputs``, optimizer steps included: one
        static-shape function, the unit ``torch.compile`` compiles. Member k's losses only reach
        member k's weights (the summed loss has a block-diagonal Jacobian). SB3's order: the
        entropy coefficient, the critics, the actor (through the updated critics), the targets."""
        inputs = self.inputs
        actions_pi, log_prob = self.sample(inputs["obs"], inputs["noise_pi"])   # [K,B,A], [K,B]
        log_prob = log_prob[..., None]
        ent_coef = self.ent_coef()                                  # [K,1,1], before its step
        if self.log_ent_coef is not None:
            self.entropy_step(log_prob)
        self.critic_step(ent_coef)
        self.actor_step(actions_pi, log_prob, ent_coef)
        self.target_update()

    def _descend(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One Adam step of ``optimizer``'s weights down ``loss``. Eager: ``backward`` and
        ``optimizer.step``. Compiled: ``torch.autograd.grad`` and ``adam_in_graph``, which
        dynamo traces (``trace_autograd_ops``), so the whole update is one graph with no break:
        the backward passes and Adam fuse with the forward passes."""
        if not self.compiled:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return
        params = optimizer.param_groups[0]["params"]
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            adam_in_graph(params, grads, [optimizer.state[p] for p in params], self.lr,
                          optimizer.param_groups[0])

    def entropy_step(self, log_prob: torch.Tensor) -> None:
        ent_loss = -(self.log_ent_coef.view(-1, 1, 1) * (log_prob + self.target_entropy).detach())
        self._descend(ent_loss.mean(dim=(1, 2)).sum(), self.ent_coef_optimizer)

    def critic_step(self, ent_coef: torch.Tensor) -> None:
        K, inputs = self.members, self.inputs
        with torch.no_grad():
            next_actions, next_log_prob = self.sample(inputs["next_obs"], inputs["noise_next"])
            next_q = self.q_values(inputs["next_obs"], next_actions, target=True)
            next_q = torch.minimum(next_q[:K], next_q[K:]) - ent_coef * next_log_prob[..., None]
            target_q = inputs["reward"][..., None] + (1 - inputs["done"][..., None]) * self.settings["gamma"] * next_q
        current_q = self.q_values(inputs["obs"], inputs["action"])
        critic_loss = 0.5 * (((current_q[:K] - target_q) ** 2).mean(dim=(1, 2))
                             + ((current_q[K:] - target_q) ** 2).mean(dim=(1, 2)))
        self._descend(critic_loss.sum(), self.critic_optimizer)

    def actor_step(self, actions_pi: torch.Tensor, log_prob: torch.Tensor, ent_coef: torch.Tensor) -> None:
        # The critic's weights are read detached: SB3 lets these gradients reach the critic and
        # zeroes them before the next critic step, so skipping them changes no number.
        K = self.members
        q_pi = self.q_values(self.inputs["obs"], actions_pi, detach=True)
        min_q_pi = torch.minimum(q_pi[:K], q_pi[K:])
        actor_loss = (ent_coef * log_prob - min_q_pi).mean(dim=(1, 2))
        self._descend(actor_loss.sum(), self.actor_optimizer)

    @torch.no_grad()
    def target_update(self) -> None:
        """Polyak averaging of the target critics."""
        tau = self.settings["tau"]
        targets, sources = list(self.critic_target.parameters()), list(self.critic.parameters())
        torch._foreach_mul_(targets, 1 - tau)
        torch._foreach_add_(targets, sources, alpha=tau)

    # --- members in and out of stable-baselines3 SAC objects -------------------------------
    def _pairs(self, k: int, sac):
        """(stacked layer, member index, SB3 nn.Linear) for every layer of member k."""
        actor_linears = [m for m in sac.actor.latent_pi if isinstance(m, torch.nn.Linear)]
        pairs = [(layer, k, lin) for layer, lin in zip(self.trunk.linears(), actor_linears)]
        pairs += [(self.mu, k, sac.actor.mu), (self.log_std, k, sac.actor.log_std)]
        for stack, module in ((self.critic, sac.critic), (self.critic_target, sac.critic_target)):
            for i, q_net in enumerate(module.q_networks):
                q_linears = [m for m in q_net if isinstance(m, torch.nn.Linear)]
                pairs += [(layer, k + i * self.members, lin) for layer, lin in zip(stack.linears(), q_linears)]
        return pairs

    def load_member(self, k: int, sac) -> None:
        for layer, index, linear in self._pairs(k, sac):
            layer.load_member(index, linear)
        if self.log_ent_coef is not None:
            with torch.no_grad():
                self.log_ent_coef[k] = sac.log_ent_coef.detach()[0]

    def store_member(self, k: int, sac) -> None:
        for layer, index, linear in self._pairs(k, sac):
            layer.store_member(index, linear)
        if self.log_ent_coef is not None:
            with torch.no_grad():
                sac.log_ent_coef.copy_(self.log_ent_coef[k:k + 1].detach())

    def state(self) -> dict:
        return {"trunk": self.trunk.state_dict(), "mu": self.mu.state_dict(),
                "log_std": self.log_std.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(),
                "log_ent_coef": None if self.log_ent_coef is None else self.log_ent_coef.detach().clone(),
                "ent_coef_optimizer": (None if self.log_ent_coef is None
                                       else self.ent_coef_optimizer.state_dict())}

    def restore(self, state: dict) -> None:
        for name in ("trunk", "mu", "log_std", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        if self.log_ent_coef is not None:
            with torch.no_grad():
                self.log_ent_coef.copy_(state["log_ent_coef"])
            self.ent_coef_optimizer.load_state_dict(state["ent_coef_optimizer"])
        self._configure_optimizers()  # a state_dict brings its own learning rate and flags


class StackedReplay:
    """The members' replay buffers as ``[K, capacity, ...]`` tensors. Members step in lockstep,
    so every member writes one row per step and all share one position and size; each member
    samples its own rows with its own generator."""

    def __init__(self, members: int, capacity: int, obs_dim: int, act_dim: int, device: str = "cpu"):
        self.capacity, self.pos, self.size = capacity, 0, 0
        zeros = lambda *shape: torch.zeros(members, capacity, *shape, device=device)  # noqa: E731
        self.tensors = {"obs": zeros(obs_dim), "next_obs": zeros(obs_dim), "action": zeros(act_dim),
                        "reward": zeros(), "done": zeros()}

    def add(self, **rows: torch.Tensor) -> None:
        for name, value in rows.items():
            self.tensors[name][:, self.pos] = value
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rngs: list[np.random.Generator], batch_size: int) -> dict:
        return self._gather(np.stack([rng.integers(0, self.size, batch_size) for rng in rngs]))

    def _gather(self, rows: np.ndarray) -> dict:
        """Member k's rows ``rows[k]`` of every tensor, ``[K, B, ...]``."""
        flat = np.arange(len(rows))[:, None] * self.capacity + rows   # member k's rows start at k * capacity
        flat = to_device(flat, self.tensors["obs"].device)
        return {name: tensor.flatten(0, 1)[flat] for name, tensor in self.tensors.items()}

    def state(self) -> dict:
        """Position, size and the rows written so far (a buffer fills over the run, so an early
        checkpoint is small)."""
        return {"pos": self.pos, "size": self.size,
                "tensors": {name: tensor if self.size == self.capacity else tensor[:, :self.size].clone()
                            for name, tensor in self.tensors.items()}}

    def restore(self, state: dict) -> None:
        self.pos, self.size = state["pos"], state["size"]
        for name, rows in state["tensors"].items():
            self.tensors[name][:, :self.size] = rows


class StackedHerReplay(StackedReplay):
    """StackedReplay with hindsight relabelling as stable-baselines3's ``HerReplayBuffer`` does
    it (stable_baselines3/her/her_replay_buffer.py), for each member on its own:

    - a row can be sampled once its episode has ended; writing over a row of an old episode
      first drops that whole episode (``ep_start`` / ``ep_length`` bookkeeping, as SB3's);
    - of a batch's rows, ``int(her_ratio * batch)`` (``her_ratio = 1 - 1 / (n_sampled_goal + 1)``)
      are relabelled: their desired goal (in obs and next_obs) becomes an achieved goal of the
      same episode ("future": a next state from this row to the episode's end, inclusive;
      "final"; "episode") and their reward is recomputed with the env's ``compute_reward``
      (empty infos, SB3's default); the batch is the real rows, then the relabelled ones (SB3's
      order); stored dones are kept, relabelled or not.

    Differences that change no distribution: SB3 draws rows with ``np.random.choice`` over the
    valid ones, here each member redraws its invalid rows (uniform over valid rows either way,
    from the member's own generator, so no member depends on the group); achieved goals are kept
    on the host in float64 (SB3's storage dtype), so relabelling needs no device round trip.
    Tested against HerReplayBuffer fed the same transitions."""

    def __init__(self, members: int, capacity: int, obs_dim: int, act_dim: int, her: dict,
                 goal_dim: int, desired_goal: slice, compute_reward, device: str = "cpu"):
        super().__init__(members, capacity, obs_dim, act_dim, device)
        self.her_ratio = 1 - 1.0 / (her["n_sampled_goal"] + 1)
        self.strategy = her["goal_selection_strategy"]
        self.desired_goal = desired_goal              # where the desired goal sits in a flat obs
        self.next_achieved = np.zeros((members, capacity, goal_dim))
        self.ep_start = np.zeros((members, capacity), np.int64)
        self.ep_length = np.zeros((members, capacity), np.int64)
        self.current_ep_start = np.zeros(members, np.int64)
        self.valid_rows = np.zeros(members, np.int64)  # rows of ended, not overwritten episodes
        self.compute_reward = compute_reward

    def add(self, episode_end: np.ndarray, next_achieved: np.ndarray, **rows: torch.Tensor) -> None:
        for k in np.flatnonzero(self.ep_length[:, self.pos] > 0):   # writing over an old episode
            end = self.ep_start[k, self.pos] + self.ep_length[k, self.pos]
            self._set_length(k, np.arange(self.pos, end) % self.capacity, 0)
        self.ep_start[:, self.pos] = self.current_ep_start
        self.next_achieved[:, self.pos] = next_achieved
        super().add(**rows)
        for k in np.flatnonzero(episode_end):
            start, end = self.current_ep_start[k], self.pos
            if end < start:
                end += self.capacity
            self._set_length(k, np.arange(start, end) % self.capacity, end - start)
            self.current_ep_start[k] = self.pos

    def _set_length(self, k: int, rows: np.ndarray, length: int) -> None:
        self.valid_rows[k] += (length > 0) * len(rows) - np.count_nonzero(self.ep_length[k, rows])
        self.ep_length[k, rows] = length

    def sample(self, rngs: list[np.random.Generator], batch_size: int) -> dict:
        n_virtual = int(self.her_ratio * batch_size)
        rows, goal_rows = [], []
        for k, rng in enumerate(rngs):  # per member: its rows, then its goals (SB3's order)
            drawn = self.valid_rows_for(k, rng, batch_size)
            rows.append(np.concatenate([drawn[n_virtual:], drawn[:n_virtual]]))  # real, then relabelled
            goal_rows.append(self.goal_rows(k, drawn[:n_virtual], rng))
        rows, goal_rows = np.stack(rows), np.stack(goal_rows)
        members = np.arange(len(rngs))[:, None]
        n_real = batch_size - n_virtual
        goals = self.next_achieved[members, goal_rows]                        # [K, n_virtual, goal]
        achieved = self.next_achieved[members, rows[:, n_real:]]
        rewards = self.compute_reward(achieved.reshape(-1, goals.shape[-1]), goals.reshape(-1, goals.shape[-1]),
                                      [{} for _ in range(goals.shape[0] * goals.shape[1])])
        batch = self._gather(rows)
        device = batch["obs"].device
        goals = to_device(goals.astype(np.float32), device)
        batch["obs"][:, n_real:, self.desired_goal] = goals
        batch["next_obs"][:, n_real:, self.desired_goal] = goals
        batch["reward"][:, n_real:] = to_device(np.asarray(rewards, np.float32).reshape(goals.shape[:2]), device)
        return batch

    def valid_rows_for(self, k: int, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """``batch_size`` rows of member k, uniform over the rows of its ended episodes."""
        if self.valid_rows[k] == 0:
            raise RunError("hindsight relabelling cannot sample before the end of the first "
                           "episode: make learning_starts longer than an episode")
        rows = rng.integers(0, self.size, batch_size)
        invalid = self.ep_length[k, rows] == 0
        while invalid.any():
            rows[invalid] = rng.integers(0, self.size, int(invalid.sum()))
            invalid = self.ep_length[k, rows] == 0
        return rows

    def goal_rows(self, k: int, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The row whose next achieved goal becomes row ``rows[i]``'s new desired goal."""
        start, length = self.ep_start[k, rows], self.ep_length[k, rows]
        if self.strategy == "final":
            index = length - 1
        elif self.strategy == "future":
            index = rng.integers((rows - start) % self.capacity, length)
        else:  # "episode"
            index = rng.integers(0, length)
        return (index + start) % self.capacity

    HER_STATE = ("next_achieved", "ep_start", "ep_length", "current_ep_start", "valid_rows")

    def state(self) -> dict:
        """The rows and the episode bookkeeping (the env's reward function comes with the run)."""
        return {**super().state(), **{name: getattr(self, name) for name in self.HER_STATE}}

    def restore(self, state: dict) -> None:
        super().restore(state)
        for name in self.HER_STATE:
            setattr(self, name, state[name])
