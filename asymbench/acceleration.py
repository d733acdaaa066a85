"""How the SAC update runs on this machine: eager or compiled (``engine.compile``), and the
record of what ran, saved in every run's config.json under ``runtime``.

``StackedSAC.gradient_step`` is one static-shape function (critics, actor, entropy coefficient,
Adam and Polyak on preallocated tensors). Eager it is the reference: on a CPU it computes today's
update bit for bit. Compiled (``torch.compile``, Inductor's C++ kernels on a CPU) it is one graph
(gradients by ``torch.autograd.grad``, Adam in the graph) that agrees with eager to float
rounding, not bit for bit (tests/test_engine.py); benchmarks/results/compile_speedup.json
measures both in turns, and the warm-up (seconds of compilation per stack shape).

``auto``, the default (the CLI's and every scale's without a ``compile`` key), runs what
measured faster on the device type: compiled on a CPU (compile_speedup.json: faster in every
case measured) for a run long enough to repay the compilation, eager on a GPU until one is
measured; a resumed run keeps the mode it started with. ``off`` is eager, the bit-exact
reference, which the scales of the eager campaigns (``verify``, ``verify_200k``) name. ``on`` compiles wherever a C++ compiler is found, and stops
with one line where none is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from asymbench.runs import UsageError, cpu_model

COMPILE_CHOICES = ("auto", "on", "off")
# What ``auto`` runs per device type: the faster in benchmarks/results/compile_speedup.json
# (CPU); a GPU's is pending a measurement.
AUTO_COMPILES = {"cpu": True, "cuda": False}
# ``auto`` compiles runs of at least this many env steps: compiling a stack shape costs up to a
# minute or two of CPU (compile_speedup.json's warm-up), repaid within some thousands of updates
# (its break_even_updates); shorter runs (smoke runs, tests) stay eager.
AUTO_MIN_STEPS = 100_000


def cxx_compiler() -> str | None:
    """The C++ compiler Inductor would use ($CXX, else g++, c++ or clang++ on the PATH)."""
    candidates = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    return next((found for name in candidates if name and (found := shutil.which(name))), None)


def compile_choice(value, where: str = "engine.compile") -> str:
    """A ``compile`` setting as YAML gives it (an unquoted on / off arrives as true / false),
    checked; ``where`` names it in the error."""
    setting = {True: "on", False: "off"}.get(value, value)
    if setting not in COMPILE_CHOICES:
        raise UsageError(f"{where} must be one of {', '.join(COMPILE_CHOICES)}, got {value!r}")
    return setting


def auto_compiles(device, total_steps: int) -> bool:
    """Whether ``auto`` compiles a new run of ``total_steps`` env steps on ``device`` (given a C++
    compiler): also how ``asymbench estimate`` prices such a run, which is why this module
    imports torch only where it records a run (the estimate stays torch-free)."""
    device_type = str(device).split(":")[0]  # "cuda:1" and torch.device("cuda", 1) alike
    return AUTO_COMPILES.get(device_type, False) and total_steps >= AUTO_MIN_STEPS


def use_compiled(setting: str, device: str, total_steps: int, resumed: bool | None = None) -> bool:
    """Whether the update runs compiled for ``engine.compile: setting`` (--compile) on ``device``,
    in a run of ``total_steps`` env steps; ``resumed``: whether the run being resumed ran
    compiled (None: a new run), which ``auto`` keeps, so no run changes mode half-way."""
    setting = compile_choice(setting, "--compile (engine.compile)")
    if setting == "auto":
        faster = auto_compiles(device, total_steps)
        return (faster if resumed is None else resumed) and cxx_compiler() is not None
    if setting == "on" and cxx_compiler() is None:
        raise UsageError("--compile on (engine.compile): no C++ compiler found ($CXX, g++, c++ or "
                         "clang++), which torch.compile needs: install one, or use --compile off")
    return setting == "on"


def cpu_vendor() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    lines = cpuinfo.read_text().splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), None)


def runtime_record(setting: str, compiled: bool, device: str, threads: int) -> dict:
    """What decides a run's low bits: the CPU kind torch dispatches to, the GPU, the library
    versions, eager or compiled, and the deterministic-algorithms setting."""
    import torch

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
