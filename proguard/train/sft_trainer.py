"""``GuardSFTTrainer``: TRL's ``SFTTrainer`` with the behaviour it shares with ``GuardGRPOTrainer``.

Imports TRL at module level (seconds): ``proguard.train.sft`` imports this module only when it builds
a trainer. The mixins (``proguard.train.trainer_mixins``) give it staged checkpoints (a kill mid-save
never leaves a half ``checkpoint-N``), the resume that maps saved keys back to the model's names, and
the model card written once at the end of the run. ``DecisionTokenWeight`` (``proguard.train.decision_weight``)
weights the safe/unsafe decision tokens up in the loss when ``sft.decision_token_weight`` asks.
"""

from __future__ import annotations

from trl import SFTTrainer

from proguard.train.decision_weight import DecisionTokenWeight
from proguard.train.trainer_mixins import CardAtEnd, SeededSampler, StagedCheckpoints


class GuardSFTTrainer(DecisionTokenWeight, StagedCheckpoints, SeededSampler, CardAtEnd, SFTTrainer):
    """``SFTTrainer`` with proguard's staged checkpoints, seeded sampler, end-of-run card and decision-token
    weight (``sft.decision_token_weight``)."""


__all__ = ["GuardSFTTrainer"]
