"""How the SAC update runs on this machine: eager or compiled (``engine.compile``), and the
record of what ran, saved in every run's config.json under ``runtime``.

``StackedSAC.gradient_step`` is one static-shape function (critics, actor, entropy coefficient,
Adam and Polyak on preallocated tensors). Eager it is the reference: on a CPU it computes today's
update bit for bit. ``torch.compile`` fuses its small operators into a few C++ kernels, which
pays where a step is dispatch-bound (widths up to a few hundred on a CPU, every width on a GPU);
benchmarks/results/compile_speedup.json measures it, and its warm-up (seconds per stack shape).
Compiled results agree with eager to float rounding, not bit for bit (tests/test_engine.py).

``auto`` compiles where a C++ compiler is found (Inductor needs one) and the run's budget is
long enough for the warm-up to pay back many times over; it depends on the budget, never on
how far a resumed run has come, so a killed run resumes in the mode it started in.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import torch

from asymbench.runs import UsageError, cpu_model

COMPILE_CHOICES = ("auto", "on", "off")
# auto compiles runs of at least this many env steps: the warm-up (about a minute per stack
# shape, at most two stacks) is repaid by ~2 ms saved per update within ~30k updates at the
# smallest widths (compile_speedup.json: warmup_s and ms_per_update), so from here it costs
# at most a few per cent of a run and saves a third or more of the rest.
AUTO_COMPILE_MIN_STEPS = 100_000


def cxx_compiler() -> str | None:
    """The C++ compiler Inductor would use ($CXX, else g++, c++ or clang++ on the PATH)."""
    candidates = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    return next((found for name in candidates if name and (found := shutil.which(name))), None)


def use_compiled(setting: str, total_steps: int) -> bool:
    """Whether the update runs compiled for ``engine.compile: setting`` (--compile)."""
    if setting not in COMPILE_CHOICES:
        raise UsageError(f"--compile (engine.compile) must be one of {', '.join(COMPILE_CHOICES)}, "
                         f"got {setting!r}")
    if setting == "off":
        return False
    if cxx_compiler() is None:
        if setting == "on":
            raise UsageError("--compile on (engine.compile): no C++ compiler found ($CXX, g++, c++ or "
                             "clang++), which torch.compile needs: install one or use --compile off")
        print("asymbench: engine.compile auto: no C++ compiler found, so the update runs eager",
              file=sys.stderr, flush=True)
        return False
    return setting == "on" or total_steps >= AUTO_COMPILE_MIN_STEPS


def cpu_vendor() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    lines = cpuinfo.read_text().splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), None)


def runtime_record(setting: str, compiled: bool, device: str, threads: int) -> dict:
    """What decides a run's low bits: the CPU kind torch dispatches to, the GPU, the library
    versions, eager or compiled, and the deterministic-algorithms setting."""
    cuda = torch.device(device).type == "cuda"
    return {
        "compile": setting, "compiled": compiled, "device": str(device), "threads": threads,
        "cpu_vendor": cpu_vendor(), "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": torch.cuda.get_device_name(torch.device(device)) if cuda else None,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
