"""Run folders: atomic writes, provenance, and the checks that refuse unfinished or foreign runs.

A run folder holds ``config.json`` (what was asked for), ``progress.csv`` (the learning curve),
``model/`` (what is deployed), ``checkpoint/`` (what a resumed run needs) and, written last,
``run.json``: its presence is the only sign that a run finished. A run trained in segments
also leaves, at each milestone below its budget, a snapshot folder of the same shape whose
``snapshot.json`` takes the place of ``run.json``: the run as it was at that step.
"""

from __future__ import annotations

import json
import math
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
SNAPSHOT_FILE = "snapshot.json"
PROGRESS_FILE = "progress.csv"
GROUP_RECORD = "group_finished.json"  # a finished group's summaries, kept beside its run folders
TRACKED_PACKAGES = ("asymbench", "torch", "numpy", "gymnasium", "mujoco", "dm_control",
                    "gymnasium-robotics", "shimmy", "stable-baselines3", "imitation", "thop")


REBUILD = ("delete it and rerun the command that wrote it (a workflow run rebuilds a deleted "
           "file: rerun snakemake)")


class RunError(RuntimeError):
    """A run folder is missing, unfinished, corrupt, or does not match what was asked for."""


class UsageError(ValueError):
    """A command-line value that cannot work (a path that cannot be written, a bad number...)."""


def _file_mode() -> int:
    """The mode a plainly created file gets under the current umask (mkstemp's is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
        os.chmod(tmp, _file_mode())  # result files respect the umask, as open() would
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a folder gone: name the file being written
        if exc.filename is None or exc.filename == tmp:
            raise OSError(exc.errno, f"{exc.strerror or exc} (writing {path})") from exc
        raise
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
    except IsADirectoryError as exc:
        raise RunError(f"{path} is a folder; expected a JSON file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"corrupt JSON in {path}: {exc}; {REBUILD}") from exc
    except OSError as exc:
        raise RunError(f"cannot read {path}: {exc.strerror or exc}") from exc


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


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows: how benchmark
    results tell one kind of machine from another."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                 if line.startswith("model name")), platform.processor())


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


def damaged_json_files(folders: list[Path], names: tuple[str, ...]) -> Iterator[tuple[Path, str]]:
    """(path, problem) of each file called one of ``names`` under ``folders`` that is no JSON
    object: a workflow checks its inputs this way before any job starts."""
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in sorted(set(files) & set(names)):
                path = Path(root) / name
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError) as exc:
                    yield path, str(exc)
                    continue
                if not isinstance(data, dict):
                    yield path, f"a JSON {type(data).__name__}, not an object"


# ----------------------------------------------------------------------------- user paths
def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(path: Path, flag: str, what: str) -> None:
    """Raises UsageError unless ``path``'s missing folders can be created and written in."""
    base = _nearest_existing(path)
    if not base.is_dir():
        raise UsageError(f"{flag} {path}: {base} is a file, so no {what} can be created under "
                         "it; expected a path inside a folder")
    try:
        tempfile.TemporaryFile(dir=base).close()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot create a {what} in {base} "
                         f"({exc.strerror or exc}); expected a path in a writable folder") from exc


def check_output_dir(path: str | Path, flag: str = "--out") -> None:
    """A folder a command will create (or resume) must be a folder, or creatable and writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: is an existing file; expected a folder "
                         "(created if missing)")
    _check_creatable(path, flag, "folder")


def check_output_file(path: str | Path, flag: str = "--out") -> None:
    """A file a command will write must not be a folder, and its folder must be writable."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; expected a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: exists and is not writable; expected a writable file path")
    _check_creatable(path.parent if path.parent != path else path, flag, "file")


def check_input_file(path: str | Path, flag: str) -> None:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{flag} {path}: does not exist; expected an existing file")
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; expected a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{flag} {path}: not readable; expected a file you can read")


def check_input_dir(path: str | Path, flag: str) -> None:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{flag} {path}: does not exist; expected an existing folder")
    if not path.is_dir():
        raise UsageError(f"{flag} {path}: is a file; expected a folder")


def read_asym_evaluation(path: str | Path, task: str | None = None,
                         flag: str = "--width-from") -> dict:
    """An ``asymbench evaluate`` JSON of an asym run (of ``task``) with a positive finite
    ``flops_per_inf``, as --width-from needs; UsageError names the file and the problem."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UsageError(f"{flag} {path}: expected an evaluation JSON object (from `asymbench "
                         f"evaluate` of an asym run), got a JSON {type(data).__name__}")
    if data.get("method") != "asym":
        raise UsageError(f"{flag} {path}: an evaluation of a '{data.get('method')}' run; expected "
                         "an evaluation of an asym run (the asymmetric agent)")
    if task is not None and data.get("task") != task:
        raise UsageError(f"{flag} {path}: an evaluation of task '{data.get('task')}'; "
                         f"expected an evaluation of task '{task}'")
    target = data.get("flops_per_inf")
    if (isinstance(target, bool) or not isinstance(target, (int, float))
            or not math.isfinite(target) or target <= 0):
        raise UsageError(f"{flag} {path}: 'flops_per_inf' is {target!r}; expected a positive "
                         "number (an evaluation written by `asymbench evaluate`)")
    return data


# ----------------------------------------------------------------------------- run folders
# The deployed networks each method's run folder holds under model/ (docs/contract.md).
MODEL_FILES = {"s_only": ("policy.zip",), "l_only": ("policy.zip",), "fit": ("policy.zip",),
               "asym": ("small.zip", "large.zip", "master.pt"),  # master.pt: torch.save, also a zip
               "bc": ("student.zip",), "gail": ("student.zip",)}


def _check_zip(path: Path) -> str | None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        return f"{path} is damaged ({exc})"
    return None


def check_model_files(run_dir: str | Path, config: dict) -> None:
    """Every deployed network of a finished run is there and is a readable archive."""
    run_dir = Path(run_dir)
    for name in MODEL_FILES.get(config.get("method"), ()):
        path = run_dir / "model" / name
        if not path.is_file():
            raise RunError(f"run in {run_dir} is damaged: {path} is missing; retrain it "
                           "(delete the folder and rerun its command)")
        problem = _check_zip(path)
        if problem:
            raise RunError(f"run in {run_dir} is damaged: {problem}; retrain it "
                           "(delete the folder and rerun its command)")


def _pickle_complete(path: Path) -> bool:
    """A pickle (protocol >= 2) ends with the STOP opcode; a truncated file almost never does."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"."
    except OSError:
        return False


def check_checkpoint(run_dir: str | Path) -> None:
    """Before resuming: the checkpoint that ``run_dir`` points at is complete (latest.json names
    an existing folder; its pickles end whole; its .zip / .pt archives open). RunError says what
    is damaged and how to start over. Nothing to check if there is no checkpoint."""
    run_dir = Path(run_dir)
    restart = f"delete {run_dir / 'checkpoint'} to restart the run from step 0"
    files = []
    latest_path = run_dir / "checkpoint" / "latest.json"
    if latest_path.exists():
        latest = read_json(latest_path)
        if not isinstance(latest, dict) or not isinstance(latest.get("dir"), str):
            raise RunError(f"checkpoint of {run_dir} is damaged: {latest_path} names no "
                           f"checkpoint folder; {restart}")
        folder = run_dir / "checkpoint" / latest["dir"]
        if not folder.is_dir():
            raise RunError(f"checkpoint of {run_dir} is damaged: {latest_path} points at "
                           f"{folder}, which does not exist; {restart}")
        files += sorted(folder.iterdir())
    for path in files:
        problem = None
        if path.suffix == ".pkl" and not _pickle_complete(path):
            problem = f"{path} is truncated"
        elif path.suffix in (".zip", ".pt"):
            problem = _check_zip(path)
        if problem:
            raise RunError(f"checkpoint of {run_dir} is damaged: {problem}; {restart}")
    _check_group_checkpoints(run_dir)


def _check_group_checkpoints(run_dir: Path) -> None:
    """A group keeps its latest checkpoint and the previous one: a damaged latest is no reason to
    refuse while the previous one is intact (training falls back to it, and says so)."""
    for latest in sorted(run_dir.glob("*.pt")):
        previous = latest.with_name(latest.stem + ".previous.pt")
        problem = None if latest.name.endswith(".previous.pt") else _check_zip(latest)
        if problem is None or (previous.exists() and _check_zip(previous) is None):
            continue
        state, both = ("is damaged too", f" and {previous}") if previous.exists() else ("does not exist", "")
        raise RunError(f"checkpoint of {run_dir} is damaged: {problem}, and the previous checkpoint "
                       f"{previous.name} {state}; delete {latest}{both} to restart from step 0")


def record_finished_group(out_root: str | Path, dirs: list[Path], configs: list[dict],
                          summaries: list[dict]) -> None:
    """Written after every member's run.json. A workflow manager that lost track of the job (its
    own process died while the job ran on) deletes the run.json files as unfinished outputs;
    this record, which no workflow declares, lets the rerun accept the finished run instead of
    training it again (``restore_finished_group``)."""
    out_root = Path(out_root)
    write_json(out_root / GROUP_RECORD, {
        "runs": {str(Path(d).relative_to(out_root)): {"config": c, "summary": s}
                 for d, c, s in zip(dirs, configs, summaries)}})


def restore_finished_group(out_root: str | Path, dirs: list[Path], configs: list[dict],
                           same_config, checkpoint: bool) -> None:
    """Where every member's run.json is missing but the rest of a finished run of ``configs``
    is there (``same_config(recorded, asked)``; no ``checkpoint`` left): writes the run.json
    files back from the group's record, or, without a record that fits (a group finished by an
    earlier asymbench), refuses rather than train the finished runs again."""
    out_root = Path(out_root)
    path = out_root / GROUP_RECORD
    if checkpoint or any((Path(d) / FINISHED_FILE).exists() for d in dirs):
        return
    if not all(_finished_member(d, c, same_config) for d, c in zip(dirs, configs)):
        return
    try:
        runs = read_json(path)["runs"]
        found = [runs[str(Path(d).relative_to(out_root))] for d in dirs]
        fits = all(same_config(run["config"], c) and isinstance(run["summary"], dict)
                   for run, c in zip(found, configs))
    except (RunError, KeyError, TypeError):
        fits = False
    if not fits:
        raise RunError(f"{out_root}: its runs finished (their models are written, no checkpoint is "
                       f"left) but their {FINISHED_FILE} files are missing and no {GROUP_RECORD} "
                       f"restores them; rather than train them again: put the {FINISHED_FILE} "
                       f"files back (a backup), or delete {out_root} to retrain")
    for d, run in zip(dirs, found):
        write_json(Path(d) / FINISHED_FILE, run["summary"])
    print(f"{out_root}: finished already: run.json written back from {path.name} (deleted as "
          "an unfinished output: its job had outlived the workflow process?)")


def forget_finished_group(out_root: str | Path, dirs: list[Path]) -> None:
    """Before a group trains from step 0 in folders that held another run whose run.json is gone
    (a run of another config: a finished run of the same config is never trained again): that
    run's record and deployed models go, so that none of it is ever taken for the new run's. A
    run.json still there keeps everything (a milestone segment does not touch the run)."""
    import shutil

    if any((Path(d) / FINISHED_FILE).exists() for d in dirs):
        return
    (Path(out_root) / GROUP_RECORD).unlink(missing_ok=True)
    for d in dirs:
        shutil.rmtree(Path(d) / "model", ignore_errors=True)


def _finished_member(run_dir: Path, config: dict, same_config) -> bool:
    """A member folder that holds a finished run of ``config``, but for its run.json."""
    run_dir = Path(run_dir)
    try:
        if not (same_config(read_json(run_dir / CONFIG_FILE), config)
                and (run_dir / PROGRESS_FILE).is_file()):
            return False
        check_model_files(run_dir, config)
    except RunError:
        return False
    return True


class Interrupted(RuntimeError):
    """A signal stopped training; the checkpoint of the step it arrived at is written."""

    def __init__(self, where: Path, signum: int, step: int):
        import signal

        self.signum = signum
        super().__init__(f"{where}: stopped by {signal.Signals(signum).name} at step {step:,}; "
                         "the checkpoint of that step is written: rerun the same command to resume")


def load_state(path: str | Path, map_location=None) -> Any:
    """A checkpoint written by ``torch.save`` of tensors, numpy arrays and scalars, numbers,
    strings and containers; anything else in it is refused rather than unpickled
    (``torch.load(weights_only=True)`` with numpy's array types allowed)."""
    import numpy as np
    import torch

    numpy_types = [bytes, np._core.multiarray._reconstruct, np._core.multiarray.scalar, np.ndarray,
                   np.dtype, *{type(np.dtype(t)) for t in (np.float32, np.float64, np.int64, np.int32,
                                                           np.uint32, np.uint64, np.bool_)}]
    with torch.serialization.safe_globals(numpy_types):
        return torch.load(path, map_location=map_location, weights_only=True)


def load_finished_run(run_dir: str | Path, task: str | None = None,
                      methods: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Returns (config, run summary) of a finished run, or raises RunError naming the problem."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder does not exist: {run_dir}")
    marker = next((name for name in (FINISHED_FILE, SNAPSHOT_FILE) if (run_dir / name).exists()), None)
    if marker is None:
        raise RunError(f"run in {run_dir} is unfinished (no {FINISHED_FILE}); "
                       "rerun its training command to resume it")
    config = read_json(run_dir / CONFIG_FILE)
    summary = read_json(run_dir / marker)
    for name, data in ((CONFIG_FILE, config), (marker, summary)):
        if not isinstance(data, dict):
            raise RunError(f"run in {run_dir} is damaged: {name} holds a JSON "
                           f"{type(data).__name__}, expected an object")
    for key in ("task", "method"):
        if not isinstance(config.get(key), str):
            raise RunError(f"run in {run_dir} is damaged: {CONFIG_FILE} has no '{key}'")
    if task is not None and config.get("task") != task:
        raise RunError(f"run in {run_dir} is of task '{config.get('task')}', not '{task}'")
    if methods is not None and config.get("method") not in methods:
        raise RunError(f"run in {run_dir} is a '{config.get('method')}' run; "
                       f"expected one of {', '.join(methods)}")
    check_model_files(run_dir, config)
    return config, summary
