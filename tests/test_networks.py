from importlib import resources

import gymnasium as gym
import pandas as pd
import pytest
from stable_baselines3 import SAC

from asymbench.agents import DeployedActor
from asymbench.cli import main
from asymbench.master import DeployedMaster, QNetwork
from asymbench.networks import (TwoHeadActor, average_flops, costs, count_flops_torch, count_macs,
                                deployed_flops, fit_width, master_flops, master_flops_paper,
                                sac_actor_flops)
from asymbench.tasks import load_registry

PUBLISHED_TABLE4 = pd.read_csv(resources.files("asymbench") / "data" / "published_table4.csv")


def test_paper_input_sizes_reproduce_table4_l_only_flops_exactly():
    tasks = {t.paper_name: t for t in load_registry().values()}
    act_dims = {"MountainCarContinuous-v0": 1, "Swimmer-v3": 2, "Ant-v3": 8,
                "FetchPickAndPlace-v1": 4, "walker-stand": 6, "finger-spin": 2}
    for row in PUBLISHED_TABLE4.itertuples():
        task = tasks[row.task]
        assert sac_actor_flops(task.paper_obs_dim, act_dims[row.task], task.large) == row.l_only_flops_per_inf


@pytest.mark.parametrize("obs_dim, act_dim, width", [(2, 1, 8), (31, 4, 128), (111, 8, 256)])
def test_thop_agrees_with_torch_flop_counter(obs_dim, act_dim, width):
    actor = TwoHeadActor(obs_dim, act_dim, [width, width])
    assert 2 * count_macs(actor, obs_dim) == count_flops_torch(actor, obs_dim)


def test_counting_leaves_the_profiled_module_untouched():
    actor = TwoHeadActor(4, 2, [16, 16])
    keys = set(actor.state_dict())
    count_macs(actor, 4)
    assert set(actor.state_dict()) == keys


def test_trained_sb3_actor_counts_like_the_formula_network():
    env = gym.make("Pendulum-v1")
    sac = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [24, 24]}, buffer_size=10, device="cpu")
    assert deployed_flops(DeployedActor.from_sac(sac), 3) == sac_actor_flops(3, 1, 24)


def test_costs_match_the_papers_ratios():
    swimmer = costs(sac_actor_flops(8, 2, 8), sac_actor_flops(8, 2, 256))
    walker = costs(sac_actor_flops(24, 6, 8), sac_actor_flops(24, 6, 64))
    assert swimmer["small"] == walker["small"] == 1.0
    assert round(swimmer["large"], 1) == 424.8 and round(walker["large"], 1) == 18.1


def test_average_flops_reproduces_published_avg_within_rounding_of_large_share():
    # Table 3 prints the large share with one decimal; Table 4 prints Ours' Avg-FLOPs/Inf.
    for task, share, published in (("Swimmer", 0.549, 76019), ("MountainCarContinuous", 0.445, 4440)):
        t = load_registry()[task]
        dims = {"Swimmer": (8, 2), "MountainCarContinuous": (2, 1)}[task]
        avg = average_flops(share, sac_actor_flops(*dims, t.small), sac_actor_flops(*dims, t.large),
                            master_flops_paper(*dims), t.macro_len)
        assert abs(avg - published) / published < 0.002


def test_walker_stand_avg_flops_with_the_papers_master_convention():
    # paper input 24, action 6, small 8, large 64, 5.7% large (Table 3) -> Table 4's 2,266
    master = master_flops_paper(24, 6)
    assert master == sac_actor_flops(24, 6, 32) == 2 * (24 * 32 + 32 * 32 + 32 * 12) + 3 == 4355
    avg = average_flops(0.057, sac_actor_flops(24, 6, 8), sac_actor_flops(24, 6, 64), master, 5)
    assert round(avg) == 2267
    # a 2-output MLP master (4,355 vs 3,712 FLOPs) would be further off
    plain = average_flops(0.057, sac_actor_flops(24, 6, 8), sac_actor_flops(24, 6, 64),
                          master_flops(24, [32, 32]), 5)
    assert abs(avg - 2266) < abs(plain - 2266)


def test_deployed_master_true_count_is_both_dueling_streams():
    q_net = QNetwork(24, [32, 32], dueling=True)
    advantage, value = 2 * (24 * 32 + 32 * 32 + 32 * 2), 2 * (24 * 32 + 32 * 32 + 32 * 1)
    assert master_flops(24, [32, 32], dueling=True) == advantage + value
    assert deployed_flops(DeployedMaster(q_net), 24, two_head_actor=False) == advantage + value
    assert master_flops(24, [32, 32]) == advantage


def test_fit_width_is_the_closest_width():
    for target, obs_dim, act_dim in ((4440, 2, 1), (30000, 8, 2), (2266, 24, 6), (10, 3, 1)):
        width = fit_width(target, obs_dim, act_dim)
        brute = min(range(1, 150), key=lambda w: abs(sac_actor_flops(obs_dim, act_dim, w) - target))
        assert width == brute
    with pytest.raises(ValueError, match="positive"):
        fit_width(float("nan"), 2, 1)


def test_flops_command_prints_every_task(capsys):
    assert main(["flops"]) == 0
    out = capsys.readouterr().out
    for number in ("8707", "137219", "196099", "42755", "12803", "9859"):
        assert number in out
    assert "193027" in out  # the Ant-v5-contacts variant: 105 inputs, not 111
    ant = [line.split() for line in out.splitlines() if line.split()[:2] == ["Ant", "today"]]
    assert ant and ant[0][2] == "111" and ant[0][7] == "196099" and ant[0][-1] == "8.02"
