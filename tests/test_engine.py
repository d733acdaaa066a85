"""The batched engine against stable-baselines3, the reference it replaces for speed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch._dynamo.utils import counters

from asymbench.agents import make_sac
from asymbench.engine import train_group
from asymbench.runs import RunError, read_json
from asymbench.stacked import StackedSAC
from asymbench.tasks import get_task, make_env, observation_flattener
from asymbench.train_config import TrainRequest


def _recording_standard_normal(monkeypatch):
    """Records every standard-normal draw SB3's Gaussian makes (rsample's noise)."""
    import torch.distributions.normal as normal

    draws, original = [], normal._standard_normal

    def record(*args, **kwargs):
        value = original(*args, **kwargs)
        draws.append(value.clone())
        return value

    monkeypatch.setattr(normal, "_standard_normal", record)
    return draws


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_gpu)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("task, ent_coef", [("MountainCarContinuous", "auto"), ("walker-stand", 0.01)])
def test_stacked_update_equals_sb3_train(monkeypatch, task, ent_coef, device):
    """From identical weights, batch and noise, one StackedSAC.update (on the CPU or a GPU)
    equals SAC.train(1) on the CPU for every member: actor, both critics, their targets and the
    entropy coefficient."""
    settings = dict(get_task(task).sac, ent_coef=ent_coef, batch_size=16)
    env = make_env(get_task(task), seed=0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    members, batch_size, width = 3, settings["batch_size"], 8
    sacs = [make_sac(settings, env, width, seed, buffer_size=1) for seed in range(members)]
    stacked = StackedSAC(members, obs_dim, act_dim, width, settings, device)
    for k, sac in enumerate(sacs):
        stacked.load_member(k, sac)

    gen = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randn(members, batch_size, obs_dim, generator=gen),
             "next_obs": torch.randn(members, batch_size, obs_dim, generator=gen),
             "action": torch.rand(members, batch_size, act_dim, generator=gen) * 2 - 1,
             "reward": torch.randn(members, batch_size, generator=gen),
             "done": (torch.rand(members, batch_size, generator=gen) < 0.2).float()}
    draws = _recording_standard_normal(monkeypatch)
    progress_remaining = 0.7
    for k, sac in enumerate(sacs):
        sample = ReplayBufferSamples(batch["obs"][k], batch["action"][k], batch["next_obs"][k],
                                     batch["done"][k][:, None], batch["reward"][k][:, None])
        monkeypatch.setattr(sac.replay_buffer, "sample", lambda *a, s=sample, **kw: s)
        sac._current_progress_remaining = progress_remaining
        sac.train(gradient_steps=1, batch_size=batch_size)
    assert len(draws) == 2 * members  # the actor's noise on s, then on s'
    noise_pi = torch.stack(draws[0::2])
    noise_next = torch.stack(draws[1::2])
    stacked.update({key: value.to(device) for key, value in batch.items()}, noise_pi.to(device),
                   noise_next.to(device), progress_remaining)

    for k, sac in enumerate(sacs):
        reference = make_sac(settings, env, width, 99, buffer_size=1)
        stacked.store_member(k, reference)
        for part in ("actor", "critic", "critic_target"):
            ours = dict(getattr(reference, part).named_parameters())
            for name, param in getattr(sac, part).named_parameters():
                assert torch.allclose(ours[name], param, atol=1e-5, rtol=0), (k, part, name)
        if ent_coef == "auto":
            assert torch.allclose(reference.log_ent_coef.cpu(), sac.log_ent_coef, atol=1e-6)
        # The update moved the weights: the comparison is not between two untouched copies.
        assert not torch.equal(sac.actor.mu.weight, make_sac(settings, env, width, k, buffer_size=1).actor.mu.weight)


def _request(tmp_path, method="asym", steps=1200, **kw):
    # Master learning starts after 200 env steps: >= 40 macros, more than a master batch (32).
    return TrainRequest(task="MountainCarContinuous", method=method, seed=0, out=tmp_path, steps=steps,
                        learning_starts=50, master_learning_starts=200, max_episode_steps=120,
                        checkpoint_every=kw.pop("checkpoint_every", 10_000), progress=False, **kw)


def test_member_does_not_depend_on_the_group(tmp_path):
    """Seed 3 trained alone and in a group of three writes the same learning curve and weights,
    bit for bit (one-output layers avoid batched matmul, and Adam is not the fused kernel, whose
    rounding depends on where an element falls in the stacked tensor)."""
    train_group(_request(tmp_path), [3], tmp_path / "alone")
    train_group(_request(tmp_path), [1, 3, 4], tmp_path / "group")
    alone = pd.read_csv(tmp_path / "alone" / "seed3" / "progress.csv")
    grouped = pd.read_csv(tmp_path / "group" / "seed3" / "progress.csv")
    assert len(alone) >= 3
    pd.testing.assert_frame_equal(alone.drop(columns="wall_s"), grouped.drop(columns="wall_s"),
                                  check_exact=True)
    a = torch.load(tmp_path / "alone" / "seed3" / "model" / "master.pt")["state_dict"]
    g = torch.load(tmp_path / "group" / "seed3" / "model" / "master.pt")["state_dict"]
    for name in a:
        assert torch.equal(a[name], g[name]), name
    for name in ("small", "large"):
        from asymbench.agents import load_sac
        x = load_sac(tmp_path / "alone" / "seed3" / "model" / f"{name}.zip").policy.state_dict()
        y = load_sac(tmp_path / "group" / "seed3" / "model" / f"{name}.zip").policy.state_dict()
        assert all(torch.equal(x[k], y[k]) for k in x), name
    other = pd.read_csv(tmp_path / "group" / "seed1" / "progress.csv")
    assert not other["episode_return"].equals(grouped["episode_return"])


def test_group_writes_one_run_folder_per_seed(tmp_path):
    summaries = train_group(_request(tmp_path, method="l_only", steps=300), [0, 1], tmp_path / "g")
    assert len(summaries) == 2
    for seed in (0, 1):
        run = tmp_path / "g" / f"seed{seed}"
        config = read_json(run / "config.json")
        assert config["seed"] == seed and config["engine"] == "batched" and config["group_seeds"] == [0, 1]
        assert (run / "model" / "policy.zip").exists() and (run / "run.json").exists()
        assert read_json(run / "run.json")["steps"] == 300
    # A rerun finds the group finished and does nothing.
    assert train_group(_request(tmp_path, method="l_only", steps=300), [0, 1], tmp_path / "g") == summaries


def test_killed_group_resumes_to_the_same_step_count(tmp_path):
    """A checkpoint left by a killed job is picked up and the group finishes at the total."""
    import subprocess
    import sys

    script = (
        "import os, asymbench.engine as e\n"
        "from asymbench.train_config import TrainRequest\n"
        "orig = e.GroupCheckpoint.save\n"
        "def save_then_die(*a):\n    orig(*a); os._exit(9)\n"
        "e.GroupCheckpoint.save = save_then_die\n"
        f"r = TrainRequest(task='MountainCarContinuous', method='asym', seed=0, out='x', steps=400,"
        " learning_starts=50, master_learning_starts=200, max_episode_steps=120, checkpoint_every=200,"
        " progress=False)\n"
        f"e.train_group(r, [0, 1], {str(tmp_path / 'g')!r})\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == 9
    assert (tmp_path / "g" / "group_checkpoint.pt").exists()
    assert not (tmp_path / "g" / "seed0" / "run.json").exists()
    train_group(_request(tmp_path, steps=400, checkpoint_every=200), [0, 1], tmp_path / "g")
    for seed in (0, 1):
        assert read_json(tmp_path / "g" / f"seed{seed}" / "run.json")["steps"] == 400
    assert not (tmp_path / "g" / "group_checkpoint.pt").exists()


@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_her_replay_equals_sb3_her_replay_buffer(monkeypatch, strategy):
    """Two members fed Fetch transitions (short episodes, a buffer that wraps four times), each
    next to its own SB3 HerReplayBuffer fed the same: the episode bookkeeping is equal after
    every step; rows are drawn only where SB3 draws them; and from the same rows and goal draws
    a batch equals SB3's (real rows, then relabelled ones with new goals and rewards)."""
    from stable_baselines3 import HerReplayBuffer
    from stable_baselines3.common.vec_env import DummyVecEnv

    from asymbench.engine import _goal_layout
    from asymbench.stacked import StackedHerReplay

    capacity, members, batch_size, her = 23, 2, 40, {"goal_selection_strategy": strategy, "n_sampled_goal": 4}
    envs = [make_env(get_task("FetchPickAndPlace"), seed=k, max_episode_steps=7, flatten=False)
            for k in range(members)]
    space = envs[0].observation_space
    flat = observation_flattener(space)
    references = [HerReplayBuffer(capacity, space, env.action_space, env=DummyVecEnv([lambda e=env: e]), **her)
                  for env in envs]
    goal_dim, desired_goal = _goal_layout(space)
    ours = StackedHerReplay(members, capacity, flat(space.sample()).shape[0], 4, her, goal_dim,
                            desired_goal, envs[0].get_wrapper_attr("compute_reward"))
    obs = [env.reset(seed=k)[0] for k, env in enumerate(envs)]
    jitter = np.random.default_rng(0)
    for _ in range(4 * capacity):
        steps = [env.step(env.action_space.sample()) for env in envs]
        for step in steps:  # random actions rarely move the object: make every achieved goal differ
            step[0]["achieved_goal"] = step[0]["achieved_goal"] + jitter.normal(0, 0.03, goal_dim)
        done = np.array([s[2] or s[3] for s in steps])
        for k, (ref, (next_obs, reward, *_)) in enumerate(zip(references, steps)):
            ref.add({key: v[None] for key, v in obs[k].items()}, {key: v[None] for key, v in next_obs.items()},
                    np.zeros((1, 4)) + k, np.array([reward]), done[k:k + 1], [{}])
        ours.add(episode_end=done, next_achieved=np.stack([s[0]["achieved_goal"] for s in steps]),
                 obs=torch.as_tensor(np.stack([flat(o) for o in obs])),
                 next_obs=torch.as_tensor(np.stack([flat(s[0]) for s in steps])),
                 action=torch.zeros(members, 4) + torch.arange(members)[:, None],
                 reward=torch.tensor([s[1] for s in steps], dtype=torch.float32),
                 done=torch.as_tensor(done, dtype=torch.float32))
        for k, ref in enumerate(references):
            np.testing.assert_array_equal(ours.ep_start[k], ref.ep_start[:, 0])
            np.testing.assert_array_equal(ours.ep_length[k], ref.ep_length[:, 0])
        obs = [s[0] if not d else env.reset()[0] for s, d, env in zip(steps, done, envs)]
    assert all((ref.ep_length[:, 0] > 0).sum() > 2 * 7 for ref in references)

    # Every member samples exactly SB3's valid rows (its own ended episodes, none overwritten).
    for k, ref in enumerate(references):
        drawn = ours.valid_rows_for(k, np.random.default_rng(k), 5000)
        assert set(drawn) == set(np.flatnonzero(ref.ep_length[:, 0] > 0))

    batch = ours.sample([np.random.default_rng(10 + k) for k in range(members)], batch_size)
    for k, ref in enumerate(references):
        generator = np.random.default_rng(10 + k)
        rows = ours.valid_rows_for(k, generator, batch_size)   # the member's draw, replayed

        def choice(valid, size, replace):
            assert np.isin(rows, valid).all() and size == batch_size and replace
            return rows
        monkeypatch.setattr(np.random, "choice", choice)
        monkeypatch.setattr(np.random, "randint", lambda low, high=None, size=None: generator.integers(low, high, size))
        sample = ref.sample(batch_size)
        cat = lambda d: torch.cat([d[key] for key in space.spaces], dim=1).float()  # noqa: E731
        torch.testing.assert_close(batch["obs"][k], cat(sample.observations), rtol=0, atol=0)
        torch.testing.assert_close(batch["next_obs"][k], cat(sample.next_observations), rtol=0, atol=0)
        torch.testing.assert_close(batch["action"][k], sample.actions.float(), rtol=0, atol=0)
        torch.testing.assert_close(batch["reward"][k], sample.rewards.float()[:, 0], rtol=0, atol=0)
        torch.testing.assert_close(batch["done"][k], sample.dones.float()[:, 0], rtol=0, atol=0)
        n_real = batch_size - int(0.8 * batch_size)
        stored = cat({key: torch.as_tensor(ref.observations[key][rows[:batch_size - n_real], 0])
                      for key in space.spaces})
        assert not torch.equal(batch["obs"][k][n_real:], stored)  # goals were relabelled
        assert 0 < batch["reward"][k][n_real:].sum() < batch_size - n_real  # to hits and misses


def test_goal_task_member_does_not_depend_on_the_group(tmp_path):
    """FetchPickAndPlace (hindsight relabelling, the master, both sub-policies): seed 3 alone and
    in a group of two writes the same learning curve, and its model evaluates as a run of the
    reference engine does."""
    from asymbench.evaluation import evaluate_run

    request = TrainRequest(task="FetchPickAndPlace", method="asym", seed=0, out=tmp_path, steps=420,
                           learning_starts=300, master_learning_starts=300, max_episode_steps=20,
                           checkpoint_every=10_000, progress=False)
    train_group(request, [3], tmp_path / "alone")
    train_group(request, [1, 3], tmp_path / "group")
    alone = pd.read_csv(tmp_path / "alone" / "seed3" / "progress.csv")
    grouped = pd.read_csv(tmp_path / "group" / "seed3" / "progress.csv")
    assert len(alone) >= 20
    pd.testing.assert_frame_equal(alone.drop(columns="wall_s"), grouped.drop(columns="wall_s"),
                                  check_exact=True)
    result = evaluate_run(tmp_path / "group" / "seed3", episodes=2, out=tmp_path / "eval.json")
    assert result["episodes"] == 2 and np.isfinite(result["mean_return"])


def test_fetch_member_learns_from_its_own_first_master_batch(tmp_path):
    """FetchPickAndPlace ends an episode at success, so members' master buffers reach the
    authors' batch of 256 macros at different env steps: seed 1 fills its buffer first and
    starts learning then, in a group with seed 3 as alone (learning curve and master bit for
    bit), rather than waiting for seed 3."""
    request = TrainRequest(task="FetchPickAndPlace", method="asym", seed=0, out=tmp_path, steps=1500,
                           learning_starts=1400, master_learning_starts=300, max_episode_steps=20,
                           checkpoint_every=100_000, progress=False)
    assert get_task("FetchPickAndPlace").master["batch_size"] == 256
    train_group(request, [1], tmp_path / "alone")
    train_group(request, [1, 3], tmp_path / "group")
    updates = {seed: read_json(tmp_path / "group" / f"seed{seed}" / "run.json")["master_updates"]
               for seed in (1, 3)}
    assert updates[1] > updates[3] > 0  # the two members' gates opened at different steps
    alone = pd.read_csv(tmp_path / "alone" / "seed1" / "progress.csv").drop(columns="wall_s")
    grouped = pd.read_csv(tmp_path / "group" / "seed1" / "progress.csv").drop(columns="wall_s")
    pd.testing.assert_frame_equal(alone, grouped, check_exact=True)
    masters = [torch.load(tmp_path / where / "seed1" / "model" / "master.pt")["state_dict"]
               for where in ("alone", "group")]
    assert all(torch.equal(masters[0][name], masters[1][name]) for name in masters[0])


def test_goal_task_group_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """The relabelling buffer's episode bookkeeping goes into the group checkpoint and comes
    back: a group stopped after its checkpoint resumes and finishes at the total, with the
    episodes before the checkpoint as an uninterrupted run wrote them."""
    import asymbench.engine as engine

    class Stop(Exception):
        pass

    def save_then_stop(*args):
        save(*args)
        raise Stop

    request = TrainRequest(task="FetchPickAndPlace", method="l_only", seed=0, out=tmp_path, steps=420,
                           learning_starts=300, max_episode_steps=20, checkpoint_every=360, progress=False)
    train_group(request, [3], tmp_path / "whole")
    save = engine.GroupCheckpoint.save
    monkeypatch.setattr(engine.GroupCheckpoint, "save", save_then_stop)
    with pytest.raises(Stop):
        train_group(request, [3], tmp_path / "stopped")
    monkeypatch.setattr(engine.GroupCheckpoint, "save", save)
    train_group(request, [3], tmp_path / "stopped")
    assert read_json(tmp_path / "stopped" / "seed3" / "run.json")["steps"] == 420
    whole = pd.read_csv(tmp_path / "whole" / "seed3" / "progress.csv").drop(columns="wall_s")
    resumed = pd.read_csv(tmp_path / "stopped" / "seed3" / "progress.csv").drop(columns="wall_s")
    before = whole["step"] <= 360
    pd.testing.assert_frame_equal(resumed[resumed["step"] <= 360], whole[before])
    assert (resumed["step"] > 360).sum() >= 2  # episodes after the resume (at most 20 steps each)


def test_zero_padded_small_policy_trains_as_it_would_alone(tmp_path, monkeypatch):
    """The small sub-policy rides zero-padded in the large one's stack (one update for both);
    its run equals the one with two separate stacks."""
    import asymbench.engine as engine

    train_group(_request(tmp_path, steps=300), [0, 1], tmp_path / "merged")
    monkeypatch.setattr(engine, "MERGE_MAX_WIDTH", 0)
    train_group(_request(tmp_path, steps=300), [0, 1], tmp_path / "separate")
    for seed in (0, 1):
        merged = pd.read_csv(tmp_path / "merged" / f"seed{seed}" / "progress.csv")
        separate = pd.read_csv(tmp_path / "separate" / f"seed{seed}" / "progress.csv")
        pd.testing.assert_frame_equal(merged.drop(columns="wall_s"), separate.drop(columns="wall_s"),
                                      atol=1e-4, rtol=0)
        for name in ("small", "large"):
            from asymbench.agents import load_sac
            a = load_sac(tmp_path / "merged" / f"seed{seed}" / "model" / f"{name}.zip").actor
            b = load_sac(tmp_path / "separate" / f"seed{seed}" / "model" / f"{name}.zip").actor
            for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
                assert torch.allclose(p, q, atol=1e-4), (name, n)


@needs_gpu
def test_gpu_group_follows_the_cpu_group(tmp_path):
    """On a GPU a group draws the same random numbers as on the CPU (host generators), so its
    runs differ from the CPU's only by float rounding, which the closed loop (actions -> states
    -> actions) carries forward: same episode ends, returns and large shares close. On an H100
    the returns of the first 10 episodes agreed to 3.5e-3 (of ~4); a wrong noise stream, batch
    or weight would move them by whole units."""
    train_group(_request(tmp_path), [0, 1], tmp_path / "cpu")
    train_group(_request(tmp_path), [0, 1], tmp_path / "cuda", device="cuda")
    for seed in (0, 1):
        cpu = pd.read_csv(tmp_path / "cpu" / f"seed{seed}" / "progress.csv")
        gpu = pd.read_csv(tmp_path / "cuda" / f"seed{seed}" / "progress.csv")
        assert len(cpu) >= 3 and read_json(tmp_path / "cuda" / f"seed{seed}" / "run.json")["device"] == "cuda"
        print(f"seed {seed}: largest return difference GPU - CPU "
              f"{(gpu['episode_return'] - cpu['episode_return']).abs().max():.2e}")
        pd.testing.assert_frame_equal(cpu[["step", "episode"]], gpu[["step", "episode"]])
        for column in ("episode_return", "large_share"):
            assert (gpu[column] - cpu[column]).abs().max() < 0.05, column


@needs_gpu
def test_gpu_steps_synchronise_only_to_read_the_actions(tmp_path):
    """Past set-up, a GPU group waits for the device once per env step: to read the actions
    the environments need. Counted with PyTorch's sync debug mode as the difference of two
    budgets, so set-up and saving cancel."""
    import warnings

    def syncs(steps: int) -> int:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train_group(_request(tmp_path, steps=steps), [0, 1], tmp_path / f"s{steps}", device="cuda")
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    extra = syncs(700) - syncs(500)   # 200 steps, all past the random warm-up (200 steps)
    print(f"synchronisations in 200 steps: {extra}")
    assert 0 < extra <= 200


def test_quiet_group_logs_a_line_per_checkpoint(tmp_path, capsys):
    """Without a progress bar (the pipeline's --quiet jobs) each checkpoint prints where the
    group is, so a long job's log is not silent for hours."""
    train_group(_request(tmp_path, steps=700, checkpoint_every=250), [0, 1], tmp_path / "g")
    lines = [line for line in capsys.readouterr().out.splitlines() if "checkpoint at step" in line]
    assert [line.split("checkpoint at step ")[1].split(" ")[0] for line in lines] == ["250", "500"]
    assert "of 700 (36%)" in lines[0] and "large share" in lines[0] and "env steps/s" in lines[0]


# --------------------------------------------------------------------------------------------
# Exact resumes: segments, signals, kills
# --------------------------------------------------------------------------------------------
def _weights(run) -> dict:
    """Every tensor a run deploys, by file and name."""
    from asymbench.agents import load_sac

    out = {}
    for path in sorted((run / "model").glob("*.zip")):
        out.update({f"{path.stem}.{k}": v for k, v in load_sac(path).policy.state_dict().items()})
    if (run / "model" / "master.pt").exists():
        saved = torch.load(run / "model" / "master.pt")["state_dict"]
        out.update({f"master.{k}": v for k, v in saved.items()})
    return out


def _assert_same_run(a, b):
    pa, pb = pd.read_csv(a / "progress.csv"), pd.read_csv(b / "progress.csv")
    assert len(pa) >= 2
    pd.testing.assert_frame_equal(pa.drop(columns="wall_s"), pb.drop(columns="wall_s"), check_exact=True)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


# MountainCar (classic control, asym: master, macros), Swimmer (MuJoCo), walker-stand (dm_control);
# 70-step episodes, so checkpoints and kills fall inside episodes and inside macros.
EXACT_CASES = [("MountainCarContinuous", "asym"), ("Swimmer", "l_only"), ("walker-stand", "asym")]


def _exact_request(tmp_path, task, method, checkpoint_every=10_000):
    return TrainRequest(task=task, method=method, seed=0, out=tmp_path, steps=500, learning_starts=60,
                        master_learning_starts=160 if method == "asym" else None, max_episode_steps=70,
                        checkpoint_every=checkpoint_every, progress=False)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The uninterrupted reference run of an exact case (seeds 0 and 1), trained once per module
    and shared by the segment, signal and kill tests, which only read it."""
    done = {}

    def get(task, method):
        if (task, method) not in done:
            out = tmp_path_factory.mktemp("straight") / f"{task}-{method}"
            train_group(_exact_request(out, task, method), [0, 1], out)
            done[task, method] = out
        return done[task, method]
    return get


@pytest.mark.parametrize("task, method", EXACT_CASES)
def test_segmented_run_equals_a_straight_run(tmp_path, task, method, straight_run):
    """Segments ending at milestones 170 and 333 (inside episodes and macros), with periodic
    checkpoints between them, end bit-identical to a run trained straight through, and each
    snapshot holds the straight run's curve up to its milestone."""
    straight = straight_run(task, method)
    request = _exact_request(tmp_path, task, method, checkpoint_every=100)
    train_group(request, [0, 1], tmp_path / "seg", until=170)
    train_group(request, [0, 1], tmp_path / "seg", until=333, segment_start=170)
    train_group(request, [0, 1], tmp_path / "seg", segment_start=333)
    for seed in (0, 1):
        _assert_same_run(straight / f"seed{seed}", tmp_path / "seg" / f"seed{seed}")
        curve = pd.read_csv(straight / f"seed{seed}" / "progress.csv")
        for milestone in (170, 333):
            snap = tmp_path / "seg" / "milestones" / str(milestone) / f"seed{seed}"
            summary = read_json(snap / "snapshot.json")
            assert summary["steps"] == milestone and summary["total_steps"] == 500
            assert summary["fraction_of_budget"] == milestone / 500
            pd.testing.assert_frame_equal(
                pd.read_csv(snap / "progress.csv").drop(columns="wall_s"),
                curve[curve["step"] <= milestone].drop(columns="wall_s"), check_exact=True)
    # Every schedule follows the budget: the snapshot's config is the full run's.
    assert read_json(tmp_path / "seg" / "milestones" / "170" / "seed0" / "config.json")["total_steps"] == 500


def _same_tree(a, b, where="checkpoint"):
    """Two checkpoints' contents equal bit for bit, wall times aside."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            if key != "wall_s":
                _same_tree(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same_tree(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("task, method", [("MountainCarContinuous", "asym"), ("walker-stand", "asym")])
def test_env_workers_step_the_same_transitions_and_resume_either_way(tmp_path, task, method, straight_run):
    """`asymbench train --env-workers 2` (one env per worker process) to a milestone writes the
    checkpoint serial stepping writes, bit for bit (replay buffers: observations, actions,
    rewards; env states; episodes in progress); each resumes the other way, and both end as the
    straight serial run (learning curves and weights)."""
    from asymbench import cli
    from asymbench.runs import load_state

    def train(out, workers, *extra):
        argv = ["train", "--task", task, "--method", method, "--seeds", "0", "1", "--out", str(out),
                "--steps", "500", "--learning-starts", "60", "--max-episode-steps", "70",
                "--checkpoint-every", "10000", "--quiet", "--env-workers", str(workers), *extra]
        assert cli.main(argv + (["--master-learning-starts", "160"] if method == "asym" else [])) == 0

    for workers in (0, 2):
        train(tmp_path / f"w{workers}", workers, "--until", "170")
        assert read_json(tmp_path / f"w{workers}" / "seed1" / "config.json")["runtime"]["env_workers"] == workers
    _same_tree(load_state(tmp_path / "w0" / "group_checkpoint.pt"),
               load_state(tmp_path / "w2" / "group_checkpoint.pt"))
    train(tmp_path / "w0", 2, "--segment-start", "170")
    train(tmp_path / "w2", 0, "--segment-start", "170")
    for seed in (0, 1):
        for out in ("w0", "w2"):
            _assert_same_run(straight_run(task, method) / f"seed{seed}", tmp_path / out / f"seed{seed}")


def _run_killed(tmp_path, task, method, out, script_tail: str, checkpoint_every: int):
    import subprocess
    import sys

    script = (
        "import os, signal, sys, asymbench.engine as e, asymbench.cli as cli\n"
        + script_tail +
        f"sys.exit(cli.main(['train', '--task', {task!r}, '--method', {method!r}, '--seeds', '0', '1',"
        f" '--out', {str(out)!r}, '--steps', '500', '--learning-starts', '60',"
        f" '--max-episode-steps', '70', '--checkpoint-every', '{checkpoint_every}', '--quiet']"
        f" + (['--master-learning-starts', '160'] if {method!r} == 'asym' else [])))\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


# At env step 237 (inside an episode and a macro) the process gets a signal, or dies.
AT_STEP = ("orig_add = e.StackedReplay.add\n"
           "def add(self, *a, **kw):\n"
           "    orig_add(self, *a, **kw)\n"
           "    if self.pos == 237 and not os.environ.get('RESUMED'):\n"
           "        {action}\n"
           "e.StackedReplay.add = add\n"
           "e.StackedHerReplay.__bases__ = (e.StackedReplay,)\n")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGUSR1"])
def test_signal_writes_a_checkpoint_and_the_rerun_is_bit_identical(tmp_path, signame, straight_run):
    """A signal mid-run: the job checkpoints the step it arrived at and exits with 128 + signum;
    the rerun resumes there and ends bit-identical to an uninterrupted run."""
    import signal

    straight = straight_run("MountainCarContinuous", "asym")
    out = tmp_path / "signalled"
    tail = AT_STEP.format(action=f"os.kill(os.getpid(), signal.{signame})")
    stopped = _run_killed(tmp_path, "MountainCarContinuous", "asym", out, tail, checkpoint_every=10_000)
    assert stopped.returncode == 128 + getattr(signal, signame), stopped.stderr
    assert f"stopped by {signame} at step 237" in stopped.stderr
    assert (out / "group_checkpoint.pt").exists() and not (out / "seed0" / "run.json").exists()
    train_group(_exact_request(tmp_path, "MountainCarContinuous", "asym"), [0, 1], out)
    for seed in (0, 1):
        _assert_same_run(straight / f"seed{seed}", out / f"seed{seed}")


@pytest.mark.parametrize("task, method", EXACT_CASES)
def test_killed_anywhere_resumes_bit_identically(tmp_path, task, method, straight_run):
    """kill -9 at step 237, after a checkpoint at 200 (mid-episode, mid-macro): the rerun
    resumes at 200 and ends bit-identical to an uninterrupted run."""
    straight = straight_run(task, method)
    out = tmp_path / "killed"
    killed = _run_killed(tmp_path, task, method, out, AT_STEP.format(action="os._exit(9)"),
                         checkpoint_every=100)
    assert killed.returncode == 9, killed.stderr
    assert not (out / "seed0" / "run.json").exists()
    train_group(_exact_request(tmp_path, task, method, checkpoint_every=100), [0, 1], out)
    for seed in (0, 1):
        _assert_same_run(straight / f"seed{seed}", out / f"seed{seed}")


def test_segment_faults_are_named(tmp_path):
    """A segment whose predecessor's checkpoint is missing, a checkpoint past the segment's end,
    and a milestone outside the budget: clear errors, nothing trained."""
    request = _exact_request(tmp_path, "MountainCarContinuous", "l_only", checkpoint_every=100)
    with pytest.raises(RunError, match="group_checkpoint.pt is missing or behind"):
        train_group(request, [0], tmp_path / "g", until=300, segment_start=200)
    train_group(request, [0], tmp_path / "g", until=250)
    with pytest.raises(RunError, match="past this segment's end 200"):
        train_group(request, [0], tmp_path / "g", until=200)
    for until, start in ((600, None), (0, None), (300, 300)):
        with pytest.raises(ValueError, match="within the run's budget"):
            train_group(request, [0], tmp_path / "g", until=until, segment_start=start)
    # Damaged checkpoints name themselves (a damaged latest alone falls back to the previous one).
    (tmp_path / "g" / "group_checkpoint.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "g" / "group_checkpoint.previous.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="group_checkpoint"):
        train_group(request, [0], tmp_path / "g", until=300, segment_start=250)


# --------------------------------------------------------------------------------------------
# Unchanged results: the committed fixtures (tests/fixtures/engine_runs.py)
# --------------------------------------------------------------------------------------------
def _fixture_cases():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "engine_runs.py"
    spec = importlib.util.spec_from_file_location("engine_runs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ENGINE_RUNS = _fixture_cases()


@pytest.mark.parametrize("case", sorted(ENGINE_RUNS.CASES))
def test_engine_reproduces_the_committed_fixtures(tmp_path, case):
    """Every member's learning curve and every deployed tensor, bit for bit, as the committed
    fixture of this CPU kind (made by the code of the walker-stand / finger-spin campaign): a
    change that moves them must say so and regenerate them. Against every other recorded kind the
    learning curves agree but for float rounding grown by the dynamics (the same episodes, steps
    and master choices; returns within 0.1%: AMD-AVX2 against Intel-AVX512 differ by ~4e-9 on
    MountainCar, 5e-4 on walker-stand): on a CPU kind with no fixture that is all that
    can be checked until its fixtures are recorded (`--new-kind`)."""
    import json

    got = ENGINE_RUNS.run_case(case, tmp_path / case)
    recorded = {path.parent.name: json.loads(path.read_text())
                for path in sorted(ENGINE_RUNS.FIXTURES_ROOT.glob(f"*/{case}.json"))}
    assert recorded, f"no fixture of {case} for any CPU kind"
    here = ENGINE_RUNS.cpu_kind()
    for kind, expected in recorded.items():
        assert got.keys() == expected.keys(), kind
        for seed in expected:
            assert len(expected[seed]["progress"]) >= 2
            if kind == here:
                assert got[seed]["progress"] == expected[seed]["progress"], seed
                assert got[seed]["weights"] == expected[seed]["weights"], seed
            else:
                assert got[seed]["progress"] == [
                    {**row, "episode_return": pytest.approx(row["episode_return"], rel=1e-3, abs=1e-6)}
                    for row in expected[seed]["progress"]], (kind, seed)
    if here not in recorded:
        pytest.skip(f"learning curves agree with {sorted(recorded)}'s; no bit-exact fixture for CPU kind "
                    f"{here}: record it with tests/fixtures/engine_runs.py --new-kind")


# --------------------------------------------------------------------------------------------
# engine.compile: the update compiled (torch.compile) against the eager reference
# --------------------------------------------------------------------------------------------
COMPILE_TASK = "MountainCarContinuous"  # the test below and the CLI run share its shapes (compile cache)


@pytest.mark.parametrize("act_dim", [1, 3])  # 3: the actor's two heads run as one product
def test_compiled_update_agrees_with_eager_within_adam_rounding(act_dim):
    """The compiled update is not bit-exact (Inductor's kernels round differently), and Adam
    turns a rounding difference in a gradient into a step difference of up to one learning rate
    where a gradient element is near zero (its step is ~lr * sign). So after n updates from the
    same state every element agrees within 2 * n * lr, and nearly all agree to float rounding
    (a wrong gradient or step would move most elements by ~lr). The whole update, entropy
    coefficient included, is one graph: no graph break, and neither a changing learning rate
    nor a restored optimizer state recompiles it."""
    task = get_task(COMPILE_TASK)
    settings = dict(task.sac, lr_schedule="linear")  # a changing learning rate must not recompile
    obs_dim = 2
    torch.manual_seed(0)
    eager = StackedSAC(1, obs_dim, act_dim, task.large, settings)
    compiled = StackedSAC(1, obs_dim, act_dim, task.large, settings, compiled=True)
    compiled.restore(eager.state())
    counters.clear()
    initial = {part: {k: v.clone() for k, v in getattr(eager, part).state_dict().items()}
               for part in ("trunk", "mu", "log_std", "critic", "critic_target")}
    gen, B, n = torch.Generator().manual_seed(1), settings["batch_size"], 5
    for i in range(n):
        batch = {"obs": torch.randn(1, B, obs_dim, generator=gen), "next_obs": torch.randn(1, B, obs_dim, generator=gen),
                 "action": torch.rand(1, B, act_dim, generator=gen) * 2 - 1,
                 "reward": torch.randn(1, B, generator=gen), "done": (torch.rand(1, B, generator=gen) < 0.1).float()}
        noise = [torch.randn(1, B, act_dim, generator=gen) for _ in range(2)]
        for sac in (eager, compiled):
            sac.update(batch, *noise, 1.0 - i / 10)
        if i == 2:
            compiled.restore(compiled.state())  # as a resumed run does: new optimizer state tensors
    assert counters["frames"]["total"] == counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
    lr = settings["learning_rate"]
    moved = 0
    for part in ("trunk", "mu", "log_std", "critic", "critic_target"):
        for (name, a), b in zip(getattr(eager, part).named_parameters(), getattr(compiled, part).parameters()):
            diff = (a - b).abs()
            assert diff.max() <= 2 * n * lr, (part, name)
            assert (diff > 1e-5).float().mean() < 0.01, (part, name)
            moved += not torch.equal(a, initial[part][name])
    assert moved  # the updates changed the weights
    assert abs(eager.log_ent_coef - compiled.log_ent_coef).max() <= 2 * n * lr


def test_train_compile_on_learns_as_eager_and_records_it(tmp_path):
    """`asymbench train --compile on` and `--compile off`: the same episodes, returns within
    0.1% (the cross-CPU-kind tolerance of the fixtures), and config.json's runtime says which
    ran and on what."""
    from asymbench.cli import main

    curves = {}
    for mode in ("off", "on"):
        out = tmp_path / mode
        assert main(["train", "--task", COMPILE_TASK, "--method", "l_only", "--seed", "3", "--out", str(out),
                     "--steps", "400", "--learning-starts", "100", "--max-episode-steps", "70",
                     "--compile", mode, "--quiet"]) in (0, None)
        runtime = read_json(out / "config.json")["runtime"]
        assert runtime["compile"] == mode and runtime["compiled"] == (mode == "on")
        assert runtime["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        assert runtime["torch"] == torch.__version__ and runtime["deterministic_algorithms"] is False
        curves[mode] = pd.read_csv(out / "progress.csv")
    assert len(curves["on"]) >= 4
    pd.testing.assert_frame_equal(curves["on"].drop(columns=["wall_s", "episode_return"]),
                                  curves["off"].drop(columns=["wall_s", "episode_return"]))
    assert np.allclose(curves["on"]["episode_return"], curves["off"]["episode_return"], rtol=1e-3)


def test_compile_on_without_a_compiler_stops_in_one_line(tmp_path, monkeypatch, capsys):
    from asymbench.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    code = main(["train", "--task", COMPILE_TASK, "--method", "l_only", "--out", str(tmp_path / "run"),
                 "--steps", "100", "--compile", "on", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--compile on" in err[0] and "C++ compiler" in err[0]
    assert not (tmp_path / "run" / "config.json").exists()


def test_auto_compiles_long_cpu_runs_and_a_resumed_run_keeps_its_mode():
    """`--compile auto` (the default) compiles on a CPU, where it measured faster,
    runs long enough to repay the compilation; a GPU stays eager until measured; a resumed run
    keeps the mode it started with."""
    from asymbench.acceleration import AUTO_MIN_STEPS, cxx_compiler, use_compiled

    compiler = cxx_compiler() is not None
    assert TrainRequest(task=COMPILE_TASK, method="l_only", seed=0, out="-").compile == "auto"
    assert use_compiled("auto", "cpu", AUTO_MIN_STEPS) == compiler
    assert not use_compiled("auto", "cpu", AUTO_MIN_STEPS - 1)
    assert not use_compiled("auto", "cuda", AUTO_MIN_STEPS)
    assert not use_compiled("auto", "cpu", AUTO_MIN_STEPS, resumed=False)
    assert use_compiled("auto", "cpu", 100, resumed=True) == compiler
    assert not use_compiled("off", "cpu", AUTO_MIN_STEPS, resumed=True)


def test_compiled_group_keeps_each_policy_in_its_own_stack_and_resumes_only_its_own_mode(tmp_path, monkeypatch):
    """Compiled, the small sub-policy gets its own stack (eager merges it into the large one's);
    resuming an eager checkpoint compiled stops in one line rather than mixing modes."""
    import asymbench.engine as engine

    class Stop(Exception):
        pass

    def save_then_stop(*args):
        save(*args)
        raise Stop

    save = engine.GroupCheckpoint.save
    monkeypatch.setattr(engine.GroupCheckpoint, "save", save_then_stop)
    with pytest.raises(Stop):
        train_group(_request(tmp_path, steps=300, checkpoint_every=100), [0], tmp_path / "run")
    monkeypatch.setattr(engine.GroupCheckpoint, "save", save)
    compiled_request = _request(tmp_path, steps=300, checkpoint_every=100, compile="on")
    with pytest.raises(RunError, match="resume with the --compile the run started with"):
        train_group(compiled_request, [0], tmp_path / "run")
    stacks, _ = engine._stack_layout({"small": 8, "large": 64}, 1, 2, 1, get_task(COMPILE_TASK).sac, "cpu", True)
    assert {name: stack.trunk.layers[0].weight.shape[-1] for name, stack in stacks.items()} == {"small": 8, "large": 64}


def test_killed_compiled_group_resumes_bit_identically(tmp_path, monkeypatch):
    """A compiled group stopped after its checkpoint resumes to the learning curve and weights
    of an uninterrupted compiled run, bit for bit, as an eager group does."""
    import asymbench.engine as engine

    class Stop(Exception):
        pass

    def save_then_stop(*args):
        save(*args)
        raise Stop

    request = TrainRequest(task=COMPILE_TASK, method="l_only", seed=0, out=tmp_path, steps=400,
                           learning_starts=100, max_episode_steps=70, checkpoint_every=200,
                           progress=False, compile="on")
    train_group(request, [3], tmp_path / "whole")
    save = engine.GroupCheckpoint.save
    monkeypatch.setattr(engine.GroupCheckpoint, "save", save_then_stop)
    with pytest.raises(Stop):
        train_group(request, [3], tmp_path / "stopped")
    monkeypatch.setattr(engine.GroupCheckpoint, "save", save)
    train_group(request, [3], tmp_path / "stopped")
    assert read_json(tmp_path / "stopped" / "seed3" / "config.json")["runtime"]["compiled"]
    _assert_same_run(tmp_path / "whole" / "seed3", tmp_path / "stopped" / "seed3")
