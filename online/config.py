"""The slatestream configuration file: scenarios, and per scenario its slate size, candidate
source, policy with hyperparameters, objective weights and filters.

    config = load_config("deploy/slatestream.toml")   # TOML or YAML; ConfigError on bad input
    config = resolve_config(None)                     # $SLATESTREAM_CONFIG, else the defaults
    parts = config.engine_parts("feed")               # what an Engine needs for that scenario

Without a file the defaults give one scenario, "default", that also serves every scenario a
request names (`fallback_scenario`): the behaviour of slatestream before scenarios were
configurable. Scenarios that name the same policy share it: one policy object, one global
state and one state per user, so feedback in one scenario warms a user up in the others; for
linear Thompson sampling each of them then learns a scenario offset (`scenario_offsets` is set
from the scenarios, see online.policies.linear_ts). They must give it the same hyperparameters.
Every error names the offending key path, e.g. "scenarios.feed.policy.name: unknown policy
'foo' (known: ...)". See docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from online.engine import EngineConfig
from online.objectives import FilterSettings, Objectives, ObjectiveSettings
from online.policies import POLICIES, hyperparameter_type, make_policy
from online.policies.base import Policy

CONFIG_ENV = "SLATESTREAM_CONFIG"
"""Environment variable naming the configuration file when no path is given."""
DEFAULT_SCENARIO = "default"
CandidateSource = Literal["request", "retrieval", "auto"]
EncoderChoice = Literal["bert", "hashing"]
DeviceChoice = Literal["auto", "cpu", "cuda"]
DERIVED_PARAMS = {"linear_ts": ("scenario_offsets",)}
"""Hyperparameters set from the configuration itself, never written in the file."""


class ConfigError(ValueError):
    """An invalid configuration; the message lists every problem with its key path."""


class PolicyConfig(BaseModel):
    """A registered policy (online.policies.POLICIES) and its hyperparameters: the fields of
    the dataclass its constructor takes (e.g. LinearTSParams); omitted ones keep defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "linear_ts"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in POLICIES:
            raise ValueError(f"unknown policy {value!r} (known: {', '.join(POLICIES)})")
        return value

    @model_validator(mode="after")
    def _params_fit_the_policy(self) -> PolicyConfig:
        check_hyperparameters(self.name, self.params)
        return self

    def hyperparameters(self, **derived: Any) -> object | None:
        """The policy's hyperparameter dataclass from `params` plus `derived` values."""
        params_type = hyperparameter_type(self.name)
        if params_type is None:
            return None
        return TypeAdapter(params_type).validate_python({**self.params, **derived})


def _unknown_keys(params_type: type, values: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys of `values` that are not fields of the dataclass (nested dataclasses too)."""
    fields = {f.name: f for f in dataclasses.fields(params_type)}
    problems = []
    for key, value in values.items():
        if key not in fields:
            problems.append(f"{prefix}{key}: unknown hyperparameter (known: {', '.join(fields)})")
            continue
        field_type = typing.get_type_hints(params_type).get(key)
        if dataclasses.is_dataclass(field_type) and isinstance(field_type, type) and isinstance(value, dict):
            problems += _unknown_keys(field_type, value, f"{prefix}{key}.")
    return problems


def check_hyperparameters(name: str, params: dict[str, Any]) -> None:
    """Raise ValueError ("params.<key>: ...") unless `params` builds the policy's hyperparameters."""
    params_type = hyperparameter_type(name)
    if params_type is None:
        if params:
            raise ValueError(f"params: policy {name!r} takes no hyperparameters, got {', '.join(params)}")
        return
    derived = [key for key in DERIVED_PARAMS.get(name, ()) if key in params]
    if derived:
        raise ValueError(f"params.{derived[0]}: set from the scenarios that share the policy, leave it out")
    problems = _unknown_keys(params_type, params)
    if problems:
        raise ValueError("; ".join(f"params.{p}" for p in problems))
    try:
        TypeAdapter(params_type).validate_python(params)
    except ValidationError as error:
        details = [_hyperparameter_problem(params_type, e) for e in error.errors()]
        raise ValueError("; ".join(details)) from None


def _hyperparameter_problem(params_type: type, error: Any) -> str:
    """"params.<key>: <problem>", the key taken from a "<Params>.<key> <problem>" message of
    the dataclass's own checks when pydantic gives no location."""
    message = _message(error)
    path = "".join(f".{part}" for part in error["loc"])
    match = re.fullmatch(rf"{params_type.__name__}\.(\w+) (.*)", message, flags=re.DOTALL)
    if not path and match:
        path, message = f".{match.group(1)}", match.group(2)
    return f"params{path}: {message}"


def _message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


class ShadowConfig(BaseModel):
    """A shadow policy (docs/worker.md, "Shadow policies"): it learns from the feedback of the
    scenarios it shadows and is scored live on their served slates, never served. name: its label
    and the prefix of its state (`shadow/<name>/...`); policy: the policy and its hyperparameters;
    scenarios: the declared scenarios it shadows (None: every one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    policy: PolicyConfig
    scenarios: tuple[str, ...] | None = Field(default=None, min_length=1)


class LeaderboardConfig(BaseModel):
    """How the worker scores its shadow policies (online/evaluation/live.py): over the last
    `window_rounds` rounds within `window_s` seconds of event time of the newest; a round enters
    the window `close_after_s` seconds after its impression reached the worker (its clicks count
    until then); a leaderboard record every `publish_interval_s` seconds; `n_bootstrap`
    resamples per interval; at most `max_pending` served slates wait for their impression; a
    shadow's estimate is reliable only when its interval's half-width is within `precision` of
    its value (`online.evaluation.assessment.ReliabilityRule`), and its difference from the
    served policy counts as none ("tied") within ±`precision` of the served value; a shadow is
    called better or worse when that difference's interval clears 0 by more than
    `min_difference` of the served value (`online.evaluation.versus`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_rounds: int = Field(default=2000, ge=30, le=1_000_000)
    window_s: float = Field(default=3600.0, gt=0.0, allow_inf_nan=False)
    close_after_s: float = Field(default=30.0, ge=0.0, allow_inf_nan=False)
    publish_interval_s: float = Field(default=30.0, gt=0.0, allow_inf_nan=False)
    n_bootstrap: int = Field(default=200, ge=20, le=100_000)
    max_pending: int = Field(default=20_000, ge=1)
    precision: float = Field(default=0.10, gt=0.0)
    min_difference: float = Field(default=0.01, ge=0.0, allow_inf_nan=False)


class ScenarioConfig(BaseModel):
    """One scenario (a place slates are served: a feed, an ad slot...).

    slate_size: items per slate when a request does not name k (a request's own k wins).
    candidates: "request" (each request brings its candidates; one without is rejected),
        "retrieval" (the engine retrieves `retrieval_size` items from the catalog, ignoring a
        request's candidates) or "auto" (the request's candidates when it has some, else
        retrieval).
    retrieval_size: candidates retrieved per request (>= 1; default: `engine.retrieval_size`).
    policy: the policy and its hyperparameters; objectives, filters: see online.objectives.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    slate_size: int = Field(default=10, ge=1, le=100)
    candidates: CandidateSource = "auto"
    retrieval_size: int | None = Field(default=None, ge=1)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    objectives: ObjectiveSettings = Field(default_factory=ObjectiveSettings)
    filters: FilterSettings = Field(default_factory=FilterSettings)


class EmbeddingConfig(BaseModel):
    """How item texts become bandit vectors (`encoders.embedding`).

    encoder: "bert" (all-MiniLM-L6-v2 run by ONNX Runtime, exported on first use into the per-user
    cache) or "hashing" (text hashing, no model); model: an exported .onnx file to use instead of
    the bundled model; device: "auto" (CUDA when a GPU is present), "cpu" or "cuda" (an error
    without a GPU); int8: the int8 variant of the model (CPU); dim: the bandit's item dimension d
    (the encoder's vectors are projected to it, by one projection every worker shares);
    projection_items: how many catalogue items that projection is fitted on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    encoder: EncoderChoice = "bert"
    model: str | None = None
    device: DeviceChoice = "auto"
    int8: bool = False
    dim: int = Field(default=32, ge=2, le=4096)
    projection_items: int = Field(default=2000, ge=2)


@dataclass(frozen=True)
class EngineParts:
    """What the Engine serving a scenario needs (one Engine per policy name).

    policy: a new policy object (scenarios naming it share it, its global state and its user
    states); engine_config: that Engine's EngineConfig; objectives: the slate objectives and
    filters of all its scenarios (None when all are at their defaults: plain relevance
    ranking); scenarios: the declared scenarios the Engine serves; scenario, settings: the
    declared scenario asked for (after the fallback) and its configuration.
    """

    policy: Policy[Any, Any]
    engine_config: EngineConfig
    objectives: Objectives | None
    scenarios: tuple[str, ...]
    scenario: str
    settings: ScenarioConfig


def _default_scenarios() -> dict[str, ScenarioConfig]:
    return {DEFAULT_SCENARIO: ScenarioConfig()}


class SlatestreamConfig(BaseModel):
    """The model side of slatestream, read by every runner (worker, demo, run, evaluate, sweep):
    `engine` settings, the item `embedding`, `scenarios` by name, and `fallback_scenario`, the
    scenario whose settings serve requests of scenarios not declared (None: they are
    rejected). Without `scenarios`, one "default" scenario is declared and is the fallback.
    Infrastructure (broker, topics, store directory) is `streams.settings.StreamSettings`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: EngineConfig = Field(default_factory=EngineConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    scenarios: dict[str, ScenarioConfig] = Field(default_factory=_default_scenarios, min_length=1)
    fallback_scenario: str | None = None
    shadows: tuple[ShadowConfig, ...] = ()
    leaderboard: LeaderboardConfig = Field(default_factory=LeaderboardConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_fallback(cls, data: Any) -> Any:
        if isinstance(data, dict) and "scenarios" not in data and "fallback_scenario" not in data:
            return {**data, "fallback_scenario": DEFAULT_SCENARIO}
        return data

    @field_validator("scenarios")
    @classmethod
    def _names(cls, scenarios: dict[str, ScenarioConfig]) -> dict[str, ScenarioConfig]:
        for name in scenarios:
            if not name.strip() or len(name) > 256:
                raise ValueError(f"scenario name {name!r} must be 1 to 256 characters, not blank")
        return scenarios

    @model_validator(mode="after")
    def _consistent(self) -> SlatestreamConfig:
        if self.fallback_scenario is not None and self.fallback_scenario not in self.scenarios:
            raise ValueError(f"fallback_scenario: {self.fallback_scenario!r} is not a declared scenario "
                             f"(declared: {', '.join(self.scenarios)})")
        first_of: dict[str, str] = {}
        for name, scenario in self.scenarios.items():
            owner = first_of.setdefault(scenario.policy.name, name)
            theirs = self.scenarios[owner]
            if scenario.policy != theirs.policy:
                raise ValueError(f"scenarios.{name}.policy.params: scenarios {owner!r} and {name!r} share policy "
                                 f"{scenario.policy.name!r} (and its state), so they need the same hyperparameters")
            if scenario.objectives.memory_key() != theirs.objectives.memory_key():
                raise ValueError(f"scenarios.{name}.objectives: scenarios {owner!r} and {name!r} share policy "
                                 f"{scenario.policy.name!r} (one objective memory), so they need the same "
                                 "fairness_group, windows and memory sizes")
            if scenario.retrieval_size != theirs.retrieval_size:
                raise ValueError(f"scenarios.{name}.retrieval_size: scenarios {owner!r} and {name!r} share policy "
                                 f"{scenario.policy.name!r} (one engine), so they need the same retrieval_size")
        return self

    @model_validator(mode="after")
    def _shadows_consistent(self) -> SlatestreamConfig:
        names = [shadow.name for shadow in self.shadows]
        for index, shadow in enumerate(self.shadows):
            if names.index(shadow.name) != index:
                raise ValueError(f"shadows.{index}.name: {shadow.name!r} names two shadows (each keeps its state "
                                 f"under shadow/<name>/)")
            unknown = [name for name in shadow.scenarios or () if name not in self.scenarios]
            if unknown:
                raise ValueError(f"shadows.{index}.scenarios: {unknown[0]!r} is not a declared scenario "
                                 f"(declared: {', '.join(self.scenarios)})")
        return self

    def with_policy(self, policy: str) -> SlatestreamConfig:
        """This configuration with one "default" scenario, also the fallback, serving every
        request with `policy` at its default hyperparameters."""
        scenarios = {DEFAULT_SCENARIO: ScenarioConfig(policy=PolicyConfig(name=policy))}
        return self.model_copy(update={"scenarios": scenarios, "fallback_scenario": DEFAULT_SCENARIO})

    def with_engine(self, **settings: Any) -> SlatestreamConfig:
        """This configuration with some `engine` settings replaced (validated)."""
        return self.model_copy(update={"engine": EngineConfig.model_validate({**self.engine.model_dump(), **settings})})

    def resolve(self, scenario: str) -> str:
        """The declared scenario serving requests of `scenario` (itself or the fallback);
        raises KeyError naming the declared ones."""
        if scenario in self.scenarios:
            return scenario
        if self.fallback_scenario is not None:
            return self.fallback_scenario
        raise KeyError(f"scenario {scenario!r} is not configured (declared: {', '.join(self.scenarios)})")

    def policy_groups(self) -> dict[str, tuple[str, ...]]:
        """policy name -> the declared scenarios that use it (they share its state)."""
        groups: dict[str, list[str]] = {}
        for name, scenario in self.scenarios.items():
            groups.setdefault(scenario.policy.name, []).append(name)
        return {policy: tuple(names) for policy, names in groups.items()}

    def build_policy(self, policy_name: str) -> Policy[Any, Any]:
        """A new policy object for the scenarios naming `policy_name`. For linear TS with two
        or more such scenarios, each learns an offset (`scenario_offsets`); with one, none."""
        scenarios = self.policy_groups()[policy_name]
        spec = self.scenarios[scenarios[0]].policy
        derived: dict[str, Any] = {}
        if "scenario_offsets" in DERIVED_PARAMS.get(policy_name, ()):
            derived["scenario_offsets"] = tuple(sorted(scenarios)) if len(scenarios) > 1 else ()
        return make_policy(policy_name, spec.hyperparameters(**derived))

    def engine_config(self, policy_name: str) -> EngineConfig:
        """The EngineConfig of the Engine serving the scenarios of `policy_name`: the file's
        `engine` table, with the scenarios' own retrieval_size when they set one."""
        scenario = self.scenarios[self.policy_groups()[policy_name][0]]
        if scenario.retrieval_size is None:
            return self.engine
        return self.engine.model_copy(update={"retrieval_size": scenario.retrieval_size})

    def build_objectives(self, policy_name: str) -> Objectives | None:
        """The slate objectives of the Engine serving `policy_name`'s scenarios: per scenario
        its settings; the fallback's (else the first's) for scenarios not declared. None when
        every one of them has default objectives and no filter."""
        scenarios = self.policy_groups()[policy_name]
        configured = {name: (self.scenarios[name].objectives, self.scenarios[name].filters) for name in scenarios}
        if all(settings == (ObjectiveSettings(), FilterSettings()) for settings in configured.values()):
            return None
        default = self.fallback_scenario if self.fallback_scenario in configured else scenarios[0]
        return Objectives(*configured[default], scenarios=configured)

    def engine_parts(self, scenario: str = DEFAULT_SCENARIO) -> EngineParts:
        """New parts for the Engine serving requests of `scenario` (resolved via the fallback):
        call it once per policy name (see policy_groups) and route every scenario of the group
        to that one Engine, or the scenarios would stop sharing state."""
        name = self.resolve(scenario)
        policy_name = self.scenarios[name].policy.name
        return EngineParts(self.build_policy(policy_name), self.engine_config(policy_name),
                           self.build_objectives(policy_name), self.policy_groups()[policy_name], name,
                           self.scenarios[name])


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error.strerror or error}") from None
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: invalid TOML: {error}") from None
    if suffix in {".yaml", ".yml"}:
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: invalid YAML: {error}") from None
    raise ConfigError(f"{path}: want a .toml, .yaml or .yml file")


def parse_config(data: Any, source: str = "configuration") -> SlatestreamConfig:
    """Validate a mapping (parsed TOML/YAML); raises ConfigError listing each bad key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a table of keys, got {type(data).__name__}")
    try:
        return SlatestreamConfig.model_validate(data)
    except ValidationError as error:
        lines = [_describe(e) for e in error.errors()]
        raise ConfigError(f"{source}: " + ("\n  ".join(["invalid configuration:", *lines]))) from None


def _describe(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        return f"{'.'.join(loc)}: unknown key" + (f" (known: {', '.join(known)})" if known else "")
    message, path = _message(error), ".".join(loc)
    if not path:  # a whole-file check: its message starts with the key path
        return message
    if message.startswith("params"):  # hyperparameter problems, "; "-separated, each with its key
        return "\n  ".join(f"{path}.{part}" for part in message.split("; "))
    return f"{path}: {message}"


def _known_keys(loc: list[str]) -> list[str]:
    """Field names of the model found at `loc` (dict keys such as scenario names skipped)."""
    model: Any = SlatestreamConfig
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        annotation: Any = model.model_fields[part].annotation
        origin = typing.get_origin(annotation)
        if origin is dict or origin is tuple:  # a scenario name, a shadow's index
            annotation = typing.get_args(annotation)[1 if origin is dict else 0]
            if not parts:
                return []
            parts.pop(0)
        model = annotation
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def load_config(path: str | Path) -> SlatestreamConfig:
    """Read and validate a TOML (.toml) or YAML (.yaml, .yml) file; ConfigError when invalid."""
    path = Path(path)
    return parse_config(_read(path), str(path))


def resolve_config(path: str | Path | None = None) -> SlatestreamConfig:
    """`path` when given, else the file named by $SLATESTREAM_CONFIG, else the defaults."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    return SlatestreamConfig() if path is None else load_config(path)
