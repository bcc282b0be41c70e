"""Every hyperparameter of the LAM encoder (SPEC §1-2): `LAMHyperparameters`, a plain dataclass
read from and written to `config.json`, and `LAMConfig`, its thin transformers adapter.

`LAMConfig` (a `PretrainedConfig`) is built on first access, so importing this module imports
no transformers; the torch model, transformers' Auto classes and a saved model directory's
remote code use it, everything else reads `LAMHyperparameters`. This file travels inside every
saved model directory as `configuration_lam.py` (see `lam.remote_code`).
"""

from __future__ import annotations

import dataclasses
import json

POSITION_POLICIES = ("clamp", "none")
MODEL_TYPE = "lam"


@dataclasses.dataclass(frozen=True)
class LAMHyperparameters:
    """Configuration of a LAM encoder: a BERT body whose attention is the LAM mixer.

    BERT fields keep the teacher's names so its weights map one to one. LAM fields:
    `num_heads` heads of width `head_dim`, the last `num_backward_heads` of them reading
    the text backward; `conv_size` taps of depthwise convolution; retention biases
    initialised to logit(`fast_retention_init`) and logit(`slow_retention_init`); a
    resonance-flux MLP of width `flux_hidden` scaling slow retention by
    (1 - `flux_strength` * psi); `position_policy` for positions past the teacher's
    `max_position_embeddings` ("clamp": reuse the last one; "none": no absolute positions).
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    num_heads: int = 12
    head_dim: int = 32
    num_backward_heads: int = 6
    conv_size: int = 4
    qk_norm_eps: float = 1e-6
    rms_norm_eps: float = 1e-6
    fast_retention_init: float = 0.3
    slow_retention_init: float = 0.85
    flux_hidden: int = 16
    flux_strength: float = 0.05
    position_policy: str = "clamp"
    max_seq_length: int = 32768
    chunk_size: int = 64
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.position_policy not in POSITION_POLICIES:
            raise ValueError(f"position_policy must be one of {POSITION_POLICIES}, got {self.position_policy!r}")
        if not 0 <= self.num_backward_heads <= self.num_heads:
            raise ValueError(f"num_backward_heads={self.num_backward_heads} must lie in [0, num_heads={self.num_heads}]")

    @property
    def inner_size(self) -> int:
        """Width of the concatenated heads, num_heads * head_dim."""
        return self.num_heads * self.head_dim

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: dict) -> LAMHyperparameters:
        """From a config.json's fields; keys that are not hyperparameters (transformers' own) are ignored."""
        return cls(**{name: values[name] for name in cls.field_names() if name in values})

    @classmethod
    def of(cls, config) -> LAMHyperparameters:
        """The hyperparameters of any object carrying them as attributes (a `LAMConfig`, say)."""
        return config if isinstance(config, cls) else cls(**{name: getattr(config, name) for name in cls.field_names()})

    @classmethod
    def from_json_file(cls, path) -> LAMHyperparameters:
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json_string(self, **extra) -> str:
        """config.json text: every hyperparameter, `model_type` and `extra` fields (e.g. auto_map)."""
        return json.dumps({**self.to_dict(), "model_type": MODEL_TYPE, **extra}, indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path, **extra) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.to_json_string(**extra))

    def replace(self, **changes) -> LAMHyperparameters:
        return dataclasses.replace(self, **changes)


def _pretrained_config_class():
    """`LAMConfig`: `LAMHyperparameters` as a transformers `PretrainedConfig` (model_type "lam")."""
    from transformers import PretrainedConfig

    class LAMConfig(PretrainedConfig):
        """A transformers configuration holding every field of `LAMHyperparameters` as an attribute."""

        model_type = MODEL_TYPE

        def __init__(self, **kwargs):
            fields = {name: kwargs.pop(name) for name in LAMHyperparameters.field_names() if name in kwargs}
            hyperparameters = LAMHyperparameters(**fields)
            super().__init__(pad_token_id=hyperparameters.pad_token_id, **kwargs)
            for name, value in hyperparameters.to_dict().items():
                setattr(self, name, value)

        @property
        def inner_size(self) -> int:
            """Width of the concatenated heads, num_heads * head_dim."""
            return self.num_heads * self.head_dim

    # Pickle and transformers find the class as this module's attribute `LAMConfig`.
    LAMConfig.__module__, LAMConfig.__qualname__ = __name__, "LAMConfig"
    return LAMConfig


def __getattr__(name: str):
    if name == "LAMConfig":  # only the first access gets here: it becomes a module attribute
        globals()["LAMConfig"] = _pretrained_config_class()
        return globals()["LAMConfig"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pretrained_config(config):
    """`config` (`LAMHyperparameters`, or anything carrying its fields) as a transformers `LAMConfig`."""
    adapter = globals().get("LAMConfig") or __getattr__("LAMConfig")
    return config if isinstance(config, adapter) else adapter(**LAMHyperparameters.of(config).to_dict())
