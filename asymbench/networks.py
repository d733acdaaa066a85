"""Network sizes, per-inference FLOPs (counted by thop) and the paper's cost c(w).

The paper's FLOPs convention (inferred from every FLOPs figure it prints): for a SAC actor,
``FLOPs = 2 * MACs + 3`` where MACs are the multiply-accumulates of the weight matrices (thop
counts exactly these: no bias adds, no activations). The master is counted the way the authors
counted it (rl-zoo/perf_drop.py:114-131): with the SAC-actor formula at width 32, i.e. as if it
were a 32x32 actor with 2 * d_a outputs, plus 3 (``master_flops_paper``). The deployed master
(a dueling 32x32 Q-network: value and advantage streams) is also counted as it is,
``2 * MACs`` (``master_flops``); evaluations report both, labelled.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from thop import profile
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ACTOR_FLOPS_CONSTANT = 3  # the paper's "+3" per actor inference (inferred, see module docstring)


def count_macs(module: nn.Module, input_dim: int) -> int:
    """Multiply-accumulates of one batch-1 forward pass, as thop counts them.

    thop 0.1.1 leaves ``total_ops`` buffers in the module it profiles, so it gets a deep copy.
    """
    module = copy.deepcopy(module).cpu().eval()
    with torch.no_grad():
        macs, _ = profile(module, inputs=(torch.zeros(1, input_dim),), verbose=False)
    return int(round(macs))


def count_flops_torch(module: nn.Module, input_dim: int) -> int:
    """FLOPs of one batch-1 forward pass as PyTorch's own counter reports them (2 x MACs)."""
    module = copy.deepcopy(module).cpu().eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.zeros(1, input_dim))
    return int(counter.get_total_flops())


def trunk(input_dim: int, hidden: list[int]) -> nn.Sequential:
    """Linear + ReLU layers of the given widths, as stable-baselines3's ``create_mlp`` builds them."""
    layers, last = [], input_dim
    for width in hidden:
        layers += [nn.Linear(last, width), nn.ReLU()]
        last = width
    return nn.Sequential(*layers)


class TwoHeadActor(nn.Module):
    """The deployed part of a SAC actor: an MLP trunk with a mean and a log-std head.

    Mirrors stable-baselines3's ``sac.policies.Actor`` (latent_pi, mu, log_std) so FLOPs can be
    counted for any width without building an agent; ``deployed_flops`` of a trained SAC agent's
    actor gives the same number (checked in the tests).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]):
        super().__init__()
        self.latent_pi = trunk(obs_dim, hidden)
        last = hidden[-1] if hidden else obs_dim
        self.mu = nn.Linear(last, act_dim)
        self.log_std = nn.Linear(last, act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.latent_pi(obs)
        return self.mu(latent), self.log_std(latent)


def mlp(input_dim: int, hidden: list[int], output_dim: int) -> nn.Sequential:
    return nn.Sequential(*trunk(input_dim, hidden), nn.Linear(hidden[-1] if hidden else input_dim, output_dim))


def sac_actor_flops(obs_dim: int, act_dim: int, width: int, n_hidden: int = 2) -> int:
    """Paper-convention FLOPs/Inf of a two-hidden-layer SAC actor of the given width."""
    return 2 * count_macs(TwoHeadActor(obs_dim, act_dim, [width] * n_hidden), obs_dim) + ACTOR_FLOPS_CONSTANT


def deployed_flops(module: nn.Module, obs_dim: int, two_head_actor: bool = True) -> int:
    """Paper-convention FLOPs/Inf of an actual deployed network (an SB3 actor, a student)."""
    return 2 * count_macs(module, obs_dim) + (ACTOR_FLOPS_CONSTANT if two_head_actor else 0)


def master_flops(obs_dim: int, hidden: list[int], n_choices: int = 2, dueling: bool = False) -> int:
    """True FLOPs/Inf (2 x MACs) of a master Q-network: one MLP, plus a value MLP if dueling
    (the dueling combination, a mean and two adds, is not counted, as no bias add is)."""
    macs = count_macs(mlp(obs_dim, hidden, n_choices), obs_dim)
    if dueling:
        macs += count_macs(mlp(obs_dim, hidden, 1), obs_dim)
    return 2 * macs


def master_flops_paper(obs_dim: int, act_dim: int, hidden_width: int = 32) -> int:
    """The master's FLOPs/Inf as the paper counts it (authors' rl-zoo/perf_drop.py:114-131,
    ``costs[env][32]``): the SAC-actor formula at the master's width, 2 * d_a outputs, + 3."""
    return sac_actor_flops(obs_dim, act_dim, hidden_width)


def costs(flops_small: int, flops_large: int) -> dict[str, float]:
    """The paper's cost c(w): FLOPs normalised so that c(small) = 1."""
    return {"small": 1.0, "large": flops_large / flops_small}


def average_flops(large_share: float, flops_small: float, flops_large: float,
                  flops_master: float, macro_len: int) -> float:
    """Avg FLOPs/Inf of the asymmetric agent: sub-policies weighted by use, master amortised."""
    return large_share * flops_large + (1 - large_share) * flops_small + flops_master / macro_len


def fit_width(target_flops: float, obs_dim: int, act_dim: int, max_width: int = 4096) -> int:
    """The hidden width whose actor FLOPs/Inf is closest to ``target_flops`` (the paper's protocol
    for sizing the fit SAC baseline and the BC / GAIL students). FLOPs grow with width, so a
    bisection over thop's counts finds it."""
    if not np.isfinite(target_flops) or target_flops <= 0:
        raise ValueError(f"target FLOPs must be a positive number, got {target_flops}")
    low, high = 1, max_width
    while high - low > 1:
        mid = (low + high) // 2
        if sac_actor_flops(obs_dim, act_dim, mid) < target_flops:
            low = mid
        else:
            high = mid
    return min((low, high), key=lambda w: abs(sac_actor_flops(obs_dim, act_dim, w) - target_flops))


def flops_table(task_names: list[str] | None = None, registry: str | None = None):
    """Per task: FLOPs/Inf of small, large and master networks, with today's observation sizes
    and with the paper's (which reproduce the paper's Table 4 L-only column exactly). The master
    column is the paper's convention (``master_flops_paper``); ``flops_master_macs`` counts the
    deployed (dueling) network."""
    import pandas as pd

    from asymbench.tasks import env_dims, get_task, load_registry

    rows = []
    for name in task_names or list(load_registry(registry)):
        task = get_task(name, registry)
        obs_dim, act_dim = env_dims(task)
        for label, dim in (("today", obs_dim), ("paper", task.settings.get("paper_obs_dim"))):
            if dim is None:
                continue
            small = sac_actor_flops(dim, act_dim, task.small)
            large = sac_actor_flops(dim, act_dim, task.large)
            with torch.random.fork_rng():  # the throw-away networks leave torch's RNG alone
                paper_master = master_flops_paper(dim, act_dim, task.master["hidden"][0])
                macs_master = master_flops(dim, task.master["hidden"], dueling=task.master["dueling"])
            rows.append({"task": name, "obs": label, "obs_dim": dim, "act_dim": act_dim,
                         "small": task.small, "large": task.large, "flops_small": small,
                         "flops_large": large, "flops_master": paper_master,
                         "flops_master_macs": macs_master,
                         "c_large": round(costs(small, large)["large"], 2)})
    return pd.DataFrame(rows)


class StackedLinear(nn.Module):
    """K independent ``nn.Linear`` layers evaluated as one batched matmul.

    ``x`` is ``[K, B, in]``, weights are ``[K, in, out]``: member k only ever sees its own
    weights, and because the training losses are summed over members, member k's gradient is
    exactly its own loss's gradient. One ``baddbmm`` replaces K small matmuls, which is where the
    batched engine gets its speed (per-operator overhead, not arithmetic, dominates at these sizes).
    """

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        for k in range(members):  # nn.Linear's own initialisation, member by member
            self.load_member(k, nn.Linear(in_features, out_features))

    def forward(self, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
        weight, bias = (self.weight.detach(), self.bias.detach()) if detach else (self.weight, self.bias)
        if weight.shape[-1] == 1:
            # A one-output layer (a Q head) as a product and a sum: the batched-matmul kernels
            # round such a layer differently for K = 1 and K > 1, and a member's numbers must
            # not depend on how many members share the stack.
            return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
        return torch.baddbmm(bias, x, weight)

    @torch.no_grad()
    def load_member(self, k: int, linear: nn.Linear) -> None:
        """Member k becomes ``linear``; a narrower layer fills the top-left corner, zeros elsewhere."""
        out_features, in_features = linear.weight.shape
        self.weight[k].zero_()
        self.bias[k].zero_()
        self.weight[k, :in_features, :out_features].copy_(linear.weight.T)
        self.bias[k, 0, :out_features].copy_(linear.bias)

    @torch.no_grad()
    def store_member(self, k: int, linear: nn.Linear) -> None:
        out_features, in_features = linear.weight.shape
        linear.weight.copy_(self.weight[k, :in_features, :out_features].T)
        linear.bias.copy_(self.bias[k, 0, :out_features])


class StackedMLP(nn.Module):
    """K independent MLPs (Linear + ReLU per hidden layer, a linear output) as stacked layers."""

    def __init__(self, members: int, input_dim: int, hidden: list[int], output_dim: int | None):
        super().__init__()
        dims = [input_dim, *hidden] + ([output_dim] if output_dim is not None else [])
        self.layers = nn.ModuleList(StackedLinear(members, a, b) for a, b in zip(dims, dims[1:]))
        self.relu_last = output_dim is None  # a trunk ends in ReLU, a head does not

    def forward(self, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, detach)
            if i < len(self.layers) - 1 or self.relu_last:
                # In place on the layer's fresh output (baddbmm's backward needs only its inputs,
                # ReLU's only its output): bit-identical to torch.relu, one [K, B, width] tensor
                # fewer per layer, faster per update (benchmarks/results/update_variants.json).
                x = torch.relu_(x)
        return x

    def linears(self) -> list[StackedLinear]:
        return list(self.layers)
