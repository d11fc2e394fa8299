"""The synonym bank: per taxonomy node, its canonical name plus the phrases that mean the same risk.

A bank is keyed by node key (the node's ID in the source taxonomy, which survives hiding and
shuffling). Each entry keeps three kinds of phrase apart, so a rebuild can replace one kind without
touching the others:

* ``synonyms``: the taxonomy's own synonyms (ProGuard's ``synonymous-phrase``), or curated ones;
* ``generated``: proposals of the lexical builder (``synonym_bank.lexical``);
* the curated override file, applied last, wins over both (it can replace, add and remove).

Files (YAML or JSON, chosen by suffix) live next to the taxonomy: for ``path/policy.yaml`` the bank
is ``path/policy.synonyms.yaml`` and the overrides ``path/policy.synonyms.override.yaml``; for a
bundled taxonomy name they live in ``synonym_bank/data/``. ``load_bank`` finds and applies them.

Override file::

    # keys: a node key (source-taxonomy ID, e.g. C3S1) or a node name
    C3S1:
      synonyms: [Phishing, Online Fraud]   # replaces the node's synonyms and drops generated ones
      add: [Romance Scam]                  # appended as curated synonyms
      remove: [Cozenage]                   # dropped wherever it is (case-insensitive)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taxonomy import Taxonomy, load_taxonomy, normalize_name
from taxonomy.loaders import BUNDLED_DIR, bundled_taxonomies

DATA_DIR = Path(__file__).parent / "data"
BANK_SUFFIX = ".synonyms.yaml"
OVERRIDE_SUFFIX = ".synonyms.override.yaml"
_OVERRIDE_FIELDS = ("synonyms", "add", "remove")


class BankError(ValueError):
    """A bank or override file is invalid or does not match its taxonomy; the message names where."""


norm_phrase = normalize_name  # phrases compare exactly as the taxonomy compares names


def _dedupe(phrases: Iterable[str], skip: Iterable[str] = ()) -> list[str]:
    seen = {norm_phrase(s) for s in skip}
    out = []
    for p in phrases:
        p = " ".join(p.split())
        if p and norm_phrase(p) not in seen:
            seen.add(norm_phrase(p))
            out.append(p)
    return out


@dataclass
class BankEntry:
    """One node's phrases: its canonical name, curated/taxonomy synonyms and generated proposals."""

    key: str
    name: str
    synonyms: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)

    def phrases(self) -> tuple[str, ...]:
        """Name first, then synonyms, then generated proposals; case-insensitive duplicates dropped."""
        return tuple(_dedupe([self.name, *self.synonyms, *self.generated]))


class SynonymBank:
    """Synonym phrases per taxonomy node, keyed by node key; build, extend, override, save, load."""

    def __init__(self, entries: Iterable[BankEntry], name: str = "bank") -> None:
        self.name = name
        self._entries: dict[str, BankEntry] = {}
        for e in entries:
            if e.key in self._entries:
                raise BankError(f"{name}: duplicate node key {e.key}")
            self._entries[e.key] = e

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_taxonomy(cls, tax: Taxonomy) -> SynonymBank:
        """A bank holding each node's name and the taxonomy's own synonyms."""
        return cls(
            (BankEntry(n.key or n.id, n.name, _dedupe(n.synonyms, skip=[n.name])) for n in tax.nodes()),
            name=tax.name,
        )

    # ---- lookup ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[BankEntry]:
        return iter(self._entries.values())

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        """Node keys in taxonomy order."""
        return list(self._entries)

    def get(self, key: str) -> BankEntry:
        """The entry for a node key; ``KeyError`` naming the bank if absent."""
        try:
            return self._entries[key]
        except KeyError:
            raise KeyError(f"synonym bank {self.name}: no node {key!r}") from None

    def find(self, key_or_name: str) -> BankEntry | None:
        """The entry with this key or (case- and space-insensitive) name, else ``None``."""
        if key_or_name in self._entries:
            return self._entries[key_or_name]
        want = norm_phrase(key_or_name)
        return next((e for e in self._entries.values() if norm_phrase(e.name) == want), None)

    def phrases(self, key: str) -> tuple[str, ...]:
        """All phrases of a node, canonical name first."""
        return self.get(key).phrases()

    # ---- editing ---------------------------------------------------------------------------
    def extend(self, key: str, phrases: Iterable[str], *, generated: bool = True) -> list[str]:
        """Add phrases to a node (as generated proposals by default); returns the ones that were new."""
        entry = self.get(key)
        new = _dedupe(phrases, skip=entry.phrases())
        (entry.generated if generated else entry.synonyms).extend(new)
        return new

    def apply_overrides(self, overrides: Any, origin: str = "<overrides>") -> None:
        """Apply a curated override mapping (see the module docstring); it wins over everything else."""
        if overrides is None:
            return
        if not isinstance(overrides, Mapping):
            raise BankError(f"{origin}: overrides must be a mapping of node key or name to fields")
        for raw_key, spec in overrides.items():
            where = f"{origin}: {raw_key}"
            entry = self.find(str(raw_key))
            if entry is None:
                raise BankError(f"{where}: no node with this key or name in bank {self.name}")
            if not isinstance(spec, Mapping):
                raise BankError(f"{where}: must be a mapping with fields {', '.join(_OVERRIDE_FIELDS)}")
            unknown = sorted(set(spec) - set(_OVERRIDE_FIELDS))
            if unknown:
                raise BankError(f"{where}: unknown field(s) {unknown}; allowed: {', '.join(_OVERRIDE_FIELDS)}")
            lists = {k: _phrase_list(spec[k], f"{where}.{k}") for k in _OVERRIDE_FIELDS if k in spec}
            if "synonyms" in lists:
                entry.synonyms = _dedupe(lists["synonyms"], skip=[entry.name])
                entry.generated = []
            if "add" in lists:
                self.extend(entry.key, lists["add"], generated=False)
            if "remove" in lists:
                drop = {norm_phrase(p) for p in lists["remove"]}
                if norm_phrase(entry.name) in drop:
                    raise BankError(f"{where}.remove: cannot remove the node's canonical name {entry.name!r}")
                entry.synonyms = [p for p in entry.synonyms if norm_phrase(p) not in drop]
                entry.generated = [p for p in entry.generated if norm_phrase(p) not in drop]

    def check_matches(self, tax: Taxonomy, origin: str) -> None:
        """Raise ``BankError`` unless the bank has exactly the taxonomy's nodes, with the same names."""
        want = {(n.key or n.id): n.name for n in tax.nodes()}
        problems = [f"node {k} ({v!r}) missing from the bank" for k, v in want.items() if k not in self._entries]
        problems += [f"node {k} is not in taxonomy {tax.name}" for k in self._entries if k not in want]
        problems += [
            f"node {k}: bank name {e.name!r} differs from taxonomy name {want[k]!r}"
            for k, e in self._entries.items()
            if k in want and norm_phrase(e.name) != norm_phrase(want[k])
        ]
        if problems:
            raise BankError(f"{origin}: does not match taxonomy {tax.name}: " + "; ".join(problems))

    # ---- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data for YAML/JSON: ``{name, nodes: {key: {name, synonyms, generated}}}``."""
        return {
            "name": self.name,
            "nodes": {
                e.key: {"name": e.name, "synonyms": list(e.synonyms), "generated": list(e.generated)}
                for e in self._entries.values()
            },
        }

    @classmethod
    def from_dict(cls, data: Any, origin: str = "<data>") -> SynonymBank:
        """Build from ``to_dict`` data; errors name the origin and node."""
        if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), Mapping):
            raise BankError(f"{origin}: a synonym bank is a mapping with a 'nodes' mapping")
        entries = []
        for key, raw in data["nodes"].items():
            where = f"{origin}: nodes.{key}"
            if not isinstance(raw, Mapping):
                raise BankError(f"{where}: must be a mapping with name, synonyms, generated")
            unknown = sorted(set(raw) - {"name", "synonyms", "generated"})
            if unknown:
                raise BankError(f"{where}: unknown field(s) {unknown}")
            name = raw.get("name")
            if not isinstance(name, str) or not name.strip():
                raise BankError(f"{where}.name: missing or empty")
            entries.append(
                BankEntry(
                    str(key),
                    name.strip(),
                    _dedupe(_phrase_list(raw.get("synonyms") or [], f"{where}.synonyms"), skip=[name]),
                    _dedupe(_phrase_list(raw.get("generated") or [], f"{where}.generated"), skip=[name]),
                )
            )
        return cls(entries, name=str(data.get("name") or Path(origin).stem))

    def save(self, path: str | Path) -> Path:
        """Write the bank as JSON (``.json``) or YAML (anything else)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        if path.suffix == ".json":
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        else:
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SynonymBank:
        """Read a bank written by ``save``."""
        return cls.from_dict(_read(Path(path)), origin=str(path))

    def content_hash(self) -> str:
        """SHA-256 of every node's key and phrases, in order: the embedding cache key of the bank."""
        payload = json.dumps([[e.key, list(e.phrases())] for e in self._entries.values()], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _phrase_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise BankError(f"{where}: must be a list of non-empty strings")
    return [" ".join(s.split()) for s in value]


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BankError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BankError(f"{path}: not UTF-8 text (byte {exc.start}); a bank is a YAML or JSON file") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # ValueError: JSONDecodeError, an integer over Python's digit limit
        raise BankError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    except RecursionError:
        raise BankError(f"{path}: nested too deeply to be a bank") from None


def default_paths(taxonomy_source: str | Path) -> tuple[Path, Path]:
    """Where the bank and override files of a taxonomy live: next to its file, or in our data dir."""
    path = Path(taxonomy_source)
    if not path.exists() and str(taxonomy_source) in bundled_taxonomies():
        stem, folder = str(taxonomy_source), DATA_DIR
    elif path.resolve().parent == BUNDLED_DIR.resolve():
        stem, folder = path.stem, DATA_DIR  # the bundled file given by path: same place as by name
    else:
        stem, folder = path.stem, path.parent
    return folder / f"{stem}{BANK_SUFFIX}", folder / f"{stem}{OVERRIDE_SUFFIX}"


def load_overrides(path: str | Path) -> Any:
    """Read an override file (YAML or JSON); an empty file means no overrides."""
    return _read(Path(path)) or {}


def load_bank(
    taxonomy: str | Path | Taxonomy,
    bank: str | Path | None = None,
    overrides: str | Path | None = None,
) -> SynonymBank:
    """The bank of a taxonomy: ``bank`` file (or the one next to the taxonomy, else built from the
    taxonomy's own synonyms), checked against the taxonomy, then the override file applied."""
    if isinstance(taxonomy, Taxonomy):
        tax, default_bank, default_over = taxonomy, None, None
    else:
        tax = load_taxonomy(taxonomy)
        default_bank, default_over = default_paths(taxonomy)
    bank_path = Path(bank) if bank is not None else default_bank
    if bank_path is not None and (bank is not None or bank_path.exists()):
        result = SynonymBank.load(bank_path)
        result.check_matches(tax, str(bank_path))
    else:
        result = SynonymBank.from_taxonomy(tax)
    over_path = Path(overrides) if overrides is not None else default_over
    if over_path is not None and (overrides is not None or over_path.exists()):
        result.apply_overrides(load_overrides(over_path), origin=str(over_path))
    return result
