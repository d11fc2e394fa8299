"""Reward composition: the registry of reward modules, recipe specs, the composite reward, offline scoring.

- ``registry``: names -> reward factories (built-ins and plugins via the ``proguard.rewards`` entry points)
- ``specs``: the ``rewards:`` list of a recipe or preset as typed ``RewardSpec`` rows
- ``compose``: ``CompositeReward`` (one parse per batch, gates x weighted sum, every part logged)
- ``offline``: ``proguard rewards score`` over a JSONL file

The reward modules themselves live in the top-level ``rewards`` package.
"""
