"""The master (asymbench.master.MasterGroup) against stable-baselines3's DQN and hand-computed
values: dueling head, double-Q target, prioritized replay, per-tensor clipping, schedule."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from stable_baselines3 import DQN
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import nn

from asymbench.master import MasterGroup, QNetwork, StackedAdam, epsilon, load_master, per_beta
from asymbench.tasks import get_task

REGISTRY_MASTER = get_task("MountainCarContinuous").master


def settings(**overrides) -> dict:
    return {**copy.deepcopy(REGISTRY_MASTER), "learning_rate": 1e-3, **overrides}


def random_batch(members: int, size: int, obs_dim: int, seed: int = 0, reward_scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(members, size, obs_dim, generator=gen),
            "next_obs": torch.randn(members, size, obs_dim, generator=gen),
            "choice": torch.randint(0, 2, (members, size), generator=gen),
            "reward": reward_scale * torch.randn(members, size, generator=gen),
            "done": (torch.rand(members, size, generator=gen) < 0.2).float(),
            "weights": torch.ones(members, size), "idx": np.zeros((members, size), np.int64)}


class _ChoiceSpaces(gym.Env):
    def __init__(self, obs_dim):
        self.observation_space = gym.spaces.Box(-1, 1, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Discrete(2)


def test_one_update_equals_stable_baselines3_dqn_train_for_every_member():
    obs_dim, batch_size, K = 3, 32, 3
    s = settings(dueling=False, double_q=False, prioritized_replay=None, grad_clip=None)
    group = MasterGroup(s, obs_dim, [0, 1, 2], 1000)
    batch = random_batch(K, batch_size, obs_dim)
    references = []
    for k in range(K):
        dqn = DQN("MlpPolicy", _ChoiceSpaces(obs_dim), learning_rate=s["learning_rate"],
                  gamma=s["gamma"], max_grad_norm=1e9, policy_kwargs={"net_arch": list(s["hidden"])},
                  device="cpu", seed=k)
        dqn.set_logger(Logger(folder=None, output_formats=[]))
        weights = group.member_network(k).advantage.state_dict()
        dqn.q_net.q_net.load_state_dict(weights)
        dqn.q_net_target.q_net.load_state_dict(weights)
        samples = ReplayBufferSamples(batch["obs"][k], batch["choice"][k][:, None], batch["next_obs"][k],
                                      batch["done"][k][:, None], batch["reward"][k][:, None])
        dqn.replay_buffer.sample = lambda *args, samples=samples, **kwargs: samples
        dqn.train(gradient_steps=1, batch_size=batch_size)
        references.append(dqn.q_net.q_net.state_dict())
    before = [group.member_network(k).advantage.state_dict() for k in range(K)]
    group.update(batch)
    for k in range(K):
        after = group.member_network(k).advantage.state_dict()
        for name, value in after.items():
            torch.testing.assert_close(value, references[k][name], rtol=0, atol=1e-5)
            assert not torch.equal(value, before[k][name])  # it did learn


def _tiny_q(value_out_bias: float, adv_out_bias: tuple[float, float]) -> QNetwork:
    """obs_dim 1, one hidden unit h = relu(x); A = [h, -h] + bias, V = 2h + value bias."""
    net = QNetwork(1, [1], dueling=True)
    with torch.no_grad():
        for stream in (net.advantage, net.value):
            stream[0].weight.fill_(1.0)
            stream[0].bias.fill_(0.0)
        net.advantage[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net.advantage[2].bias.copy_(torch.tensor(adv_out_bias))
        net.value[2].weight.fill_(2.0)
        net.value[2].bias.fill_(value_out_bias)
    return net


def _tiny_group(double_q: bool) -> MasterGroup:
    group = MasterGroup(settings(hidden=[1], double_q=double_q, gamma=0.99), 1, [0], 100)
    # target: Q_t = 2h + 0.5 + [h, 5 - h] - 2.5 = [3h - 2, h + 3]
    group.load_member(0, _tiny_q(0.5, (0.0, 5.0)))
    group.q_target.load_state_dict(group.q_net.state_dict())
    # online: Q = 2h + 0.5 + [h, 1 - h] - 0.5 = [3h, h + 1]
    group.load_member(0, _tiny_q(0.5, (0.0, 1.0)))
    return group


def test_dueling_head_by_hand():
    group = _tiny_group(double_q=True)
    x = torch.tensor([[[2.0], [0.25]]])
    torch.testing.assert_close(group.q_net(x), torch.tensor([[[6.0, 3.0], [0.75, 1.25]]]))
    torch.testing.assert_close(group.q_target(x), torch.tensor([[[4.0, 5.0], [-1.25, 3.25]]]))
    deployed = group.member_network(0)
    torch.testing.assert_close(deployed(x[0]), torch.tensor([[6.0, 3.0], [0.75, 1.25]]))


@pytest.mark.parametrize("double_q, done, expected_td", [
    (True, 0.0, 1.25 - (1.0 + 0.99 * 4.0)),   # online argmax at s' = 0 (6 > 3), target's Q_t(s', 0) = 4
    (False, 0.0, 1.25 - (1.0 + 0.99 * 5.0)),  # plain DQN: max of the target, 5
    (True, 1.0, 1.25 - 1.0),                  # terminal: no bootstrap
])
def test_double_q_target_by_hand(double_q, done, expected_td):
    group = _tiny_group(double_q)
    batch = {"obs": torch.tensor([[[0.25]]]), "choice": torch.tensor([[1]]),
             "reward": torch.tensor([[1.0]]), "next_obs": torch.tensor([[[2.0]]]),
             "done": torch.tensor([[done]])}
    assert group.td_errors(batch).item() == pytest.approx(expected_td, abs=1e-6)


def test_prioritized_sampling_and_importance_weights():
    s = settings(batch_size=5000)
    group = MasterGroup(s, 2, [0], total_steps=1000)
    alpha = s["prioritized_replay"]["alpha"]
    raw = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    for i, p in enumerate(raw):
        group.store(0, np.zeros(2), i % 2, 0.0, np.zeros(2), False)
        group.replay.priority[0, i] = p ** alpha
    probability = raw ** alpha / (raw ** alpha).sum()
    counts = np.zeros(len(raw))
    for t in (0, 1000):
        batch = group.sample(t)
        counts += np.bincount(batch["idx"][0], minlength=len(raw))
        beta = per_beta(s, t, 1000)
        assert beta == pytest.approx(0.4 if t == 0 else 1.0)
        n = len(raw)
        expected = (probability * n) ** -beta / ((probability * n) ** -beta).max()
        np.testing.assert_allclose(batch["weights"][0].numpy(), expected[batch["idx"][0]], rtol=1e-5)
    np.testing.assert_allclose(counts / counts.sum(), probability, atol=0.015)



def _sample_member_by_member(group: MasterGroup, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The prioritized sampling as first written: one member at a time, numpy throughout."""
    s, replay, batch = group.settings, group.replay, group.settings["batch_size"]
    idx = np.empty((group.members, batch), np.int64)
    weights = np.ones((group.members, batch), np.float32)
    for k, rng in enumerate(group.rngs):
        size = replay.size[k]
        priorities = replay.priority[k, :size]
        cumulative = np.cumsum(priorities)
        total = cumulative[-1]
        idx[k] = np.minimum(np.searchsorted(cumulative, rng.random(batch) * total, side="right"), size - 1)
        beta = per_beta(s, t, group.total_steps)
        max_weight = (priorities.min() / total * size) ** -beta
        weights[k] = (priorities[idx[k]] / total * size) ** -beta / max_weight
    return idx, weights


@pytest.mark.parametrize("t", [0, 377, 1000])  # beta 0.4, in between, 1
def test_prioritized_sampling_is_bit_identical_to_sampling_member_by_member(t):
    group = MasterGroup(settings(), 2, [0, 1, 2], total_steps=1000)
    rng = np.random.default_rng(0)
    for k, size in enumerate([40, 3000, 33]):  # members fill at their own pace
        for _ in range(size):
            group.store(k, rng.normal(size=2), 0, 0.0, rng.normal(size=2), False)
        group.replay.priority[k, :size] = (np.abs(rng.standard_cauchy(size)) + 1e-6) ** 0.6
    reference = copy.deepcopy(group)
    batch = group.sample(t)
    idx, weights = _sample_member_by_member(reference, t)
    np.testing.assert_array_equal(batch["idx"], idx)
    assert np.array_equal(batch["weights"].numpy(), weights)
    assert [r.bit_generator.state for r in group.rngs] == [r.bit_generator.state for r in reference.rngs]


def test_gradient_clipping_is_bit_identical_to_clipping_tensor_by_tensor():
    group = MasterGroup(settings(), 3, [0, 1], 1000)
    gen = torch.Generator().manual_seed(0)
    for i, param in enumerate(group.q_net.parameters()):
        param.grad = torch.randn(param.shape, generator=gen) * (1.0 if i % 2 else 100.0)
    expected = []
    for param in group.q_net.parameters():
        norms = param.grad.flatten(1).norm(dim=1)
        scale = 10 / torch.clamp(norms, min=10)
        expected.append(param.grad * scale.view(-1, *[1] * (param.grad.dim() - 1)))
    group._clip_gradients(10)
    for param, grad in zip(group.q_net.parameters(), expected):
        assert torch.equal(param.grad, grad)

def test_priorities_follow_td_errors_and_new_transitions_get_the_max():
    s = settings()
    group = MasterGroup(s, 2, [0], total_steps=1000)
    per = s["prioritized_replay"]
    rng = np.random.default_rng(0)
    for i in range(40):
        group.store(0, rng.normal(size=2), i % 2, float(rng.normal()), rng.normal(size=2), False)
    np.testing.assert_allclose(group.replay.priority[0, :40], 1.0)  # initial max priority 1
    batch = group.sample(0)
    td = group.update(batch).numpy()[0]
    idx = batch["idx"][0]
    last = {i: k for k, i in enumerate(idx)}  # a repeated index keeps its last TD error
    for i, k in last.items():
        assert group.replay.priority[0, i] == pytest.approx((abs(td[k]) + per["eps"]) ** per["alpha"])
    top = max(1.0, (np.abs(td) + per["eps"]).max())
    group.store(0, np.zeros(2), 0, 0.0, np.zeros(2), False)
    assert group.replay.priority[0, 40] == pytest.approx(top ** per["alpha"])


def test_gradients_are_clipped_per_tensor_and_per_member():
    s = settings(prioritized_replay=None)
    group = MasterGroup(s, 3, [0, 1], 1000)
    batch = random_batch(2, 32, 3, seed=1)
    batch["obs"][0] *= 1e3  # member 0's gradients are huge (Huber bounds dL/dQ, not dQ/dw)
    unclipped = copy.deepcopy(group)
    td = unclipped.td_errors(batch)
    loss = F.huber_loss(td, torch.zeros_like(td), reduction="none").mean(dim=1).sum()
    loss.backward()
    group.update(batch)
    clipped_any = False
    for (name, raw), param in zip(unclipped.q_net.named_parameters(), group.q_net.parameters()):
        for k in range(2):
            norm = raw.grad[k].norm().item()
            expected = raw.grad[k] * s["grad_clip"] / max(norm, s["grad_clip"])
            torch.testing.assert_close(param.grad[k], expected, rtol=1e-5, atol=1e-6)
            clipped_any |= k == 0 and norm > s["grad_clip"]
            if k == 1:
                assert norm < s["grad_clip"], name
    assert clipped_any


@pytest.mark.parametrize("train_freq", [1, 4])
def test_gradient_steps_and_target_syncs_count_env_steps(train_freq):
    L, N = 100, 1101
    s = settings(learning_starts=L, train_freq=train_freq, target_update_interval=500)
    group = MasterGroup(s, 2, [0], total_steps=N)
    rng = np.random.default_rng(0)
    for _ in range(s["batch_size"]):  # the buffer already holds a batch
        group.store(0, rng.normal(size=2), 0, 0.0, rng.normal(size=2), False)
    syncs_at = []
    for t in range(N):  # t: env steps taken before this one (the authors' num_timesteps)
        if t % 5 == 4:  # a macro ends every 5 env steps
            group.store(0, rng.normal(size=2), int(rng.integers(2)), float(rng.normal()),
                        rng.normal(size=2), False)
        before = int(group.target_syncs[0])
        group.after_env_step(t)
        if group.target_syncs[0] > before:
            syncs_at.append(t)
            torch.testing.assert_close(group.q_target.state_dict(), group.q_net.state_dict())
    assert group.updates[0] == sum(1 for t in range(L + 1, N) if t % train_freq == 0)
    assert syncs_at == [500, 1000]
    if train_freq == 1:
        assert group.updates[0] == N - 1 - L


def test_no_update_before_a_members_buffer_holds_a_batch():
    group = MasterGroup(settings(learning_starts=0), 2, [0], total_steps=100)
    for t in range(10):
        group.store(0, np.zeros(2), 0, 0.0, np.zeros(2), False)
        group.after_env_step(t)
    assert group.updates.tolist() == [0] and group.target_syncs.tolist() == [0]


@pytest.mark.parametrize("lr", [1e-3, 1e-4])
def test_stacked_adam_is_bit_identical_to_torch_adam(lr):
    """Every member at the same step: the same parameters and moments as torch.optim.Adam."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 5, 32), (3, 1, 32), (3, 32, 2), (3, 1, 2)]
    ours = [torch.randn(shape, generator=gen).requires_grad_() for shape in shapes]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    stacked, reference = StackedAdam(ours, 3, lr), torch.optim.Adam(theirs, lr=lr, foreach=True)
    for _ in range(300):
        for a, b in zip(ours, theirs):
            grad = torch.randn(a.shape, generator=gen) * float(torch.rand(1, generator=gen)) * 10
            a.grad, b.grad = grad.clone(), grad.clone()
        stacked.step(np.ones(3, bool))
        reference.step()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert torch.equal(a, b)
        assert torch.equal(stacked.exp_avg_sq[i], reference.state[b]["exp_avg_sq"])


def test_stacked_adam_member_starting_late_steps_as_it_would_alone():
    """Member 1 joins at step 40: it keeps its weights until then, and from then on its slice
    equals a one-member Adam started at that point on the same gradients, bit for bit."""
    gen = torch.Generator().manual_seed(1)
    group = [torch.randn(2, 4, 8, generator=gen).requires_grad_()]
    alone = [group[0][1:].detach().clone().requires_grad_()]
    stacked, single = StackedAdam(group, 2, 1e-3), StackedAdam(alone, 1, 1e-3)
    start = group[0][1].detach().clone()
    for step in range(100):
        grad = torch.randn(2, 4, 8, generator=gen)
        members = np.array([True, step >= 40])
        group[0].grad = grad * torch.from_numpy(members)[:, None, None]
        stacked.step(members)
        if step < 40:
            assert torch.equal(group[0][1], start)
        else:
            alone[0].grad = grad[1:].clone()
            single.step(np.ones(1, bool))
            assert torch.equal(group[0][1], alone[0][0])
    assert stacked.steps.tolist() == [100, 60]


def test_a_member_learns_from_its_own_first_batch_as_it_would_alone():
    """Member 1's buffer fills later (its episodes end later): it starts learning then, and its
    weights, updates and target syncs equal those of its run alone; member 0 does not wait."""
    s = settings(learning_starts=10, train_freq=1, target_update_interval=50)
    group, alone = MasterGroup(s, 2, [3, 7], 400), MasterGroup(s, 2, [7], 400)
    rng = np.random.default_rng(0)
    for t in range(400):
        for k, delay in enumerate((0, 60)):
            if t >= delay and t % 2 == 0:
                obs, nxt = rng.normal(size=2), rng.normal(size=2)
                choice, reward, done = int(rng.integers(2)), float(rng.normal()), bool(rng.random() < 0.1)
                group.store(k, obs, choice, reward, nxt, done)
                if k == 1:
                    alone.store(0, obs, choice, reward, nxt, done)
        group.after_env_step(t)
        alone.after_env_step(t)
    assert group.updates[0] > group.updates[1] == alone.updates[0] > 0
    assert group.target_syncs[1] == alone.target_syncs[0]
    for stacked, single in zip(group.q_net.parameters(), alone.q_net.parameters()):
        assert torch.equal(stacked[1], single[0])
    for stacked, single in zip(group.q_target.parameters(), alone.q_target.parameters()):
        assert torch.equal(stacked[1], single[0])
    assert group.rngs[1].bit_generator.state == alone.rngs[0].bit_generator.state


def test_epsilon_goes_from_one_to_final_over_the_exploration_fraction():
    s = settings()
    assert epsilon(s, 0, 1000) == 1.0
    assert epsilon(s, 50, 1000) == pytest.approx(1.0 + 0.5 * (s["exploration_final_eps"] - 1.0))
    assert epsilon(s, 100, 1000) == epsilon(s, 900, 1000) == pytest.approx(s["exploration_final_eps"])


def test_choices_are_greedy_after_exploration_and_members_decide_independently():
    s = settings(exploration_final_eps=0.0)
    group = MasterGroup(s, 2, [0, 1], total_steps=100)
    obs = np.random.default_rng(0).normal(size=(2, 2)).astype(np.float32)
    greedy = group.q_net(torch.as_tensor(obs)[:, None]).argmax(-1)[:, 0].numpy()
    np.testing.assert_array_equal(group.choose(obs, np.array([True, True]), t=100), greedy)
    assert group.choose(obs, np.array([False, True]), t=100)[0] == -1
    early = [group.choose(obs, np.array([True, True]), t=0) for _ in range(200)]
    assert {0, 1} <= set(np.concatenate(early))  # epsilon 1: uniform at random


def test_saved_member_deploys_the_same_greedy_choice_and_state_round_trips(tmp_path):
    s = settings()
    group = MasterGroup(s, 4, [0, 1], total_steps=1000)
    rng = np.random.default_rng(0)
    for _ in range(40):
        for k in range(2):
            group.store(k, rng.normal(size=4), int(rng.integers(2)), float(rng.normal()),
                        rng.normal(size=4), False)
    for t in range(1001, 1005):
        group.after_env_step(t)
    group.save_member(1, tmp_path / "master.pt")
    deployed = load_master(tmp_path / "master.pt")
    obs = torch.as_tensor(rng.normal(size=(50, 4)), dtype=torch.float32)
    expected = group.q_net(obs[None].expand(2, -1, -1))[1].argmax(-1)
    torch.testing.assert_close(deployed(obs), expected)
    assert isinstance(deployed.q_net.value, nn.Sequential)  # dueling, as trained

    saved = copy.deepcopy(group.state())
    resumed = MasterGroup(s, 4, [0, 1], total_steps=1000)
    resumed.restore(saved)
    batch_a, batch_b = group.sample(1005), resumed.sample(1005)
    np.testing.assert_array_equal(batch_a["idx"], batch_b["idx"])
    torch.testing.assert_close(group.update(batch_a), resumed.update(batch_b))


def test_stacked_adam_resumes_a_torch_adam_state_dict():
    """Checkpoints written before the per-member step counts hold torch.optim.Adam's
    state_dict: resumed from one, the steps go on bit-identically to torch's."""
    gen = torch.Generator().manual_seed(2)
    ours = [torch.randn(2, 3, 4, generator=gen).requires_grad_(), torch.randn(2, 1, 4, generator=gen).requires_grad_()]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    reference = torch.optim.Adam(theirs, lr=1e-3, foreach=True)

    def grads():
        return [torch.randn(p.shape, generator=gen) for p in ours]

    for _ in range(7):
        for p, g in zip(theirs, grads()):
            p.grad = g
        reference.step()
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            a.copy_(b)
    stacked = StackedAdam(ours, 2, 1e-3)
    stacked.restore(copy.deepcopy(reference.state_dict()))
    assert stacked.steps.tolist() == [7, 7]
    for _ in range(20):
        for a, b, g in zip(ours, theirs, grads()):
            a.grad, b.grad = g.clone(), g.clone()
        stacked.step(np.ones(2, bool))
        reference.step()
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
