"""Load a rules folder (packs, term lists, lexicons, profile) into one compiled, immutable `RuleSet`.

Layout of a rules folder (the shipped one is the `rules` package):

    packs/*.yaml      rule packs (top-level key `pack:`), which may `include:` others
    terms/*.yaml      term lists, one file per language (`language:` + `terms:`)
    lexicons/*.yaml   owner lexicons: products, local brands, never/ambiguous/always words
    lexicons/*.tsv    national registry extracts
    profiles/*.yaml   community profiles (top-level key `profile:`); `default.yaml` is used

A folder given with `--rules` replaces the shipped packs and profile when it has them, and adds
its term lists and lexicons to the shipped ones.  Loading either returns a complete RuleSet or
raises `RuleFileError` with every problem found: a broken file never half-replaces good rules.
"""

from __future__ import annotations

import gc
import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import re2

from .drugs import DrugIndex
from .lexicon_cache import drug_index
from .normalize import fold
from .packs.compiler import Builder, CompiledRule, effective_scope, requirements, triggers
from .packs.errors import Location, RuleFileError, RuleIssue
from .packs.loader import line_of, load_model
from .packs.schema import LANGUAGES, Pack, Profile, TermFile
from .terms import PhraseIndex


def shipped_rules_dir() -> Path:
    return Path(str(resources.files("rules")))


@dataclass
class RuleSet:
    rules: list[CompiledRule]
    drugs: DrugIndex
    phrases: PhraseIndex
    regexes: list[object]
    regex_set: object
    function_words: dict[str, frozenset[str]]
    term_languages: dict[str, set[str]]
    profile: Profile
    version: str
    sources: list[str]
    files: list[Path]
    allow_verdicts: dict = field(default_factory=dict)  # language -> the verdict of a clean message
    list_keys: dict = field(default_factory=dict)  # phrase list id -> the rule key it makes present (filled below)

    def __post_init__(self) -> None:
        # Language guess: wordfreq's frequent words of each language, plus the term files' own
        # function_words (which also decide which languages the rule set knows).
        known = set(self.function_words)
        self.function_word_langs: dict[str, tuple[str, ...]] = {
            w: tuple(lang for lang in langs if lang in known)
            for w, langs in self.drugs.language_words.items()
            if any(lang in known for lang in langs)
        }
        for lang, words in self.function_words.items():
            for w in words:
                if lang not in self.function_word_langs.get(w, ()):
                    self.function_word_langs[w] = (*self.function_word_langs.get(w, ()), lang)
        by_lang: dict[str, set[str]] = {}
        for w, langs in self.function_word_langs.items():
            for lang in langs:
                by_lang.setdefault(lang, set()).add(w)
        # Each word's languages as a string of one-letter codes: a message's words become one
        # string by a single lookup each, and each language's count is a `str.count`, all in C.
        self.language_codes = [(lang, chr(ord("A") + i)) for i, lang in enumerate(sorted(by_lang))]
        self.language_marks: dict[str, str] = {}
        for lang, code in self.language_codes:
            for w in by_lang[lang]:
                self.language_marks[w] = self.language_marks.get(w, "") + code
        self.question_triggers = any("question" in r.triggers for r in self.rules if r.triggers) or any(
            r.triggers is None for r in self.rules
        )
        # Every rule needs a medicine, a trigger phrase or a trigger regex: a message with none of
        # them is clean without building any context (most messages).
        self.simple_gate = not self.question_triggers and all(r.triggers is not None for r in self.rules)
        # Regexes are run before the candidate check only if some rule can be triggered by one.
        self.regex_triggers = any(k.startswith("regex:") for r in self.rules if r.triggers for k in r.triggers) or any(
            r.triggers is None for r in self.rules
        )
        self._always = [i for i, r in enumerate(self.rules) if r.triggers is None and r.status != "deprecated"]
        self._by_key: dict[str, list[int]] = {}
        for i, r in enumerate(self.rules):
            if r.triggers is not None and r.status != "deprecated":
                for key in r.triggers:
                    self._by_key.setdefault(key, []).append(i)
        self._trigger_keys = frozenset(self._by_key)
        for list_id in self.phrases.lists:
            self.list_keys[list_id] = list_key(list_id)

    def candidates(self, present: set[str]) -> list[CompiledRule]:
        """Rules that one of the present keys can trigger, in priority order."""
        picked = set(self._always)
        for key in self._trigger_keys.intersection(present):
            picked.update(self._by_key[key])
        rules = self.rules
        return [rules[i] for i in sorted(picked)]

    def rule(self, rule_id: str) -> CompiledRule:
        for r in self.rules:
            if r.rule.id == rule_id:
                return r
        raise KeyError(rule_id)


def list_key(list_id: str) -> str:
    """The rule key a phrase list makes present: "terms:<lang>:<name>" makes "terms:<name>";
    an inline list "phrases:…" itself."""
    return f"terms:{list_id.split(':', 2)[2]}" if list_id.startswith("terms:") else list_id


def _pack_files(root: Path, name: str, seen: set[Path], out: list[tuple[Path, Pack, object]]) -> None:
    path = (root / "packs" / name).with_suffix(".yaml") if not name.endswith(".yaml") else root / "packs" / name
    path = path.resolve()
    if path in seen:
        return
    seen.add(path)
    if not path.exists():
        raise RuleFileError([RuleIssue(Location(path), f"pack {name!r} not found", f"expected {path}")])
    pack, doc = load_model(path, Pack, key="pack")
    for inc in pack.includes:
        _pack_files(root, inc, seen, out)
    out.append((path, pack, doc))


def load_ruleset(rules_dir: Path | None = None, *, collect_errors: bool = False, profile: str = "default") -> RuleSet:
    """Build a RuleSet from the shipped rules plus `rules_dir` for one community profile
    (`profiles/<profile>.yaml`); raise RuleFileError on any problem."""
    shipped = shipped_rules_dir()
    roots = [shipped] + ([Path(rules_dir)] if rules_dir and Path(rules_dir).resolve() != shipped.resolve() else [])
    issues: list[RuleIssue] = []
    files: list[Path] = []

    def attempt(fn, *args):
        try:
            return fn(*args)
        except RuleFileError as exc:
            issues.extend(exc.issues)
            return None

    b = Builder()
    function_words: dict[str, set[str]] = {}  # language -> words
    term_languages: dict[str, set[str]] = {}
    for root in roots:
        for path in sorted((root / "terms").glob("*.yaml")):
            files.append(path)
            loaded = attempt(load_model, path, TermFile)
            if loaded is None:
                continue
            tf, _ = loaded
            for name, phrases in tf.terms.items():
                if name == "function_words":
                    function_words.setdefault(tf.language, set()).update(fold(w) for w in phrases)
                    continue
                b.term_names.add(name)
                term_languages.setdefault(name, set()).add(tf.language)
                b.phrases.add(f"terms:{tf.language}:{name}", phrases, tf.language)

    owner_lex = [p for root in roots for p in sorted((root / "lexicons").glob("*.yaml"))]
    tsvs = [p for root in roots for p in sorted((root / "lexicons").glob("*.tsv"))]
    files += owner_lex + tsvs
    index = attempt(drug_index, owner_lex, tsvs)
    if index is not None:
        b.lexicon_ids = index.lexicon_ids

    pack_root = roots[-1] if (roots[-1] / "packs").is_dir() and any((roots[-1] / "packs").glob("*.yaml")) else shipped
    profile_path = pack_root / "profiles" / f"{profile}.yaml"
    if not profile_path.exists() and (shipped / "profiles" / f"{profile}.yaml").exists():
        profile_path = shipped / "profiles" / f"{profile}.yaml"
    if not profile_path.exists():
        raise RuleFileError([RuleIssue(Location(profile_path), f"profile {profile!r} not found",
                                       f"create profiles/{profile}.yaml in the rules folder, or use profile = \"default\"")])
    files.append(profile_path)
    loaded_profile = attempt(load_model, profile_path, Profile, "profile")
    profile = loaded_profile[0] if loaded_profile else Profile(id="fallback", packs=[])

    pack_names = profile.packs or [p.stem for p in sorted((pack_root / "packs").glob("*.yaml"))]
    if pack_root != shipped and loaded_profile and profile_path.parent.parent == shipped:
        pack_names = [p.stem for p in sorted((pack_root / "packs").glob("*.yaml"))]
    packs: list[tuple[Path, Pack, object]] = []
    seen: set[Path] = set()
    for name in pack_names:
        attempt(_pack_files, pack_root, name, seen, packs)

    compiled: list[CompiledRule] = []
    ids: dict[str, Location] = {}
    for path, pack, doc in packs:
        files.append(path)
        d = pack.defaults
        for i, rule in enumerate(pack.rules):
            line, col = line_of(doc, "rules", i)
            loc = Location(path, line, col)
            if rule.id in ids:
                issues.append(RuleIssue(loc, f"duplicate rule id {rule.id!r}", f"first defined at {ids[rule.id]}"))
                continue
            ids[rule.id] = loc
            if rule.id in profile.disabled:
                continue
            over = profile.overrides.get(rule.id)
            m = b.compile_match(rule.match, rule.id, loc, doc, ("rules", i, "match"))
            compiled.append(
                CompiledRule(
                    rule=rule,
                    pack=pack.id,
                    source=loc,
                    match=m,
                    severity=((over and over.severity) or rule.severity or d.severity).value,
                    status=(over and over.status) or rule.status or d.status,
                    languages=frozenset(rule.languages or d.languages),
                    priority=rule.priority if rule.priority is not None else d.priority,
                    actions=frozenset((over and over.actions) or rule.actions or d.actions),
                    notify=dict((over and over.notify) or rule.notify or d.notify),
                    scope=effective_scope(rule.scope or d.scope),
                    allow=frozenset(x.lower() for x in (rule.exceptions.allow if rule.exceptions else [])),
                    exempt_roles=frozenset(rule.exceptions.roles if rule.exceptions else []),
                    triggers=triggers(m),
                    requirements=tuple(dict.fromkeys(requirements(m))),
                )
            )
    issues.extend(b.issues)
    for name in profile.overrides:
        if name not in ids:
            issues.append(RuleIssue(Location(profile_path), f"override for unknown rule {name!r}", "check the rule id"))
    if issues and not collect_errors:
        raise RuleFileError(issues)
    if index is None:
        raise RuleFileError(issues)

    # Phrase lists that can make a rule a candidate are scanned first, and alone; the full scan
    # runs only when some rule is a candidate (see engine.screen).
    gated = all(r.triggers is not None for r in compiled)
    trigger_keys = set().union(*(r.triggers for r in compiled if r.triggers)) if gated else set()
    trigger_terms = {k.split(":", 1)[1] for k in trigger_keys if k.startswith("terms:")} | {"implied_drug"}
    if "question" in trigger_keys:
        trigger_terms.add("question_opener")
    b.phrases.compile(
        lambda list_id: not gated
        or (list_id.startswith("terms:") and list_id.split(":", 2)[2] in trigger_terms)
        or list_id in trigger_keys
    )
    regex_set = None
    if b.regexes:
        options = re2.Options()
        options.log_errors = False
        regex_set = re2.Set.SearchSet(options)
        for p in b.regex_patterns:
            regex_set.Add(p)
        regex_set.Compile()
    compiled.sort(key=lambda r: (r.priority, r.rule.id))
    digest = hashlib.sha256()
    for f in sorted(set(files)):
        digest.update(str(f.name).encode())
        digest.update(f.read_bytes() if f.exists() else b"")
    rs = RuleSet(
        rules=compiled,
        drugs=index,
        phrases=b.phrases,
        regexes=b.regexes,
        regex_set=regex_set,
        function_words={k: frozenset(v) for k, v in function_words.items()},
        term_languages=term_languages,
        profile=profile,
        version=digest.hexdigest()[:12],
        sources=index.sources,
        files=sorted(set(files)),
    )
    if issues:
        rs.issues = issues  # type: ignore[attr-defined]
    return rs


__all__ = ["RuleSet", "load_ruleset", "shipped_rules_dir", "LANGUAGES"]


def settle() -> None:
    """Keep the loaded rule sets out of the cyclic garbage collector's sweeps.

    A rule set is about a million long-lived objects (lexicon keys, automata values, term
    lists) that the collector would otherwise walk again and again while messages are screened;
    freezing them makes screening about 3 % faster (`bench/engine_bench.py`). Call it after a
    rule set is loaded, and `unsettle()` before dropping one, so that a replaced rule set can be
    collected.
    """
    gc.collect()
    gc.freeze()


def unsettle() -> None:
    gc.unfreeze()
