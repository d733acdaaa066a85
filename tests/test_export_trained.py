"""``asymbench export`` on runs trained by ``asymbench train``: the C policy acts as the deployed
PyTorch policy (``asymbench.evaluation.load_deployed``) at every step and picks the same
sub-policy at every decision, on a 2-dim action with a 256-wide large actor (Swimmer) and on a
goal task (FetchPickAndPlace); its fault contract holds on NaN, +-inf and +-FLT_MAX; its FLOPs
are those its loops execute (counted from the C source); two exports link into one C++
program; the harness is clean under the address and undefined-behaviour sanitizers."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asymbench.export import build, find_compiler, replay

pytestmark = pytest.mark.skipif(find_compiler() is None,
                                reason="no C compiler ($CC, cc, gcc or clang) on the PATH: "
                                       "the exported C policy cannot be built")

ASYMBENCH = [sys.executable, "-m", "asymbench.cli"]
ENV = {**os.environ, "MUJOCO_GL": "egl"}
TINY = ["--steps", "400", "--learning-starts", "100", "--master-learning-starts", "50",
        "--max-episode-steps", "60", "--quiet"]
EPISODE = 23     # not a multiple of macro_len (5): episodes end mid-macro
EPISODES = 3
ATOL = 1e-5
FLAGS = ("-O2", "-Werror")
BUILDS = (FLAGS, ("-O2", "-march=native", "-Werror"), ("-Os", "-Werror"))  # benchmarks/c_runtime.py's
FLT_MAX = float(np.finfo(np.float32).max)
FAULTS = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf, "+max": FLT_MAX, "-max": -FLT_MAX}
TASKS = {"Swimmer": "swimmer_", "FetchPickAndPlace": "fetch_"}


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*ASYMBENCH, *args], capture_output=True, text=True, env=ENV, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Per task: a tiny asym run trained and exported through the CLI (with its own prefix)."""
    root = tmp_path_factory.mktemp("trained")
    out = {}
    for task, prefix in TASKS.items():
        run, export = root / task, root / f"{task}_c"
        cli("train", "--task", task, "--method", "asym", "--seed", "0", "--out", str(run), *TINY)
        cli("export", str(run), "--out", str(export), "--prefix", prefix)
        out[task] = (run, export)
    return out


def _deployed(run: Path):
    from asymbench.evaluation import load_deployed
    from asymbench.runs import read_json
    from asymbench.tasks import env_dims, task_from_config

    config = read_json(run / "config.json")
    task = task_from_config(config)
    return load_deployed(run, config, env_dims(task)[0], task=task), task


def _trace(policy, task, seed: int = 0):
    """Episodes of the PyTorch deployed policy as ``asymbench evaluate`` runs them: per episode
    its observations, actions and the network used at every step."""
    from asymbench.tasks import make_env

    env = make_env(task, max_episode_steps=EPISODE)
    episodes = []
    for episode in range(EPISODES):
        obs, _ = env.reset(seed=seed + episode)
        current, rows = "small", []
        for step in range(EPISODE):
            action, current = policy.act(obs, step, current)
            rows.append((np.asarray(obs, np.float32), action, ["small", "large"].index(current)))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        episodes.append(rows)
    env.close()
    return episodes


def _replay_episodes(binary, episodes, act_dim):
    """The C policy on the same episodes: one harness run (reset every EPISODE decisions) when
    all have that length, else one run per episode."""
    groups = [sum(episodes, [])] if all(len(e) == EPISODE for e in episodes) else episodes
    actions, used = [], []
    for rows in groups:
        observations = np.array([r[0] for r in rows])
        a, u, _ = replay(binary, observations, act_dim, episode_len=min(EPISODE, len(rows)))
        actions.append(a)
        used.append(u)
    return np.concatenate(actions), np.concatenate(used)


@pytest.mark.parametrize("task", list(TASKS))
def test_trained_run_acts_as_the_pytorch_policy(trained, task, tmp_path):
    run, export = trained[task]
    policy, spec = _deployed(run)
    manifest = json.loads((export / "export.json").read_text())
    act_dim = manifest["act_dim"]
    episodes = _trace(policy, spec)
    actions = np.array([r[1] for e in episodes for r in e])
    used = np.array([r[2] for e in episodes for r in e])
    c_actions, c_used = _replay_episodes(build(export, FLAGS), episodes, act_dim)
    np.testing.assert_allclose(c_actions, actions, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(c_used, used)
    # The master decides only at macro starts (every 5 steps from each reset).
    steps = np.concatenate([np.arange(len(e)) for e in episodes])
    assert all(used[t] == used[t - 1] for t in range(1, len(used)) if steps[t] % 5)
    if task == "Swimmer":
        assert act_dim == 2 and "linear 256x256" in manifest["layers"]["large"]
    else:
        assert spec.settings.get("her") and manifest["obs_dim"] == 31 and act_dim == 4


def _master_choices(policy, observations):
    with torch.inference_mode():
        return policy.master(torch.as_tensor(observations)).numpy()


@pytest.mark.parametrize("task", list(TASKS))
def test_master_choices_match_on_both_sides(trained, task):
    """States around the visited ones on which the trained master picks small and large: the C
    master picks the same at every one (so both of its choices are compared)."""
    run, export = trained[task]
    policy, spec = _deployed(run)
    visited = np.array([r[0] for e in _trace(policy, spec, seed=50) for r in e])
    rng = np.random.default_rng(0)
    states = (visited[rng.integers(len(visited), size=2000)]
              * rng.uniform(-3, 3, (2000, visited.shape[1]))).astype(np.float32)
    expected = _master_choices(policy, states)
    assert set(expected) == {0, 1}, "the trained master picks one side everywhere"
    # bench resets every decision (-e 1): each one is a master decision
    _, c_used, _ = replay(build(export, FLAGS), states, policy.networks["small"].mu.out_features,
                          episode_len=1)
    np.testing.assert_array_equal(c_used, expected)


def _faulty_observations(base: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each fault value in each observation element, then in all elements at once."""
    rows, labels = [], []
    for name, value in FAULTS.items():
        for j in [*range(len(base)), None]:
            obs = base.copy()
            obs[slice(None) if j is None else j] = value
            rows.append(obs)
            labels.append(f"{name} at {'all' if j is None else j}")
    return np.array(rows, np.float32), labels


@pytest.mark.parametrize("task", list(TASKS))
def test_fault_contract_nan_inf_and_float_max(trained, task):
    """Non-finite and largest-finite observations: the action is NaN exactly where PyTorch's is,
    finite actions agree, the master's choice is torch.argmax's, and the fault count the
    harness reports (act() returning 1) is the number of non-finite PyTorch actions."""
    run, export = trained[task]
    policy, spec = _deployed(run)
    base = _trace(policy, spec)[0][7][0]
    observations, labels = _faulty_observations(base)
    expected, chosen = [], []
    for obs in observations:  # a master decision (step 0) on every one
        action, current = policy.act(obs, 0, "small")
        expected.append(action)
        chosen.append(["small", "large"].index(current))
    expected = np.array(expected)
    nan = np.isnan(expected)
    for flags in BUILDS:  # the contract holds whatever the optimisation
        binary = build(export, flags, output="bench_" + "_".join(f.strip("-=") for f in flags))
        c_actions, c_used, timing = replay(binary, observations, expected.shape[1], episode_len=1)
        for row, label in enumerate(labels):
            assert np.array_equal(np.isnan(c_actions[row]), nan[row]), \
                f"{' '.join(flags)}, {label}: C {c_actions[row]}, PyTorch {expected[row]}"
        np.testing.assert_allclose(c_actions[~nan], expected[~nan], rtol=0, atol=ATOL)
        np.testing.assert_array_equal(c_used, chosen)
        assert timing["faults"] == int((~np.isfinite(expected)).any(axis=1).sum())
    # The contract is exercised: a NaN anywhere gives a NaN action, as in PyTorch.
    assert nan[[i for i, label in enumerate(labels) if label.startswith("nan")]].all()
    assert timing["faults"] > 0


def _weight_multiplies(source: str) -> dict[str, int]:
    """Per function of a generated policy.c: how many multiplications by a weight its loops
    execute, read from the C text (for loops with constant bounds, nested or not, braced or
    not), independently of the code that wrote it."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    counts = {}
    for name, body in re.findall(r"^static \w+ (\w+)\([^)]*\)\n\{\n(.*?)^\}", source, re.M | re.S):
        tokens = re.findall(r"\+\+|\+=|[A-Za-z_]\w*|\d+\.?\d*f?|\S", body)
        total, i = 0, 0
        while i < len(tokens):
            count, i = _statement(tokens, i)
            total += count
        counts[name] = total
    return counts


def _statement(tokens: list[str], i: int) -> tuple[int, int]:
    """(weight multiplications executed, next index) of the statement at ``tokens[i]``."""
    if tokens[i] == "{":
        total, i = 0, i + 1
        while tokens[i] != "}":
            count, i = _statement(tokens, i)
            total += count
        return total, i + 1
    if tokens[i] == "for":
        close = i + 1 + tokens[i + 1:].index(")")
        header = " ".join(tokens[i + 2:close])
        m = re.fullmatch(r"int (\w+) = (\d+) ; \1 < (\d+) ; (?:\+\+ \1|\1 \+= (\d+))", header)
        assert m, f"unexpected loop header: {header}"
        trips = len(range(int(m[2]), int(m[3]), int(m[4] or 1)))
        count, end = _statement(tokens, close + 1)
        return trips * count, end
    depth, j = 0, i
    while depth or tokens[j] != ";":
        depth += {"{": 1, "}": -1}.get(tokens[j], 0)
        j += 1
    statement = tokens[i:j]
    return sum(t == "*" and _is_weight(statement, k - 1) for k, t in enumerate(statement)), j + 1


def _is_weight(tokens: list[str], k: int) -> bool:
    """Whether the operand ending at ``tokens[k]`` is an element of a weight array (``*_w<N>``)."""
    while k >= 0 and tokens[k] == "]":
        depth = 0
        while True:
            depth += {"]": 1, "[": -1}.get(tokens[k], 0)
            k -= 1
            if depth == 0:
                break
    return k >= 0 and re.search(r"_w\d+$", tokens[k]) is not None


@pytest.mark.parametrize("task", list(TASKS))
def test_flops_are_what_the_c_loops_execute(trained, task):
    """export.json's executed FLOPs = 2 x the weight multiplications counted in policy.c's
    loops = PyTorch's own count (torch.utils.flop_counter) of the networks the C code runs."""
    from torch.utils.flop_counter import FlopCounterMode

    run, export = trained[task]
    prefix = TASKS[task]
    manifest = json.loads((export / "export.json").read_text())
    counted = _weight_multiplies((export / "policy.c").read_text())
    executed = manifest["flops_executed"]
    assert {f"{prefix}net{i}_forward": executed[n] for i, n in enumerate(manifest["networks"])} \
        == {k: 2 * v for k, v in counted.items() if k.endswith("_forward")}
    assert executed["master"] == 2 * counted[f"{prefix}master_argmax"]
    policy, _ = _deployed(run)
    x = torch.zeros(1, manifest["obs_dim"])
    for name in manifest["networks"]:
        net = policy.networks[name]
        with FlopCounterMode(display=False) as flops:
            net.mu(net.latent_pi(x))
        assert flops.get_total_flops() == executed[name]
    with FlopCounterMode(display=False) as flops:
        policy.master.q_net(x)
    assert flops.get_total_flops() == executed["master"]


CPP_MAIN = """\
#include <cstdio>
#include "swim/policy.h"
#include "fetch/policy.h"
{unity}
int main()
{{
    float swim_obs[SWIMMER_OBS_DIM] = {{0}}, swim_action[SWIMMER_ACT_DIM];
    float fetch_obs[FETCH_OBS_DIM] = {{0}}, fetch_action[FETCH_ACT_DIM];
    swimmer_reset();
    fetch_reset();
    int faults = swimmer_act(swim_obs, swim_action) + fetch_act(fetch_obs, fetch_action);
    for (int k = 0; k < SWIMMER_ACT_DIM; ++k) std::printf("%.9g ", swim_action[k]);
    for (int k = 0; k < FETCH_ACT_DIM; ++k) std::printf("%.9g ", fetch_action[k]);
    std::printf("%d %d %d\\n", swimmer_current(), fetch_current(), faults);
    return 0;
}}
"""


def _run(cmd, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not shutil.which("g++"), reason="no g++ for the C++ test")
@pytest.mark.parametrize("unity", [False, True], ids=["linked", "one_translation_unit"])
def test_two_exports_link_into_one_cpp_program(trained, tmp_path, unity):
    """Two exports (prefixes swimmer_ and fetch_) in one C++ program: their headers in one C++
    translation unit (extern "C"), the policy.c files compiled as C and linked, or included in
    that same translation unit; both act as their PyTorch policies. Without prefixes (both
    'asymbench_') the link fails: the test can tell."""
    for task, folder in (("Swimmer", "swim"), ("FetchPickAndPlace", "fetch")):
        (tmp_path / folder).mkdir()
        for name in ("policy.h", "policy.c"):
            (tmp_path / folder / name).write_bytes((trained[task][1] / name).read_bytes())
    include = '#include "swim/policy.c"\n#include "fetch/policy.c"\n' if unity else ""
    (tmp_path / "main.cpp").write_text(CPP_MAIN.format(unity=include))
    warnings = ["-Wall", "-Wextra", "-Werror"]
    if unity:
        steps = [["g++", "-O2", *warnings, "main.cpp", "-o", "both"]]
    else:
        steps = [[find_compiler(), "-O2", "-std=c99", *warnings, "-pedantic", "-c", f"{f}/policy.c",
                  "-o", f"{f}.o"] for f in ("swim", "fetch")]
        steps.append(["g++", "-O2", *warnings, "main.cpp", "swim.o", "fetch.o", "-lm", "-o", "both"])
    for cmd in steps:
        done = _run(cmd, tmp_path)
        assert done.returncode == 0, done.stderr
    values = _run(["./both"], tmp_path).stdout.split()
    expected = []
    for task in TASKS:
        policy, _ = _deployed(trained[task][0])
        action, current = policy.act(np.zeros(json.loads(
            (trained[task][1] / "export.json").read_text())["obs_dim"], np.float32), 0, "small")
        expected.append((action, current))
    got = np.array(values[:-3], float)
    np.testing.assert_allclose(got, np.concatenate([a for a, _ in expected]), rtol=0, atol=ATOL)
    assert values[-3:] == [str(["small", "large"].index(c)) for _, c in expected] + ["0"]


def test_exports_without_distinct_prefixes_clash(trained, tmp_path):
    """The control for the test above: the same two runs exported with the default prefix."""
    objects = []
    for task in TASKS:
        out = tmp_path / task
        cli("export", str(trained[task][0]), "--out", str(out))
        done = _run([find_compiler(), "-O2", "-c", "policy.c", "-o", "policy.o"], out)
        assert done.returncode == 0, done.stderr
        objects.append(str(out / "policy.o"))
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    done = _run([find_compiler(), "main.c", *objects, "-lm", "-o", "both"], tmp_path)
    assert done.returncode != 0 and "asymbench_act" in done.stderr


def _sanitizers_work(tmp_path) -> bool:
    probe = tmp_path / "probe.c"
    probe.write_text("#include <stdlib.h>\nint main(void) { free(malloc(1)); return 0; }\n")
    done = _run([find_compiler(), *SANITIZE, str(probe), "-o", str(tmp_path / "probe")], tmp_path)
    return done.returncode == 0 and _run([str(tmp_path / "probe")], tmp_path).returncode == 0


SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1")


def test_harness_is_clean_under_sanitizers(trained, tmp_path):
    """bench built with ASan + UBSan (LeakSanitizer included): a replay with faults, forced
    sub-policy patterns and resets exits 0 without a report; an invalid -c byte (2, 255) is
    refused with one line naming the file and the byte, exit 2, nothing leaked."""
    if not _sanitizers_work(tmp_path):
        pytest.skip(f"{find_compiler()} cannot build and run -fsanitize=address,undefined here")
    run, export = trained["Swimmer"]
    policy, spec = _deployed(run)
    visited = np.array([r[0] for e in _trace(policy, spec) for r in e])
    faulty, _ = _faulty_observations(visited[3])
    observations = np.concatenate([visited, faulty])
    folder = tmp_path / "asan"
    folder.mkdir()
    for name in ("policy.h", "policy.c", "bench.c"):
        (folder / name).write_bytes((export / name).read_bytes())
    binary = build(folder, SANITIZE + ("-Werror",))
    plain, used, timing = replay(binary, observations, 2, episode_len=EPISODE, repeats=2)
    reference, reference_used, _ = replay(build(export, FLAGS), observations, 2, episode_len=EPISODE)
    np.testing.assert_array_equal(np.isnan(plain), np.isnan(reference))
    np.testing.assert_array_equal(used, reference_used)
    assert timing["faults"] > 0
    forced = (np.arange(len(observations)) // 5) % 2
    replay(binary, observations, 2, episode_len=EPISODE, choices=forced)
    np.asarray(observations, np.float32).tofile(tmp_path / "obs.f32")
    for bad in (2, 255):
        choices = forced.astype(np.uint8)
        choices[7] = bad
        choices.tofile(tmp_path / "choices.u8")
        done = _run([str(binary), "obs.f32", "-c", "choices.u8"], tmp_path)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr == f"choices.u8: byte 7 is {bad}; expected a network index 0..1 (0: small, 1: large)\n"
