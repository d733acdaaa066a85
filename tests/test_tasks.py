import re
import textwrap

import numpy as np
import pytest
import yaml

from asymbench.tasks import REGISTRY_PATH, RegistryError, get_task, load_registry, make_env, parse_registry

PAPER_TASKS = {"MountainCarContinuous", "Swimmer", "Ant", "FetchPickAndPlace", "walker-stand", "finger-spin"}
# the previous defaults, kept as named variants (`variant_of`) of their task
VARIANTS = {"Swimmer-gamma0.9999": "Swimmer", "Ant-v5-contacts": "Ant"}


def raw_registry():
    return yaml.safe_load(REGISTRY_PATH.read_text())


def test_registry_holds_the_six_paper_tasks_with_paper_sizes():
    tasks = load_registry()
    assert set(tasks) == PAPER_TASKS | set(VARIANTS)
    assert {n: t.settings["variant_of"] for n, t in tasks.items() if "variant_of" in t.settings} == VARIANTS
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
    assert obs.shape[0] == task.paper_obs_dim  # Ant: 27 live dims zero-padded to v3's 111
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


# ----------------------------------------------------------------------------- issue 20 items 2, 3, 5
def test_ant_is_the_authors_ant_v3_and_the_previous_ant_is_a_variant():
    """Ant-v5 without contact forces in the observation and without contact cost, zero-padded
    to Ant-v3's 111 dims (its cfrc_ext were always 0 under the authors' MuJoCo 2.0)."""
    ant, previous = get_task("Ant"), get_task("Ant-v5-contacts")
    assert ant.env_id == previous.env_id == "Ant-v5"
    assert ant.env_kwargs == {"include_cfrc_ext_in_observation": False, "contact_cost_weight": 0.0}
    assert ant.pad_observation == 111 and ant.paper_obs_dim == 111
    assert previous.env_kwargs is None and previous.pad_observation is None
    # the variant inherits everything else from Ant
    for key in ("small", "large", "lambda", "sac", "master", "distill", "paper_name"):
        assert previous.settings[key] == ant.settings[key], key
    env = make_env(ant, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (111,) and obs.dtype == np.float32
    assert env.observation_space.shape == (111,)
    rewards = []
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs.shape == (111,) and np.all(obs[27:] == 0) and np.any(obs[:27] != 0)
        assert info["reward_contact"] == 0.0
        rewards.append(reward)
    # the same physics as the v5 default: the live 27 dims are v5's qpos[2:] and qvel
    raw = make_env(previous, seed=0)
    raw_obs, _ = raw.reset(seed=0)
    assert raw_obs.shape == (105,)
    np.testing.assert_array_equal(raw_obs[:27], make_env(ant, seed=0).reset(seed=0)[0][:27])
    env.close(), raw.close()


def test_flops_command_gives_the_papers_ant_numbers(capsys):
    from asymbench.cli import main
    from asymbench.networks import flops_table

    table = flops_table(["Ant", "Ant-v5-contacts"])
    today = table[table["obs"] == "today"].set_index("task")
    assert today.loc["Ant", "obs_dim"] == 111
    assert today.loc["Ant", "flops_large"] == 196_099 and today.loc["Ant", "c_large"] == 8.02
    assert today.loc["Ant-v5-contacts", "flops_large"] == 193_027
    assert today.loc["Ant-v5-contacts", "c_large"] == 8.15
    assert main(["flops", "--tasks", "Ant"]) == 0
    assert "196099" in capsys.readouterr().out


def test_swimmer_gamma_is_the_authors_and_the_previous_one_a_variant():
    assert get_task("Swimmer").sac["gamma"] == 0.99
    variant = get_task("Swimmer-gamma0.9999")
    assert variant.sac["gamma"] == 0.9999
    assert {k: v for k, v in variant.sac.items() if k != "gamma"} == \
        {k: v for k, v in get_task("Swimmer").sac.items() if k != "gamma"}


def test_fetch_sac_learning_starts_is_tagged_as_the_authors():
    line = next(l for l in REGISTRY_PATH.read_text().splitlines()
                if l.strip().startswith("learning_starts: 1000") and "her.yml" in l)
    assert "[authors]" in line and "[ours]" not in line
    assert get_task("FetchPickAndPlace").sac["learning_starts"] == 1000


def test_a_variant_run_records_its_name_and_settings(tmp_path):
    from asymbench.train_config import TrainRequest, resolve_config

    config = resolve_config(TrainRequest(task="Ant-v5-contacts", method="l_only", seed=0,
                                         out=tmp_path))
    assert config["task"] == "Ant-v5-contacts"
    assert config["task_settings"]["variant_of"] == "Ant"
    assert config["task_settings"]["env_kwargs"] is None
    from asymbench.tasks import task_from_config

    assert task_from_config(config).settings == get_task("Ant-v5-contacts").settings


def _registry_with(tmp_path, **tasks):
    raw = raw_registry()
    raw["tasks"] = tasks
    path = tmp_path / f"tasks_{'_'.join(tasks)}.yaml"  # load_registry caches by path
    path.write_text(yaml.safe_dump(raw))
    return path


CAR = {"env_id": "MountainCarContinuous-v0", "small": 4, "large": 8, "lambda": 0.0}


@pytest.mark.parametrize("entry, field, problem", [
    ({**CAR, "pad_observation": 1}, "pad_observation", "2 dims already"),
    ({**CAR, "pad_observation": 0}, "pad_observation", "expected null or an integer >= 1"),
    ({**CAR, "env_kwargs": {"no_such_argument": 1}}, "env_kwargs", "no_such_argument"),
    ({**CAR, "env_kwargs": [1]}, "env_kwargs", "expected null or a mapping"),
    ({**CAR, "env_kwargs": {"max_episode_steps": 9}}, "env_kwargs.max_episode_steps", "set by asymbench"),
    ({**CAR, "variant_of": "Nope"}, "variant_of", "another task of this registry"),
])
def test_bad_env_kwargs_padding_or_variant_names_the_field(tmp_path, entry, field, problem):
    path = _registry_with(tmp_path, Car=entry)
    with pytest.raises(RegistryError, match=rf"'Car', field '{re.escape(field)}'.*{problem}"):
        load_registry(path)


def test_variants_merge_over_their_task_and_cycles_are_refused(tmp_path):
    path = _registry_with(tmp_path, Car={**CAR, "sac": {"gamma": 0.9}, "pad_observation": 5},
                          Car2={"variant_of": "Car", "sac": {"tau": 0.01}},
                          Car3={"variant_of": "Car2", "pad_observation": None})
    tasks = load_registry(path)
    assert tasks["Car2"].sac["gamma"] == 0.9 and tasks["Car2"].sac["tau"] == 0.01
    assert tasks["Car2"].sac["batch_size"] == 256  # defaults still fill in
    assert make_env(tasks["Car2"]).observation_space.shape == (5,)
    assert make_env(tasks["Car3"]).observation_space.shape == (2,)
    path = _registry_with(tmp_path, A={**CAR, "variant_of": "B"}, B={**CAR, "variant_of": "A"})
    with pytest.raises(RegistryError, match="variant_of.*cycle"):
        load_registry(path)


def test_expert_pairs_setting_is_validated():
    raw = raw_registry()
    raw["tasks"]["Swimmer"]["distill"] = {"expert_pairs": "random"}
    with pytest.raises(RegistryError, match="'Swimmer', field 'distill.expert_pairs'.*first"):
        parse_registry(raw)


def test_a_task_has_explicit_fields_and_no_catch_all():
    """Every registry key is a named property of Task (no __getattr__ reading any key)."""
    from asymbench.tasks import TASK_SCHEMA, Task

    assert "__getattr__" not in vars(Task)
    task = get_task("MountainCarContinuous")
    for key in set(TASK_SCHEMA["properties"]) - {"lambda"}:
        assert isinstance(vars(Task)[key], property), key
    assert (task.small, task.large, task.her) == (8, 64, None)
    with pytest.raises(AttributeError):
        task.no_such_setting  # noqa: B018


def test_a_run_that_predates_registry_keys_says_which_defaults_it_takes(capsys):
    """task_from_config fills the keys a run predates from today's defaults, and says so in one
    line on stderr when the run's registry version is not this one; a current run is silent."""
    from asymbench.tasks import REGISTRY_VERSION, task_from_config
    from asymbench.train_config import TrainRequest, resolve_config

    config = resolve_config(TrainRequest(task="MountainCarContinuous", method="l_only", seed=0, out="x"))
    assert config["registry_version"] == REGISTRY_VERSION
    assert task_from_config(config).settings == get_task("MountainCarContinuous").settings
    assert capsys.readouterr().err == ""
    old = {k: v for k, v in config.items() if k != "registry_version"}
    old["task_settings"] = {k: v for k, v in config["task_settings"].items() if k != "done_on_success"}
    old["task_settings"]["sac"] = {k: v for k, v in old["task_settings"]["sac"].items() if k != "lr_schedule"}
    task = task_from_config(old, source="old/config.json")
    assert task.done_on_success is False and task.sac["lr_schedule"] == config["sac"]["lr_schedule"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "old/config.json" in err[0] and "version (none)" in err[0]
    assert "done_on_success" in err[0] and "sac.lr_schedule" in err[0]
