"""Find every phrase of every rule and term list in one pass over the folded text.

All phrases (term lists of all languages and inline rule phrases) go into one Aho-Corasick
automaton, so the cost per message does not grow with the number of rules.  A phrase matches on
word boundaries; a trailing `*` lets the last word run on ("hospital*" matches "hospitalised",
"hospitalisé", "Hospitalisierung").  Hits are grouped by list id: `terms:<lang>:<name>` or
`phrases:<rule id>:<n>`.
"""

from __future__ import annotations

import ahocorasick

from .normalize import fold


class PhraseIndex:
    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[str, bool]]] = {}
        self._automaton: ahocorasick.Automaton | None = None
        self.lists: dict[str, list[str]] = {}

    def add(self, list_id: str, phrases: list[str]) -> None:
        self.lists[list_id] = phrases
        for phrase in phrases:
            prefix = phrase.endswith("*")
            key = fold(phrase.rstrip("*"))
            if key:
                self._entries.setdefault(key, []).append((list_id, prefix))

    def compile(self) -> None:
        automaton = ahocorasick.Automaton()
        for key, owners in self._entries.items():
            automaton.add_word(key, (len(key), tuple(owners)))
        if len(automaton):
            automaton.make_automaton()
            self._automaton = automaton

    def find(self, text: str) -> dict[str, list[tuple[int, int]]]:
        """Return list id -> folded spans of its phrases found in `text` on word boundaries."""
        out: dict[str, list[tuple[int, int]]] = {}
        if self._automaton is None:
            return out
        n = len(text)
        for end, (length, owners) in self._automaton.iter(text):
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
        return out
