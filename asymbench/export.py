"""``asymbench export``: a finished run's deployed policy as one dependency-free C99 file.

Where the paper's FLOPs savings can become real latency: PyTorch eager spends ~110 µs per
batch-1 decision on operator dispatch whatever the width (benchmarks/README.md), so a 40-80%
FLOPs cut is invisible there; in straight-line C the arithmetic is most of the cost.

What is exported is exactly what ``asymbench.evaluation.load_deployed`` deploys (this module
builds on its ``DeployedPolicy`` and never loads model files itself):

* S-only / L-only / fit: one SAC actor; Ours (asym): the master and both sub-policies;
* BC / GAIL students (SB3 ``ActorCriticPolicy`` mean network, clipped to the action bounds).

Every network is walked generically as a sequence of ``Linear`` / ``ReLU`` / ``Tanh`` (nested
``Sequential`` allowed), so any widths and depths export; anything else is refused with
``ExportError``. The SAC actor's log-std head is evaluated by ``DeployedActor`` (and counted in
the paper's FLOPs) but never changes the action: it is NOT computed in C. ``export.json``
reports both FLOPs figures: the evaluation's convention (``DeployedPolicy.flops``) and what
the C code executes (``2 x MACs`` of the emitted Linear layers).

Output folder:

* ``policy.h`` / ``policy.c``: ``void reset(void)`` (call at every episode start) and
  ``void act(const float *obs, float *action)``, which keeps the macro state (position within
  the macro, current sub-policy): the master decides at the 1st, (1+K)th, ... step of every
  episode, K = ``macro_len``, as ``DeployedPolicy.act`` does. Helpers ``policy_current()``,
  ``policy_master_choose()`` and ``policy_forward()`` serve the harness. Not reentrant
  (static scratch buffers and state), as fits a single control loop. Weights are
  ``static const float`` arrays: wide layers stored transposed (in x out) and run as loops
  over the outputs, 4 inputs per pass, which a plain ``-O2`` vectorises (GCC 12); narrow
  layers (< 8 outputs: the heads) as dot products over 8 partial sums. Plain C99, no
  intrinsics; tanh as Eigen's rational approximation (no libm call) unless ``tanh="libm"``.
* ``bench.c``: a harness that replays float32 observations from a file, writes the actions
  (``-o``) and prints the time per decision as JSON; ``-c`` replays a given sub-policy pattern
  (the master still runs at every macro start) to time a chosen large share.
* ``export.json``: dimensions, networks, layer shapes, FLOPs; ``README.txt``: how to build.

Build: ``cc -O2 -std=c99 policy.c bench.c -lm -o bench``; the policy alone needs only
``<math.h>``. Per-decision times, next to PyTorch and NumPy: ``benchmarks/c_runtime.py``.

Exactness: the C code reproduces the PyTorch actions to ~1e-6 (float32, another summation
order; tanh by Eigen's rational approximation, |error| < 3.5e-7, unless ``tanh="libm"``).
The dueling master's choice argmax(V + A - mean A) is computed as PyTorch does; it can only
differ where its two Q-values are within float rounding of each other.
``master_streams="advantage"`` drops the value stream (V and mean(A) are the same for every
choice, so argmax(A) is the same decision up to such ties): the master then executes about
what the paper's FLOPs count for it (one 32x32 stream) and, on the tasks with a 64-wide large
actor, that is what lets Ours' time saving reach 0.8x its FLOPs saving (benchmarks/README.md).

ONNX: not offered. ``torch.onnx.export`` needs the ``onnx`` package (and ``onnxscript`` for
the dynamo exporter), and running the result needs ``onnxruntime``; none is in the default
install (pyproject.toml), so ``--format`` accepts only ``c``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

FORMATS = ("c",)
MASTER_STREAMS = ("all", "advantage")
TANH = ("rational", "libm")
SUB_ORDER = ("small", "large")  # asymbench.agents.SUB_POLICIES: the master's choice i picks [i]
UNROLL = 4     # inputs per pass over a wide layer's outputs (one load / store of y per 4 MACs)
DOT_BELOW = 8  # layers with fewer outputs (the heads) are computed as dot products


class ExportError(ValueError):
    """A deployed network holds something other than Linear / ReLU / Tanh layers."""


# ----------------------------------------------------------------------------- the layer walk
@dataclass
class Op:
    kind: str                        # "linear", "relu", "tanh"
    weight: np.ndarray | None = None  # [in, out] (transposed), float32
    bias: np.ndarray | None = None    # [out]

    @property
    def shape(self) -> tuple[int, int] | None:
        return None if self.weight is None else tuple(self.weight.shape)


def layer_ops(module: nn.Module) -> list[Op]:
    """The module as a flat sequence of Linear / ReLU / Tanh ops, in call order."""
    if isinstance(module, nn.Sequential):
        return [op for child in module for op in layer_ops(child)]
    if isinstance(module, nn.Linear):
        weight = module.weight.detach().cpu().numpy().astype(np.float32)
        bias = (module.bias.detach().cpu().numpy().astype(np.float32) if module.bias is not None
                else np.zeros(weight.shape[0], np.float32))
        return [Op("linear", np.ascontiguousarray(weight.T), bias)]
    if isinstance(module, nn.ReLU):
        return [Op("relu")]
    if isinstance(module, nn.Tanh):
        return [Op("tanh")]
    if isinstance(module, (nn.Identity, nn.Flatten)):  # no-ops on a flat observation vector
        return []
    raise ExportError(f"cannot export a {type(module).__name__}: only (nested) Sequential of "
                      "Linear, ReLU and Tanh layers are supported")


@dataclass
class NetSpec:
    """One deployed network as straight-line ops plus what turns its output into the result."""

    name: str
    ops: list[Op]
    post: str                                  # "rescale" | "clamp" | "identity"
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    skipped: list[Op] = field(default_factory=list)  # evaluated in torch, never needed (log_std)

    @property
    def in_dim(self) -> int:
        return next(op.shape[0] for op in self.ops if op.kind == "linear")

    @property
    def out_dim(self) -> int:
        return [op.shape[1] for op in self.ops if op.kind == "linear"][-1]


@dataclass
class MasterSpec:
    """The master's Q-streams: advantage alone, or (dueling) advantage and value."""

    advantage: list[Op]
    value: list[Op] | None


def _bounds(module) -> tuple[np.ndarray, np.ndarray]:
    return (module.low.detach().cpu().numpy().astype(np.float32),
            module.high.detach().cpu().numpy().astype(np.float32))


def network_spec(name: str, module: nn.Module) -> NetSpec:
    """A deployed actor network (duck-typed, so asymbench's classes need not be imported):

    * ``DeployedActor``: tanh(mu(latent_pi(obs))) rescaled to [low, high]; log_std skipped;
    * a student wrapper with ``module``, ``low``, ``high``: clamp(module(obs), low, high);
    * any plain Sequential of Linear / ReLU / Tanh: its output as is.
    """
    if all(hasattr(module, a) for a in ("latent_pi", "mu", "low", "high")):
        skipped = layer_ops(module.log_std) if hasattr(module, "log_std") else []
        return NetSpec(name, layer_ops(module.latent_pi) + layer_ops(module.mu) + [Op("tanh")],
                       "rescale", *_bounds(module), skipped=skipped)
    if all(hasattr(module, a) for a in ("module", "low", "high")):
        return NetSpec(name, layer_ops(module.module), "clamp", *_bounds(module))
    return NetSpec(name, layer_ops(module), "identity")


def master_spec(master: nn.Module) -> MasterSpec:
    """A deployed master: ``asymbench.master.DeployedMaster`` (QNetwork with ``advantage`` and
    optional ``value`` streams) or the SB3-DQN one (``q_net`` a plain Sequential)."""
    q_net = getattr(master, "q_net", master)
    if hasattr(q_net, "advantage"):
        value = getattr(q_net, "value", None)
        return MasterSpec(layer_ops(q_net.advantage), None if value is None else layer_ops(value))
    return MasterSpec(layer_ops(q_net), None)


def executed_flops(ops: list[Op]) -> int:
    """2 x MACs of the Linear layers the C code runs (the paper's counting, nothing else)."""
    return int(sum(2 * op.weight.size for op in ops if op.kind == "linear"))


# ----------------------------------------------------------------------------- C generation
def _c_float(value: float) -> str:
    value = float(np.float32(value))
    if np.isnan(value):
        raise ExportError("cannot export NaN weights or bounds")
    if np.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    return f"{value:.9e}f"  # 10 significant digits: float32 round-trips exactly


def _c_array(name: str, values: np.ndarray) -> str:
    """A ``static const float`` array (1-D, or 2-D with one braced row per first index)."""
    values = np.asarray(values, np.float32)
    dims = "".join(f"[{d}]" for d in values.shape)

    def row(vector, indent):
        flat = [_c_float(v) for v in vector]
        return f",\n{indent}".join(", ".join(flat[i:i + 8]) for i in range(0, len(flat), 8))

    if values.ndim == 1:
        body = row(values, "    ")
    else:
        body = ",\n    ".join("{" + row(r, "     ") + "}" for r in values)
    return f"static const float {name}{dims} = {{\n    {body}\n}};\n"


def _emit_ops(prefix: str, ops: list[Op], src: str, arrays: list[str],
              tanh: str = "rational") -> tuple[list[str], str, int]:
    """C statements running ``ops`` on ``src``; returns (lines, result buffer, its length).
    Linear layers alternate between the two scratch buffers; activations work in place."""
    lines, cur, dim = [], src, None
    buffers = ("scratch_a", "scratch_b")
    n_linear = 0
    for op in ops:
        if op.kind == "linear":
            d_in, d_out = op.shape
            w, b = f"{prefix}_w{n_linear}", f"{prefix}_b{n_linear}"
            out = buffers[0] if cur != buffers[0] else buffers[1]
            if d_out >= DOT_BELOW:  # wide: y += W[i..i+3][:] . x[i..i+3], vectorised over outputs
                arrays += [_c_array(w, op.weight), _c_array(b, op.bias)]
                lines += [f"    /* Linear {d_in} -> {d_out}, weights [in][out] */",
                          f"    for (int o = 0; o < {d_out}; ++o) {out}[o] = {b}[o];"]
                body = d_in - d_in % UNROLL
                if body:
                    terms = " + ".join(f"{w}[i + {u}][o] * x{u}" for u in range(UNROLL))
                    lines.append(f"    for (int i = 0; i < {body}; i += {UNROLL}) {{")
                    lines += [f"        const float x{u} = {cur}[i + {u}];" for u in range(UNROLL)]
                    lines += [f"        for (int o = 0; o < {d_out}; ++o) {out}[o] = {out}[o] + {terms};",
                              "    }"]
                if body < d_in:
                    lines += [f"    for (int i = {body}; i < {d_in}; ++i) {{",
                              f"        const float xi = {cur}[i];",
                              f"        for (int o = 0; o < {d_out}; ++o) {out}[o] += {w}[i][o] * xi;",
                              "    }"]
            else:  # narrow (heads): dot products over 8 independent partial sums
                arrays += [_c_array(w, op.weight.T), _c_array(b, op.bias)]
                body = d_in - d_in % 8
                lines += [f"    /* Linear {d_in} -> {d_out}, weights [out][in] */",
                          f"    for (int o = 0; o < {d_out}; ++o) {{",
                          "        float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};",
                          f"        for (int i = 0; i < {body}; i += 8)",
                          f"            for (int k = 0; k < 8; ++k) acc[k] += {w}[o][i + k] * {cur}[i + k];",
                          "        float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + "
                          "((acc[4] + acc[5]) + (acc[6] + acc[7]));"]
                if body < d_in:
                    lines.append(f"        for (int i = {body}; i < {d_in}; ++i) sum += {w}[o][i] * {cur}[i];")
                lines += [f"        {out}[o] = {b}[o] + sum;", "    }"]
            cur, dim, n_linear = out, d_out, n_linear + 1
        else:
            if dim is None:
                raise ExportError(f"{prefix}: an activation before the first Linear layer")
            expr = (f"{cur}[o] > 0.0f ? {cur}[o] : 0.0f" if op.kind == "relu"
                    else f"{'fast_tanhf' if tanh == 'rational' else 'tanhf'}({cur}[o])")
            lines.append(f"    for (int o = 0; o < {dim}; ++o) {cur}[o] = {expr}; /* {op.kind} */")
    if dim is None:
        raise ExportError(f"{prefix}: a network without Linear layers")
    return lines, cur, dim


def _network_c(index: int, spec: NetSpec, act_dim: int, arrays: list[str], tanh: str) -> str:
    lines, cur, dim = _emit_ops(f"net{index}", spec.ops, "obs", arrays, tanh)
    if dim != act_dim:
        raise ExportError(f"network '{spec.name}' outputs {dim} values for a {act_dim}-dim action")
    if spec.post == "rescale":
        arrays += [_c_array(f"net{index}_low", spec.low), _c_array(f"net{index}_high", spec.high)]
        lines.append(f"    for (int k = 0; k < {act_dim}; ++k) action[k] = net{index}_low[k] + "
                     f"0.5f * ({cur}[k] + 1.0f) * (net{index}_high[k] - net{index}_low[k]);")
    elif spec.post == "clamp":
        arrays += [_c_array(f"net{index}_low", spec.low), _c_array(f"net{index}_high", spec.high)]
        lines += [f"    for (int k = 0; k < {act_dim}; ++k) {{",
                  f"        float y = {cur}[k] < net{index}_low[k] ? net{index}_low[k] : {cur}[k];",
                  f"        action[k] = y > net{index}_high[k] ? net{index}_high[k] : y;",
                  "    }"]
    else:
        lines.append(f"    for (int k = 0; k < {act_dim}; ++k) action[k] = {cur}[k];")
    skipped = "".join(f" {op.shape[0]}->{op.shape[1]}" for op in spec.skipped if op.kind == "linear")
    note = f" (log-std head{skipped} not computed: it never changes the action)" if skipped else ""
    return (f"/* '{spec.name}': {executed_flops(spec.ops)} FLOPs executed{note} */\n"
            f"static void net{index}_forward(const float *obs, float *action)\n{{\n"
            + "\n".join(lines) + "\n}\n")


def _master_c(spec: MasterSpec, streams: str, arrays: list[str]) -> str:
    lines, cur, n = _emit_ops("master_adv", spec.advantage, "obs", arrays)
    lines += [f"    float q[{n}];", f"    for (int k = 0; k < {n}; ++k) q[k] = {cur}[k];"]
    if spec.value is not None and streams == "all":
        v_lines, v_cur, v_n = _emit_ops("master_val", spec.value, "obs", arrays)
        if v_n != 1:
            raise ExportError(f"the master's value stream outputs {v_n} values, not 1")
        # As QNetwork.forward: value + advantage - advantage.mean(), in PyTorch's order.
        lines += v_lines + [f"    const float v = {v_cur}[0];",
                            "    float mean = 0.0f;",
                            f"    for (int k = 0; k < {n}; ++k) mean += q[k];",
                            f"    mean = mean / {n}.0f;",
                            f"    for (int k = 0; k < {n}; ++k) q[k] = (v + q[k]) - mean;"]
    lines += ["    int best = 0;  /* the first maximum, as torch.argmax */",
              f"    for (int k = 1; k < {n}; ++k) if (q[k] > q[best]) best = k;",
              "    return best;"]
    return "static int master_choose(const float *obs)\n{\n" + "\n".join(lines) + "\n}\n"


FAST_TANH = """\
/* tanh as Eigen's rational approximation (MathFunctionsImpl.h, generic_fast_tanh_float):
 * |error| < 3.5e-7 on every float, plain arithmetic that -O2 can vectorise, no libm call
 * (glibc's tanhf costs ~10 ns a call: more than a whole 8-wide layer). */
static float fast_tanhf(float x)
{
    const float c = x > 7.90531110763549805f ? 7.90531110763549805f
                  : (x < -7.90531110763549805f ? -7.90531110763549805f : x);
    const float x2 = c * c;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * c;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return (x < 0.0004f && x > -0.0004f) ? x : p / q;
}
"""

HEADER = """\
/* Generated by `asymbench export` from {source}. Do not edit. */
#ifndef ASYMBENCH_POLICY_H
#define ASYMBENCH_POLICY_H

#define POLICY_OBS_DIM {obs_dim}
#define POLICY_ACT_DIM {act_dim}
#define POLICY_MACRO_LEN {macro_len}   /* env steps per master decision */
#define POLICY_HAS_MASTER {has_master}
#define POLICY_N_NETWORKS {n_networks}  /* {network_names} */

/* Call at every episode start: the next act() is a master decision. */
void reset(void);
/* One env step: obs[POLICY_OBS_DIM] -> action[POLICY_ACT_DIM]. */
void act(const float *obs, float *action);
/* The network the last act() used (index in the list above). */
int policy_current(void);
/* The master's choice for obs (0 without a master); no state change. */
int policy_master_choose(const float *obs);
/* Network `which` alone; no state change. */
void policy_forward(int which, const float *obs, float *action);

#endif
"""

SOURCE = """\
/* Generated by `asymbench export` from {source}. Do not edit.
 * Deployed policy: {description}.
 * Linear layers: [in][out] weights (axpy loops), or [out][in] for heads (dot products).
 * C99; link with -lm. */
#include <math.h>
#include "policy.h"

{tanh_fn}{arrays}
static float scratch_a[{scratch}], scratch_b[{scratch}];
static int macro_pos = 0;  /* steps taken in the current macro */
static int current = 0;    /* network in use */

{functions}
int policy_master_choose(const float *obs)
{{
{master_call}
}}

void policy_forward(int which, const float *obs, float *action)
{{
{forward_switch}
}}

void reset(void)
{{
    macro_pos = 0;
    current = 0;
}}

void act(const float *obs, float *action)
{{
    if (POLICY_HAS_MASTER && macro_pos == 0) current = policy_master_choose(obs);
    if (++macro_pos == POLICY_MACRO_LEN) macro_pos = 0;
    policy_forward(current, obs, action);
}}

int policy_current(void)
{{
    return current;
}}
"""

BENCH = r"""/* Generated by `asymbench export`: replay observations through the exported policy.
 *
 *   bench OBS.f32 [-o ACTIONS.f32] [-e EPISODE_LEN] [-r REPEATS] [-c CHOICES.u8]
 *
 * OBS.f32: raw float32 (native byte order), N x POLICY_OBS_DIM. reset() at the start of
 * every pass and every EPISODE_LEN decisions (default: one episode). -o writes, from the
 * first (warm-up) pass, N rows of POLICY_ACT_DIM actions plus the network used, as float32.
 * -c: one byte per decision, the network to use (the master still runs at every macro start,
 * its choice discarded): times a given switch pattern. Prints JSON: nanoseconds per decision,
 * min and median over REPEATS timed passes (default 50) after the warm-up pass. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "policy.h"

static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *data = malloc(n > 0 ? (size_t)n : 1);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "%s: read error\n", path); exit(2); }
    fclose(f);
    *size = (size_t)n;
    return data;
}

static double now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *obs_path = NULL, *out_path = NULL, *choice_path = NULL;
    long episode_len = 0;
    int repeats = 50;
    for (int a = 1; a < argc; ++a) {
        if (!strcmp(argv[a], "-o") && a + 1 < argc) out_path = argv[++a];
        else if (!strcmp(argv[a], "-e") && a + 1 < argc) episode_len = atol(argv[++a]);
        else if (!strcmp(argv[a], "-r") && a + 1 < argc) repeats = atoi(argv[++a]);
        else if (!strcmp(argv[a], "-c") && a + 1 < argc) choice_path = argv[++a];
        else if (argv[a][0] != '-' && !obs_path) obs_path = argv[a];
        else { fprintf(stderr, "usage: %s OBS.f32 [-o ACTIONS.f32] [-e EPISODE_LEN] [-r REPEATS] [-c CHOICES.u8]\n", argv[0]); return 2; }
    }
    if (!obs_path || repeats < 1) { fprintf(stderr, "usage: %s OBS.f32 [-o ...] [-e ...] [-r N>=1] [-c ...]\n", argv[0]); return 2; }
    size_t size, n_choices = 0;
    const float *obs = read_file(obs_path, &size);
    if (size == 0 || size % (sizeof(float) * POLICY_OBS_DIM)) { fprintf(stderr, "%s: not N x %d float32\n", obs_path, POLICY_OBS_DIM); return 2; }
    const long n = (long)(size / (sizeof(float) * POLICY_OBS_DIM));
    const unsigned char *choices = choice_path ? read_file(choice_path, &n_choices) : NULL;
    if (choices && (long)n_choices != n) { fprintf(stderr, "%s: %ld choices expected\n", choice_path, n); return 2; }
    if (episode_len <= 0) episode_len = n;
    float *out = out_path ? malloc(sizeof(float) * (size_t)n * (POLICY_ACT_DIM + 1)) : NULL;
    double *wall = malloc(sizeof(double) * (size_t)repeats), *cpu = malloc(sizeof(double) * (size_t)repeats);
    float action[POLICY_ACT_DIM];
    volatile double sink = 0.0;
    for (int rep = 0; rep <= repeats; ++rep) {  /* pass 0 warms up and records the actions */
        double sum = 0.0;
        const double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        long step = 0;
        reset();
        for (long t = 0; t < n; ++t, ++step) {
            if (step == episode_len) { reset(); step = 0; }
            const float *o = obs + t * POLICY_OBS_DIM;
            int used;
            if (choices) {
                if (step % POLICY_MACRO_LEN == 0) sum += policy_master_choose(o);
                used = choices[t];
                policy_forward(used, o, action);
            } else {
                act(o, action);
                used = policy_current();
            }
            sum += action[0];
            if (rep == 0 && out) {
                memcpy(out + t * (POLICY_ACT_DIM + 1), action, sizeof action);
                out[t * (POLICY_ACT_DIM + 1) + POLICY_ACT_DIM] = (float)used;
            }
        }
        const double w1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        sink = sink + sum;
        if (rep > 0) { wall[rep - 1] = (w1 - w0) / n; cpu[rep - 1] = (c1 - c0) / n; }
    }
    if (out) {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(out, sizeof(float), (size_t)n * (POLICY_ACT_DIM + 1), f) != (size_t)n * (POLICY_ACT_DIM + 1)) { perror(out_path); return 2; }
        fclose(f);
    }
    double wall_min = wall[0], cpu_min = cpu[0];
    for (int r = 1; r < repeats; ++r) { if (wall[r] < wall_min) wall_min = wall[r]; if (cpu[r] < cpu_min) cpu_min = cpu[r]; }
    printf("{\"decisions\": %ld, \"repeats\": %d, \"wall_ns_min\": %.3f, \"wall_ns_median\": %.3f, "
           "\"cpu_ns_min\": %.3f, \"cpu_ns_median\": %.3f, \"checksum\": %.6g}\n",
           n, repeats, wall_min, median(wall, repeats), cpu_min, median(cpu, repeats), (double)sink);
    return 0;
}
"""


def export_c(policy, out_dir: str | Path, obs_dim: int | None = None,
             master_streams: str = "all", source: str = "a DeployedPolicy",
             tanh: str = "rational") -> dict:
    """Writes policy.h, policy.c, bench.c, export.json and README.txt for a
    ``DeployedPolicy`` (asymbench.evaluation); returns the manifest written to export.json.
    ``tanh``: "rational" (Eigen's approximation, |error| < 3.5e-7, no libm call) or "libm"."""
    if master_streams not in MASTER_STREAMS:
        raise ValueError(f"master_streams must be one of {MASTER_STREAMS}, got '{master_streams}'")
    if tanh not in TANH:
        raise ValueError(f"tanh must be one of {TANH}, got '{tanh}'")
    names = [n for n in SUB_ORDER if n in policy.networks] if policy.master is not None \
        else list(policy.networks)
    if policy.master is not None and names != list(SUB_ORDER):
        raise ExportError(f"a master needs networks {SUB_ORDER}, got {sorted(policy.networks)}")
    if policy.master is None and len(names) != 1:
        raise ExportError(f"without a master exactly one network is deployed, got {names}")
    specs = [network_spec(n, policy.networks[n]) for n in names]
    obs_dim = obs_dim or specs[0].in_dim
    act_dim = specs[0].out_dim
    for spec in specs:
        if spec.in_dim != obs_dim:
            raise ExportError(f"network '{spec.name}' takes {spec.in_dim} inputs, not {obs_dim}")
    master = master_spec(policy.master) if policy.master is not None else None
    macro_len = int(policy.macro_len) if master is not None else 1
    if macro_len < 1:
        raise ExportError(f"macro_len must be >= 1, got {macro_len}")

    arrays: list[str] = []
    functions = [_network_c(i, s, act_dim, arrays, tanh) for i, s in enumerate(specs)]
    master_ops: list[Op] = []
    if master is not None:
        functions.append(_master_c(master, master_streams, arrays))
        master_ops = master.advantage + (master.value if master.value and master_streams == "all" else [])
    all_ops = [op for s in specs for op in s.ops] + master_ops
    scratch = max([obs_dim] + [op.shape[1] for op in all_ops if op.kind == "linear"])
    forward = "\n".join(f"    {'if' if i == 0 else 'else if'} (which == {i}) net{i}_forward(obs, action);"
                        for i in range(len(specs) - 1))
    forward = (forward + "\n    else " if forward else "    ") + \
        f"net{len(specs) - 1}_forward(obs, action);"
    description = (f"master ({'dueling' if master and master.value else 'plain'} Q-network, "
                   f"{'both streams' if master and master.value and master_streams == 'all' else 'advantage stream'}) "
                   f"choosing {' / '.join(names)} every {macro_len} steps" if master is not None
                   else f"one network '{names[0]}'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fmt = dict(source=source.replace("*/", "* /"), obs_dim=obs_dim, act_dim=act_dim,
               macro_len=macro_len, has_master=int(master is not None), n_networks=len(specs),
               network_names=", ".join(f"{i}: {n}" for i, n in enumerate(names)))
    (out_dir / "policy.h").write_text(HEADER.format(**fmt))
    (out_dir / "policy.c").write_text(SOURCE.format(
        **fmt, description=description, arrays="\n".join(arrays), scratch=scratch,
        tanh_fn=FAST_TANH + "\n" if tanh == "rational" else "",
        functions="\n".join(functions),
        master_call="    return master_choose(obs);" if master is not None else "    (void)obs;\n    return 0;",
        forward_switch=forward if len(specs) > 1 else f"    (void)which;\n{forward}"))
    (out_dir / "bench.c").write_text(BENCH)

    flops_c = {s.name: executed_flops(s.ops) for s in specs}
    if master is not None:
        flops_c["master"] = executed_flops(master_ops)
    manifest = {
        "format": "c", "source": source, "obs_dim": obs_dim, "act_dim": act_dim,
        "macro_len": macro_len, "networks": names, "has_master": master is not None,
        "master_streams": (master_streams if master and master.value else "advantage") if master else None,
        "tanh": tanh,
        "layers": {s.name: [op.kind if op.kind != "linear" else f"linear {op.shape[0]}x{op.shape[1]}"
                            for op in s.ops] + [s.post] for s in specs},
        "skipped": {s.name: [f"log_std linear {op.shape[0]}x{op.shape[1]}" for op in s.skipped
                             if op.kind == "linear"] for s in specs if s.skipped},
        "flops_convention": {k: int(v) for k, v in policy.flops.items()},
        "flops_executed": flops_c,
        "flops_note": "flops_convention: DeployedPolicy.flops (thop 2 x MACs, the SAC actor's "
                      "log-std head included, +3 per SAC actor); flops_executed: 2 x MACs of "
                      "the Linear layers the C code runs (no log-std head).",
        "build": "cc -O2 -std=c99 policy.c bench.c -lm -o bench",
    }
    (out_dir / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out_dir / "README.txt").write_text(
        f"Deployed policy of {source}: {description}.\n\n"
        "Build and replay observations (raw float32, N x POLICY_OBS_DIM):\n"
        "    cc -O2 -std=c99 policy.c bench.c -lm -o bench\n"
        "    ./bench obs.f32 -o actions.f32 -e EPISODE_LEN -r 50\n\n"
        "In a controller: #include \"policy.h\", compile policy.c with it, call reset() at each\n"
        "episode start and act(obs, action) every step. FLOPs: export.json.\n")
    return manifest


def export_run(run_dir: str | Path, out_dir: str | Path, fmt: str = "c",
               master_streams: str = "all", tanh: str = "rational", task=None) -> dict:
    """Exports a finished run's deployed policy, as ``load_deployed`` loads it. ``task``: the
    run's task (default: its own, from config.json's task_settings)."""
    from asymbench.evaluation import load_deployed
    from asymbench.runs import CONFIG_FILE, load_finished_run
    from asymbench.tasks import env_dims, task_from_config

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    config, _ = load_finished_run(run_dir)
    task = task or task_from_config(config, source=Path(run_dir) / CONFIG_FILE)
    obs_dim, _ = env_dims(task)
    policy = load_deployed(run_dir, config, obs_dim, task=task)
    return export_c(policy, out_dir, obs_dim, master_streams,
                    source=f"run {Path(run_dir).name} ({config['task']}, {config['method']})",
                    tanh=tanh)


# ----------------------------------------------------------------------------- build and replay
def find_compiler() -> str | None:
    """The system C compiler: $CC, else cc, gcc or clang on the PATH (None if there is none)."""
    for name in [os.environ.get("CC"), "cc", "gcc", "clang"]:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build(out_dir: str | Path, flags: tuple[str, ...] = ("-O2",), compiler: str | None = None) -> Path:
    """Compiles policy.c + bench.c of an export folder into ``out_dir/bench``."""
    out_dir = Path(out_dir)
    compiler = compiler or find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (tried $CC, cc, gcc, clang)")
    binary = out_dir / "bench"
    cmd = [compiler, *flags, "-std=c99", "-Wall", "-Wextra", "-pedantic",
           str(out_dir / "policy.c"), str(out_dir / "bench.c"), "-lm", "-o", str(binary)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return binary


def replay(binary: str | Path, observations: np.ndarray, act_dim: int,
           episode_len: int | None = None, repeats: int = 1,
           choices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Runs the harness on ``observations`` [N, obs_dim]; returns (actions [N, act_dim], network
    used per decision [N], timing JSON)."""
    with tempfile.TemporaryDirectory() as tmp:
        obs_path, out_path = Path(tmp) / "obs.f32", Path(tmp) / "actions.f32"
        np.ascontiguousarray(observations, np.float32).tofile(obs_path)
        cmd = [str(binary), str(obs_path), "-o", str(out_path), "-r", str(repeats)]
        if episode_len:
            cmd += ["-e", str(episode_len)]
        if choices is not None:
            np.ascontiguousarray(choices, np.uint8).tofile(Path(tmp) / "choices.u8")
            cmd += ["-c", str(Path(tmp) / "choices.u8")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows = np.fromfile(out_path, np.float32).reshape(len(observations), act_dim + 1)
    return rows[:, :act_dim], rows[:, act_dim].astype(int), json.loads(done.stdout)
