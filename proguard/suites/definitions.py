"""Named suites: which benchmarks, scored at which level, make up each paper's evaluation table.

* ``proguard-text`` — ProGuard Table 1, prompt classification (text): Aegis 2.0, HarmBench, OpenAI
  Moderation, SimpleSafetyTests, ToxicChat, WildGuardTest, XSTest.
* ``proguard-response`` — Table 1, response classification (text): Aegis 2.0, BeaverTails, WildGuardTest,
  XSTest-Response.
* ``proguard-mm`` — Table 1 multimodal columns: BeaverTails-V (text+image prompt and response),
  LlavaGuard (image); Table 2's category accuracy on Aegis 2.0, OpenAI Moderation, BeaverTails-V and
  LlavaGuard comes out of the same runs.
* ``guardreasoner`` — GuardReasoner's prompt set (ToxicChat, HarmBench, OpenAI Moderation, Aegis, SimpleSafetyTests,
  WildGuardTest) and response set (BeaverTails, XSTest-Response, WildGuardTest), with its sample-weighted
  average. Differences: GuardReasoner used Aegis 1.0 (we run 2.0) and also HarmBench responses and
  SafeRLHF, which have no adapter yet.
* ``all`` — every built-in adapter at every level it labels.

A benchmark's name is also a suite of its own (``--suite xstest``), with a protocol after ``@``
(``--suite harmbench@guardreasoner``). Each suite names the protocol (row set and label rule) its paper
used: ``proguard-text`` reads HarmBench's 400-row ``_all`` set, ``guardreasoner`` its 239-row prompt set;
both count a missing OpenAI Moderation flag as 0 (1,680 rows), as the published numbers do.
"""

from __future__ import annotations

from dataclasses import dataclass

from proguard.errors import UsageError
from proguard.hints import did_you_mean


@dataclass(frozen=True)
class Entry:
    """One benchmark scored at one level (``prompt``, ``response`` or ``image``) under a protocol
    (``None``: the adapter's default)."""

    adapter: str
    level: str
    protocol: str | None = None

    @property
    def run_name(self) -> str:
        """The benchmark's name in a run: ``adapter`` or ``adapter@protocol``."""
        return self.adapter if self.protocol is None else f"{self.adapter}@{self.protocol}"


_PROTOCOL = {"proguard": {"harmbench": "all", "openai_moderation": "published"},
             "guardreasoner": {"harmbench": "guardreasoner", "openai_moderation": "published"}}

SUITES: dict[str, tuple[Entry, ...]] = {
    "proguard-text": tuple(Entry(a, "prompt", _PROTOCOL["proguard"].get(a)) for a in (
        "aegis2", "harmbench", "openai_moderation", "simplesafetytests", "toxicchat", "wildguardtest", "xstest")),
    "proguard-response": tuple(Entry(a, "response") for a in ("aegis2", "beavertails", "wildguardtest", "xstest_response")),
    "proguard-mm": (Entry("beavertails_v", "prompt"), Entry("llavaguard", "image"), Entry("beavertails_v", "response")),
    "guardreasoner": (
        *(Entry(a, "prompt", _PROTOCOL["guardreasoner"].get(a)) for a in (
            "toxicchat", "harmbench", "openai_moderation", "aegis2", "simplesafetytests", "wildguardtest")),
        *(Entry(a, "response") for a in ("beavertails", "xstest_response", "wildguardtest")),
    ),
}


class SuiteError(UsageError):
    """An unknown suite or benchmark name."""


def resolve(spec: str, registry) -> list[Entry]:
    """Entries of ``NAME[,NAME...]`` (suites or benchmark names), de-duplicated, in order."""
    out: list[Entry] = []
    for name in (s.strip() for s in spec.split(",")):
        if not name:
            continue
        if name == "all":
            entries = [Entry(a, lvl) for a in registry.names() for lvl in registry.get(a).levels]
        elif name in SUITES:
            entries = list(SUITES[name])
        elif name.partition("@")[0] in registry.names() or ":" in name:
            bench, _, protocol = name.partition("@")
            adapter = registry.get(bench)
            if protocol and protocol not in adapter.protocols:
                known = ", ".join(adapter.protocols) or "none (one row set)"
                raise SuiteError(f"{name}: {bench} has no protocol {protocol!r}; protocols: {known}")
            entries = [Entry(bench, lvl, protocol or None) for lvl in adapter.levels]
        else:
            known = [*SUITES, "all", *registry.names()]
            raise SuiteError(f"unknown suite or benchmark {name!r}{did_you_mean(name, known)}; "
                             f"suites: {', '.join([*SUITES, 'all'])}; benchmarks: {', '.join(registry.names())}")
        out.extend(e for e in entries if e not in out)
    if not out:
        raise SuiteError("--suite names nothing")
    return out
