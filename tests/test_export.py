"""``asymbench export``: the C99 policy built with the system compiler acts as the PyTorch
deployed policy does (to 1e-5), macro switches and episode resets included."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from torch import nn

from asymbench.export import ExportError, build, export_c, find_compiler, replay
from asymbench.runs import write_json

pytestmark = pytest.mark.skipif(find_compiler() is None,
                                reason="no C compiler ($CC, cc, gcc or clang) on the PATH: "
                                       "the exported C policy cannot be built")

TASK = "MountainCarContinuous"
EPISODE = 37       # not a multiple of macro_len: episodes end mid-macro
EPISODES = 4
ATOL = 1e-5
FLAGS = ("-O2", "-Werror")  # the generated C compiles without a warning (-Wall -Wextra -pedantic)


def _sac(env_id: str, width: int, seed: int, folder=None) -> SAC:
    if folder is not None:
        (folder / "model").mkdir(parents=True, exist_ok=True)
    return SAC("MlpPolicy", gym.make(env_id), policy_kwargs={"net_arch": [width, width]},
               buffer_size=100, seed=seed, device="cpu")


def _finish(run, method: str, **extra) -> None:
    from asymbench.train_config import TrainRequest, resolve_config

    if method in ("bc", "gail"):
        config = {"task": TASK, "method": method, "seed": 0, "widths": {"policy": 8}, **extra}
    else:
        config = resolve_config(TrainRequest(task=TASK, method=method, seed=0, out=run))
    write_json(run / "config.json", config)
    write_json(run / "run.json", {"steps": 0})


def _balanced_master(path, small: SAC) -> None:
    """A registry-configured dueling master whose choice flips inside the test's episodes: its
    advantage bias is shifted so that it picks each side on half of the states that the small
    sub-policy visits in them."""
    from asymbench.agents import DeployedActor
    from asymbench.master import MasterGroup
    from asymbench.tasks import get_task

    env, actor, states = gym.make("MountainCarContinuous-v0"), DeployedActor.from_sac(small), []
    with torch.no_grad():
        for episode in range(EPISODES):
            obs, _ = env.reset(seed=episode)
            for _ in range(EPISODE):
                states.append(obs)
                obs, *_ = env.step(actor(torch.as_tensor(obs)[None])[0].numpy())
        group = MasterGroup(get_task(TASK).master, 2, [0], 1000)
        adv = group.member_network(0).advantage(torch.as_tensor(np.array(states)))
        group.q_net.advantage.layers[-1].bias[0, 0, 1] += float((adv[:, 0] - adv[:, 1]).median())
    group.save_member(0, path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished-run folders as training / distillation write them, with untrained networks."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    root = tmp_path_factory.mktemp("export_runs")
    folders = {}
    s_only = root / "s_only"
    _sac("MountainCarContinuous-v0", 8, 1, s_only).save(s_only / "model" / "policy.zip")
    _finish(s_only, "s_only")
    asym = root / "asym"
    subs = {name: _sac("MountainCarContinuous-v0", width, seed, asym)
            for name, width, seed in (("small", 8, 2), ("large", 64, 3))}
    for name, sac in subs.items():
        sac.save(asym / "model" / f"{name}.zip")
    _balanced_master(asym / "model" / "master.pt", subs["small"])
    _finish(asym, "asym")
    bc = root / "bc"
    env = gym.make("MountainCarContinuous-v0")
    torch.manual_seed(4)
    student = ActorCriticPolicy(env.observation_space, env.action_space, lambda _: 1e-3,
                                net_arch=[8, 8])
    with torch.no_grad():
        student.action_net.weight.mul_(3000.0)  # drive actions past the bounds: exercise the clamp
    (bc / "model").mkdir(parents=True)
    student.save(str(bc / "model" / "student.zip"))
    _finish(bc, "bc")
    folders.update(s_only=s_only, asym=asym, bc=bc)
    return folders


def _trace(policy, env_id: str, seed: int = 0):
    """Deterministic episodes of the PyTorch deployed policy, as asymbench evaluate runs them:
    observations, actions and the network used at every step."""
    env = gym.make(env_id, max_episode_steps=EPISODE)
    observations, actions, used = [], [], []
    names = ["small", "large"] if policy.master is not None else ["policy"]
    for episode in range(EPISODES):
        obs, _ = env.reset(seed=seed + episode)
        current = names[0]
        for step in range(EPISODE):
            action, current = policy.act(obs, step, current)
            observations.append(np.asarray(obs, np.float32))
            actions.append(action)
            used.append(names.index(current))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        assert step == EPISODE - 1, "the trace assumes fixed-length episodes"
    env.close()
    return np.array(observations), np.array(actions), np.array(used)


def _load(run):
    from asymbench.evaluation import load_deployed
    from asymbench.runs import read_json

    return load_deployed(run, read_json(run / "config.json"), 2)


@pytest.mark.parametrize("method", ["s_only", "asym", "bc"])
def test_exported_run_acts_as_the_pytorch_policy(runs, method, tmp_path, capsys):
    from asymbench.cli import main

    out = tmp_path / "c"
    assert main(["export", str(runs[method]), "--out", str(out)]) == 0
    assert "policy.c bench.c" in capsys.readouterr().out
    policy = _load(runs[method])
    observations, actions, used = _trace(policy, "MountainCarContinuous-v0")
    binary = build(out, FLAGS)
    c_actions, c_used, timing = replay(binary, observations, actions.shape[1],
                                       episode_len=EPISODE, repeats=2)
    np.testing.assert_allclose(c_actions, actions, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(c_used, used)
    assert timing["decisions"] == len(observations) and timing["cpu_ns_min"] > 0
    manifest = json.loads((out / "export.json").read_text())
    if method == "asym":
        # The trace switches sub-policy inside episodes, not only at resets.
        switches = [t for t in range(1, len(used)) if used[t] != used[t - 1] and t % EPISODE]
        assert switches and all(t % EPISODE % 5 == 0 for t in switches)
        assert manifest["has_master"] and manifest["macro_len"] == 5
        # Both FLOPs figures: the log-std head (64 -> 1) and the +3 are counted, never run.
        conv, run_ = manifest["flops_convention"], manifest["flops_executed"]
        assert run_["large"] == conv["large"] - 3 - 2 * 64 * 1
        assert run_["small"] == conv["small"] - 3 - 2 * 8 * 1
        # The deployed master's true count (2 x MACs, both dueling streams) is what C runs.
        assert run_["master"] == conv.get("master_macs", conv["master"])
        # The harness's forced pattern (benchmarks) runs the same networks when given it.
        forced, forced_used, _ = replay(binary, observations, actions.shape[1],
                                        episode_len=EPISODE, choices=used)
        np.testing.assert_array_equal(forced, c_actions)
        np.testing.assert_array_equal(forced_used, used)
    if method == "bc":
        assert np.abs(actions).max() == pytest.approx(1.0)  # the clamp was exercised


def test_advantage_only_master_makes_the_same_choices(runs, tmp_path):
    """argmax(V + A - mean A) = argmax(A): the value stream can be dropped."""
    from asymbench.export import export_run

    out = tmp_path / "adv"
    manifest = export_run(runs["asym"], out, master_streams="advantage")
    flops = _load(runs["asym"]).flops
    assert manifest["flops_executed"]["master"] < flops.get("master_macs", flops["master"])
    observations, actions, used = _trace(_load(runs["asym"]), "MountainCarContinuous-v0", seed=10)
    c_actions, c_used, _ = replay(build(out, FLAGS), observations, actions.shape[1], episode_len=EPISODE)
    np.testing.assert_array_equal(c_used, used)
    np.testing.assert_allclose(c_actions, actions, rtol=0, atol=ATOL)


def test_action_bounds_and_any_widths(tmp_path):
    """Pendulum's [-2, 2] bounds and three hidden layers of odd widths."""
    from asymbench.agents import DeployedActor
    from asymbench.evaluation import DeployedPolicy

    env = gym.make("Pendulum-v1")
    sac = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [13, 7, 29]}, buffer_size=100,
              seed=5, device="cpu")
    actor = DeployedActor.from_sac(sac)
    with torch.no_grad():
        actor.mu.weight.mul_(50.0)  # saturate tanh: actions reach the bounds
    policy = DeployedPolicy({"policy": actor}, {"policy": 0})
    observations = np.random.default_rng(1).uniform(-8, 8, (300, 3)).astype(np.float32)
    with torch.inference_mode():
        expected = actor(torch.as_tensor(observations)).numpy()
    assert np.abs(expected).max() > 1.9
    for tanh in ("rational", "libm"):
        out = tmp_path / tanh
        manifest = export_c(policy, out, 3, tanh=tanh)
        assert manifest["layers"]["policy"][:3] == ["linear 3x13", "relu", "linear 13x7"]
        c_actions, _, _ = replay(build(out, FLAGS), observations, 1)
        np.testing.assert_allclose(c_actions, expected, rtol=0, atol=ATOL)


def test_unsupported_layers_are_refused(tmp_path):
    from asymbench.evaluation import DeployedPolicy

    net = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1))
    with pytest.raises(ExportError, match="Sigmoid"):
        export_c(DeployedPolicy({"policy": net}, {"policy": 0}), tmp_path / "x", 2)


def _export_cli(capsys, *args: str) -> tuple[int, str]:
    from asymbench.cli import main

    code = main(["export", *args])
    return code, capsys.readouterr().err


def _damage(run, tmp_path, how: str):
    """A copy of ``run``: unfinished (no run.json), with a zero-byte model file, or of a task
    the registry no longer knows (an older run that recorded no task settings)."""
    import shutil

    from asymbench.runs import read_json

    copy = tmp_path / how
    shutil.copytree(run, copy)
    if how == "unfinished":
        (copy / "run.json").unlink()
    elif how == "zero_byte_model":
        (copy / "model" / "policy.zip").write_bytes(b"")
    else:
        config = read_json(copy / "config.json")
        config.pop("task_settings")
        write_json(copy / "config.json", {**config, "task": "MountainCarRenamed"})
    return copy


@pytest.mark.parametrize("how, says", [
    ("unfinished", "is unfinished (no run.json); rerun its training command"),
    ("zero_byte_model", "policy.zip is damaged"),
    ("unknown_task", "unknown task 'MountainCarRenamed'")])
def test_bad_runs_are_refused_with_one_line(runs, tmp_path, capsys, how, says):
    run = _damage(runs["s_only"], tmp_path, how)
    out = tmp_path / "c"
    code, err = _export_cli(capsys, str(run), "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and says in err, err
    assert err.startswith("asymbench export: error: ") and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".c.*"))


def test_prefix_must_be_a_c_identifier(runs, tmp_path, capsys):
    for prefix in ("9lives_", "my-policy", "__x", "_Policy", ""):
        code, err = _export_cli(capsys, str(runs["s_only"]), "--out", str(tmp_path / "c"),
                                "--prefix", prefix)
        assert code == 2 and err.count("\n") == 1 and f"--prefix '{prefix}'" in err, err
    assert not (tmp_path / "c").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 48 KiB tmpfs: an asym export (its 64-wide large actor) does not fit, an s_only one does."""
    import shutil
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command: cannot make a small filesystem")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_leaves_nothing_behind(runs, tiny_disk, capsys):
    """A full disk: one line naming the file, exit 1, and not one file left; re-exported
    over an earlier export, the earlier files stay as they were."""
    out = tiny_disk / "c"
    code, err = _export_cli(capsys, str(runs["asym"]), "--out", str(out))
    assert code == 1 and err.count("\n") == 1, err
    assert "No space left on device while writing" in err and str(out) in err
    assert list(tiny_disk.iterdir()) == []
    assert _export_cli(capsys, str(runs["s_only"]), "--out", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = _export_cli(capsys, str(runs["asym"]), "--out", str(out))
    assert code == 1 and "No space left on device" in err
    assert [p.name for p in tiny_disk.iterdir()] == ["c"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
