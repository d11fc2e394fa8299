"""Reward modules for guard training: the plugin contract (``rewards.api``), the types they read
(``rewards.types``) and the built-in modules, each registered through the ``proguard.rewards``
entry-point group exactly like a user's plugin."""

from rewards.api import RewardModule, Scored
from rewards.types import FormatError, Parsed, Target, Verdict

__all__ = ["FormatError", "Parsed", "RewardModule", "Scored", "Target", "Verdict"]
