"""``asymbench export``: a finished run's deployed policy as one dependency-free C99 file.

Where the paper's FLOPs savings can become real latency: PyTorch eager spends a batch-1
decision on operator dispatch whatever the width (benchmarks/results/inference_latency.json),
so a 40-80% FLOPs cut is invisible there; in straight-line C the arithmetic is most of the cost.

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

Output folder (written all or nothing: a failure, e.g. a full disk, leaves no file behind):

* ``policy.h`` / ``policy.c``: every symbol starts with a prefix (``asymbench_`` unless
  ``prefix`` / ``--prefix`` says otherwise; macros with it upper-cased), so several exports link
  into one program, and the header has ``extern "C"`` guards. ``<p>reset()`` (call at every
  episode start) and ``int <p>act(const float *obs, float *action)``, which keeps the macro
  state (position within the macro, current sub-policy): the master decides at the 1st,
  (1+K)th, ... step of every episode, K = ``macro_len``, as ``DeployedPolicy.act`` does.
  Helpers ``<p>current()``, ``<p>master_choose()`` and ``<p>forward()`` serve the harness. Not
  reentrant (static scratch buffers and state), as fits a single control loop. Weights are
  ``static const float`` arrays: wide layers stored transposed (in x out) and run as loops
  over the outputs, 4 inputs per pass, which a plain ``-O2`` vectorises (GCC 12); narrow
  layers (< 8 outputs: the heads) as dot products over 8 partial sums. Plain C99 (it also
  compiles as C++), no intrinsics; tanh as Eigen's rational approximation (no libm call) unless
  ``tanh="libm"``.
* Fault contract: IEEE special values propagate as in PyTorch (ReLU keeps NaN as torch.relu
  does, the master's argmax takes the first NaN as torch.argmax does, the clamp keeps NaN as
  torch.clamp does), so the action is NaN wherever the deployed PyTorch policy's is; ``act``
  returns 1 then (the fault flag). docs/export.md states it for users.
* ``bench.c``: a harness that replays float32 observations from a file, writes the actions
  (``-o``) and prints the time per decision (and the number of faults) as JSON; ``-c``
  replays a given sub-policy pattern (the master still runs at every macro start) to time a
  chosen large share. It frees what it allocates and refuses a ``-c`` byte that names no
  network.
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
actor, that is what lets Ours' time saving follow its FLOPs saving
(benchmarks/results/c_runtime.json).

ONNX: not offered. ``torch.onnx.export`` needs the ``onnx`` package (and ``onnxscript`` for
the dynamo exporter), and running the result needs ``onnxruntime``; none is in the default
install (pyproject.toml), so ``--format`` accepts only ``c``.
"""

from __future__ import annotations

import json
import os
import re
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
DEFAULT_PREFIX = "asymbench_"
PREFIX_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BUILD = "cc -O2 -std=c99 policy.c bench.c -lm -o bench"
FAULT_CONTRACT = ("IEEE special values propagate as in PyTorch: the action is NaN where the "
                  "deployed PyTorch policy's is, the master picks what torch.argmax picks; "
                  "act() returns 1 when the action is not finite (docs/export.md)")


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


def _emit_ops(prefix: str, ops: list[Op], src: str, arrays: list[str], symbol: str,
              tanh: str = "rational") -> tuple[list[str], str, int]:
    """C statements running ``ops`` on ``src``; returns (lines, result buffer, its length).
    Linear layers alternate between the two scratch buffers; activations work in place.
    ``prefix``: the arrays' names; ``symbol``: the export's symbol prefix."""
    lines, cur, dim = [], src, None
    buffers = (f"{symbol}scratch_a", f"{symbol}scratch_b")
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
            # ReLU as torch.relu: NaN stays NaN (the fault contract), negatives become 0
            expr = (f"{cur}[o] < 0.0f ? 0.0f : {cur}[o]" if op.kind == "relu"
                    else f"{symbol + 'fast_tanhf' if tanh == 'rational' else 'tanhf'}({cur}[o])")
            lines.append(f"    for (int o = 0; o < {dim}; ++o) {cur}[o] = {expr}; /* {op.kind} */")
    if dim is None:
        raise ExportError(f"{prefix}: a network without Linear layers")
    return lines, cur, dim


def _network_c(index: int, spec: NetSpec, act_dim: int, arrays: list[str], tanh: str,
               symbol: str) -> str:
    net = f"{symbol}net{index}"
    lines, cur, dim = _emit_ops(net, spec.ops, "obs", arrays, symbol, tanh)
    if dim != act_dim:
        raise ExportError(f"network '{spec.name}' outputs {dim} values for a {act_dim}-dim action")
    if spec.post in ("rescale", "clamp"):
        arrays += [_c_array(f"{net}_low", spec.low), _c_array(f"{net}_high", spec.high)]
    if spec.post == "rescale":
        lines.append(f"    for (int k = 0; k < {act_dim}; ++k) action[k] = {net}_low[k] + "
                     f"0.5f * ({cur}[k] + 1.0f) * ({net}_high[k] - {net}_low[k]);")
    elif spec.post == "clamp":  # as torch.clamp: NaN stays NaN
        lines += [f"    for (int k = 0; k < {act_dim}; ++k) {{",
                  f"        float y = {cur}[k] < {net}_low[k] ? {net}_low[k] : {cur}[k];",
                  f"        action[k] = y > {net}_high[k] ? {net}_high[k] : y;",
                  "    }"]
    else:
        lines.append(f"    for (int k = 0; k < {act_dim}; ++k) action[k] = {cur}[k];")
    skipped = "".join(f" {op.shape[0]}->{op.shape[1]}" for op in spec.skipped if op.kind == "linear")
    note = f" (log-std head{skipped} not computed: it never changes the action)" if skipped else ""
    return (f"/* '{spec.name}': {executed_flops(spec.ops)} FLOPs executed{note} */\n"
            f"static void {net}_forward(const float *obs, float *action)\n{{\n"
            + "\n".join(lines) + "\n}\n")


def _master_c(spec: MasterSpec, streams: str, arrays: list[str], symbol: str) -> str:
    lines, cur, n = _emit_ops(f"{symbol}master_adv", spec.advantage, "obs", arrays, symbol)
    lines += [f"    float q[{n}];", f"    for (int k = 0; k < {n}; ++k) q[k] = {cur}[k];"]
    if spec.value is not None and streams == "all":
        v_lines, v_cur, v_n = _emit_ops(f"{symbol}master_val", spec.value, "obs", arrays, symbol)
        if v_n != 1:
            raise ExportError(f"the master's value stream outputs {v_n} values, not 1")
        # As QNetwork.forward: value + advantage - advantage.mean(), in PyTorch's order.
        lines += v_lines + [f"    const float v = {v_cur}[0];",
                            "    float mean = 0.0f;",
                            f"    for (int k = 0; k < {n}; ++k) mean += q[k];",
                            f"    mean = mean / {n}.0f;",
                            f"    for (int k = 0; k < {n}; ++k) q[k] = (v + q[k]) - mean;"]
    lines += ["    int best = 0;  /* as torch.argmax: the first NaN if there is one, else the first maximum */",
              f"    for (int k = 1; k < {n}; ++k)",
              "        if (q[best] == q[best] && (q[k] != q[k] || q[k] > q[best])) best = k;",
              "    return best;"]
    return (f"static int {symbol}master_argmax(const float *obs)\n{{\n" + "\n".join(lines)
            + "\n}\n")


FAST_TANH = """\
/* tanh as Eigen's rational approximation (MathFunctionsImpl.h, generic_fast_tanh_float):
 * |error| < 3.5e-7 on every float, plain arithmetic that -O2 can vectorise, no libm call
 * (glibc's tanhf costs ~10 ns a call: more than a whole 8-wide layer). */
static float {symbol}fast_tanhf(float x)
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
/* Generated by `asymbench export` from @source@. Do not edit.
 *
 * Names: every symbol and macro here and in policy.c starts with "@p@" / "@P@"
 * (`asymbench export --prefix`), so several exported policies link into one program.
 *
 * Fault contract (docs/export.md): the C policy computes what the deployed PyTorch policy
 * computes, IEEE special values included. A NaN or infinite observation element, or finite
 * ones so large that a layer's sums overflow float32, propagates as it does in PyTorch: the
 * action is NaN where PyTorch's is, and the master picks what torch.argmax picks (the first
 * NaN Q-value, else the first maximum). No value is clipped or replaced on the way, so a NaN
 * never becomes a plausible action. @p@act() returns 1 when an action element is not finite
 * (the fault flag: the controller then applies its own safe command), else 0. The flag is no
 * sensor check: an infinite or huge reading can saturate tanh into a finite action, in PyTorch
 * as here; range-check the observations where sensor faults must be caught.
 * Build without -ffast-math / -ffinite-math-only: they let the compiler assume that no NaN
 * arises, which would hide the fault (policy.c refuses to compile with them). */
#ifndef @P@POLICY_H
#define @P@POLICY_H

#define @P@OBS_DIM @obs_dim@
#define @P@ACT_DIM @act_dim@
#define @P@MACRO_LEN @macro_len@   /* env steps per master decision */
#define @P@HAS_MASTER @has_master@
#define @P@N_NETWORKS @n_networks@  /* @network_names@ */

#ifdef __cplusplus
extern "C" {
#endif

/* Call at every episode start: the next @p@act() is a master decision. */
void @p@reset(void);
/* One env step: obs[@P@OBS_DIM] -> action[@P@ACT_DIM]; returns 1 if the action is not
 * finite (a fault, see above), else 0. */
int @p@act(const float *obs, float *action);
/* The network the last @p@act() used (index in the list above). */
int @p@current(void);
/* The master's choice for obs (0 without a master); no state change. */
int @p@master_choose(const float *obs);
/* Network `which` alone; no state change. */
void @p@forward(int which, const float *obs, float *action);

#ifdef __cplusplus
}
#endif

#endif
"""

SOURCE = """\
/* Generated by `asymbench export` from @source@. Do not edit.
 * Deployed policy: @description@.
 * Linear layers: [in][out] weights (axpy loops), or [out][in] for heads (dot products).
 * C99 (also compiles as C++); link with -lm. Fault contract: policy.h. */
#if defined(__FAST_MATH__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
#error "policy.c needs IEEE NaN semantics (its fault contract): build without -ffast-math / -ffinite-math-only"
#endif
#include <math.h>
#include "policy.h"

@tanh_fn@@arrays@
static float @p@scratch_a[@scratch@], @p@scratch_b[@scratch@];
static int @p@macro_pos = 0;  /* steps taken in the current macro */
static int @p@current_net = 0;  /* network in use */

@functions@
int @p@master_choose(const float *obs)
{
@master_call@
}

void @p@forward(int which, const float *obs, float *action)
{
@forward_switch@
}

void @p@reset(void)
{
    @p@macro_pos = 0;
    @p@current_net = 0;
}

int @p@act(const float *obs, float *action)
{
    if (@P@HAS_MASTER && @p@macro_pos == 0) @p@current_net = @p@master_choose(obs);
    if (++@p@macro_pos == @P@MACRO_LEN) @p@macro_pos = 0;
    @p@forward(@p@current_net, obs, action);
    int fault = 0;
    for (int k = 0; k < @P@ACT_DIM; ++k) fault |= !isfinite(action[k]);
    return fault;
}

int @p@current(void)
{
    return @p@current_net;
}
"""

BENCH = r"""/* Generated by `asymbench export`: replay observations through the exported policy.
 *
 *   bench OBS.f32 [-o ACTIONS.f32] [-e EPISODE_LEN] [-r REPEATS] [-c CHOICES.u8]
 *
 * OBS.f32: raw float32 (native byte order), N x @P@OBS_DIM. @p@reset() at the start of
 * every pass and every EPISODE_LEN decisions (default: one episode). -o writes, from the
 * first (warm-up) pass, N rows of @P@ACT_DIM actions plus the network used, as float32.
 * -c: one byte per decision, the network to use (0 .. @P@N_NETWORKS - 1; the master still
 * runs at every macro start, its choice discarded): times a given switch pattern. Prints
 * JSON: nanoseconds per decision, min and median over REPEATS timed passes (default 50)
 * after the warm-up pass, and how many decisions raised the fault flag. Exit status 2 on a
 * usage or file error, with one line on stderr. */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "policy.h"

/* The whole file, or NULL after one line on stderr. */
static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return NULL; }
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    void *data = n >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc(n > 0 ? (size_t)n : 1) : NULL;
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: read error\n", path);
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = data ? (size_t)n : 0;
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

/* The first choice that names no network, or -1 if all are valid. */
static long invalid_choice(const unsigned char *choices, long n)
{
    for (long t = 0; t < n; ++t)
        if (choices[t] >= @P@N_NETWORKS) return t;
    return -1;
}

/* One pass over the observations; records actions and networks used when out != NULL. */
static double replay(const float *obs, long n, long episode_len, const unsigned char *choices,
                     float *out, long *faults)
{
    float action[@P@ACT_DIM];
    double sum = 0.0;
    long step = 0;
    *faults = 0;
    @p@reset();
    for (long t = 0; t < n; ++t, ++step) {
        if (step == episode_len) { @p@reset(); step = 0; }
        const float *o = obs + t * @P@OBS_DIM;
        int used;
        if (choices) {
            if (step % @P@MACRO_LEN == 0) sum += @p@master_choose(o);
            used = choices[t];
            @p@forward(used, o, action);
        } else {
            *faults += @p@act(o, action);
            used = @p@current();
        }
        if (isfinite(action[0])) sum += action[0];  /* a faulty action stays out of the checksum */
        if (out) {
            memcpy(out + t * (@P@ACT_DIM + 1), action, sizeof action);
            out[t * (@P@ACT_DIM + 1) + @P@ACT_DIM] = (float)used;
        }
    }
    return sum;
}

static int write_actions(const char *path, const float *out, size_t count)
{
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return 2; }
    int ok = fwrite(out, sizeof(float), count, f) == count;
    ok = (fclose(f) == 0) && ok;
    if (!ok) { fprintf(stderr, "%s: write error\n", path); return 2; }
    return 0;
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s OBS.f32 [-o ACTIONS.f32] [-e EPISODE_LEN] [-r REPEATS>=1] [-c CHOICES.u8]\n", prog);
    return 2;
}

int main(int argc, char **argv)
{
    const char *obs_path = NULL, *out_path = NULL, *choice_path = NULL;
    long episode_len = 0;
    int repeats = 50, status = 2;
    for (int a = 1; a < argc; ++a) {
        if (!strcmp(argv[a], "-o") && a + 1 < argc) out_path = argv[++a];
        else if (!strcmp(argv[a], "-e") && a + 1 < argc) episode_len = atol(argv[++a]);
        else if (!strcmp(argv[a], "-r") && a + 1 < argc) repeats = atoi(argv[++a]);
        else if (!strcmp(argv[a], "-c") && a + 1 < argc) choice_path = argv[++a];
        else if (argv[a][0] != '-' && !obs_path) obs_path = argv[a];
        else return usage(argv[0]);
    }
    if (!obs_path || repeats < 1) return usage(argv[0]);
    size_t size = 0, n_choices = 0;
    float *obs = NULL, *out = NULL;
    unsigned char *choices = NULL;
    double *wall = NULL, *cpu = NULL;
    long n = 0, bad;
    if (!(obs = read_file(obs_path, &size))) goto done;
    if (size == 0 || size % (sizeof(float) * @P@OBS_DIM)) {
        fprintf(stderr, "%s: %zu bytes, not N x %d float32\n", obs_path, size, @P@OBS_DIM);
        goto done;
    }
    n = (long)(size / (sizeof(float) * @P@OBS_DIM));
    if (choice_path) {
        if (!(choices = read_file(choice_path, &n_choices))) goto done;
        if ((long)n_choices != n) {
            fprintf(stderr, "%s: %zu choices for %ld decisions; expected one byte per decision\n",
                    choice_path, n_choices, n);
            goto done;
        }
        if ((bad = invalid_choice(choices, n)) >= 0) {
            fprintf(stderr, "%s: byte %ld is %u; expected a network index 0..%d (@network_names@)\n",
                    choice_path, bad, (unsigned)choices[bad], @P@N_NETWORKS - 1);
            goto done;
        }
    }
    if (episode_len <= 0) episode_len = n;
    out = out_path ? malloc(sizeof(float) * (size_t)n * (@P@ACT_DIM + 1)) : NULL;
    wall = malloc(sizeof(double) * (size_t)repeats);
    cpu = malloc(sizeof(double) * (size_t)repeats);
    if ((out_path && !out) || !wall || !cpu) { fprintf(stderr, "out of memory\n"); goto done; }
    volatile double sink = 0.0;
    long faults = 0, pass_faults;
    for (int rep = 0; rep <= repeats; ++rep) {  /* pass 0 warms up and records the actions */
        const double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        const double sum = replay(obs, n, episode_len, choices, rep == 0 ? out : NULL, &pass_faults);
        const double w1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        sink = sink + sum;
        if (rep == 0) faults = pass_faults;
        else { wall[rep - 1] = (w1 - w0) / n; cpu[rep - 1] = (c1 - c0) / n; }
    }
    if (out && write_actions(out_path, out, (size_t)n * (@P@ACT_DIM + 1))) goto done;
    double wall_min = wall[0], cpu_min = cpu[0];
    for (int r = 1; r < repeats; ++r) { if (wall[r] < wall_min) wall_min = wall[r]; if (cpu[r] < cpu_min) cpu_min = cpu[r]; }
    printf("{\"decisions\": %ld, \"repeats\": %d, \"wall_ns_min\": %.3f, \"wall_ns_median\": %.3f, "
           "\"cpu_ns_min\": %.3f, \"cpu_ns_median\": %.3f, \"faults\": %ld, \"checksum\": %.6g}\n",
           n, repeats, wall_min, median(wall, repeats), cpu_min, median(cpu, repeats), faults,
           (double)sink);
    status = 0;
done:
    free(obs);
    free(choices);
    free(out);
    free(wall);
    free(cpu);
    return status;
}
"""


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start every C symbol of an export, else ValueError saying why."""
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(f"--prefix '{prefix}': expected a C identifier (letters, digits, '_'; "
                         "not starting with a digit), e.g. 'walker_'")
    if prefix.startswith("__") or (prefix[0] == "_" and prefix[1:2].isupper()):
        raise ValueError(f"--prefix '{prefix}': names starting with '__' or '_' and a capital "
                         "letter are reserved for the C implementation; e.g. 'walker_'")
    return prefix


def _fill(template: str, **fields) -> str:
    """``template`` with every ``@key@`` replaced (C's braces need no escaping this way)."""
    for key, value in fields.items():
        template = template.replace(f"@{key}@", str(value))
    return template


@dataclass
class _Plan:
    """What an export holds: the networks in index order, the master and its streams."""

    names: list[str]
    specs: list[NetSpec]
    master: MasterSpec | None
    master_ops: list[Op]
    obs_dim: int
    act_dim: int
    macro_len: int

    def description(self, master_streams: str) -> str:
        if self.master is None:
            return f"one network '{self.names[0]}'"
        kind = "dueling" if self.master.value else "plain"
        streams = "both streams" if self.master.value and master_streams == "all" else "advantage stream"
        return (f"master ({kind} Q-network, {streams}) choosing {' / '.join(self.names)} "
                f"every {self.macro_len} steps")


def _plan(policy, obs_dim: int | None, master_streams: str) -> _Plan:
    names = [n for n in SUB_ORDER if n in policy.networks] if policy.master is not None \
        else list(policy.networks)
    if policy.master is not None and names != list(SUB_ORDER):
        raise ExportError(f"a master needs networks {SUB_ORDER}, got {sorted(policy.networks)}")
    if policy.master is None and len(names) != 1:
        raise ExportError(f"without a master exactly one network is deployed, got {names}")
    specs = [network_spec(n, policy.networks[n]) for n in names]
    obs_dim = obs_dim or specs[0].in_dim
    for spec in specs:
        if spec.in_dim != obs_dim:
            raise ExportError(f"network '{spec.name}' takes {spec.in_dim} inputs, not {obs_dim}")
    master = master_spec(policy.master) if policy.master is not None else None
    macro_len = int(policy.macro_len) if master is not None else 1
    if macro_len < 1:
        raise ExportError(f"macro_len must be >= 1, got {macro_len}")
    master_ops = [] if master is None else \
        master.advantage + (master.value if master.value and master_streams == "all" else [])
    return _Plan(names, specs, master, master_ops, obs_dim, specs[0].out_dim, macro_len)


def _sources(plan: _Plan, master_streams: str, tanh: str, source: str, symbol: str) -> dict[str, str]:
    """policy.h, policy.c and bench.c of ``plan``, every name starting with ``symbol``."""
    arrays: list[str] = []
    functions = [_network_c(i, s, plan.act_dim, arrays, tanh, symbol) for i, s in enumerate(plan.specs)]
    if plan.master is not None:
        functions.append(_master_c(plan.master, master_streams, arrays, symbol))
    all_ops = [op for s in plan.specs for op in s.ops] + plan.master_ops
    scratch = max([plan.obs_dim] + [op.shape[1] for op in all_ops if op.kind == "linear"])
    last = len(plan.specs) - 1
    forward = "".join(f"    {'if' if i == 0 else 'else if'} (which == {i}) {symbol}net{i}_forward(obs, action);\n"
                      for i in range(last))
    forward = (forward + "    else " if forward else "    (void)which;\n    ") + \
        f"{symbol}net{last}_forward(obs, action);"
    fields = dict(p=symbol, P=symbol.upper(), source=source.replace("*/", "* /"),
                  obs_dim=plan.obs_dim, act_dim=plan.act_dim, macro_len=plan.macro_len,
                  has_master=int(plan.master is not None), n_networks=len(plan.specs),
                  network_names=", ".join(f"{i}: {n}" for i, n in enumerate(plan.names)))
    master_call = (f"    return {symbol}master_argmax(obs);" if plan.master is not None
                   else "    (void)obs;\n    return 0;")
    return {"policy.h": _fill(HEADER, **fields),
            "policy.c": _fill(SOURCE, **fields, description=plan.description(master_streams),
                              arrays="\n".join(arrays), scratch=scratch,
                              tanh_fn=FAST_TANH.replace("{symbol}", symbol) + "\n" if tanh == "rational" else "",
                              functions="\n".join(functions), master_call=master_call,
                              forward_switch=forward),
            "bench.c": _fill(BENCH, **fields)}


def _manifest(plan: _Plan, policy, master_streams: str, tanh: str, source: str, symbol: str) -> dict:
    flops_c = {s.name: executed_flops(s.ops) for s in plan.specs}
    if plan.master is not None:
        flops_c["master"] = executed_flops(plan.master_ops)
    master = plan.master
    return {
        "format": "c", "source": source, "prefix": symbol, "obs_dim": plan.obs_dim,
        "act_dim": plan.act_dim, "macro_len": plan.macro_len, "networks": plan.names,
        "has_master": master is not None,
        "master_streams": (master_streams if master.value else "advantage") if master else None,
        "tanh": tanh,
        "layers": {s.name: [op.kind if op.kind != "linear" else f"linear {op.shape[0]}x{op.shape[1]}"
                            for op in s.ops] + [s.post] for s in plan.specs},
        "skipped": {s.name: [f"log_std linear {op.shape[0]}x{op.shape[1]}" for op in s.skipped
                             if op.kind == "linear"] for s in plan.specs if s.skipped},
        "flops_convention": {k: int(v) for k, v in policy.flops.items()},
        "flops_executed": flops_c,
        "flops_note": "flops_convention: DeployedPolicy.flops (thop 2 x MACs, the SAC actor's "
                      "log-std head included, +3 per SAC actor); flops_executed: 2 x MACs of "
                      "the Linear layers the C code runs (no log-std head).",
        "fault_contract": FAULT_CONTRACT,
        "build": BUILD,
    }


def write_folder(out_dir: str | Path, files: dict[str, str]) -> None:
    """Writes ``files`` (name -> text) into ``out_dir`` all or nothing: into a temporary folder
    beside it first, then renamed into place (a new folder), or each file renamed over its old
    version. A failure (a full disk) leaves no new file behind and the old ones untouched."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        for name, text in files.items():
            try:
                with open(tmp / name, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise OSError(exc.errno, f"{exc.strerror} while writing {out_dir / name}; nothing of "
                              f"this export was written (free space in {out_dir.parent} and rerun)") from exc
            os.chmod(tmp / name, 0o666 & ~_umask())
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folder is 0700
        if out_dir.is_dir():
            for name in files:
                os.replace(tmp / name, out_dir / name)
        else:
            os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def export_c(policy, out_dir: str | Path, obs_dim: int | None = None,
             master_streams: str = "all", source: str = "a DeployedPolicy",
             tanh: str = "rational", prefix: str = DEFAULT_PREFIX) -> dict:
    """Writes policy.h, policy.c, bench.c, export.json and README.txt for a
    ``DeployedPolicy`` (asymbench.evaluation), all or nothing; returns the manifest written to
    export.json. ``tanh``: "rational" (Eigen's approximation, |error| < 3.5e-7, no libm call)
    or "libm"; ``prefix``: starts every C symbol (upper-cased: every macro)."""
    if master_streams not in MASTER_STREAMS:
        raise ValueError(f"master_streams must be one of {MASTER_STREAMS}, got '{master_streams}'")
    if tanh not in TANH:
        raise ValueError(f"tanh must be one of {TANH}, got '{tanh}'")
    check_prefix(prefix)
    plan = _plan(policy, obs_dim, master_streams)
    files = _sources(plan, master_streams, tanh, source, prefix)
    manifest = _manifest(plan, policy, master_streams, tanh, source, prefix)
    files["export.json"] = json.dumps(manifest, indent=2) + "\n"
    files["README.txt"] = (
        f"Deployed policy of {source}: {plan.description(master_streams)}.\n\n"
        f"Build and replay observations (raw float32, N x {prefix.upper()}OBS_DIM):\n"
        f"    {BUILD}\n"
        "    ./bench obs.f32 -o actions.f32 -e EPISODE_LEN -r 50\n\n"
        f"In a controller: #include \"policy.h\", compile policy.c with it, call {prefix}reset()\n"
        f"at each episode start and {prefix}act(obs, action) every step; it returns 1 when the\n"
        f"action is not finite (fault contract: policy.h). FLOPs: export.json.\n")
    write_folder(out_dir, files)
    return manifest


def export_run(run_dir: str | Path, out_dir: str | Path, fmt: str = "c",
               master_streams: str = "all", tanh: str = "rational", task=None,
               prefix: str = DEFAULT_PREFIX) -> dict:
    """Exports a finished run's deployed policy, as ``load_deployed`` loads it. ``task``: the
    run's task (default: its own, from config.json's task_settings)."""
    from asymbench.evaluation import load_deployed
    from asymbench.runs import CONFIG_FILE, load_finished_run
    from asymbench.tasks import env_dims, task_from_config

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    check_prefix(prefix)
    config, _ = load_finished_run(run_dir)
    task = task or task_from_config(config, source=Path(run_dir) / CONFIG_FILE)
    obs_dim, _ = env_dims(task)
    policy = load_deployed(run_dir, config, obs_dim, task=task)
    return export_c(policy, out_dir, obs_dim, master_streams,
                    source=f"run {Path(run_dir).name} ({config['task']}, {config['method']})",
                    tanh=tanh, prefix=prefix)


# ----------------------------------------------------------------------------- build and replay
def find_compiler() -> str | None:
    """The system C compiler: $CC, else cc, gcc or clang on the PATH (None if there is none)."""
    for name in [os.environ.get("CC"), "cc", "gcc", "clang"]:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build(out_dir: str | Path, flags: tuple[str, ...] = ("-O2",), compiler: str | None = None,
          output: str = "bench") -> Path:
    """Compiles policy.c + bench.c of an export folder into ``out_dir/<output>``."""
    out_dir = Path(out_dir)
    compiler = compiler or find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (tried $CC, cc, gcc, clang)")
    binary = out_dir / output
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
