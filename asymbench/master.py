"""The master: a DQN over {small, large}, as the authors ran it, for K seeds at once.

The authors' master is stable-baselines 2's deepq (``stable_baselines/deepq/{dqn,policies}.py``):
a dueling 32x32 Q-network (separate value and advantage streams, each its own 32x32 MLP),
double-Q targets, Huber loss, each gradient tensor clipped to norm 10, and proportional
prioritized replay (alpha 0.6, beta 0.4 -> 1 over training, new transitions at the max
priority). stable-baselines3's DQN has none of dueling, double-Q or prioritized replay, so the
master is written here, once, for a *group* of K independent members (one per seed) whose
weights are stacked: the training loop (asymbench.engine) uses it for K >= 1 seeds.

Members never mix: each has its own weights, buffer, priorities, random generator and Adam step
count, and the loss is a sum of per-member losses, so member k's update is the one it would get
alone. Each member starts learning when its own buffer holds a batch, as the authors' single
master does: where episodes end early (Fetch ends at success) members' buffers fill at their
own pace.
With every switch off (``dueling``, ``double_q``, ``prioritized_replay``) one update equals
stable-baselines3's ``DQN.train(1)`` (tested), which is the reference implementation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asymbench.networks import StackedMLP, mlp
from asymbench.seeding import run_streams

N_CHOICES = 2  # small, large


def epsilon(settings: dict, t: int, total_steps: int) -> float:
    """Exploration rate at env step ``t``: 1 -> final over the first fraction of training."""
    horizon = max(1, int(settings["exploration_fraction"] * total_steps))
    final = settings["exploration_final_eps"]
    return 1.0 + min(t / horizon, 1.0) * (final - 1.0)


def per_beta(settings: dict, t: int, total_steps: int) -> float:
    """Importance-sampling exponent at env step ``t``: beta0 -> 1 over the whole run."""
    beta0 = settings["prioritized_replay"]["beta0"]
    return beta0 + min(t / max(1, total_steps), 1.0) * (1.0 - beta0)


class QNetwork(nn.Module):
    """One member's Q-network as deployed: Q = V + A - mean(A) (dueling), or A alone."""

    def __init__(self, obs_dim: int, hidden: list[int], dueling: bool):
        super().__init__()
        self.advantage = mlp(obs_dim, hidden, N_CHOICES)
        self.value = mlp(obs_dim, hidden, 1) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(obs)
        if self.value is None:
            return advantage
        return self.value(obs) + advantage - advantage.mean(dim=-1, keepdim=True)


class DeployedMaster(nn.Module):
    """Greedy choice of the master: argmax over its Q-values."""

    def __init__(self, q_net: QNetwork):
        super().__init__()
        self.q_net = q_net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_net(obs).argmax(dim=-1)


class StackedQNetwork(nn.Module):
    """K members' Q-networks with stacked weights: ``[K, B, obs] -> [K, B, 2]``."""

    def __init__(self, members: int, obs_dim: int, hidden: list[int], dueling: bool):
        super().__init__()
        self.advantage = StackedMLP(members, obs_dim, hidden, N_CHOICES)
        self.value = StackedMLP(members, obs_dim, hidden, 1) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(obs)
        if self.value is None:
            return advantage
        return self.value(obs) + advantage - advantage.mean(dim=-1, keepdim=True)

    def streams(self) -> list[tuple[str, StackedMLP]]:
        return [("advantage", self.advantage)] + ([("value", self.value)] if self.value else [])


class MasterReplay:
    """Per-member ring buffers of macro transitions; members fill at their own pace (their
    macros end at different steps), so each has its own position and size."""

    def __init__(self, members: int, capacity: int, obs_dim: int):
        self.capacity = capacity
        self.obs = np.zeros((members, capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((members, capacity, obs_dim), np.float32)
        self.choice = np.zeros((members, capacity), np.int64)
        self.reward = np.zeros((members, capacity), np.float32)
        self.done = np.zeros((members, capacity), np.float32)
        self.priority = np.zeros((members, capacity), np.float64)  # p_i ** alpha
        self.max_priority = np.ones(members)
        self.pos = np.zeros(members, np.int64)
        self.size = np.zeros(members, np.int64)

    def add(self, k: int, obs, choice: int, reward: float, next_obs, done: bool, alpha: float) -> None:
        i = self.pos[k]
        self.obs[k, i], self.next_obs[k, i] = obs, next_obs
        self.choice[k, i], self.reward[k, i], self.done[k, i] = choice, reward, float(done)
        self.priority[k, i] = self.max_priority[k] ** alpha
        self.pos[k] = (i + 1) % self.capacity
        self.size[k] = min(self.size[k] + 1, self.capacity)


class StackedAdam:
    """Adam over stacked [K, ...] parameters with one step count per member, so that each
    member's first update is its own first Adam step whenever it starts. The arithmetic is
    ``torch.optim.Adam(foreach=True)``'s (no weight decay, no amsgrad), operation for operation:
    with the same step counts the parameters are bit-identical to it (tested). Members left out
    of a step keep their parameters and moments unchanged."""

    def __init__(self, params, members: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.steps = np.zeros(members, np.int64)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    def _scalars(self, step: int) -> tuple[float, float]:
        """(step size, sqrt of the second bias correction) exactly as torch computes them."""
        step = float(step)
        return (self.lr / (1 - self.beta1 ** step)) * -1, (1 - self.beta2 ** step) ** 0.5

    @torch.no_grad()
    def step(self, members: np.ndarray) -> None:
        """One step of the members in ``members`` (bool [K])."""
        members = np.asarray(members, bool)
        kept = None
        if not members.all():
            kept = [(param.clone(), m.clone(), v.clone())
                    for param, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq)]
        self.steps[members] += 1
        grads = [param.grad for param in self.params]
        torch._foreach_lerp_(self.exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - self.beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        steps = sorted(set(self.steps[members].tolist()))
        if len(steps) == 1:
            step_size, bias_correction2_sqrt = self._scalars(steps[0])
            torch._foreach_div_(denom, bias_correction2_sqrt)
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(self.params, self.exp_avg, denom, step_size)
        else:  # members at different steps: each its own scalars, on its own slice
            for k in np.flatnonzero(members):
                step_size, bias_correction2_sqrt = self._scalars(self.steps[k])
                for param, m, d in zip(self.params, self.exp_avg, denom):
                    d[k].div_(bias_correction2_sqrt).add_(self.eps)
                    param[k].addcdiv_(m[k], d[k], value=step_size)
        if kept is not None:
            idle = torch.from_numpy(~members)
            for tensors, saved in zip(zip(self.params, self.exp_avg, self.exp_avg_sq), kept):
                for tensor, old in zip(tensors, saved):
                    tensor[idle] = old[idle]

    def state(self) -> dict:
        return {"steps": self.steps.copy(), "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def restore(self, state: dict) -> None:
        """A StackedAdam's state, or a ``torch.optim.Adam`` state_dict (checkpoints written
        before the per-member step counts: every member at the optimizer's one step)."""
        if "state" in state:  # torch.optim.Adam's state_dict
            per_param = [state["state"].get(i) for i in range(len(self.params))]
            if all(entry is None for entry in per_param):
                return
            self.steps[:] = int(per_param[0]["step"])
            state = {"steps": self.steps, "exp_avg": [e["exp_avg"] for e in per_param],
                     "exp_avg_sq": [e["exp_avg_sq"] for e in per_param]}
        self.steps[:] = np.asarray(state["steps"], np.int64)
        for mine, saved in ((self.exp_avg, state["exp_avg"]), (self.exp_avg_sq, state["exp_avg_sq"])):
            for tensor, value in zip(mine, saved):
                tensor.copy_(value)


class MasterGroup:
    """K masters trained together, on the authors' schedule counted in environment steps:
    learning starts after ``learning_starts`` env steps, then one gradient step every
    ``train_freq`` env steps and a target sync every ``target_update_interval`` env steps."""

    def __init__(self, settings: dict, obs_dim: int, seeds: list[int], total_steps: int,
                 rngs: list[np.random.Generator] | None = None):
        """``rngs``: each member's generator for its choices and replay sampling (a training
        run passes its ``seeding.run_streams(seed).master``); default: that stream."""
        self.settings, self.obs_dim, self.total_steps = settings, obs_dim, total_steps
        self.members = len(seeds)
        hidden, dueling = list(settings["hidden"]), settings["dueling"]
        with torch.random.fork_rng():  # the caller's torch random stream is left untouched
            self.q_net = StackedQNetwork(self.members, obs_dim, hidden, dueling)
            self.q_target = StackedQNetwork(self.members, obs_dim, hidden, dueling)
            for k, seed in enumerate(seeds):  # member k starts from the weights it would get alone
                torch.manual_seed(seed)
                self.load_member(k, QNetwork(obs_dim, hidden, dueling))
        self.q_target.load_state_dict(self.q_net.state_dict())
        self.q_target.requires_grad_(False)
        self.params = list(self.q_net.parameters())
        self.optimizer = StackedAdam(self.params, self.members, lr=settings["learning_rate"])
        self.replay = MasterReplay(self.members, settings["buffer_size"], obs_dim)
        self.rngs = rngs if rngs is not None else [run_streams(seed).master for seed in seeds]
        self.member_rows = np.arange(self.members)[:, None]  # indexes [K, B] arrays row by row
        self.updates = np.zeros(self.members, np.int64)
        self.target_syncs = np.zeros(self.members, np.int64)

    # --- acting -------------------------------------------------------------------------
    @torch.no_grad()
    def choose(self, obs: np.ndarray, deciding: np.ndarray, t: int) -> np.ndarray:
        """Epsilon-greedy choices for the members in ``deciding`` (bool [K]); -1 elsewhere."""
        greedy = self.q_net(torch.as_tensor(obs, dtype=torch.float32)[:, None]).argmax(-1)[:, 0].numpy()
        eps = epsilon(self.settings, t, self.total_steps)
        choices = np.full(self.members, -1)
        for k in np.flatnonzero(deciding):
            rng = self.rngs[k]
            choices[k] = rng.integers(N_CHOICES) if rng.random() < eps else greedy[k]
        return choices

    def store(self, k: int, obs, choice: int, reward: float, next_obs, done: bool) -> None:
        per = self.settings["prioritized_replay"]
        self.replay.add(k, obs, choice, reward, next_obs, done, per["alpha"] if per else 1.0)

    # --- learning -----------------------------------------------------------------------
    def after_env_step(self, t: int) -> None:
        """The authors' schedule (``dqn.py``): called once per env step with ``t`` the number
        of env steps taken before this one (their ``num_timesteps``)."""
        s = self.settings
        if t <= s["learning_starts"]:
            return
        # As the authors' master checks its one buffer, each member learns once its own buffer
        # holds a batch (members whose episodes end early fill theirs sooner).
        ready = self.replay.size >= s["batch_size"]
        if not ready.any():
            return
        if t % s["train_freq"] == 0:
            self.update(self.sample(t, ready), ready)
        if t % s["target_update_interval"] == 0:
            self.sync_targets(ready)

    def sync_targets(self, members: np.ndarray) -> None:
        if members.all():
            self.q_target.load_state_dict(self.q_net.state_dict())
        else:
            with torch.no_grad():
                for target, online in zip(self.q_target.parameters(), self.q_net.parameters()):
                    target[members] = online[members]
        self.target_syncs[members] += 1

    def sample(self, t: int, members: np.ndarray | None = None) -> dict:
        """A batch per member in ``members`` (default all) from its own buffer: proportional to
        priority (with importance weights, normalised by the largest possible weight) or
        uniform. The other members draw nothing (their rows are row 0, weight 1, unused)."""
        replay, batch = self.replay, self.settings["batch_size"]
        members = np.ones(self.members, bool) if members is None else members
        if self.settings["prioritized_replay"] is None:
            idx = np.zeros((self.members, batch), np.int64)
            for k in np.flatnonzero(members):
                idx[k] = self.rngs[k].integers(0, replay.size[k], batch)
            weights = np.ones((self.members, batch), np.float32)
        else:
            idx, weights = self._prioritized_indices(t, members)
        rows = self.member_rows
        return {"idx": idx, "weights": torch.as_tensor(weights),
                **{name: torch.as_tensor(getattr(replay, name)[rows, idx])
                   for name in ("obs", "choice", "reward", "next_obs", "done")}}

    def _prioritized_indices(self, t: int, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Proportional sampling and importance weights, each member over its own rows. The
        numbers are those of one member at a time with ``np.cumsum`` (tested): torch's cumsum
        is the same sequential float64 sum, several times faster, and runs over all members at
        once (rows past a member's size hold priority 0, so its running sum stays at its total
        there); the weights are one elementwise array expression."""
        replay, batch = self.replay, self.settings["batch_size"]
        beta = per_beta(self.settings, t, self.total_steps)
        sizes = np.maximum(replay.size, 1)  # an empty buffer (a member not drawing) reads row 0
        cumulatives = torch.cumsum(torch.from_numpy(replay.priority[:, :sizes.max()]), dim=1).numpy()
        totals = cumulatives[self.member_rows[:, 0], sizes - 1]
        idx = np.zeros((self.members, batch), np.int64)
        max_weights = np.ones(self.members)
        for k in np.flatnonzero(members):
            rng, size, total = self.rngs[k], sizes[k], totals[k]
            idx[k] = np.searchsorted(cumulatives[k, :size], rng.random(batch) * total, side="right")
            # A numpy scalar power, as each member's largest weight has always been computed
            # (an array power may round differently).
            max_weights[k] = (replay.priority[k, :size].min() / total * size) ** -beta
        np.minimum(idx, sizes[:, None] - 1, out=idx)
        drawn = replay.priority[self.member_rows, idx]
        with np.errstate(divide="ignore", invalid="ignore"):  # members not drawing: zero totals
            weights = (drawn / totals[:, None] * sizes[:, None]) ** -beta / max_weights[:, None]
        weights[~members] = 1.0
        return idx, weights.astype(np.float32)

    def td_errors(self, batch: dict) -> torch.Tensor:
        """Q(s, a) - (r + gamma (1 - done) Q_target(s', a*)), a* by the online net if double-Q."""
        q = self.q_net(batch["obs"]).gather(-1, batch["choice"][..., None])[..., 0]
        with torch.no_grad():
            next_target = self.q_target(batch["next_obs"])
            if self.settings["double_q"]:
                best = self.q_net(batch["next_obs"]).argmax(-1, keepdim=True)
            else:
                best = next_target.argmax(-1, keepdim=True)
            next_q = next_target.gather(-1, best)[..., 0]
            target = batch["reward"] + (1.0 - batch["done"]) * self.settings["gamma"] * next_q
        return q - target

    def update(self, batch: dict, members: np.ndarray | None = None) -> torch.Tensor:
        """One gradient step for every member in ``members`` (default all; the others' weights,
        moments and priorities stay as they are); returns the TD errors [K, B]."""
        members = np.ones(self.members, bool) if members is None else members
        td = self.td_errors(batch)
        loss = (batch["weights"] * F.huber_loss(td, torch.zeros_like(td), reduction="none", delta=1.0))
        self.optimizer.zero_grad()
        per_member = loss.mean(dim=1)
        (per_member if members.all() else per_member[torch.from_numpy(members)]).sum().backward()
        clip = self.settings["grad_clip"]
        if clip is not None:  # stable-baselines 2 clips each gradient tensor to norm 10, per member
            self._clip_gradients(clip)
        self.optimizer.step(members)
        self.updates[members] += 1
        per = self.settings["prioritized_replay"]
        if per is not None:
            new = (np.abs(td.detach().numpy()).astype(np.float64) + per["eps"])
            rows = np.flatnonzero(members)
            self.replay.priority[rows[:, None], batch["idx"][rows]] = new[rows] ** per["alpha"]
            self.replay.max_priority[rows] = np.maximum(self.replay.max_priority[rows], new[rows].max(axis=1))
        return td.detach()

    def _clip_gradients(self, clip: float) -> None:
        """Scales each member's slice of each gradient tensor to norm at most ``clip``. The norms
        are taken tensor by tensor, the scales of all tensors at once (elementwise, so the same
        numbers), which saves most of the per-tensor operator calls."""
        grads = [param.grad for param in self.params]  # each [K, in, out] or [K, 1, out]
        norms = torch.stack([torch.linalg.vector_norm(grad.flatten(1), dim=1) for grad in grads])
        scales = clip / torch.clamp(norms, min=clip)
        torch._foreach_mul_(grads, list(scales[:, :, None, None].unbind(0)))

    # --- members in and out -------------------------------------------------------------
    def load_member(self, k: int, q_net: QNetwork) -> None:
        for name, stacked in self.q_net.streams():
            plain = [m for m in getattr(q_net, name) if isinstance(m, nn.Linear)]
            for layer, linear in zip(stacked.linears(), plain):
                layer.load_member(k, linear)

    def member_network(self, k: int) -> QNetwork:
        net = QNetwork(self.obs_dim, list(self.settings["hidden"]), self.settings["dueling"])
        for name, stacked in self.q_net.streams():
            plain = [m for m in getattr(net, name) if isinstance(m, nn.Linear)]
            for layer, linear in zip(stacked.linears(), plain):
                layer.store_member(k, linear)
        return net

    def save_member(self, k: int, path) -> None:
        """The deployed master of member k: settings and weights (loaded by ``load_master``)."""
        torch.save({"obs_dim": self.obs_dim, "hidden": list(self.settings["hidden"]),
                    "dueling": self.settings["dueling"],
                    "state_dict": self.member_network(k).state_dict()}, path)

    def state(self) -> dict:
        """Everything a resumed group needs (weights, optimizer, buffers, generators)."""
        return {"q_net": self.q_net.state_dict(), "q_target": self.q_target.state_dict(),
                "optimizer": self.optimizer.state(), "replay": self.replay.__dict__,
                "rngs": [rng.bit_generator.state for rng in self.rngs],
                "updates": self.updates, "target_syncs": self.target_syncs}

    def restore(self, state: dict) -> None:
        self.q_net.load_state_dict(state["q_net"])
        self.q_target.load_state_dict(state["q_target"])
        self.optimizer.restore(state["optimizer"])
        self.replay.__dict__.update(state["replay"])
        for rng, rng_state in zip(self.rngs, state["rngs"]):
            rng.bit_generator.state = rng_state
        # counts per member (a checkpoint written before they were: one count for the group)
        self.updates = np.broadcast_to(np.asarray(state["updates"], np.int64), self.members).copy()
        self.target_syncs = np.broadcast_to(np.asarray(state["target_syncs"], np.int64), self.members).copy()


def load_master(path) -> DeployedMaster:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    net = QNetwork(saved["obs_dim"], saved["hidden"], saved["dueling"])
    net.load_state_dict(saved["state_dict"])
    return DeployedMaster(net.eval())
