"""Gather medicine names from every source into one table of folded name -> canonical generics.

Sources, in order of authority (an earlier source wins a name):

1. the owner's YAML lexicons (`rules/lexicons/*.yaml`, and any in a `--rules` folder): company
   products, local brands, street names, and the words that must never match;
2. the dictionary of the `drug-named-entity-recognition` package (MIT, Fast Data Science):
   about 20,000 drugs and 107,000 brand/generic variants;
3. the national registries shipped as TSV (`rules/lexicons/*.tsv`): France BDPM, the Dutch
   maximum-price list, US Drugs@FDA, whose ingredients are mapped to (2)'s canonical names.

Canonical names are (2)'s lowercase generics ("paracetamol" -> "acetaminophen") so that a
French "Doliprane" and an American "Tylenol" report the same drug.  This module only reads
files; the matcher that uses the table lives in `drugs.py`.
"""

from __future__ import annotations

import bz2
import csv
import pickle
import re
from dataclasses import dataclass, field
import importlib.util
from pathlib import Path

from .normalize import fold

_TOKEN = re.compile(r"[^\W_]+")


_PLAIN = re.compile(r"[a-z]+(?: [a-z]+)*")


def key_of(name: str) -> str:
    """The lookup key of a name: folded, punctuation dropped, tokens joined by one space."""
    if _PLAIN.fullmatch(name):
        return name  # already lowercase ASCII words: most of the 110,000 names
    return " ".join(_TOKEN.findall(fold(name)))


@dataclass
class LexiconEntry:
    key: str
    canonicals: tuple[str, ...]
    source: str  # the lexicon's id: an owner file's `id`, a registry file's name, or the DNER package
    ambiguous: bool = False  # forced by the owner; `drugs.py` adds common words on its own
    owner: bool = False


@dataclass
class LexiconData:
    entries: dict[str, LexiconEntry] = field(default_factory=dict)
    never: set[str] = field(default_factory=set)
    ambiguous: set[str] = field(default_factory=set)
    always: set[str] = field(default_factory=set)
    rename: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def add(self, name: str, canonicals: list[str], source: str, *, ambiguous: bool = False, owner: bool = False) -> None:
        key = key_of(name)
        if not key or key in self.entries:
            return
        canon = tuple(dict.fromkeys(c for c in canonicals if c)) or (key,)
        canon = tuple(dict.fromkeys(n for c in canon for n in self.rename.get(c, (c,))))
        self.entries[key] = LexiconEntry(key, canon, source, ambiguous, owner)


def _dner_dictionary() -> dict:
    """Load the package's bundled dictionary without importing its module (which does network set-up)."""
    # find_spec locates the package without running its __init__, which would load the same
    # dictionary a second time and set up its network helpers.
    spec = importlib.util.find_spec("drug_named_entity_recognition")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("drug-named-entity-recognition is not installed: pip install drug-named-entity-recognition")
    path = Path(spec.submodule_search_locations[0]) / "drug_ner_dictionary.pkl.bz2"
    with path.open("rb") as raw, bz2.open(raw, "rb") as f:
        return pickle.load(f)  # noqa: S301 - a data file inside an installed dependency


def load_lexicon(owner_files: list[Path], tsv_files: list[Path]) -> LexiconData:
    from .packs.loader import load_lexicon_file  # late: packs depends on models only

    data = LexiconData()
    for path in owner_files:
        load_lexicon_file(path, data)

    dner = _dner_dictionary()
    variants: dict[str, list[str]] = dner["drug_variant_to_canonical"]
    dner_keys: dict[str, list[str]] = {}
    for variant, canonicals in variants.items():
        k = key_of(variant)
        if k:
            dner_keys.setdefault(k, list(canonicals))
    for k, canonicals in dner_keys.items():
        data.add(k, canonicals, "drug-named-entity-recognition")
    data.sources.append("drug-named-entity-recognition (MIT, Fast Data Science)")

    for path in tsv_files:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                ingredients = [i.strip() for i in (row.get("ingredients") or "").split(";") if i.strip()]
                canon = [dner_keys.get(key_of(i), [key_of(i)])[0] for i in ingredients]
                data.add(row["name"], canon, path.stem)
        data.sources.append(path.name)
    return data
