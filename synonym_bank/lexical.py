"""Lexical synonym proposals with nltk's WordNet reader: lemma swaps and morphological variants of head words.

For each phrase of a node (its name, then its synonyms) the head word is the last word before the
first preposition ("Misuse of Copyright Information" -> "Misuse"), else the last word ("Fraud and
Scams" -> "Scams"). Proposals replace it with its singular or plural (validated by WordNet's
``morphy``) and with the other lemmas of its most frequent noun senses ("Scams" -> "Cozenage").
They are noisy by nature: they land in the bank's ``generated`` list, ``proguard synonyms check``
flags the ones that sit closer to another category, and the curated override file removes them.

WordNet data is never downloaded at run time. It is looked for, in order: the ``root`` argument or
``$PROGUARD_WORDNET_DIR`` (a WordNet 3.0 database directory), nltk's own data path
(``corpora/wordnet``, if the user installed it), and ``/usr/share/wordnet`` (Debian/Ubuntu
``apt-get install wordnet-base``). A database directory without nltk's ``lexnames`` file is staged,
once (a ~28 MB copy), into ``<cache>/nltk_data/corpora/`` with that file added. No data: ``WordNetUnavailable``,
whose message says how to install it; the bank builder then skips proposals and says so.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synonym_bank.bank import SynonymBank, norm_phrase

SYSTEM_WORDNET = Path("/usr/share/wordnet")
INSTALL_HINT = (
    "install WordNet 3.0 offline with `apt-get install wordnet-base` (Debian/Ubuntu, read from "
    "/usr/share/wordnet), or point $PROGUARD_WORDNET_DIR at a WordNet database directory, or install "
    "nltk's wordnet corpus into an nltk_data folder yourself; proguard never downloads it"
)
_DB_FILES = tuple(f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")) + tuple(
    f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")
)
_OPTIONAL_FILES = ("cntlist.rev", "index.sense", "lexnames")
# WordNet 3.0's lexicographer files, in number order (lexnames(5WN)); nltk needs them as a file.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_PREPOSITIONS = frozenset("of for in on to with without by through against from at into via about".split())
_FUNCTION_WORDS = _PREPOSITIONS | frozenset("a an the and or nor but".split())
_WORD_RE = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")


class WordNetUnavailable(RuntimeError):
    """No WordNet data could be found offline; the message says how to install it."""


def load_wordnet(root: str | Path | None = None, cache_dir: str | Path | None = None) -> Any:
    """An nltk ``WordNetCorpusReader`` over offline WordNet data (see the module docstring for where)."""
    explicit = root or os.environ.get("PROGUARD_WORDNET_DIR")
    if explicit:
        return _reader_for(Path(explicit), cache_dir)
    import nltk

    try:
        nltk.data.find("corpora/wordnet")  # only looks on disk; never downloads
    except LookupError:
        pass
    else:
        from nltk.corpus import wordnet

        return wordnet
    if SYSTEM_WORDNET.is_dir():
        return _reader_for(SYSTEM_WORDNET, cache_dir)
    raise WordNetUnavailable(f"WordNet data not found; {INSTALL_HINT}")


def _reader_for(src: Path, cache_dir: str | Path | None) -> Any:
    """Stage a WordNet database directory where nltk's path sandbox allows it, then open it."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    missing = [f for f in _DB_FILES if not (src / f).is_file()]
    if missing:
        raise WordNetUnavailable(
            f"{src}: not a WordNet database directory (missing {', '.join(missing)}); {INSTALL_HINT}"
        )
    if cache_dir is None:
        from synonym_bank.index import default_cache_dir

        cache_dir = default_cache_dir()
    data_root = Path(cache_dir) / "nltk_data"
    dest = data_root / "corpora" / f"wordnet-{hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:12]}"
    _stage(src, dest)
    if str(data_root) not in nltk.data.path:
        nltk.data.path.append(str(data_root))  # nltk only opens corpora under its data path

    class _EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            return None  # the cross-version map is for multilingual data (it needs index.sense); unused

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": we need none
        return _EnglishWordNet(str(dest), None)


def _stage(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in _DB_FILES + _OPTIONAL_FILES:
        source, target = src / name, dest / name
        if not source.is_file():
            continue
        if target.exists() and target.stat().st_size == source.stat().st_size and target.stat().st_nlink == 1:
            continue
        # a real copy: nltk's path sandbox refuses symbolic and hard links (~28 MB, once)
        tmp = target.with_suffix(target.suffix + ".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    lexnames = dest / "lexnames"
    if not lexnames.exists():
        lines = (f"{i:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))
        lexnames.write_text("".join(lines), encoding="ascii")


def head_word(phrase: str) -> re.Match[str] | None:
    """The head word's match in a noun phrase: last content word before the first preposition."""
    words = list(_WORD_RE.finditer(phrase))
    for k, w in enumerate(words):
        if w.group().lower() in _PREPOSITIONS and k > 0:
            words = words[:k]
            break
    content = [w for w in words if w.group().lower() not in _FUNCTION_WORDS]
    return content[-1] if content else None


def _match_case(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old[:1].isupper():
        parts = new.split(" ")
        return " ".join(p if k and p in _FUNCTION_WORDS else p[:1].upper() + p[1:] for k, p in enumerate(parts))
    return new


def _plural(wn: Any, base: str) -> str | None:
    """A plural of ``base`` that WordNet's morphy maps back to it, else ``None``."""
    if base.endswith(("s", "x", "z", "ch", "sh")):
        candidates = [base + "es"]  # morphy strips a bare "s" too, which would accept "accesss"
    elif base.endswith("y") and base[-2:-1] not in set("aeiou"):
        candidates = [base[:-1] + "ies", base + "s"]
    else:
        candidates = [base + "s"]
    for cand in candidates:
        if wn.morphy(cand, "n") == base:
            return cand
    return None


def head_variants(wn: Any, word: str, senses: int = 1) -> list[str]:
    """Replacements for a head word: its other number, then other lemmas of its first noun senses."""
    lower = word.lower()
    # every base form WordNet knows ("transactions" is a lemma itself and the plural of "transaction")
    forms = wn._morphy(lower, "n") if hasattr(wn, "_morphy") else [f for f in [wn.morphy(lower, "n")] if f]
    if not forms:
        return []
    singular = next((f for f in forms if f != lower), None)
    base = singular or lower
    out = [singular] if singular else [p for p in [_plural(wn, base)] if p]
    for synset in wn.synsets(base, pos="n")[:senses]:
        for lemma in synset.lemma_names():
            if lemma.islower():  # capitalised lemmas are proper names ("Ares" for "war")
                out.append(lemma.replace("_", " "))
    return [w for w in dict.fromkeys(out) if w != lower]


def propose(wn: Any, phrases: Iterable[str], *, max_proposals: int = 5, senses: int = 1) -> list[str]:
    """Up to ``max_proposals`` new phrases from head-word variants of the given phrases, in order."""
    phrases = list(phrases)
    seen = {norm_phrase(p) for p in phrases}
    out: list[str] = []
    for phrase in phrases:
        head = head_word(phrase)
        if head is None:
            continue
        for variant in head_variants(wn, head.group(), senses):
            new = phrase[: head.start()] + _match_case(variant, head.group()) + phrase[head.end() :]
            if norm_phrase(new) not in seen:
                seen.add(norm_phrase(new))
                out.append(new)
                if len(out) >= max_proposals:
                    return out
    return out


def add_proposals(bank: SynonymBank, wn: Any, *, max_per_node: int = 5, senses: int = 1) -> dict[str, list[str]]:
    """Replace every node's ``generated`` list with fresh WordNet proposals; returns them per node key."""
    added = {}
    for entry in bank:
        entry.generated = []
        base = [entry.name, *entry.synonyms]
        added[entry.key] = bank.extend(entry.key, propose(wn, base, max_proposals=max_per_node, senses=senses))
    return added
