"""Find every phrase of every rule and term list in one pass over the folded text.

All phrases (term lists of all languages and inline rule phrases) go into one Aho-Corasick
automaton, so the cost per message does not grow with the number of rules.  A phrase matches on
word boundaries; a trailing `*` lets the last word run on ("hospital*" matches "hospitalised",
"hospitalisé", "Hospitalisierung").  Hits are grouped by list id: `terms:<lang>:<name>` or
`phrases:<rule id>:<n>`.

There is one automaton per language (and one for inline rule phrases), so a message whose
language is known is scanned only for its own language's phrases.

Word boundaries cost nothing per hit: the automata run over the message with every character that
is not a letter or digit turned into a space (`Normalized.spaced`, padded with a space at each
end), and every phrase is stored as " phrase " (" phrase" for a `*` phrase). A match can then only
begin at the start of a word and end at the end of one: "i" is never found inside "ill", and no hit
needs its neighbours checked. A phrase with spaces or punctuation inside ("side effects", "j'ai")
also matches other separators in the spaced text ("side.effects"), so its hits are checked against
the folded text itself, a comparison in C.
"""

from __future__ import annotations

import functools
from bisect import bisect_left

import ahocorasick

MAX_GAP = 3  # words allowed between the parts of a "doet ... niks meer" phrase

from .normalize import Normalized, fold, spaced


class PhraseIndex:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, list[tuple[str, bool]]]] = {}  # group -> phrase -> owners
        self._automata: dict[str, ahocorasick.Automaton] = {}
        self._trigger_automaton: ahocorasick.Automaton | None = None
        self._common_ids: frozenset[str] = frozenset()  # list ids of the lists of every language
        # `...` phrases: each distinct part is one list of its own ("#part:<group>:<part>"), shared
        # by every phrase that has it ("my ... son", "my ... hair"), so a common first part is
        # recorded once per hit, not once per phrase.
        self._gap_parts: set[str] = set()
        self._part_lists: dict[str, set[str]] = {}  # part id -> the lists whose phrases use it
        self._gapped: list[tuple[str, tuple[str, ...]]] = []  # (list id, part ids), in order
        self._by_first: dict[str, list[int]] = {}  # first part id -> indexes into _gapped
        self._first_parts: frozenset[str] = frozenset()  # its keys: intersecting a dict walks all of it
        self._trigger_gapped: frozenset[int] = frozenset()  # indexes of phrases of trigger lists
        self.lists: dict[str, list[str]] = {}

    def add(self, list_id: str, phrases: list[str], group: str = "") -> None:
        """Add a list; `group` is its language, or "" for phrases that apply in every language.

        A phrase with `...` between parts ("doet ... niks meer") matches its parts in order with
        up to `MAX_GAP` words between them, since people put adverbs anywhere.
        """
        self.lists[list_id] = phrases
        entries = self._entries.setdefault(group, {})
        for phrase in phrases:
            if "..." in phrase:
                part_ids = []
                for part in (p.strip() for p in phrase.split("...")):
                    part_id = f"#part:{group}:{part}"
                    if part_id not in self._gap_parts:
                        self._gap_parts.add(part_id)
                        self._add_phrase(entries, part_id, part)
                    self._part_lists.setdefault(part_id, set()).add(list_id)
                    part_ids.append(part_id)
                self._by_first.setdefault(part_ids[0], []).append(len(self._gapped))
                self._gapped.append((list_id, tuple(part_ids)))
            else:
                self._add_phrase(entries, list_id, phrase)

    @staticmethod
    def _add_phrase(entries: dict, list_id: str, phrase: str) -> None:
        prefix = phrase.endswith("*")
        key = fold(phrase.rstrip("*"))
        if key:
            entries.setdefault(key, []).append((list_id, prefix))

    def _assemble_gapped(self, text: str, out: dict[str, list[tuple[int, int]]], triggers_only: bool) -> None:
        """Chain the parts of `...` phrases found in order, close enough, into hits of their list."""
        parts_found = self._gap_parts.intersection(out)
        if not parts_found:
            return
        found = {k: out.pop(k) for k in parts_found}
        for first in sorted(parts_found.intersection(self._first_parts)):
            for index in self._by_first[first]:
                if triggers_only and index not in self._trigger_gapped:
                    continue
                list_id, part_ids = self._gapped[index]
                chains = found[first]
                for part_id in part_ids[1:]:
                    spans = found.get(part_id)
                    if not spans:
                        chains = []
                        break
                    starts = [s for s, _ in spans]  # scanned left to right: sorted
                    linked = []
                    for start, end in chains:
                        k = bisect_left(starts, end)
                        # Only the next few parts can be within MAX_GAP words: stop at the first too far.
                        while k < len(spans) and len(text[end : spans[k][0]].split()) <= MAX_GAP:
                            linked.append((start, spans[k][1]))
                            k += 1
                    chains = linked
                if chains:
                    out.setdefault(list_id, []).extend(dict.fromkeys(chains))

    def compile(self, is_trigger=lambda list_id: True) -> None:
        """Build the automata: one per language holding its lists and the lists of every language
        (a message is scanned once), and one of the trigger lists of every group (the first pass,
        which most messages end with; its few hits are filtered by group)."""
        common = self._entries.get("", {})
        self._common_ids = frozenset(list_id for owners in common.values() for list_id, _ in owners)
        for group, entries in self._entries.items():
            combined: dict[str, list] = {k: list(o) for k, o in entries.items()}
            if group:
                for key, owners in common.items():
                    combined.setdefault(key, []).extend(owners)
            automaton = _automaton(_bounded({k: (_lists(o), _lists(o, prefixed=True)) for k, o in combined.items()}))
            if automaton is not None:
                self._automata[group] = automaton

        @functools.cache
        def trigger(list_id: str) -> bool:
            if list_id in self._part_lists:  # a part of `...` phrases: a trigger if one of them is
                return any(is_trigger(owner) for owner in self._part_lists[list_id])
            return is_trigger(list_id)

        self._first_parts = frozenset(self._by_first)
        self._trigger_gapped = frozenset(i for i, (list_id, _) in enumerate(self._gapped) if is_trigger(list_id))
        merged: dict[str, tuple[tuple, tuple]] = {}
        for group, entries in self._entries.items():
            for key, owners in entries.items():
                kept = [(list_id, prefix) for list_id, prefix in owners if trigger(list_id)]
                if kept:
                    whole, prefixed = merged.get(key, ((), ()))
                    merged[key] = (whole + tuple((group, l) for l, _ in kept),
                                   prefixed + tuple((group, l) for l, p in kept if p))
        self._trigger_automaton = _automaton(_bounded(merged))

    def find(self, norm: Normalized, groups: tuple[str, ...], triggers_only: bool = False
             ) -> dict[str, list[tuple[int, int]]]:
        """Return list id -> folded spans of the groups' phrases found in the message on word
        boundaries.

        `groups` are languages and "" (lists of every language), which comes with each language.
        """
        text = norm.text
        padded = f" {norm.spaced} "
        out: dict[str, list[tuple[int, int]]] = {}
        if triggers_only:
            if self._trigger_automaton is not None:
                self._scan(self._trigger_automaton, text, padded, out, set(groups))
        else:
            languages = [g for g in groups if g]
            for group in languages or [""]:
                automaton = self._automata.get(group)
                if automaton is None and group:
                    automaton = self._automata.get("")  # a language with lists of every language only
                if automaton is not None:
                    self._scan(automaton, text, padded, out)
            if len(languages) > 1:  # the lists of every language were found once per language
                for list_id in self._common_ids.intersection(out):
                    out[list_id] = sorted(set(out[list_id]))
        if self._gapped and out:
            self._assemble_gapped(text, out, triggers_only)
        return out

    @staticmethod
    def _scan(automaton: ahocorasick.Automaton, text: str, padded: str, out: dict[str, list[tuple[int, int]]],
              groups: set[str] | None = None) -> None:
        """Add the automaton's matches in `padded` to `out`; with `groups` (the trigger automaton,
        whose owners are (group, list id)) only the lists of those groups."""
        get = out.get
        for end, (back, run_on, variants) in automaton.iter(padded):
            start = end - back  # `end` is the last character of the match in `padded`
            if run_on:  # a `*` phrase: only a longer word is its own; the whole word matched " phrase "
                if padded[end + 1] == " ":
                    continue
                span = (start, padded.find(" ", end + 1) - 1)
            else:
                span = (start, end - 1)
            for key, lists in variants:
                if key is not None and not text.startswith(key, start):
                    continue  # "side.effects" is not "side effects"
                if groups is not None:
                    lists = [list_id for group, list_id in lists if group in groups]
                for list_id in lists:
                    spans = get(list_id)
                    if spans is None:
                        out[list_id] = [span]
                    else:
                        spans.append(span)


def _lists(owners: list[tuple[str, bool]], prefixed: bool = False) -> tuple[str, ...]:
    """The lists a whole-word match of a phrase belongs to, or (`prefixed`) those a longer word
    belongs to (the phrase ends in `*`)."""
    if len(owners) == 1:  # most phrases belong to one list
        list_id, prefix = owners[0]
        return (list_id,) if prefix or not prefixed else ()
    return tuple(dict.fromkeys(l for l, p in owners if p or not prefixed))


def _bounded(phrases: dict[str, tuple[tuple, tuple]]) -> dict[str, tuple[int, bool, tuple]]:
    """Automaton keys with their word boundaries: " phrase " for whole words, " phrase" for the
    run-on of a `*` phrase. Each value: how far back from the match's last character the phrase
    starts in the message, whether it runs on, and (phrase to check or None, owners) for every
    phrase that looks the same once punctuation is a space."""
    keys: dict[str, tuple[int, bool, tuple]] = {}
    for phrase, (whole, prefixed) in phrases.items():
        bare = spaced(phrase)
        check = None if bare == phrase and " " not in phrase else phrase
        for key, run_on, owners in ((f" {bare} ", False, whole), (f" {bare}", True, prefixed)):
            if owners:
                back, _, variants = keys.get(key, (len(phrase) + (0 if run_on else 1), run_on, ()))
                keys[key] = (back, run_on, (*variants, (check, owners)))
    return keys


def _automaton(words: dict[str, tuple]) -> ahocorasick.Automaton | None:
    if not words:
        return None
    automaton = ahocorasick.Automaton()
    for key, value in words.items():
        automaton.add_word(key, value)
    automaton.make_automaton()
    return automaton
