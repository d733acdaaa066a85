import textwrap

import numpy as np
import pytest
import yaml

from asymbench.tasks import REGISTRY_PATH, RegistryError, get_task, load_registry, make_env, parse_registry

PAPER_TASKS = {"MountainCarContinuous", "Swimmer", "Ant", "FetchPickAndPlace", "walker-stand", "finger-spin"}


def raw_registry():
    return yaml.safe_load(REGISTRY_PATH.read_text())


def test_registry_holds_the_six_paper_tasks_with_paper_sizes():
    tasks = load_registry()
    assert set(tasks) == PAPER_TASKS
    assert (tasks["Swimmer"].small, tasks["Swimmer"].large, tasks["Swimmer"].cost_weight) == (8, 256, 1e-4)
    assert tasks["MountainCarContinuous"].total_steps == 100_000
    assert all(t.macro_len == 5 and t.eval_episodes == 200 for t in tasks.values())
    # a task's override merges into the defaults instead of replacing them
    assert tasks["walker-stand"].sac["ent_coef"] == 0.01
    assert tasks["walker-stand"].sac["batch_size"] == 256


def test_every_registry_value_is_tagged_with_its_source():
    in_tasks = False
    for line in REGISTRY_PATH.read_text().splitlines():
        in_tasks = in_tasks or line.startswith("tasks:")
        stripped = line.split("#")[0].strip()
        if in_tasks and ":" in stripped and not stripped.endswith(":") and "&" not in stripped and "*" not in stripped:
            assert "# [" in line, f"untagged registry value: {line.strip()}"


@pytest.mark.parametrize("mutate, field", [
    (lambda e: e.pop("large"), "large"),
    (lambda e: e.update({"lambda": -1e-3}), "lambda"),
    (lambda e: e.update({"small": "eight"}), "small"),
    (lambda e: e["sac"].update({"batch_size": 0}), "sac.batch_size"),
    (lambda e: e.update({"widht": 3}), "widht"),
])
def test_malformed_entry_names_task_and_field(mutate, field):
    raw = raw_registry()
    mutate(raw["tasks"]["Swimmer"])
    with pytest.raises(RegistryError, match=rf"'Swimmer'.*{field.split('.')[-1]}"):
        parse_registry(raw)


def test_unknown_task_lists_known_ones():
    with pytest.raises(RegistryError, match="unknown task 'Hopper'.*Swimmer"):
        get_task("Hopper")


def test_missing_environment_id_is_reported_with_the_task(tmp_path):
    raw = raw_registry()
    raw["tasks"] = {"Ghost": {"env_id": "NoSuchEnv-v9", "small": 4, "large": 8, "lambda": 0.0}}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(RegistryError, match="'Ghost'.*env_id.*NoSuchEnv-v9"):
        make_env(get_task("Ghost", path))


def test_relabelling_on_an_env_without_goals_is_refused_before_training(tmp_path):
    """`her` on a task whose env has no goal dict is a registry error naming the field, not a
    failure deep inside a replay buffer once training starts."""
    raw = raw_registry()
    raw["tasks"] = {"Car": {"env_id": "MountainCarContinuous-v0", "small": 4, "large": 8, "lambda": 0.0,
                            "her": {"goal_selection_strategy": "future", "n_sampled_goal": 4}}}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(RegistryError, match="'Car'.*field 'her'.*achieved_goal, desired_goal"):
        get_task("Car", path)


def test_a_user_adds_tasks_without_code_changes(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(REGISTRY_PATH.read_text() + textwrap.dedent("""
      Pendulum:
        env_id: Pendulum-v1   # [ours]
        small: 4              # [ours]
        large: 32             # [ours]
        lambda: 1.0e-3        # [ours]
      cartpole-swingup:
        env_id: dm_control/cartpole-swingup-v0   # [ours]
        small: 4              # [ours]
        large: 32             # [ours]
        lambda: 1.0e-3        # [ours]
    """).replace("\n", "\n  ").replace("\n  \n", "\n\n"))
    for name, obs_dim in (("Pendulum", 3), ("cartpole-swingup", 5)):
        env = make_env(get_task(name, path), seed=0)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (obs_dim,) and obs.dtype == np.float32
        env.close()


@pytest.mark.parametrize("name", sorted(PAPER_TASKS))
def test_every_paper_task_builds_steps_and_renders(name):
    task = get_task(name)
    env = make_env(task, seed=0, render=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == obs.shape and obs.dtype == np.float32
    assert len(obs.shape) == 1
    expected_dim = 105 if name == "Ant" else task.paper_obs_dim
    assert obs.shape[0] == expected_dim
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert np.isfinite(reward) and np.all(np.isfinite(obs))
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0  # a real picture, not blank
    env.close()


def test_seeding_makes_resets_reproducible():
    task = get_task("Swimmer")
    first = make_env(task, seed=7).reset(seed=7)[0]
    second = make_env(task, seed=7).reset(seed=7)[0]
    np.testing.assert_array_equal(first, second)


def test_episode_limit_override():
    env = make_env(get_task("Swimmer"), seed=0, max_episode_steps=3)
    env.reset(seed=0)
    truncated = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert truncated == [False, False, True]


def test_episode_limit_override_never_lengthens_a_task():
    env = make_env(get_task("FetchPickAndPlace"), seed=0, max_episode_steps=100)
    env.reset(seed=0)
    truncated = [env.step(env.action_space.sample())[3] for _ in range(50)]
    assert truncated[-1] and not any(truncated[:-1])
