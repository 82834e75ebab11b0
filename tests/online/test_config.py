"""The configuration file: defaults, the shipped example, and errors that name the bad key."""

from pathlib import Path

import pytest
import yaml

from online.config import CONFIG_ENV, ConfigError, SlatestreamConfig, load_config, parse_config, resolve_config
from online.engine import EngineConfig
from online.policies.linear_ts import LinearTSParams

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "slatestream.toml"


def test_no_file_gives_one_default_scenario_with_the_current_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    config = resolve_config(None)
    assert list(config.scenarios) == ["default"] and config.fallback_scenario == "default"
    parts = config.engine_parts("any-scenario-at-all")
    assert parts.scenario == "default" and parts.scenarios == ("default",)
    assert parts.policy.name == "linear_ts" and parts.policy.params == LinearTSParams()
    assert parts.engine_config == EngineConfig() and parts.objectives is None
    assert parts.settings.slate_size == 10 and parts.settings.candidates == "auto"


def test_the_shipped_example_shares_one_learner_between_two_scenarios() -> None:
    config = load_config(EXAMPLE)
    assert set(config.scenarios) == {"feed", "ad_slot"} and config.fallback_scenario is None
    assert config.policy_groups() == {"linear_ts": ("feed", "ad_slot")}
    feed, ad = config.engine_parts("feed"), config.engine_parts("ad_slot")
    assert feed.policy.params.scenario_offsets == ("ad_slot", "feed")
    assert feed.policy.params == ad.policy.params and feed.policy is not ad.policy  # new objects per call
    assert config.scenarios["ad_slot"].slate_size == 3 and config.scenarios["ad_slot"].candidates == "request"
    assert feed.objectives is not None and feed.objectives.settings_for("feed")[0].diversity == 0.3
    assert feed.engine_config.n_draws == 64
    with pytest.raises(KeyError, match="scenario 'homepage' is not configured"):
        config.resolve("homepage")


def test_yaml_reads_like_toml(tmp_path: Path) -> None:
    import tomllib

    data = tomllib.loads(EXAMPLE.read_text())
    path = tmp_path / "slatestream.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_config(path) == load_config(EXAMPLE)


def test_environment_variable_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(EXAMPLE))
    assert set(resolve_config(None).scenarios) == {"feed", "ad_slot"}


def test_one_scenario_learns_no_offset() -> None:
    config = parse_config({"scenarios": {"feed": {"policy": {"params": {"exploration": 0.5}}}}})
    params = config.engine_parts("feed").policy.params
    assert params.scenario_offsets == () and params.exploration == 0.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scenarios": {"feed": {"policy": {"name": "foo"}}}},
         "scenarios.feed.policy.name: unknown policy 'foo' (known: linear_ts, "),
        ({"scenarios": {"feed": {"policy": {"params": {"explor": 1}}}}},
         "scenarios.feed.policy.params.explor: unknown hyperparameter (known: pop_prior_precision"),
        ({"scenarios": {"feed": {"policy": {"params": {"exploration": -1}}}}},
         "scenarios.feed.policy.params.exploration: must be > 0, got -1.0"),
        ({"scenarios": {"feed": {"policy": {"params": {"exploration": "high"}}}}},
         "scenarios.feed.policy.params.exploration: Input should be a valid number"),
        ({"scenarios": {"feed": {"policy": {"params": {"scenario_offsets": ["x"]}}}}},
         "scenarios.feed.policy.params.scenario_offsets: set from the scenarios"),
        ({"scenarios": {"feed": {"policy": {"name": "epsilon_greedy", "params": {"prior": {"alpha": 2}}}}}},
         "scenarios.feed.policy.params.prior.alpha: unknown hyperparameter (known: prior_alpha, prior_beta)"),
        ({"scenarios": {"feed": {"policy": {"name": "uniform_random", "params": {"epsilon": 0.1}}}}},
         "scenarios.feed.policy.params: policy 'uniform_random' takes no hyperparameters"),
        ({"scenarios": {"feed": {"slate_size": 0}}}, "scenarios.feed.slate_size: Input should be greater than"),
        ({"scenarios": {"feed": {"candidates": "catalog"}}}, "scenarios.feed.candidates: Input should be 'request'"),
        ({"scenarios": {"feed": {"slatesize": 3}}}, "scenarios.feed.slatesize: unknown key (known: slate_size,"),
        ({"scenarios": {"feed": {"objectives": {"diversty": 1}}}},
         "scenarios.feed.objectives.diversty: unknown key (known: relevance, diversity,"),
        ({"scenarios": {"feed": {"filters": {"exclude_shown_within_s": -5}}}},
         "scenarios.feed.filters.exclude_shown_within_s: Input should be greater than 0"),
        ({"engine": {"n_draws": 0}}, "engine.n_draws: Input should be greater than or equal to 1"),
        ({"scenario": {}},
         "scenario: unknown key (known: engine, embedding, scenarios, fallback_scenario, shadows, leaderboard)"),
        ({"scenarios": {}}, "scenarios: Dictionary should have at least 1 item"),
        ({"scenarios": {"a": {}}, "fallback_scenario": "b"},
         "fallback_scenario: 'b' is not a declared scenario (declared: a)"),
        ({"scenarios": {"a": {}, "b": {"policy": {"params": {"exploration": 1.0}}}}},
         "scenarios.b.policy.params: scenarios 'a' and 'b' share policy 'linear_ts'"),
        ({"scenarios": {"a": {}, "b": {"retrieval_size": 5}}}, "scenarios.b.retrieval_size: scenarios 'a' and 'b'"),
        ({"scenarios": {"a": {}, "b": {"objectives": {"window_buckets": 3}}}}, "scenarios.b.objectives: scenarios"),
    ],
)
def test_errors_name_the_bad_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "test.toml")
    assert message in str(raised.value)
    assert str(raised.value).startswith("test.toml: invalid configuration:")


def test_every_problem_is_listed() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"engine": {"n_draws": 0}, "scenarios": {"feed": {"slate_size": 0, "policy": {"name": "x"}}}})
    text = str(raised.value)
    assert all(key in text for key in ("engine.n_draws", "scenarios.feed.slate_size", "scenarios.feed.policy.name"))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "[scenarios.feed\nslate_size = 3", "bad.toml: invalid TOML"),
        ("bad.yaml", "scenarios: [unclosed", "bad.yaml: invalid YAML"),
        ("list.yaml", "- a\n- b", "the top level must be a table of keys"),
        ("config.json", "{}", "want a .toml, .yaml or .yml file"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("# nothing\n")
    assert load_config(path) == SlatestreamConfig()


def test_shadows_are_off_by_default_and_validated_like_the_rest() -> None:
    assert SlatestreamConfig().shadows == () and SlatestreamConfig().leaderboard.window_rounds == 2000
    config = parse_config({
        "scenarios": {"feed": {}, "ad_slot": {"policy": {"name": "bernoulli_ts"}}},
        "shadows": [{"name": "explore", "policy": {"name": "linear_ts", "params": {"exploration": 1.0}}},
                    {"name": "popular", "policy": {"name": "most_popular"}, "scenarios": ["ad_slot"]}],
        "leaderboard": {"window_rounds": 500, "close_after_s": 5},
    })
    from online.shadows import shadow_policy, shadow_scenarios

    explore, popular = config.shadows
    assert shadow_scenarios(config, explore) == ("feed", "ad_slot") and shadow_scenarios(config, popular) == (
        "ad_slot",)
    assert shadow_policy(config, explore).params == LinearTSParams(exploration=1.0,
                                                                   scenario_offsets=("ad_slot", "feed"))
    problems = {
        "shadows.0.name: String should match pattern": {"shadows": [{"name": "a/b", "policy": {}}]},
        "shadows.0.policy.params.exploration: must be > 0": {
            "shadows": [{"name": "a", "policy": {"name": "linear_ts", "params": {"exploration": -1}}}]},
        "shadows.1.name: 'a' names two shadows": {
            "shadows": [{"name": "a", "policy": {}}, {"name": "a", "policy": {}}]},
        "shadows.0.scenarios: 'email' is not a declared scenario": {
            "shadows": [{"name": "a", "policy": {}, "scenarios": ["email"]}]},
        "shadows.0.polcy: unknown key (known: name, policy, scenarios)": {"shadows": [{"name": "a", "polcy": {}}]},
        "leaderboard.n_bootstrap: Input should be greater than or equal to 20": {"leaderboard": {"n_bootstrap": 1}},
    }
    for message, data in problems.items():
        with pytest.raises(ConfigError) as error:
            parse_config(data)
        assert message in str(error.value), str(error.value)
