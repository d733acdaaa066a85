"""Faster ways to run one stacked SAC update, checked against today's ``StackedSAC.update``.

    .venv/bin/python benchmarks/update_variants.py                      # widths 64 256 -> /tmp/update_variants.json
    .venv/bin/python benchmarks/update_variants.py --widths 64 --chunks 2 --out /tmp/variants_smoke.json

Each variant is today's update with one thing changed, applied to a deep copy of a StackedSAC
(asymbench/ is not touched):

- ``fused_adam``: the actor, critic and entropy-coefficient optimizers become Adam with
  ``fused=True`` (one CPU kernel per parameter instead of ~10 foreach kernels over all of them;
  not exact: the fused kernel rounds some elements differently from foreach, up to 1.2e-4
  after 20 updates in benchmarks/results/update_variants.json);
- ``outofplace_relu``: the stacked MLPs as they were before ReLU went in place on the
  ``baddbmm`` output (``torch.relu``: one ``[K, B, width]`` allocation and write more per hidden
  layer); the in-place ReLU was adopted because it is exact by construction and was faster in
  7 of the 8 cells of the two committed runs (median 4%; benchmarks/results/update_variants.json), so
  ``vs_today`` > 1 here is its gain;
- ``compiled_log_prob``: the squashed-Gaussian tail of ``sample`` (std, tanh, log-prob: ~15 small
  kernels) as one ``torch.compile``d function (inductor, fixed shapes); not in the default run
  (``--variants compiled_log_prob``): it compiles for ~20 CPU s and is not exact (inductor's
  kernels round differently, and Adam amplifies it: ~1e-6 after 3 updates, ~1e-4 after 20);
- ``bias_after_bmm``: each hidden / mean / log-std layer as ``bmm(x, W).add_(b)`` instead of
  ``baddbmm(b, x, W)`` (saves baddbmm's copy of the broadcast bias into its output; bit-identical
  only because MKL adds C once after the whole product, as seen here at batch 256; at batch 1
  it differs, so check it on each machine type before relying on it);

Exactness: from one state, today's update and the variant each run ``--check-updates`` (default
20) updates on the same batch with the same, per-update fresh noise and a varying
``progress_remaining``; every parameter (critic targets and log-entropy-coefficient included) and
every optimizer moment and step is compared (``torch.equal``, else the max abs difference). The
update returns no loss, so there is none to compare.

Timing: ``torch.set_num_threads(1)``, CPU time (``time.process_time``, less sensitive than wall
time to the training jobs sharing the machine), best of ``--chunks`` chunks of ``--updates`` calls
after a warm-up, the variants interleaved chunk by chunk so load changes hit all alike. The batch
is built as ``benchmarks/thread_scaling.py``'s ``make_update`` builds it; FLOPs are its
``update_flops``. On the shared 2-core machine single variants move by +-5% from run to run;
only gains above that mean anything.

Not a variant: fusing the two critics into one batched matmul; ``StackedSAC`` already stacks
critic 1 and 2 of all K members as one 2K stack.
"""

from __future__ import annotations

import argparse
import copy
import time
import types

import _common  # noqa: F401  (one BLAS thread, as training jobs run)
from _common import load, print_table, random_replay_batch, write_results

import torch
from thread_scaling import update_flops

from asymbench.stacked import StackedSAC, squashed_gaussian
from asymbench.networks import StackedLinear, StackedMLP
from asymbench.tasks import env_dims, get_task


# --- the variants: each changes one StackedSAC instance in place ----------------------------
def optimizers(sac: StackedSAC) -> list[torch.optim.Optimizer]:
    found = [sac.actor_optimizer, sac.critic_optimizer]
    return found + ([sac.ent_coef_optimizer] if sac.log_ent_coef is not None else [])


def use_fused_adam(sac: StackedSAC) -> None:
    """Every optimizer becomes a fused Adam over the same parameters, with the same state."""
    for name in ("actor_optimizer", "critic_optimizer", "ent_coef_optimizer"):
        old = getattr(sac, name, None)
        if old is None:
            continue
        group = old.param_groups[0]
        new = torch.optim.Adam(group["params"], lr=group["lr"], fused=True)
        new.load_state_dict(old.state_dict())
        # load_state_dict restores the saved param_groups' flags too (foreach=True, fused=None),
        # which would silently turn this back into today's foreach Adam.
        for new_group in new.param_groups:
            new_group.update(fused=True, foreach=False)
        setattr(sac, name, new)


def mlp_forward_outofplace_relu(self: StackedMLP, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
    """``StackedMLP.forward`` as it was before the in-place ReLU: ``relu`` makes a new tensor."""
    for i, layer in enumerate(self.layers):
        x = layer(x, detach)
        if i < len(self.layers) - 1 or self.relu_last:
            x = torch.relu(x)
    return x


def use_outofplace_relu(sac: StackedSAC) -> None:
    for mlp in (sac.trunk, sac.critic, sac.critic_target):
        mlp.forward = types.MethodType(mlp_forward_outofplace_relu, mlp)


def linear_forward_bias_after_bmm(self: StackedLinear, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
    """``StackedLinear.forward`` with ``bmm(x, W).add_(b)`` for ``baddbmm(b, x, W)``: baddbmm
    first copies the broadcast bias into its output, then has the GEMM read it back (beta = 1)."""
    weight, bias = (self.weight.detach(), self.bias.detach()) if detach else (self.weight, self.bias)
    if weight.shape[-1] == 1:
        return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
    return torch.bmm(x, weight).add_(bias)


def use_bias_after_bmm(sac: StackedSAC) -> None:
    for mlp in (sac.trunk, sac.critic, sac.critic_target):
        for layer in mlp.layers:
            layer.forward = types.MethodType(linear_forward_bias_after_bmm, layer)
    for layer in (sac.mu, sac.log_std):
        layer.forward = types.MethodType(linear_forward_bias_after_bmm, layer)


compiled_squashed_gaussian = torch.compile(squashed_gaussian, dynamic=False)


def sample_compiled(self: StackedSAC, obs: torch.Tensor, noise: torch.Tensor):
    mean, log_std = self._mean_log_std(obs)
    return compiled_squashed_gaussian(mean, log_std, noise)


def use_compiled_log_prob(sac: StackedSAC) -> None:
    sac.sample = types.MethodType(sample_compiled, sac)


VARIANTS = {
    "fused_adam": [use_fused_adam],
    "outofplace_relu": [use_outofplace_relu],
    "compiled_log_prob": [use_compiled_log_prob],
    "bias_after_bmm": [use_bias_after_bmm],
}
DEFAULT_VARIANTS = ["fused_adam", "outofplace_relu", "bias_after_bmm"]  # compiling costs ~20 s


# --- a fixed problem, exactness, timing --------------------------------------------------------
def make_problem(task, width: int, members: int, batch: int, check_updates: int):
    """A StackedSAC with the task's dims and SAC settings, a fixed batch (thread_scaling.py's) and
    per-update noise pairs for the exactness check."""
    obs_dim, act_dim = env_dims(task)
    torch.manual_seed(0)
    sac = StackedSAC(members, obs_dim, act_dim, width, dict(task.sac, batch_size=batch))
    gen = torch.Generator().manual_seed(0)
    data = random_replay_batch(members, batch, obs_dim, act_dim, gen)
    noises = [(torch.randn(members, batch, act_dim, generator=gen),
               torch.randn(members, batch, act_dim, generator=gen)) for _ in range(check_updates)]
    return sac, data, noises, (obs_dim, act_dim)


def everything(sac: StackedSAC) -> dict[str, torch.Tensor]:
    """Every parameter and optimizer moment / step of ``sac``, by a name."""
    tensors = {}
    for name in ("trunk", "mu", "log_std", "critic", "critic_target"):
        for key, value in getattr(sac, name).state_dict().items():
            tensors[f"{name}.{key}"] = value
    if sac.log_ent_coef is not None:
        tensors["log_ent_coef"] = sac.log_ent_coef.detach()
    for o, optimizer in enumerate(optimizers(sac)):
        for p, param in enumerate(optimizer.param_groups[0]["params"]):
            for key, value in optimizer.state[param].items():
                tensors[f"optimizer{o}.param{p}.{key}"] = torch.as_tensor(value, dtype=torch.float32)
    return tensors


def compare(today: StackedSAC, variant: StackedSAC, data: dict, noises: list) -> dict:
    """Runs both on the same updates; (all equal?, max abs difference, name of the worst tensor)."""
    for i, (noise_pi, noise_next) in enumerate(noises):
        progress = 1.0 - i / len(noises)
        today.update(data, noise_pi, noise_next, progress)
        variant.update(data, noise_pi, noise_next, progress)
    ours, theirs = everything(today), everything(variant)
    assert ours.keys() == theirs.keys()
    equal = all(torch.equal(ours[k], theirs[k]) for k in ours)
    diffs = {k: (ours[k] - theirs[k]).abs().max().item() for k in ours}
    worst = max(diffs, key=diffs.get)
    return {"bit_identical": equal, "max_abs_diff": diffs[worst], "worst_tensor": worst}


def time_interleaved(calls: dict, updates: int, chunks: int) -> dict[str, float]:
    """Best CPU ms per call of each callable, chunks interleaved, after one warm-up chunk."""
    best = {name: float("inf") for name in calls}
    for chunk in range(chunks + 1):
        for name, call in calls.items():
            start = time.process_time()
            for _ in range(updates):
                call()
            if chunk:  # chunk 0 warms up
                best[name] = min(best[name], (time.process_time() - start) / updates)
    return {name: 1e3 * seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["walker-stand", "Ant"])
    parser.add_argument("--widths", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--members", type=int, default=5, help="K stacked seeds")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--check-updates", type=int, default=20)
    parser.add_argument("--updates", type=int, default=None,
                        help="calls per timed chunk (default 25 at width <= 64, else 8)")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--out", default="/tmp/update_variants.json")
    args = parser.parse_args()
    started = time.time()
    torch.set_num_threads(1)

    rows = []
    for name in args.tasks:
        task = get_task(name)
        for width in args.widths:
            base, data, noises, (obs_dim, act_dim) = make_problem(task, width, args.members,
                                                                  args.batch, args.check_updates)
            flops = update_flops(args.members, args.batch, obs_dim, act_dim, width)
            start_state = copy.deepcopy(base)
            today, calls, checks = copy.deepcopy(start_state), {}, {}
            calls["today"] = (lambda sac: lambda: sac.update(data, *noises[0], 0.5))(today)
            for variant in args.variants:
                sac = copy.deepcopy(start_state)
                for change in VARIANTS[variant]:
                    change(sac)
                checks[variant] = compare(copy.deepcopy(start_state), sac, data, noises)
                calls[variant] = (lambda s: lambda: s.update(data, *noises[0], 0.5))(sac)
            updates = args.updates or (25 if width <= 64 else 8)
            load_before = load()
            ms = time_interleaved(calls, updates, args.chunks)
            for variant, value in ms.items():
                rows.append({"task": name, "obs_dim": obs_dim, "act_dim": act_dim, "width": width,
                             "K": args.members, "batch": args.batch, "variant": variant,
                             "cpu_ms_per_update": value, "vs_today": value / ms["today"],
                             "gflops": flops / value / 1e6,
                             **checks.get(variant, {"bit_identical": True, "max_abs_diff": 0.0,
                                                    "worst_tensor": None}),
                             "load": max(load_before, load())})
    print_table(rows, ["task", "width", "variant", "cpu_ms_per_update", "vs_today", "gflops",
                       "bit_identical", "max_abs_diff", "load"],
                {"cpu_ms_per_update": ".2f", "vs_today": ".3f", "gflops": ".1f", "max_abs_diff": ".2e"})
    write_results("update_variants", {
        "members": args.members, "batch": args.batch, "check_updates": args.check_updates,
        "chunks": args.chunks, "timing": "best CPU ms per call over the chunks, variants interleaved",
        "rows": rows}, started, args.out)


if __name__ == "__main__":
    main()
