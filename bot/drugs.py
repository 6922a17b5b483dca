"""Find medicine names in folded text: exact names, misspellings and disguised names.

The matcher is compiled once from `LexiconData` and then answers in microseconds per message:

1. Exact: every token is one set lookup; a token that begins a multi-word name ("insulin
   glargine") grows into an n-gram only while it is still the start of some name.
2. Spelling: a rare token (not a common word of any supported language, per wordfreq) of five
   letters or more is looked up after leetspeak folding ("x4n4x"), squeezing repeated letters
   ("xanaxxx", "lisinoprill"), and in a symmetric-deletion index ("metforman", "ozempik") whose
   candidates are confirmed with an optimal-string-alignment distance of 1 (2 from nine letters).
   A common word never matches fuzzily: "started" is not fosinopril.
3. Evasion: short pieces split by separators ("o z e m p i c", "oz.em.pic", "met-for-min") are
   joined and looked up as one name.
4. Ambiguity: names that are also ordinary words or first names ("Allegra", "Alli") count only
   with medicine context nearby; otherwise the engine records a note saying why it let them pass.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_left
from functools import lru_cache
import unicodedata
from typing import NamedTuple

from rapidfuzz.distance import OSA

from .lexicon import LexiconData
from .normalize import Normalized

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"})
_SQUEEZE = re.compile(r"(.)\1+")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
MAX_JOINED = 24  # longest name looked for among joined pieces
MAX_PIECE = 5  # longest piece of a name split by separators
# Worth trying to join: one to three symbols between letters ("oz.em", not "don't", "j'ai"), or two
# single letters between spaces ("o z e"). Three searches, each starting at a character class or a
# literal space, skip ahead in C; one pattern of alternatives would try every position in turn.
_JOINED_BY_SYMBOLS = re.compile(r"[^\w\s'’](?<=[^\W_][^\w\s'’])[^\w\s'’]{0,2}(?=[^\W_])")
_SPACED_FIRST = re.compile(r"[^\W_] [^\W_] ")
_SPACED = re.compile(r" [^\W_] [^\W_] ")


def _joinable(original: str) -> bool:
    return (_JOINED_BY_SYMBOLS.search(original) is not None or _SPACED_FIRST.match(original) is not None
            or _SPACED.search(original) is not None)


# Five or more letters spelled out one by one ("o z e m p i c", "0 - z - e - m"), in folded text.
_SPELLED = re.compile(r"(?<![^\W_])(?:[^\W_][^\w']{1,3}){4}[^\W_]")
_HAS_DIGIT = re.compile(r"\d")

# Frequency (zipf) above which a lexicon entry is an ordinary word first: ambiguous, or, when
# very common ("today", "any", "art" are brand names somewhere), not a name at all.
AMBIGUOUS_ZIPF = 3.0
DROP_ZIPF = 4.5
MIN_FUZZY_LEN = 6


def squeeze(word: str) -> str:
    return _SQUEEZE.sub(r"\1", word)


def _deletes(word: str) -> list[str]:
    return [word[:i] + word[i + 1 :] for i in range(len(word))]


class NameHit(NamedTuple):  # cheaper to build than a frozen dataclass; several per message
    start: int  # folded positions
    end: int
    key: str
    canonicals: tuple[str, ...]
    how: str  # exact | spelling | evasion
    ambiguous: bool


class DrugIndex:
    """The compiled lexicon; `find` is the hot path."""

    def __init__(self, data: LexiconData, common: dict[str, float], languages: dict[str, tuple[str, ...]] | None = None) -> None:
        self.language_words = languages or {}  # word -> languages it is frequent in (language guess)
        self.sources = list(data.sources)
        self.lexicon_ids = frozenset(e.source for e in data.entries.values())
        self.source_of: dict[str, str] = {}  # key -> lexicon id, for `lexicon:` match blocks
        self.never = set(data.never)
        self.exact: dict[str, tuple[str, ...]] = {}
        self.prefixes: set[str] = set()  # proper token prefixes of multi-word names
        self.ambiguous: set[str] = set()
        self.squeezed: dict[str, str] = {}
        self.deletes: dict[str, list[str]] = {}
        self.dropped: list[str] = []
        always = data.always
        for key, entry in data.entries.items():
            if key in self.never:
                continue
            tokens = key.split(" ")
            if len(tokens) == 1:
                zipf = common.get(key, 0.0)
                if key not in always and not entry.owner:
                    if zipf >= DROP_ZIPF:
                        self.dropped.append(key)
                        continue
                    if zipf >= AMBIGUOUS_ZIPF or len(key) <= 3:
                        self.ambiguous.add(key)
            elif key not in always and all(t.isdigit() or common.get(t, 0.0) >= DROP_ZIPF for t in tokens):
                if not entry.owner and any(t.isdigit() for t in tokens) and all(len(t) > 1 for t in tokens if not t.isdigit()):
                    # A word and a number ("nu 3" in "ben nu 3 weken", "sin 10", "is 5"): dictionary
                    # noise (code names of research compounds) that any sentence with a number would
                    # hit. A letter and a number ("T-20", enfuvirtide) stays, with context.
                    self.dropped.append(key)
                    continue
                self.ambiguous.add(key)  # ordinary words ("night nurse", "t 20"): needs medicine context
            if entry.ambiguous or key in data.ambiguous:
                self.ambiguous.add(key)
            self.exact[key] = entry.canonicals
            self.source_of[key] = sys.intern(entry.source)
            if len(tokens) > 1:
                for k in range(1, len(tokens)):
                    self.prefixes.add(" ".join(tokens[:k]))
            elif len(key) >= 4 and key not in self.ambiguous and key.isalpha():
                self.squeezed.setdefault(squeeze(key), key)
                if len(key) >= MIN_FUZZY_LEN:
                    for d in (key, *_deletes(key)):
                        self.deletes.setdefault(d, []).append(key)
        self.common_words = frozenset(common)  # the zipf values are needed at compile time only
        self.longest = max((len(k) for k in self.exact if " " not in k), default=0)
        self.first_keys = frozenset({k for k in self.exact if " " not in k} | {p for p in self.prefixes if " " not in p})
        self.needs = _needs(self.exact, common)

    # -- lookups -------------------------------------------------------------------------

    def _fuzzy(self, token: str) -> tuple[str, str] | None:
        """Return (key, how) for a rare token that stands for a lexicon name, or None."""
        how = "spelling"
        if len(token) > self.longest + 2:
            return None  # longer than any name: no lookups (a 1 MB "word" would build 1 MB deletes)
        if _HAS_DIGIT.search(token):
            if token.isdigit() or sum(c.isalpha() for c in token) < 2:
                return None
            token = token.translate(_LEET)
            how = "evasion"
            if token in self.exact and token not in self.ambiguous:
                return token, how
        if not token.isalpha() or token in self.common_words or token in self.never:
            return None
        sq = squeeze(token)
        key = self.squeezed.get(sq)
        if key is not None:
            return key, ("evasion" if len(token) - len(sq) >= 2 else how)
        if len(token) < MIN_FUZZY_LEN:
            return None
        limit = 1 if len(token) < 9 else 2
        best: tuple[int, int, str] | None = None
        deletes = self.deletes
        for probe in (token, *_deletes(token)):
            for cand in deletes.get(probe, ()):
                if abs(len(cand) - len(token)) > limit:
                    continue
                dist = OSA.distance(token, cand, score_cutoff=limit)
                if dist <= limit and (best is None or (dist, -len(cand)) < best[:2]):
                    best = (dist, -len(cand), cand)
        if best is None:
            return None
        return best[2], how

    def lookup(self, word: str) -> tuple[str, str] | None:
        """Look one folded word up exactly, then fuzzily; used by joined evasion runs too."""
        if word in self.exact:
            return word, "exact"
        return self._fuzzy(word)

    def find(self, norm: Normalized) -> tuple[list[NameHit], set[str]]:
        """Return the names found and the set of folded words of the text (reused by the engine).

        Set operations in C decide first whether any word can start a name or is rare enough
        to be a misspelling; most messages stop there without a Python loop over their words.
        """
        text = norm.text
        words, unique = norm.words, norm.vocabulary
        firsts = unique.intersection(self.first_keys)  # frozensets: C iterates the smaller side
        if firsts:
            firsts = self._possible(firsts, unique)
        rare = [w for w in unique.difference(self.common_words) if len(w) >= 4 and not w.isdigit()]
        original = norm.original
        joinable = (len(unique.intersection(_LETTERS)) >= 3 and _SPELLED.search(text) is not None) or (
            # worth a closer look: a character folded into a space ("oz\u200bempic", "met-for-min"),
            # or a chunk between spaces that holds several words ("oz.em.pic")
            (text.count(" ") != original.count(" ") or len(words) > len(text.split()))
            and _joinable(original)
        )
        if not firsts and not rare and not joinable:
            return [], unique
        found: list[tuple[int, int, str, str]] = []  # (first word, word count, key, how)
        exact, prefixes, never = self.exact, self.prefixes, self.never
        rare_set = set(rare)
        n = len(words)
        free = 0  # the first word not inside a name already found
        looked_at = firsts | rare_set
        for i in [i for i, w in enumerate(words) if w in looked_at]:
            if i < free:
                continue
            w = words[i]
            if w in firsts:
                # Grow the n-gram while it is still the beginning of some name; keep the longest name.
                best = (1, w) if w in exact and w not in never else None
                key, k = w, 1
                while key in prefixes and i + k < n:
                    key = f"{key} {words[i + k]}"
                    k += 1
                    if key in exact and key not in never:
                        best = (k, key)
                if best is not None:
                    found.append((i, best[0], best[1], "exact"))
                    free = i + best[0]
                continue
            fuzzy = self._fuzzy(w)
            if fuzzy is not None:
                found.append((i, 1, fuzzy[0], fuzzy[1]))
        if not found and not joinable:
            return [], unique
        starts = norm.word_starts()  # only once something matched
        hits = [
            NameHit(starts[i], starts[i + k - 1] + len(words[i + k - 1]), key, exact[key], how, key in self.ambiguous)
            for i, k, key, how in found
        ]
        if joinable:
            joined = self._joined(norm, words, hits)
            if joined:
                inside = set()
                starts_of = [h.start for h in hits]
                for j in joined:
                    k = bisect_left(starts_of, j.start)
                    while k < len(hits) and hits[k].end <= j.end:
                        inside.add(k)
                        k += 1
                hits = [h for k, h in enumerate(hits) if k not in inside] + joined
        return hits, unique

    def _possible(self, firsts: set[str], unique: set[str]) -> set[str]:
        """The words of `firsts` that may begin a name here: a name of its own, or the first word
        of a longer name whose other words are all in the message. Most multi-word entries of the
        dictionary begin with a letter or an ordinary word ("a disintegrin and …", "n acetyl …"),
        so without this nearly every message would walk its words for nothing."""
        needs = self.needs
        kept = set()
        for w in firsts:
            need = needs.get(w)
            if need is None:  # a name of its own
                kept.add(w)
                continue
            rarest_words, names = need
            for rarest in rarest_words.intersection(unique):
                if any(unique.issuperset(key.split(" ")) for key in names[rarest]):
                    kept.add(w)
                    break
        return kept

    def _joined(self, norm: Normalized, words: list[str], found: list[NameHit]) -> list[NameHit]:
        """Join runs of pieces split by separators ("oz.em.pic", "met-for-min", "o z e m p i c").

        What may join depends on the gap in the original text: invisible characters and emoji
        ("Akne\u200bnormin", "oze💉mpic") join pieces of any length; dots, dashes and stars join
        pieces of up to five letters; plain spaces join single letters only, so that ordinary
        phrases ("met for min") never join.
        """
        orig, text, identity = norm.original, norm.text, norm.identity
        starts, ends = norm.word_starts(), norm.word_ends()
        taken = [(h.start, h.end) for h in found]  # in text order, not overlapping
        taken_starts = [a for a, _ in taken]
        n = len(words)

        def links(j: int) -> bool:
            """May word j and word j + 1 be pieces of one disguised name?"""
            gap_start, gap_end = ends[j], starts[j + 1]
            if not 1 <= gap_end - gap_start <= 3:
                return False
            left, right = len(words[j]), len(words[j + 1])
            if identity and gap_end - gap_start == 1 and text[gap_start] == " " and orig[gap_start] == " ":
                return left == 1 and right == 1  # the common case, a plain space: no lookups
            a, b = (gap_start, gap_end) if identity else norm.span(gap_start, gap_end)
            gap = orig[a:b]
            if "'" in gap or "’" in gap:
                return False  # an apostrophe joins words of the language, not a disguised name
            if gap.isspace():
                return left == 1 and right == 1
            return _is_glue(gap) or (left <= MAX_PIECE and right <= MAX_PIECE)

        def match(first: int, last: int) -> tuple[int, int, str] | None:
            """The longest name made of pieces first.. (at most MAX_JOINED letters), trying the
            run's first piece and, for one stray piece before the name, its second."""
            for start in (first, first + 1):
                if start >= last:
                    break
                joined, best = words[start], None
                for j in range(start + 1, min(last, start + 14) + 1):
                    joined += words[j]
                    if len(joined) > MAX_JOINED:
                        break  # disguised names are brands and generics, not chemical names
                    if len(joined) >= 5:
                        probe = joined.translate(_LEET) if _HAS_DIGIT.search(joined) else joined
                        key = probe if probe in self.exact else self.squeezed.get(squeeze(probe))
                        if key is not None and key not in self.ambiguous:
                            best = (start, j, key)
                if best is not None:
                    return best
            return None

        # Runs of linked pieces are found once; names are looked for from the start of each run
        # (and after each name found in it), so a megabyte of "a.b.c.d." stays linear.
        if identity:  # skip the common gap, one plain space between words of several letters
            maybe = [j for j in range(n - 1)
                     if not (starts[j + 1] - ends[j] == 1 and text[ends[j]] == " " == orig[ends[j]]
                             and (len(words[j]) > 1 or len(words[j + 1]) > 1))]
        else:
            maybe = range(n - 1)
        runs: list[list[int]] = []  # [first piece, last piece] of each run of linked pieces
        for j in maybe:
            if links(j):
                if runs and runs[-1][1] == j:
                    runs[-1][1] = j + 1
                else:
                    runs.append([j, j + 1])
        out: list[NameHit] = []
        for i, r in runs:
            pos = i
            while pos < r:
                found_name = match(pos, r)
                if found_name is None:
                    break
                first, j, key = found_name
                s, e = starts[first], ends[j]
                # A joined name wins over pieces matched on their own inside it ("normin" in
                # "Akne·normin"), but not over a name that only overlaps it.
                k = bisect_left(taken_starts, e)
                overlapping = []
                while k > 0 and taken[k - 1][1] > s:
                    overlapping.append(taken[k - 1])
                    k -= 1
                if all(s <= a and b <= e for a, b in overlapping):
                    out.append(NameHit(s, e, key, self.exact[key], "evasion", False))
                pos = j + 1
        return out


def _needs(exact: dict[str, tuple[str, ...]], common: dict[str, float]
           ) -> dict[str, tuple[frozenset[str], dict[str, tuple[str, ...]]]]:
    """For each first word that is not a name of its own: the rarest other word of each longer
    name it begins -> those names. A name can only be in a message that has its rarest word, and
    that one set lookup rules out nearly all of them. Names are the lexicon's own key strings and
    equal words share one object, so this adds little to memory and to the pickled index."""
    def commonness(word: str) -> tuple[float, int]:
        if len(word) == 1 or word.isdigit():
            return 9.0, -len(word)  # letters and numbers are in every other message
        return common.get(word, 0.0), -len(word)

    names: dict[str, dict[str, list[str]]] = {}
    same: dict[str, str] = {}
    for key in exact:
        first, *rest = key.split(" ")
        if rest and first not in exact:
            rarest = min(rest, key=commonness)
            by_rarest = names.setdefault(same.setdefault(first, first), {})
            by_rarest.setdefault(same.setdefault(rarest, rarest), []).append(key)
    return {first: (frozenset(by_rarest), {w: tuple(keys) for w, keys in by_rarest.items()})
            for first, by_rarest in names.items()}


@lru_cache(maxsize=4096)
def _is_glue(gap: str) -> bool:
    """Invisible characters and symbols between letters: always an evasion, whatever the pieces."""
    return all(unicodedata.category(c) in _GLUE for c in gap)


_GLUE = {"Cc", "Cf", "Cs", "Co", "Cn", "So", "Sk", "Mn", "Me"}
