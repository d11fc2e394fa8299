"""``Registry[T]``: one registry for rewards and benchmark adapters; built-ins are entry points; messages name the kind."""

from __future__ import annotations

import importlib.metadata

import pytest

from proguard.plugins import Entry, Registry, RegistryError


def test_messages_name_the_kind():
    reg = Registry([Entry("alpha", "json:dumps", "test")], kind="widget", group="proguard.widgets")
    with pytest.raises(RegistryError, match=r"unknown widget 'alpah' \(did you mean 'alpha'.*Known widgets: alpha"):
        reg.load("alpah")
    reg.add_entry(Entry("alpha", "json:loads", "package other"))
    with pytest.raises(RegistryError, match=r"widget name 'alpha' is registered more than once .*json:loads"):
        reg.load("alpha")
    with pytest.raises(RegistryError, match=r"widget 'json:nope': 'json' has no attribute 'nope'"):
        reg.load("json:nope")


def test_rewards_and_suites_are_both_registries_of_entry_points():
    from proguard.scoring.registry import RewardRegistry, RewardRegistryError, default_registry as rewards
    from proguard.suites.registry import BUILTIN, AdapterRegistry, AdapterRegistryError, default_registry as suites

    assert isinstance(rewards(), Registry) and isinstance(suites(), Registry)
    assert issubclass(RewardRegistryError, RegistryError) and issubclass(AdapterRegistryError, RegistryError)
    own = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="proguard.suites")
           if ep.dist is not None and ep.dist.name == "proguard"}
    assert own == BUILTIN and len(own) >= 15  # the built-in adapters are this project's entry points
    assert set(own) <= set(suites().names())
    assert suites().entry("xstest").origin == "package proguard"
    with pytest.raises(AdapterRegistryError, match=r"unknown benchmark 'xtest'.*Known benchmarks:"):
        suites().get("xtest")
    with pytest.raises(RewardRegistryError, match=r"unknown reward 'categroy'.*Known rewards:"):
        rewards().build("categroy")
    assert RewardRegistry().with_entries({"one": lambda parsed, targets: [1.0]}).names() == ["one"]
    assert AdapterRegistry().with_entries({}).names() == []
