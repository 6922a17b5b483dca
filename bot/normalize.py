"""Fold text into one searchable form and map every position back to the original.

Evasion is cheap ("Оzempic" with a Cyrillic О, "oz\u200bempic", "ＯＺＥＭＰＩＣ"), so every matcher
works on a folded copy: NFKC, case folding, accents stripped, homoglyphs mapped to Latin;
zero-width, control and emoji characters, dashes and underscores turned into spaces.
Hits must still point at the text a moderator sees, hence the offset map.

Speed is the design constraint (the engine screens tens of thousands of messages a second), so:

1. Folding is one `str.translate` call over a table that fills itself on first sight of each
   character; the table remembers which characters do not map to exactly one character.
2. When the message holds none of those (nearly every message), positions are unchanged and
   no offset map is built at all.
3. Only otherwise is the text walked once to record break points (folded position, original
   position); a lookup is then a bisect.
4. The words are found here once for every matcher: a second table turns every character that
   is not a letter or digit into a space (`spaced`, same length, so positions still hold) and
   `str.split` gives the words; their positions are worked out only when something needs them.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from itertools import accumulate, chain, compress
from operator import add

# Letters from other scripts that are drawn like Latin ones; people swap them in to dodge filters.
_HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "һ": "h", "ԛ": "q", "ԝ": "w", "ѵ": "v", "ү": "y", "ӏ": "l", "з": "3", "ь": "b",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ϲ": "c", "ς": "c",
    # Latin look-alikes that NFKC keeps
    "ı": "i", "ɡ": "g", "ɑ": "a", "ø": "o", "ł": "l", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe",
}
_SPACE_LIKE = set("-_\u2010\u2011\u2012\u2013\u2014\u2015\u2212/\\|~")
_APOSTROPHES = set("\u2018\u2019\u02bc\u0060\u00b4")


class _FoldTable(dict):
    """A `str.translate` table that computes each character's folded form on first lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.not_one_to_one: set[str] = set()

    def __missing__(self, codepoint: int) -> str:
        folded = _fold_char(chr(codepoint))
        if len(folded) != 1:
            self.not_one_to_one.add(chr(codepoint))
        self[codepoint] = folded
        return folded


def _fold_char(ch: str) -> str:
    if ch in "\t\n\r\f\v" or ch.isspace():
        return " "
    if ch in _SPACE_LIKE:
        return " "
    if ch in _APOSTROPHES:
        return "'"
    if ch == "@":  # "x@n@x": in handles and addresses it folds harmlessly
        return "a"
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Cs", "Co", "Cn", "So", "Sk", "Me") or "\ufe00" <= ch <= "\ufe0f":
        # Controls, zero-width and bidi marks, emoji and variation selectors carry no letters. They
        # become a space (one for one, so offsets stay put); the drug matcher joins pieces that such
        # a character split ("oz\u200bempic", "oze💉mpic").
        return " "
    if category == "Mn":
        return ""  # a stray combining mark: part of the letter before it
    out = []
    for c in unicodedata.normalize("NFKC", ch).casefold():
        c = _HOMOGLYPHS.get(c, c)
        for d in unicodedata.normalize("NFD", c):
            if not unicodedata.combining(d):
                out.append(_HOMOGLYPHS.get(d, d))
    return "".join(out)


_TABLE = _FoldTable()


class _WordTable(dict):
    """A `str.translate` table keeping letters and digits and turning everything else into a
    space: `str.split` then gives the words, several times faster than a regular expression."""

    def __missing__(self, codepoint: int) -> str:
        ch = chr(codepoint)
        kept = self[codepoint] = ch if ch.isalnum() else " "
        return kept


_WORD_TABLE = _WordTable()


def spaced(text: str) -> str:
    """`text` with every character that is not a letter or digit a space (same length)."""
    return text.translate(_WORD_TABLE)


_NEXT = (1).__add__


def fold(text: str) -> str:
    """Fold text without keeping offsets: for lexicon entries and phrases, folded the same way."""
    return " ".join(text.translate(_TABLE).split())


class Normalized:
    """A message's folded text, and the way back from a folded span to the original one."""

    __slots__ = ("original", "text", "_norm_pos", "_orig_pos", "words", "vocabulary", "spaced", "_starts", "_ends")

    def __init__(self, original: str) -> None:
        self.original = original
        self.text = original.translate(_TABLE)
        self.spaced = spaced(self.text)  # the folded text with every non-word character a space
        self.words: list[str] = self.spaced.split()  # the folded words, in order
        self.vocabulary: set[str] = set(self.words)  # for set operations in C against word lists
        self._starts: list[int] | None = None
        self._ends: list[int] | None = None
        self._norm_pos: list[int] | None = None
        self._orig_pos: list[int] | None = None
        # Every ASCII character folds to exactly one (checked by a test), so the set check is for
        # the other messages only.
        if not original.isascii() and not _TABLE.not_one_to_one.isdisjoint(original):
            self._build_offsets()

    def _build_offsets(self) -> None:
        norm_pos: list[int] = []
        orig_pos: list[int] = []
        out = 0
        in_run = False
        table = _TABLE
        for i, ch in enumerate(self.original):
            folded = table[ord(ch)]
            n = len(folded)
            if n == 1:
                if not in_run:
                    norm_pos.append(out)
                    orig_pos.append(i)
                    in_run = True
                out += 1
                continue
            in_run = False
            for j in range(n):
                norm_pos.append(out + j)
                orig_pos.append(i)
            out += n
        norm_pos.append(out)
        orig_pos.append(len(self.original))
        self._norm_pos = norm_pos
        self._orig_pos = orig_pos

    def word_starts(self) -> list[int]:
        """The folded start position of each word, worked out once someone needs them (a name
        was found, a rule counts words): most messages never do."""
        if self._starts is None:
            # Split on single spaces, each piece (a word, or "" between two spaces) starts one past
            # the end of the one before it; keep the starts of the words. All of it runs in C.
            pieces = self.spaced.split(" ")
            self._starts = list(compress(accumulate(chain((0,), map(_NEXT, map(len, pieces)))), pieces))
        return self._starts

    def word_ends(self) -> list[int]:
        if self._ends is None:
            self._ends = list(map(add, self.word_starts(), map(len, self.words)))
        return self._ends

    @property
    def identity(self) -> bool:
        return self._norm_pos is None

    def _to_original(self, pos: int) -> int:
        norm_pos, orig_pos = self._norm_pos, self._orig_pos
        assert norm_pos is not None and orig_pos is not None
        k = bisect_right(norm_pos, pos) - 1
        return orig_pos[k] + (pos - norm_pos[k])

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a folded [start, end) span to the original text's [start, end)."""
        if self._norm_pos is None:
            return start, end
        if end <= start:
            s = self._to_original(start)
            return s, s
        return self._to_original(start), self._to_original(end - 1) + 1
