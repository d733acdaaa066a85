import json

import numpy as np
import pandas as pd
import pytest

from asymbench.cli import main
from asymbench.evaluation import evaluate_run
from asymbench.runs import RunError, read_json
from asymbench.train_config import TrainRequest

from conftest import TINY, train_one


def test_asym_evaluation_reports_returns_usage_flops_latency_and_trace(asym_run, tmp_path):
    out, trace, frames = tmp_path / "eval.json", tmp_path / "trace.csv", tmp_path / "frames"
    assert main(["evaluate", str(asym_run), "--episodes", "3", "--out", str(out),
                 "--trace", str(trace), "--frames", str(frames)]) == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == len(result["returns"]) == 3
    assert result["mean_return"] == pytest.approx(np.mean(result["returns"]))
    steps = pd.read_csv(trace)
    assert len(steps) == 50 and set(steps["sub_policy"]) <= {"small", "large"}
    # the master reconsiders only at macro starts
    changes = steps.index[steps["sub_policy"] != steps["sub_policy"].shift()][1:]
    assert all(step % 5 == 0 for step in changes)
    share = result["large_share"]
    # 50-step episodes: the pooled share equals the mean of per-episode shares
    assert result["large_share_per_episode"] == pytest.approx(share)
    # the paper's convention: the master counted as a width-32 SAC actor (2*(2*32+32*32+32*2)+3)
    assert result["flops_master"] == 2307
    expected = share * 8707 + (1 - share) * 195 + 2307 / 5
    assert result["flops_per_inf"] == pytest.approx(expected)
    assert result["flops_reduction_pct"] == pytest.approx(100 * (1 - expected / 8707))
    # the deployed dueling master's true count: advantage (2 outputs) + value (1 output) streams
    assert result["flops_master_macs"] == 2 * ((2 * 32 + 32 * 32 + 32 * 2) + (2 * 32 + 32 * 32 + 32))
    expected_macs = share * 8707 + (1 - share) * 195 + result["flops_master_macs"] / 5
    assert result["flops_per_inf_macs"] == pytest.approx(expected_macs)
    assert result["flops_reduction_pct_macs"] == pytest.approx(100 * (1 - expected_macs / 8707))
    assert result["latency_us"]["policy"] > 0 and result["latency_us"]["l_only"] > 0
    index = pd.read_csv(frames / "index.csv")
    assert 1 <= len(index) <= 6 and all((frames / f).stat().st_size > 1000 for f in index["file"])


def test_same_seed_gives_the_same_evaluation(tmp_path):
    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        train_one(TrainRequest(task="MountainCarContinuous", method="s_only", seed=5, out=out,
                           **{**TINY, "steps": 200}))
        results.append(evaluate_run(out, episodes=2, seed=10))
    assert results[0]["returns"] == results[1]["returns"]


def test_l_only_evaluation(l_only_run):
    result = evaluate_run(l_only_run, episodes=1)
    assert result["large_share"] == result["large_share_per_episode"] == 1.0
    assert result["flops_per_inf"] == result["flops_per_inf_macs"] == 8707
    assert result["flops_reduction_pct"] == 0.0 and result["width"] == 64


def test_missing_or_unfinished_runs_are_refused(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        evaluate_run(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(RunError, match="unfinished"):
        evaluate_run(tmp_path / "half")
    assert main(["evaluate", str(tmp_path / "half"), "--out", str(tmp_path / "e.json")]) == 2
    assert not (tmp_path / "e.json").exists()


def test_per_episode_share_is_the_mean_of_episode_fractions(asym_run, monkeypatch):
    import asymbench.evaluation as evaluation

    episodes = iter([(0.0, 10, 10, None, []), (0.0, 40, 0, None, [])])  # all large, then all small
    first = evaluation._run_episode
    monkeypatch.setattr(evaluation, "_run_episode",
                        lambda env, policy, seed, record, stochastic=False:
                        first(env, policy, seed, record) if record else next(episodes))
    result = evaluate_run(asym_run, episodes=3, protocol="deterministic")
    # episode 0 is a real 50-step one with large_0 large steps; then 10 of 10, 0 of 40
    large_0 = result["large_share"] * (50 + 10 + 40) - 10  # pooled: (large_0 + 10) / 100
    assert result["large_share_per_episode"] == pytest.approx((large_0 / 50 + 1.0 + 0.0) / 3)


def test_goal_task_ends_at_success_and_reports_a_success_rate(tmp_path):
    """FetchPickAndPlace runs as the authors ran it (DoneOnSuccessWrapper: the episode ends at
    the first success, reward + 1, relabelled rewards too) and its evaluation has a success rate."""
    from asymbench.tasks import DoneOnSuccess, get_task, make_env

    task = get_task("FetchPickAndPlace")
    assert task.done_on_success and not get_task("Swimmer").done_on_success
    env = make_env(task, seed=0, flatten=False)
    obs, _ = env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
    assert reward == -1.0 + 1.0 and not terminated and not info["is_success"]
    compute = env.get_wrapper_attr("compute_reward")  # what SB3's HER relabelling calls
    assert compute(obs["achieved_goal"], obs["achieved_goal"], {}) == 0.0 + 1.0
    assert compute(obs["achieved_goal"], obs["desired_goal"], {}) == -1.0 + 1.0
    env.unwrapped.goal = obs["achieved_goal"].copy()  # the object already is at the goal
    _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
    assert info["is_success"] and terminated and reward == 1.0
    assert any(isinstance(w, DoneOnSuccess) for w in _wrappers(make_env(task)))

    out = tmp_path / "fetch"
    train_one(TrainRequest(task="FetchPickAndPlace", method="asym", seed=0, out=out, steps=150,
                       learning_starts=100, master_learning_starts=10, max_episode_steps=50,
                       checkpoint_every=10_000, progress=False))
    result = evaluate_run(out, episodes=2)
    assert result["success_rate"] is not None
    # a return is 1 exactly when the episode succeeded (0 per failing step, 1 at the success)
    assert all(r in (0.0, 1.0) for r in result["returns"])
    assert result["success_rate"] == pytest.approx(np.mean(result["returns"]))


def _wrappers(env):
    while hasattr(env, "env"):
        yield env
        env = env.env


# ----------------------------------------------------------------------------- protocols (issue 20)
def test_both_protocols_share_episode_seeds_and_keep_the_deterministic_top_level(asym_run, tmp_path):
    from asymbench.evaluation import METRIC_KEYS

    both = evaluate_run(asym_run, episodes=3, seed=20, out=tmp_path / "both.json",
                        trace=tmp_path / "both.csv")
    deterministic = evaluate_run(asym_run, episodes=3, seed=20, protocol="deterministic",
                                 trace=tmp_path / "det.csv")
    stochastic = evaluate_run(asym_run, episodes=3, seed=20, protocol="stochastic",
                              trace=tmp_path / "sto.csv")
    assert json.loads((tmp_path / "both.json").read_text()) == both
    assert both["protocol"] == "both" and deterministic["protocol"] == "deterministic"
    assert stochastic["protocol"] == "stochastic"
    assert "stochastic" not in deterministic and "stochastic" not in stochastic
    # the top level of `both` is exactly the deterministic file (latency aside: it is measured)
    for key in set(deterministic) - {"latency_us", "protocol"}:
        assert both[key] == deterministic[key], key
    assert set(both["stochastic"]) == set(METRIC_KEYS)
    for key in METRIC_KEYS:
        assert both["stochastic"][key] == stochastic[key], key
    assert both["stochastic"]["seed"] == 20 and both["stochastic"]["episodes"] == 3
    assert both["stochastic"]["returns"] != both["returns"]  # sampled actions differ
    # traces (and so timelines and frames) always follow the greedy master
    traces = [pd.read_csv(tmp_path / f"{n}.csv") for n in ("both", "det", "sto")]
    pd.testing.assert_frame_equal(traces[0], traces[1])
    pd.testing.assert_frame_equal(traces[0], traces[2])
    # the sampling has its own generator, seeded from the episode seeds: reproducible
    again = evaluate_run(asym_run, episodes=3, seed=20, protocol="stochastic")
    assert again["returns"] == stochastic["returns"]
    assert again["large_share"] == stochastic["large_share"]
    other = evaluate_run(asym_run, episodes=3, seed=21, protocol="stochastic")
    assert other["returns"][:2] == stochastic["returns"][1:]  # episode seeds 21, 22 again
    # the stochastic metrics are computed like the deterministic ones
    s = both["stochastic"]
    expected = s["large_share"] * 8707 + (1 - s["large_share"]) * 195 + 2307 / 5
    assert s["flops_per_inf"] == pytest.approx(expected)
    assert s["flops_reduction_pct"] == pytest.approx(100 * (1 - expected / 8707))
    assert s["mean_return"] == pytest.approx(np.mean(s["returns"]))


def test_stochastic_sac_action_is_sb3s_squashed_gaussian(l_only_run):
    """The SAC samples tanh(mu + exp(clip(log_std, -20, 2)) * eps), rescaled: stable-baselines3's
    own distribution parameters (and stable-baselines 2's, sac/policies.py)."""
    import torch

    from asymbench.agents import DeployedActor, load_sac
    from asymbench.evaluation import sample_action

    sac = load_sac(l_only_run / "model" / "policy.zip")
    actor = DeployedActor.from_sac(sac)
    x = torch.tensor([[-0.5, 0.01]])
    eps = np.array([[0.7]])

    class FixedNoise:
        def standard_normal(self, shape):
            return eps.reshape(shape)

    with torch.no_grad():
        mean, log_std, _ = sac.actor.get_action_dist_params(x)
        expected = torch.tanh(mean + log_std.exp() * torch.as_tensor(eps, dtype=torch.float32))
        expected = sac.policy.unscale_action(expected.numpy())
        np.testing.assert_allclose(sample_action(actor, x, FixedNoise()).numpy(), expected, atol=1e-6)
        eps = np.zeros((1, 1))  # no noise: the deterministic action
        np.testing.assert_allclose(sample_action(actor, x, FixedNoise()).numpy(), actor(x).numpy(),
                                   atol=1e-6)


def test_stochastic_master_samples_softmax_of_q():
    import torch

    from asymbench.evaluation import episode_generator, sample_choice
    from asymbench.master import DeployedMaster, QNetwork

    torch.manual_seed(0)
    master = DeployedMaster(QNetwork(3, [8, 8], dueling=True))
    x = torch.tensor([[0.3, -1.0, 2.0]])
    with torch.no_grad():
        p_large = float(torch.softmax(master.q_net(x)[0].double(), -1)[1])
        rng = episode_generator(5)
        draws = [sample_choice(master, x, rng) for _ in range(4000)]
    assert abs(np.mean(draws) - p_large) < 0.03
    assert episode_generator(5).random() == episode_generator(5).random() != episode_generator(6).random()


def test_evaluation_seeds_stay_below_the_training_range(asym_run, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evaluate", str(asym_run), "--out", str(out), "--episodes", "3",
                 "--seed", str(2**31 - 2)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "2**31" in err and "--seed" in err
    assert not out.exists()
    assert main(["evaluate", str(asym_run), "--out", str(out), "--episodes", "2",
                 "--seed", str(2**31 - 2), "--protocol", "deterministic"]) == 0
    assert read_json(out)["seed"] == 2**31 - 2
    text = capsys.readouterr().out
    assert "(deterministic)" in text and "(stochastic)" not in text


def test_cli_reports_both_protocols(asym_run, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["evaluate", str(asym_run), "--out", str(out), "--episodes", "1"]) == 0
    text = capsys.readouterr().out
    assert "(deterministic)" in text and "(stochastic)" in text
    assert read_json(out)["protocol"] == "both" and "stochastic_sampling" in read_json(out)


def test_the_run_s_task_is_passed_explicitly(l_only_run):
    """evaluate_run takes the run's task as an argument (default: the run's own, from its
    config.json), not from a process-wide table: a task given is the one used."""
    from dataclasses import replace

    from asymbench.tasks import task_from_config

    own = task_from_config(read_json(l_only_run / "config.json"))
    fewer = replace(own, settings={**own.settings, "eval_episodes": 2})
    assert evaluate_run(l_only_run, task=fewer, protocol="deterministic")["episodes"] == 2
