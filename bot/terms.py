"""Find every phrase of every rule and term list in one pass over the folded text.

All phrases (term lists of all languages and inline rule phrases) go into one Aho-Corasick
automaton, so the cost per message does not grow with the number of rules.  A phrase matches on
word boundaries; a trailing `*` lets the last word run on ("hospital*" matches "hospitalised",
"hospitalisé", "Hospitalisierung").  Hits are grouped by list id: `terms:<lang>:<name>` or
`phrases:<rule id>:<n>`.

There is one automaton per language (and one for inline rule phrases), so a message whose
language is known is scanned only for its own language's phrases.
"""

from __future__ import annotations

import ahocorasick

from .normalize import fold


class PhraseIndex:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, list[tuple[str, bool]]]] = {}  # group -> phrase -> owners
        self._automata: dict[str, ahocorasick.Automaton] = {}
        self._trigger_automata: dict[str, ahocorasick.Automaton] = {}
        self.lists: dict[str, list[str]] = {}

    def add(self, list_id: str, phrases: list[str], group: str = "") -> None:
        """Add a list; `group` is its language, or "" for phrases that apply in every language."""
        self.lists[list_id] = phrases
        entries = self._entries.setdefault(group, {})
        for phrase in phrases:
            prefix = phrase.endswith("*")
            key = fold(phrase.rstrip("*"))
            if key:
                entries.setdefault(key, []).append((list_id, prefix))

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self._automata)

    def compile(self, is_trigger=lambda list_id: True) -> None:
        """Build the automata: all lists, and only the lists `is_trigger` accepts (the first pass)."""
        for group, entries in self._entries.items():
            for target, keep in ((self._automata, lambda _: True), (self._trigger_automata, is_trigger)):
                automaton = ahocorasick.Automaton()
                for key, owners in entries.items():
                    kept = tuple(o for o in owners if keep(o[0]))
                    if kept:
                        automaton.add_word(key, (len(key), kept))
                if len(automaton):
                    automaton.make_automaton()
                    target[group] = automaton

    def find(self, text: str, groups: tuple[str, ...], triggers_only: bool = False) -> dict[str, list[tuple[int, int]]]:
        """Return list id -> folded spans of the groups' phrases found in `text` on word boundaries."""
        out: dict[str, list[tuple[int, int]]] = {}
        automata = self._trigger_automata if triggers_only else self._automata
        for group in groups:
            automaton = automata.get(group)
            if automaton is not None:
                self._scan(automaton, text, out)
        return out

    @staticmethod
    def _scan(automaton: ahocorasick.Automaton, text: str, out: dict[str, list[tuple[int, int]]]) -> None:
        n = len(text)
        for end, (length, owners) in automaton.iter(text):
            start = end - length + 1
            if start > 0 and text[start - 1].isalnum():
                continue
            after = end + 1
            whole = after >= n or not text[after].isalnum()
            for list_id, prefix in owners:
                if whole:
                    out.setdefault(list_id, []).append((start, after))
                elif prefix:
                    stop = after
                    while stop < n and text[stop].isalnum():
                        stop += 1
                    out.setdefault(list_id, []).append((start, stop))
