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

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import re2

from .commonwords import common_words, language_words
from .drugs import DrugIndex
from .lexicon import load_lexicon
from .packs.errors import Location, RuleFileError, RuleIssue
from .packs.loader import line_of, load_model
from .packs.schema import LANGUAGES, Match, Pack, Profile, Rule, TermFile
from .normalize import fold
from .terms import PhraseIndex



def shipped_rules_dir() -> Path:
    return Path(str(resources.files("rules")))


@dataclass
class CompiledMatch:
    kind: str
    children: list["CompiledMatch"] = field(default_factory=list)
    key: str = ""  # drugs:<mode> | terms:<name> | phrases:<id> | regex:<n> | question
    names: tuple[str, ...] = ()
    within: int = 0
    guards: tuple[tuple[tuple[str, ...], int], ...] = ()  # (term lists, words: < 0 before, > 0 after)
    regex: object = None


@dataclass
class CompiledRule:
    rule: Rule
    pack: str
    source: Location
    match: CompiledMatch
    severity: str
    status: str
    languages: frozenset[str]
    priority: int
    actions: frozenset[str]
    notify: dict[str, str]
    scope: object
    allow: frozenset[str]
    exempt_roles: frozenset[str]
    triggers: frozenset[str] | None
    requirements: tuple[frozenset[str], ...] = ()  # every clause must meet the message's keys


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
        self.language_sets = {lang: frozenset(ws) for lang, ws in sorted(by_lang.items())}
        self.question_triggers = any("question" in r.triggers for r in self.rules if r.triggers) or any(
            r.triggers is None for r in self.rules
        )
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

    def candidates(self, present: set[str]) -> list[CompiledRule]:
        """Rules that one of the present keys can trigger, in priority order."""
        picked = set(self._always)
        for key in present:
            picked.update(self._by_key.get(key, ()))
        return [self.rules[i] for i in sorted(picked)]

    def rule(self, rule_id: str) -> CompiledRule:
        for r in self.rules:
            if r.rule.id == rule_id:
                return r
        raise KeyError(rule_id)


class _Builder:
    def __init__(self) -> None:
        self.phrases = PhraseIndex()
        self.regexes: list[object] = []
        self.regex_patterns: list[str] = []
        self.issues: list[RuleIssue] = []
        self.term_names: set[str] = set()
        self.lexicon_ids: frozenset[str] = frozenset()

    def compile_match(self, m: Match, rule_id: str, loc: Location, doc, path: tuple) -> CompiledMatch:
        compiled = self._compile_kind(m, rule_id, loc, doc, path)
        guards = [(("negation",), -3)] if m.negation else []
        for key, sign in (("unless_preceded_by", -1), ("unless_followed_by", 1)):
            for i, g in enumerate(getattr(m, key)):
                self._check_terms(g.names, rule_id, loc, doc, (*path, key, i))
                guards.append((g.names, sign * g.within))
        compiled.guards = tuple(guards)
        return compiled

    def _check_terms(self, names, rule_id, loc, doc, path) -> None:
        import difflib

        for n in names:
            if n not in self.term_names:
                line, col = line_of(doc, *path, "terms")
                close = difflib.get_close_matches(n, sorted(self.term_names), n=1)
                self.issues.append(
                    RuleIssue(Location(loc.path, line, col), f"unknown term list {n!r} in rule {rule_id}",
                              f"did you mean {close[0]!r}?" if close else "define it in terms/<lang>.yaml")
                )

    def _compile_kind(self, m: Match, rule_id: str, loc: Location, doc, path: tuple) -> CompiledMatch:
        kind = m.kind
        if kind == "drugs":
            return CompiledMatch("drugs", key=f"drugs:{m.drugs}", names=(m.drugs,))
        if kind == "lexicon":
            ids = (m.lexicon,) if isinstance(m.lexicon, str) else tuple(m.lexicon)
            for lex_id in ids:
                if self.lexicon_ids and lex_id not in self.lexicon_ids:
                    import difflib

                    line, col = line_of(doc, *path, "lexicon")
                    close = difflib.get_close_matches(lex_id, sorted(self.lexicon_ids), n=1)
                    self.issues.append(
                        RuleIssue(Location(loc.path, line, col), f"unknown lexicon {lex_id!r} in rule {rule_id}",
                                  f"did you mean {close[0]!r}?" if close else "give the `id` of a file in lexicons/")
                    )
            return CompiledMatch("lexicon", key="drugs:named", names=ids)
        if kind == "terms":
            names = (m.terms,) if isinstance(m.terms, str) else tuple(m.terms)
            self._check_terms(names, rule_id, loc, doc, path)
            return CompiledMatch("terms", names=names)
        if kind == "phrases":
            list_id = f"phrases:{rule_id}:{len(self.phrases.lists)}"
            self.phrases.add(list_id, list(m.phrases or []))
            return CompiledMatch("phrases", key=list_id)
        if kind == "regex":
            options = re2.Options()
            options.log_errors = False
            options.max_mem = 8 << 20
            try:
                compiled = re2.compile(m.regex, options)
            except re2.error as exc:
                line, col = line_of(doc, *path, "regex")
                msg = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
                self.issues.append(
                    RuleIssue(Location(loc.path, line, col), f"regular expression rejected: {msg}",
                              "RE2 syntax only: no backreferences or lookarounds, which could stall the bot")
                )
                return CompiledMatch("regex", key="regex:invalid")
            self.regexes.append(compiled)
            self.regex_patterns.append(m.regex)
            n = len(self.regexes) - 1
            return CompiledMatch("regex", key=f"regex:{n}", regex=compiled)
        if kind == "question":
            return CompiledMatch("question", key="question")
        if kind == "not":
            return CompiledMatch("not", [self.compile_match(m.not_, rule_id, loc, doc, (*path, "not"))])
        if kind == "near":
            kids = [self.compile_match(c, rule_id, loc, doc, (*path, "near", "of", i)) for i, c in enumerate(m.near.of)]
            return CompiledMatch("near", kids, within=m.near.within)
        items = m.all if kind == "all" else m.any
        kids = [self.compile_match(c, rule_id, loc, doc, (*path, kind, i)) for i, c in enumerate(items)]
        return CompiledMatch(kind, kids)


PHRASE_KEYS = ("terms:", "phrases:", "question")


def _effective_scope(scope):
    """None when the scope limits nothing, so the engine can skip the check."""
    if scope is None or all(v is None for v in scope.model_dump().values()):
        return None
    return scope


def _requirements(m: CompiledMatch) -> list[frozenset[str]]:
    """Necessary conditions as clauses: the rule can match only if each clause meets the keys.

    `all`/`near` need each child's clauses; `any` needs one key of some child (the union of
    each child's smallest clause); `not` promises nothing.
    """
    if m.kind in ("drugs", "lexicon", "terms", "phrases", "regex", "question"):
        t = _triggers(m)
        return [t] if t else []
    if m.kind in ("all", "near"):
        return [c for child in m.children for c in _requirements(child)]
    if m.kind == "any":
        clauses = []
        for child in m.children:
            req = _requirements(child)
            if not req:
                return []
            clauses.append(min(req, key=len))
        return [frozenset().union(*clauses)]
    return []


def _triggers(m: CompiledMatch) -> frozenset[str] | None:
    """Keys of which at least one must be present for the rule to possibly match (None: always try)."""
    if m.kind == "drugs":
        mode = m.names[0]
        return frozenset({"drugs:named", "drugs:implied"} if mode == "any" else {f"drugs:{mode}"})
    if m.kind == "terms":
        return frozenset(f"terms:{n}" for n in m.names)
    if m.kind in ("phrases", "regex", "question", "lexicon"):
        return frozenset({m.key})
    if m.kind == "not":
        return None
    if m.kind in ("all", "near"):
        # Any one child's keys will do; prefer keys known before the phrase scan (drugs, regexes),
        # so that most messages are decided without scanning for phrases at all.
        options = [t for t in (_triggers(c) for c in m.children) if t is not None]
        return min(options, key=lambda t: (any(k.startswith(PHRASE_KEYS) for k in t), len(t))) if options else None
    out: set[str] = set()
    for c in m.children:
        t = _triggers(c)
        if t is None:
            return None
        out |= t
    return frozenset(out)


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


def cache_dir() -> Path:
    """Where compiled lexicons are kept: $PHARMAMOD_CACHE_DIR, else the user's cache folder."""
    env = os.environ.get("PHARMAMOD_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pharmamod"


def _drug_index(owner_lex: list[Path], tsvs: list[Path]) -> DrugIndex:
    """Compile the lexicon, or load the compiled copy made from exactly the same inputs.

    Compiling reads ~110,000 names and five word-frequency lists (several seconds); the pickle
    written next to nothing else in the user's cache loads in a fraction of that.  Its key covers
    every input file's bytes and the versions of the packages the data comes from, so a changed
    lexicon never meets a stale index.  A cache that cannot be read or written is ignored.
    """
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{_versions()}".encode())
    here = Path(__file__).parent
    for module in ("drugs.py", "lexicon.py", "commonwords.py", "normalize.py"):
        digest.update((here / module).read_bytes())  # the compiler's code is an input too
    for path in [*owner_lex, *tsvs]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    target = cache_dir() / f"drugs-{digest.hexdigest()[:24]}.pickle"
    try:
        with target.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - written by this function, keyed by content
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        pass
    index = DrugIndex(load_lexicon(owner_lex, tsvs), common_words(), language_words())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as f:
            pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, target)
        for stale in target.parent.glob("drugs-*.pickle"):
            if stale != target:
                stale.unlink(missing_ok=True)
    except OSError:
        pass
    return index


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("drug-named-entity-recognition", "wordfreq", "pharmamod"):
        try:
            out.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            out.append(f"{name}=?")
    return ",".join(out)


CACHE_FORMAT = 4


def load_ruleset(rules_dir: Path | None = None, *, collect_errors: bool = False) -> RuleSet:
    """Build a RuleSet from the shipped rules plus `rules_dir`; raise RuleFileError on any problem."""
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

    b = _Builder()
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
    index = attempt(_drug_index, owner_lex, tsvs)
    if index is not None:
        b.lexicon_ids = index.lexicon_ids

    pack_root = roots[-1] if (roots[-1] / "packs").is_dir() and any((roots[-1] / "packs").glob("*.yaml")) else shipped
    profile_path = pack_root / "profiles" / "default.yaml"
    if not profile_path.exists():
        profile_path = shipped / "profiles" / "default.yaml"
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
                    scope=_effective_scope(rule.scope or d.scope),
                    allow=frozenset(x.lower() for x in (rule.exceptions.allow if rule.exceptions else [])),
                    exempt_roles=frozenset(rule.exceptions.roles if rule.exceptions else []),
                    triggers=_triggers(m),
                    requirements=tuple(dict.fromkeys(_requirements(m))),
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
