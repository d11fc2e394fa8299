"""How well-formed a free-text risk name is, as a factor in [0, 1], before any embedding is involved.

The OOD reward multiplies its calibrated probability by this factor, so that strings which an
embedding model scores well for the wrong reasons earn less than a clean short name:

==============================================  ============================================
form                                            factor
==============================================  ============================================
fewer than two letters outside IDs (``x``,      0: nothing names a risk
``C8S1.``, ``C1, C2, C3``, ``42``, empty)
words that are taxonomy IDs (``C3 scams``)      share of words that are not IDs
repeated words (``Weapons Weapons Weapons``)    distinct words / words
more words than the policy's longest phrase     longest / words
more list items than the policy's own names     most items / items
invisible or control characters                 x 0.5, and they are removed before encoding
==============================================  ============================================

The two length limits come from the policy (its names and synonyms), not from a constant: a name
as long as the policy's own longest phrase is never penalised. Words compare lower-cased with a
light plural strip, so ``Weapon weapons`` counts as a repetition.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

ID_WORD = re.compile(r"c\d+(?:s\d+)?", re.IGNORECASE)  # ProGuard's ID shapes, as words of a name
_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # letters and digits of any script
_ITEM_SPLIT = re.compile(r"\s*(?:[,;|/\n]|\band\b|\bor\b|&)\s*", re.IGNORECASE)
_INVISIBLE = {"Cf", "Cc", "Co", "Cs", "Cn"}  # format (zero-width...), control, private, surrogate, unassigned
_FUNCTION = frozenset("a an the and or of for in on to with without by from at into via about as".split())


def clean_name(text: str) -> tuple[str, bool]:
    """NFKC form with invisible characters removed and whitespace collapsed; and whether any were removed."""
    text = unicodedata.normalize("NFKC", text)
    kept = [" " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch) not in _INVISIBLE]
    return " ".join("".join(kept).split()), len(kept) != len(text)


def words(text: str) -> list[str]:
    """The words of a text (runs of letters and digits), lower-cased."""
    return [w.lower() for w in _WORD.findall(text)]


def split_items(text: str) -> list[str]:
    """A name's list items (split on commas, semicolons, slashes, 'and', 'or', '&'), each with a word."""
    return [part for part in _ITEM_SPLIT.split(text) if words(part)]


def list_items(text: str) -> int:
    """How many list items a name holds (split on commas, semicolons, slashes, 'and', 'or', '&')."""
    return max(1, len(split_items(text)))


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@dataclass(frozen=True)
class FormLimits:
    """The policy's own name shapes: its longest phrase in words and the most list items in one phrase."""

    max_words: int
    max_items: int

    @classmethod
    def from_phrases(cls, phrases: Iterable[str]) -> FormLimits:
        """Limits from a policy's names and synonyms (at least 1 each)."""
        phrases = list(phrases)
        return cls(
            max_words=max([len(words(p)) for p in phrases] or [1]) or 1,
            max_items=max([list_items(p) for p in phrases] or [1]),
        )


@dataclass(frozen=True)
class NameForm:
    """A name after cleaning (``text``, the string that is encoded), the factor it earns and why.

    Repeated words are dropped from ``text`` (``Weapons Weapons`` is encoded as ``Weapons``), so a
    repetition cannot raise the embedding fit; the factor then charges for it as well.
    """

    text: str
    factor: float
    reason: str


def _drop_repeats(text: str) -> str:
    seen: set[str] = set()
    kept = []
    for token in text.split():
        key = " ".join(_stem(w) for w in words(token))
        if key and key not in _FUNCTION and key in seen:
            continue
        seen.add(key)
        kept.append(token)
    return " ".join(kept)


def name_form(raw: str, limits: FormLimits, max_chars: int = 1000) -> NameForm:
    """Clean ``raw`` and compute its form factor (see the module docstring)."""
    text, had_invisible = clean_name(raw)
    text = text[:max_chars]
    all_words = words(text)
    ids = [w for w in all_words if ID_WORD.fullmatch(w)]
    content = [w for w in all_words if not ID_WORD.fullmatch(w)]
    if sum(ch.isalpha() for w in content for ch in w) < 2:
        return NameForm(text, 0.0, "no name: fewer than two letters outside IDs")
    factor, reasons = 1.0, []
    if ids:
        factor *= len(content) / len(all_words)
        reasons.append(f"{len(ids)} ID word(s)")
    stems = [_stem(w) for w in content if w not in _FUNCTION] or [_stem(w) for w in content]
    distinct = len(set(stems))
    if distinct < len(stems):
        factor *= distinct / len(stems)
        reasons.append(f"{len(stems) - distinct} repeated word(s)")
        text = _drop_repeats(text)
    if len(all_words) > limits.max_words:
        factor *= limits.max_words / len(all_words)
        reasons.append(f"{len(all_words)} words > {limits.max_words}")
    items = list_items(text)
    if items > limits.max_items:
        factor *= limits.max_items / items
        reasons.append(f"{items} list items > {limits.max_items}")
    if had_invisible:
        factor *= 0.5
        reasons.append("invisible characters")
    return NameForm(text, factor, "; ".join(reasons) or "ok")
