"""Compile the match trees of validated rules, and work out which keys can make a rule fire.

A rule's *triggers* are the keys of which at least one must be present before the rule is worth
evaluating (most messages have none); its *requirements* are clauses that must all be met.
Both are necessary conditions derived from the tree, so skipping a rule never changes a verdict.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import re2

from .errors import Location, RuleIssue
from .loader import line_of
from ..terms import PhraseIndex
from ..models import Severity
from .schema import Match, Rule

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
    # What every hit of this rule shares, worked out once rather than per hit (see engine._hits_for).
    template: str = field(init=False, repr=False)
    severity_level: Severity = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.template = self.rule.explain or self.rule.title
        self.severity_level = Severity(self.severity)



class Builder:
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
        if kind == "all":
            # Every part must match: try the cheap lookups first, so a message that lacks one
            # never pays for a proximity search. The spans found are the same in any order.
            kids.sort(key=lambda k: _COST.get(k.kind, 3))
        return CompiledMatch(kind, kids)


_COST = {"drugs": 0, "lexicon": 0, "question": 0, "terms": 1, "phrases": 1, "regex": 2, "not": 3, "any": 4, "all": 4,
         "near": 5}


PHRASE_KEYS = ("terms:", "phrases:", "question")


def effective_scope(scope):
    """None when the scope limits nothing, so the engine can skip the check."""
    if scope is None or all(v is None for v in scope.model_dump().values()):
        return None
    return scope


def requirements(m: CompiledMatch) -> list[frozenset[str]]:
    """Necessary conditions as clauses: the rule can match only if each clause meets the keys.

    `all`/`near` need each child's clauses; `any` needs one key of some child (the union of
    each child's smallest clause); `not` promises nothing.
    """
    if m.kind in ("drugs", "lexicon", "terms", "phrases", "regex", "question"):
        t = triggers(m)
        return [t] if t else []
    if m.kind in ("all", "near"):
        return [c for child in m.children for c in requirements(child)]
    if m.kind == "any":
        clauses = []
        for child in m.children:
            req = requirements(child)
            if not req:
                return []
            clauses.append(min(req, key=len))
        return [frozenset().union(*clauses)]
    return []


def triggers(m: CompiledMatch) -> frozenset[str] | None:
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
        options = [t for t in (triggers(c) for c in m.children) if t is not None]
        return min(options, key=lambda t: (any(k.startswith(PHRASE_KEYS) for k in t), len(t))) if options else None
    out: set[str] = set()
    for c in m.children:
        t = triggers(c)
        if t is None:
            return None
        out |= t
    return frozenset(out)
