"""Run folders: atomic writes, provenance, and the checks that refuse unfinished or foreign runs.

A run folder holds ``config.json`` (what was asked for), ``progress.csv`` (the learning curve),
``model/`` (what is deployed), ``checkpoint/`` (what a resumed run needs) and, written last,
``run.json``: its presence is the only sign that a run finished.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

CONFIG_FILE = "config.json"
FINISHED_FILE = "run.json"
PROGRESS_FILE = "progress.csv"
TRACKED_PACKAGES = ("asymbench", "torch", "numpy", "gymnasium", "mujoco", "dm_control",
                    "gymnasium-robotics", "shimmy", "stable-baselines3", "imitation", "thop")


class RunError(RuntimeError):
    """A run folder is missing, unfinished, corrupt, or does not match what was asked for."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; renames it over ``path`` only on success,
    so a killed process never leaves a half-written file that a rerun would trust."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise RunError(f"missing file: {path}") from exc
    except json.JSONDecodeError as exc:
        raise RunError(f"corrupt JSON in {path}: {exc}") from exc


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=Path(__file__).parent,
                               timeout=10).stdout.strip()
        return (commit + ("-dirty" if dirty else "")) if out.returncode == 0 and commit else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def provenance() -> dict[str, Any]:
    """Package versions, git commit and machine: saved with every run."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"versions": versions, "git_commit": git_commit(), "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count()}


def load_finished_run(run_dir: str | Path, task: str | None = None,
                      methods: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Returns (config, run summary) of a finished run, or raises RunError naming the problem."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder does not exist: {run_dir}")
    if not (run_dir / FINISHED_FILE).exists():
        raise RunError(f"run in {run_dir} is unfinished (no {FINISHED_FILE}); "
                       "rerun its training command to resume it")
    config = read_json(run_dir / CONFIG_FILE)
    summary = read_json(run_dir / FINISHED_FILE)
    if task is not None and config.get("task") != task:
        raise RunError(f"run in {run_dir} is of task '{config.get('task')}', not '{task}'")
    if methods is not None and config.get("method") not in methods:
        raise RunError(f"run in {run_dir} is a '{config.get('method')}' run; "
                       f"expected one of {', '.join(methods)}")
    return config, summary
