"""proguard: train and evaluate proactive multimodal safety guards with GRPO.

The engine package: answer protocol, sample data, task generation, reward composition, training,
benchmark and the ``proguard`` command line. It builds on ``taxonomy``, ``synonym_bank`` and
``rewards``, which never import it.
"""

__version__ = "0.1.0"
