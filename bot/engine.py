"""Screen one message against a RuleSet: a pure function from `Message` to `Verdict`.

No I/O, no platform types, no clock: everything the verdict depends on is in the message and
the rule set, so the same input always gives the same verdict and tests compare values.

Per message, in order:

1. fold the text (`normalize`), find medicine names (`drugs`) and every phrase (`terms`) in one
   pass each, and guess the language from function words when the message does not say;
2. keep term hits of the message's language only (Dutch "die" is not English "die");
3. try only the rules whose trigger keys are present (most messages try none);
4. evaluate each candidate rule's match tree, its scope and exceptions;
5. merge the fired rules into one verdict: `hold` wins over `allow`, routes and situations are
   unions, so merging is order-independent and idempotent.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import repeat
from operator import itemgetter

from .drugs import NameHit
from .models import (
    Action,
    AdverseEvent,
    Category,
    DrugFound,
    Hit,
    Message,
    Note,
    Patient,
    Route,
    Seriousness,
    Verdict,
)
from .normalize import Normalized
from .packs.compiler import CompiledMatch, CompiledRule
from .ruleset import RuleSet

_DOSE = re.compile(r"\d+(?:[.,]\d+)?\s?(?:mg|mcg|µg|ug|ml|g|iu|ie|ui|units?|tabs?|pills?)\b")
_SERIOUS_LISTS = {
    "serious_death": "death",
    "serious_life_threatening": "life_threatening",
    "serious_hospital": "hospitalisation",
    "serious_disability": "disability",
    "serious_congenital": "congenital_anomaly",
    "serious_other": "other_medically_important",
}
_PATIENT_LISTS = (("patient_child", Patient.CHILD), ("patient_parent", Patient.PARENT), ("patient_other", Patient.OTHER))
CONTEXT_WINDOW = 6
_TERM_KEYS: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = {}  # languages -> list name -> phrase list ids
_NONE: list = []  # shared, never changed: what a list not found in the message holds
ANYWHERE = (-1, -1)
_START = itemgetter(0)
_END = 1 << 62  # sorts after any position: bisect on (start, _END) finds the span starting at or before


class _Context:
    """What is known about one message while its candidate rules are evaluated."""

    __slots__ = ("msg", "norm", "rs", "lists", "languages", "named", "named_keys", "implied", "regex_hits",
                 "_terms", "_term_keys", "question", "_cache", "_word_starts")

    def __init__(self, msg: Message, norm: Normalized, rs: RuleSet, lists, languages):
        self.msg = msg
        self.norm = norm
        self.rs = rs
        self.lists = lists
        self.languages = languages
        self.named: list[tuple[int, int]] = []
        self.named_keys: list[str] = []  # the lexicon key of each named span
        self.implied: list[tuple[int, int]] = []
        self.regex_hits: set[int] = set()
        self._terms: dict[str, list[tuple[int, int]]] = {}
        self._term_keys = _TERM_KEYS.get(languages)
        if self._term_keys is None:
            self._term_keys = _TERM_KEYS[languages] = {}
        self.question = False
        self._cache: dict = {}  # sorted word indices, by what they are of
        self._word_starts: list[int] | None = None

    def reset_terms(self) -> None:
        self._terms.clear()

    def word(self, pos: int) -> int:
        """The index of the word at folded position `pos` (word starts are found on first use)."""
        starts = self._word_starts
        if starts is None:
            starts = self._word_starts = self.norm.word_starts()
        return bisect_right(starts, pos) - 1

    def words_at(self, positions) -> list[int]:
        """`word` of many positions at once: the bisects run in C, not one Python call each."""
        starts = self._word_starts
        if starts is None:
            starts = self._word_starts = self.norm.word_starts()
        return [w - 1 for w in map(bisect_right, repeat(starts), positions)]

    def terms(self, name: str) -> list[tuple[int, int]]:
        got = self._terms.get(name)
        if got is None:
            keys = self._term_keys.get(name)
            if keys is None:
                keys = self._term_keys[name] = tuple(f"terms:{lang}:{name}" for lang in self.languages)
            if len(keys) == 1:
                got = self.lists.get(keys[0], _NONE)
            else:
                got = [s for key in keys for s in self.lists.get(key, ())]
            self._terms[name] = got
        return got

    def word_indices(self, name: str) -> list[int]:
        """Sorted word indices of a term list's hits, so that "within N words" is a bisect."""
        got = self._cache.get(name)
        if got is None:
            got = self._cache[name] = sorted(self.words_at(map(_START, self.terms(name))))
        return got

    def word_ranges(self, name: str) -> list[tuple[int, int]]:
        """(first word, last word) of each hit of a term list, sorted."""
        key = "#ranges:" + name
        got = self._cache.get(key)
        if got is None:
            spans = self.terms(name)
            got = self._cache[key] = sorted(zip(self.words_at(map(_START, spans)),
                                                self.words_at([max(e - 1, s) for s, e in spans])))
        return got

    def unguarded(self, spans: list[tuple[int, int]], guards) -> list[tuple[int, int]]:
        """The spans no guard cue stands near: a cue of a guard's lists starting within its reach,
        `reach` words before the span when negative, after it when positive.

        A cue that covers the whole span guards it ("for weight loss" over "weight loss"); one that
        only runs into it is part of what the span says: the "pas" of "j'ai pas" is the first word
        of the event "pas fermé l'œil".
        """
        present = self._cache.get(id(guards))  # the guard lists this message has hits of, once
        if present is None:
            present = self._cache[id(guards)] = [
                (self.word_ranges(name) if reach < 0 else self.word_indices(name), reach)
                for names, reach in guards for name in names if self.terms(name)
            ]
        if not present:
            return spans
        kept = []
        firsts = self.words_at(map(_START, spans))  # every span's first and last word at once
        lasts = self.words_at([max(e - 1, s) for s, e in spans])
        for span, first, last in zip(spans, firsts, lasts):
            guarded = False
            for found, reach in present:
                if reach < 0:
                    for k in range(bisect_left(found, (first + reach, -1)), len(found)):
                        a, b = found[k]
                        if a >= first:
                            break
                        if b < first or b >= last:  # before the span, or over all of it
                            guarded = True
                            break
                else:
                    guarded = _any_between(found, last + 1, last + reach)
                if guarded:
                    break
            if not guarded:
                kept.append(span)
        return kept


def _eval(m: CompiledMatch, ctx: _Context) -> list[tuple[int, int]] | None:
    kind = m.kind
    if kind == "drugs":
        mode = m.names[0]
        spans = (ctx.named if mode != "implied" else []) + (ctx.implied if mode != "named" else [])
        return spans or None
    if kind == "lexicon":
        source_of = ctx.rs.drugs.source_of
        spans = [span for span, key in zip(ctx.named, ctx.named_keys) if source_of.get(key) in m.names]
        return spans or None
    if kind == "terms":
        spans = [s for n in m.names for s in ctx.terms(n)]
    elif kind == "phrases":
        spans = ctx.lists.get(m.key, [])
    elif kind == "regex":
        idx = int(m.key.split(":")[1]) if m.regex is not None else -1
        if idx not in ctx.regex_hits:
            return None
        spans = [mm.span() for mm in m.regex.finditer(ctx.norm.text)]
    elif kind == "question":
        return [] if ctx.question else None
    elif kind == "not":
        return [] if _eval(m.children[0], ctx) is None else None
    elif kind == "all":
        out: list[tuple[int, int]] = []
        for c in m.children:
            r = _eval(c, ctx)
            if r is None:
                return None
            out.extend(r)
        return out
    elif kind == "any":
        found = [r for r in (_eval(c, ctx) for c in m.children) if r is not None]
        return [s for r in found for s in r] if found else None
    else:  # near
        return _near(m, ctx)
    if m.guards and spans:
        spans = ctx.unguarded(spans, m.guards)
    return spans or None


def _near(m: CompiledMatch, ctx: _Context) -> list[tuple[int, int]] | None:
    results = []
    for c in m.children:
        r = _eval(c, ctx)
        if not r:
            return None
        results.append(r)
    # Each other part sorted by word index once: finding its spans near an anchor is a bisect,
    # so a megabyte of repeated names and symptoms stays linear.
    others = []
    for other in results[1:]:
        anywhere = []
        if ANYWHERE in other:
            anywhere = [s for s in other if s == ANYWHERE]
            other = [s for s in other if s != ANYWHERE]
        placed = sorted(zip(ctx.words_at(map(_START, other)), other))
        others.append((anywhere, list(map(_START, placed)), [s for _, s in placed]))
    out: list[tuple[int, int]] = []
    for anchor in results[0]:
        picked = [anchor]
        aw = None if anchor == ANYWHERE else ctx.word(anchor[0])
        for anywhere, words, spans in others:
            if aw is None:
                close = anywhere + spans
            else:
                close = anywhere + spans[bisect_left(words, aw - m.within) : bisect_right(words, aw + m.within)]
            if not close:
                break
            picked.extend(close)
        else:
            out.extend(picked)
    return out or None


def _in_scope(rule: CompiledRule, msg: Message, rs: RuleSet) -> bool:
    sc = rule.scope
    if sc is None:
        return True
    if sc.communities is not None and msg.community not in sc.communities:
        return False
    if sc.channels is not None and msg.channel not in sc.channels:
        return False
    if sc.platforms is not None and msg.platform not in sc.platforms:
        return False
    audience = msg.audience or rs.profile.audience
    if sc.audience is not None and audience not in sc.audience:
        return False
    jurisdiction = msg.jurisdiction or rs.profile.jurisdiction
    if sc.jurisdictions is not None and jurisdiction not in sc.jurisdictions:
        return False
    return True


def guess_language(words: set[str], rs: RuleSet) -> str | None:
    """Pick the language with the most of its frequent words; None when nothing or a tie says."""
    marks = "".join(map(rs.language_marks.get, words, repeat("")))
    best, best_n, tie = None, 0, False
    for lang, code in rs.language_codes:
        n = marks.count(code)
        if n > best_n:
            best, best_n, tie = lang, n, False
        elif n == best_n and n:
            tie = True
    return None if tie else best


_STRENGTH_AFTER = re.compile(r"\s{0,2}\d")


def _any_between(indices: list[int], lo: int, hi: int) -> bool:
    i = bisect_left(indices, lo)
    return i < len(indices) and indices[i] <= hi


def _has_context(hit: NameHit, ctx: _Context, others: list[NameHit]) -> bool:
    """Medicine context near an ambiguous name: a strength after it ("ASS 500", "Allegra 180"),
    a medicine word or a dose within a few words, or another, unambiguous medicine."""
    if _STRENGTH_AFTER.match(ctx.norm.text, hit.end):
        return True
    w = ctx.word(hit.start)
    lo, hi = w - CONTEXT_WINDOW, w + CONTEXT_WINDOW
    if _any_between(ctx.word_indices("drug_context"), lo, hi):
        return True
    named = ctx._cache.get("#named")
    if named is None:
        named = ctx._cache["#named"] = sorted(ctx.word(o.start) for o in others if not o.ambiguous)
    if _any_between(named, lo, hi):
        return True
    doses = ctx._cache.get("#doses")
    if doses is None:
        doses = ctx._cache["#doses"] = sorted(ctx.word(mm.start()) for mm in _DOSE.finditer(ctx.norm.text))
    if _any_between(doses, lo, hi):
        return True
    return False


def _parent_names(rs: RuleSet, text: str) -> list[NameHit]:
    """The medicines the parent message names. An ambiguous name counts when the parent itself
    shows it is a medicine ("ASS 500", "Allegra 180 mg", or beside an unambiguous name); the
    parent's phrase lists are not scanned, so a reply stays cheap."""
    norm = Normalized(text)
    hits, _ = rs.drugs.find(norm)
    if not any(h.ambiguous for h in hits):
        return hits
    sure = any(not h.ambiguous for h in hits) or _DOSE.search(norm.text) is not None
    return [h for h in hits if not h.ambiguous or sure or _STRENGTH_AFTER.match(norm.text, h.end)]


def _present(ctx: _Context, text: str, question: bool = True) -> set[str]:
    """The trigger keys this message has: drugs, regexes, question, and the phrase lists found.

    `question` False skips the question check (the first pass, when no rule is triggered by it)."""
    if question:
        ctx.question = "?" in text or any(ctx.word(s) == 0 for s, _ in ctx.terms("question_opener"))
    present: set[str] = set()
    if ctx.named:
        present.add("drugs:named")
    if ctx.implied:
        present.add("drugs:implied")
    if ctx.question:
        present.add("question")
    present.update(map(ctx.rs.list_keys.__getitem__, ctx.lists))  # every list's key, worked out at load
    if ctx.regex_hits:
        present.update(f"regex:{i}" for i in ctx.regex_hits)
    return present


def screen(msg: Message, rs: RuleSet) -> Verdict:
    """Screen one message; the only entry point adapters and the CLI need."""
    norm = Normalized(msg.text)
    text = norm.text
    name_hits, words = rs.drugs.find(norm)  # words: the set of folded words
    lang = msg.language if msg.language in rs.function_words else None
    if lang is None:
        lang = guess_language(words, rs)
    languages = (lang,) if lang else tuple(rs.function_words) or ("en",)
    groups = (*languages, "")
    threaded = bool(msg.reply_to and msg.reply_to.text)
    # A named medicine or a parent message makes some rule a candidate almost always: find every
    # phrase at once. Other messages first look for trigger phrases only, and most stop there.
    full = bool(name_hits) or threaded
    lists = rs.phrases.find(norm, groups, triggers_only=not full)
    if not full and not lists and rs.simple_gate:
        # Nothing that can make a rule a candidate (no name, no trigger phrase, no parent
        # message): unless a trigger regex matches, this is a clean message.
        if not (rs.regex_set is not None and rs.regex_triggers and rs.regex_set.Match(text)):
            return _clean(rs, lang)
    ctx = _Context(msg, norm, rs, lists, languages)

    drugs: list[DrugFound] = []
    notes: list[Note] = []
    for h in name_hits:
        span = norm.span(h.start, h.end)
        surface = msg.text[span[0] : span[1]]
        if h.ambiguous and not _has_context(h, ctx, name_hits):
            notes.append(Note(span=span, text=surface, explanation=(
                f"{surface!r} can name a medicine ({', '.join(h.canonicals)}) but is also an ordinary word or "
                "name; no medicine context nearby, so it was not flagged")))
            continue
        ctx.named.append((h.start, h.end))
        ctx.named_keys.append(h.key)
        for c in h.canonicals:
            drugs.append(DrugFound.trusted(canonical=c, surface=surface, span=span, matched=h.key, how=h.how))

    ctx.implied = list(ctx.terms("implied_drug"))
    if threaded:
        parent_hits = _parent_names(rs, msg.reply_to.text)
        for h in parent_hits:
            for c in h.canonicals:
                drugs.append(DrugFound.trusted(canonical=c, surface=h.key, span=(0, 0), matched=h.key, how="thread"))
        if parent_hits:
            ctx.implied.append(ANYWHERE)

    regexes_done = False
    if rs.regex_set is not None and (full or rs.regex_triggers):
        ctx.regex_hits = set(rs.regex_set.Match(text) or ())
        regexes_done = True
    present = _present(ctx, text, full or rs.question_triggers)
    candidates = [
        rule for rule in rs.candidates(present)
        if not (lang and lang not in rule.languages) and (rule.scope is None or _in_scope(rule, msg, rs))
    ]
    if full:
        candidates = [r for r in candidates if not any(map(present.isdisjoint, r.requirements))]
    elif candidates:
        # Some rule may fire: now find every phrase, not only those that make rules candidates,
        # and keep the rules whose every necessary key is present.
        ctx.lists = rs.phrases.find(norm, groups)
        ctx.reset_terms()
        if rs.regex_set is not None and not regexes_done:
            ctx.regex_hits = set(rs.regex_set.Match(text) or ())
        present = _present(ctx, text)
        candidates = [r for r in candidates if not any(map(present.isdisjoint, r.requirements))]

    hits: list[Hit] = []
    fired: list[CompiledRule] = []
    roles = set(msg.author.roles)
    for rule in candidates:
        spans = _eval(rule.match, ctx)
        if spans is None:
            continue
        spans = sorted({s for s in spans if s != ANYWHERE})
        if rule.allow:
            spans = [s for s in spans if text[s[0] : s[1]].strip() not in rule.allow]
            if not spans and rule.match.kind != "not":
                continue
        if roles & rule.exempt_roles:
            notes.append(Note(span=(0, 0), text="", explanation=(
                f"rule {rule.rule.id} matched but the author's role {sorted(roles & rule.exempt_roles)[0]!r} is exempt")))
            continue
        fired.append(rule)
        hits.extend(_hits_for(rule, spans, norm, msg, drugs))

    return _merge(msg, rs, fired, hits, drugs, notes, ctx, lang)


def _hits_for(rule: CompiledRule, spans, norm: Normalized, msg: Message, drugs: list[DrugFound]) -> list[Hit]:
    """One hit per stretch of the original text the rule matched, each with the rule's explanation.

    `spans` are sorted; mapping to the original text keeps them sorted, so they merge in one pass.
    """
    originals: list[tuple[int, int]] = []
    for s, e in (spans if norm.identity else [norm.span(s, e) for s, e in spans]):
        if originals and (s < originals[-1][1] or (s, e) == originals[-1]):  # overlapping, or the same empty span
            if e > originals[-1][1]:
                originals[-1] = (originals[-1][0], e)
        else:
            originals.append((s, e))
    if not originals:
        originals = [(0, 0)]
    text = msg.text
    names = []
    for d in drugs:
        if d.how == "thread":
            names.append(d.canonical)
            continue
        start = d.span[0]
        k = bisect_right(originals, (start, _END)) - 1
        if k >= 0 and start < originals[k][1]:
            names.append(d.canonical)
    matched = ", ".join(dict.fromkeys(text[a:b] for a, b in originals if b > a))
    try:
        explanation = rule.template.format(
            drugs=", ".join(sorted(set(names))) or "a medicine", matched=matched or "the message")
    except (KeyError, IndexError, ValueError):
        explanation = rule.template
    # Values built here from validated rules and the message itself: no need to validate again.
    make = Hit.trusted
    rule_id, category, severity, status = rule.rule.id, rule.rule.category, rule.severity_level, rule.status
    return [
        make(rule=rule_id, category=category, severity=severity, span=span, text=text[span[0] : span[1]],
             explanation=explanation, status=status)
        for span in originals
    ]


def _clean(rs: RuleSet, lang: str | None) -> Verdict:
    """The verdict of a message with nothing in it: the same value every time, built once."""
    cached = rs.allow_verdicts.get(lang)
    if cached is None:
        cached = rs.allow_verdicts[lang] = Verdict(language=lang, ruleset_version=rs.version)
    return cached


def _merge(msg, rs, fired, hits, drugs, notes, ctx: _Context, lang) -> Verdict:
    if not fired and not drugs and not notes:
        return _clean(rs, lang)
    active = [r for r in fired if r.status == "active"]
    action = Action.HOLD if any("hold" in r.actions for r in active) else Action.ALLOW
    routes = set()
    for r in active:
        if "route_pv" in r.actions:
            routes.add(Route.PHARMACOVIGILANCE)
        if "route_medinfo" in r.actions:
            routes.add(Route.MEDICAL_INFORMATION)
    situations = tuple(sorted({r.rule.situation for r in active if r.rule.situation}))
    notify = None
    if rs.profile.notify_authors:
        for r in active:
            if "notify_author" in r.actions and r.notify:
                notify = r.notify.get(lang or "en") or r.notify.get("en") or next(iter(r.notify.values()))
                break
    ae = None
    if any(r.rule.category in (Category.ADVERSE_EVENT, Category.SPECIAL_SITUATION) for r in active):
        ae = _adverse_event(msg, ctx, drugs)
    return Verdict.trusted(  # every part is already a validated model
        action=action,
        hits=tuple(hits),
        drugs=tuple(drugs),
        routes=tuple(sorted(routes, key=lambda r: r.value)),
        notify_author=notify,
        adverse_event=ae,
        special_situations=situations,
        notes=tuple(notes),
        language=lang,
        ruleset_version=rs.version,
    )


def _adverse_event(msg: Message, ctx: _Context, drugs: list[DrugFound]) -> AdverseEvent:
    norm = ctx.norm

    def texts(name: str) -> tuple[str, ...]:
        out = []
        for s, e in sorted(ctx.terms(name)):
            a, b = norm.span(s, e)
            out.append(msg.text[a:b])
        return tuple(dict.fromkeys(out))

    flags = dict.fromkeys(_SERIOUS_LISTS.values(), False)
    cues: list[str] = []
    for name, field_name in _SERIOUS_LISTS.items():
        if ctx.terms(name):
            flags[field_name] = True
            cues.extend(texts(name))
    patient = Patient.UNKNOWN
    for name, who in _PATIENT_LISTS:
        if ctx.terms(name):
            patient = who
            break
    else:
        if ctx.terms("patient_self"):
            patient = Patient.SELF
    reported = [d.surface for d in drugs if d.how != "thread"]
    if not reported:
        reported = list(texts("implied_drug"))
    return AdverseEvent.trusted(  # built from the engine's own validated values
        suspect_drugs=tuple(dict.fromkeys(d.canonical for d in drugs)),
        suspect_as_reported=tuple(dict.fromkeys(reported)),
        events=texts("ae_event"),
        seriousness=Seriousness.trusted(**flags),
        seriousness_cues=tuple(dict.fromkeys(cues)),
        patient=patient,
    )
