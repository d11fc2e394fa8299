"""How tasks are generated: ``TaskConfig`` and its validation (no numpy / Arrow here, so recipes and ``--help`` stay light).

``TaskOptions`` is the recipe's ``data.tasks`` section (typed, validated on construction);
``TaskConfig`` adds the prompt options (``proguard.protocol.PromptConfig``, the recipe's
``data.prompt``). The generator itself is ``proguard.tasks.generator``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from proguard.errors import UsageError
from proguard.protocol import PromptConfig
from rewards.types import MODALITIES

SCOPES = ("policy", "prompt")
"""Leak-check scopes: ``policy`` scans system messages; ``prompt`` training conversations too."""
SPLITS = ("train", "eval_id", "eval_ood", "eval_modality")
HIDE_LEVELS = ("category", "subcategory")
BALANCE_MODES = ("none", "down", "up")


class TaskError(UsageError):
    """Invalid task configuration or sample data; the message names the option, row or ID."""


@dataclass
class TaskOptions:
    """How tasks are generated, without the prompt options (the recipe's ``data.tasks`` section).

    Validated on construction (``TaskError`` names the bad option).
    """

    holdout: list[str] = field(
        default_factory=list,
        metadata={"help": "source node IDs held out of every prompt; their unsafe samples form eval_ood"},
    )
    hide_fraction: float = field(
        default=0.0,
        metadata={"help": "training tasks: share of the visible candidates (see hide_level) hidden at random per task"},
    )
    hide_level: str = field(
        default="category",
        metadata={"help": "category: random hiding removes whole top-level branches; subcategory: leaf nodes"},
    )
    own_category_hide_prob: float | None = field(
        default=None,
        metadata={"help": "training tasks: probability of hiding the sample's own node (1.0 always, 0.0 never); "
                          "null: the own node is an ordinary candidate of the random fraction"},
    )
    shuffle_ids: bool = field(
        default=False, metadata={"help": "renumber the visible categories in a random order per task (every split)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of every random choice of the generator"})
    eval_fraction: float = field(
        default=0.1, metadata={"help": "share of the in-taxonomy samples that go to eval_id instead of train"}
    )
    balance_modalities: str = field(
        default="none",
        metadata={"help": "train only: down subsamples each modality to the rarest one's count, up repeats to the "
                          "commonest one's count; none keeps the data as it is"},
    )
    holdout_modality: str | None = field(
        default=None,
        metadata={"help": "a modality kept out of training (OmniGuard's cross-modal transfer test): its in-taxonomy "
                          "samples form the eval_modality split, none of its samples train; null keeps all in"},
    )
    leak_scope: str = field(
        default="policy",
        metadata={"help": "policy: the leak check scans system messages; prompt: training conversations too"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.holdout, str):
            self.holdout = [h for h in (p.strip() for p in self.holdout.split(",")) if h]
        if not isinstance(self.holdout, (list, tuple)) or not all(isinstance(h, str) and h for h in self.holdout):
            raise TaskError(f"holdout: must be a list of node IDs, got {self.holdout!r}")
        self.holdout = list(dict.fromkeys(self.holdout))
        _fraction("hide_fraction", self.hide_fraction)
        if self.own_category_hide_prob is not None:
            _fraction("own_category_hide_prob", self.own_category_hide_prob)
        _fraction("eval_fraction", self.eval_fraction)
        if self.eval_fraction >= 1:
            raise TaskError(f"eval_fraction: must be below 1 (train would be empty), got {self.eval_fraction}")
        _choice("hide_level", self.hide_level, HIDE_LEVELS)
        _choice("balance_modalities", self.balance_modalities, BALANCE_MODES)
        _choice("leak_scope", self.leak_scope, SCOPES)
        if self.holdout_modality is not None:
            _choice("holdout_modality", self.holdout_modality, MODALITIES)
        if not isinstance(self.shuffle_ids, bool):
            raise TaskError(f"shuffle_ids: must be true or false, got {self.shuffle_ids!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TaskError(f"seed: must be a non-negative integer, got {self.seed!r}")


@dataclass
class TaskConfig(TaskOptions):
    """``TaskOptions`` plus how the policy prompt is written: everything ``generate_tasks`` needs."""

    prompt: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.prompt, PromptConfig):
            raise TaskError(f"prompt: must be a proguard.protocol.PromptConfig, got {type(self.prompt).__name__}")

    @classmethod
    def from_options(cls, options: TaskOptions | None, prompt: PromptConfig | None = None) -> TaskConfig:
        """The config of ``options`` (defaults when ``None``) with ``prompt``."""
        values = {f.name: getattr(options, f.name) for f in fields(TaskOptions)} if options is not None else {}
        return cls(**values, prompt=prompt or PromptConfig())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready) of this config."""
        out = asdict(self)
        out["prompt"] = {**out["prompt"], "category_levels": dict(self.prompt.category_levels)}
        return out


def _fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise TaskError(f"{name}: must be a number in [0, 1], got {value!r}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TaskError(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")
