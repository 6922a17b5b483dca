"""Ordinary words of the five supported languages, from wordfreq, keyed to their highest zipf value.

A word counts as known from zipf 2 (about once in 10 million words): known words never match a
medicine fuzzily.  From zipf 3 a word is common: a lexicon entry that is common is ambiguous.
The drug matcher refuses to let an ordinary word match a medicine fuzzily ("started" is not
fosinopril, "doctor" is not a stool softener) and treats lexicon entries that are ordinary words
as ambiguous.  wordfreq's lists are per language; a word counts as common if it is common in
any of them, because members switch languages mid-sentence.
"""

from __future__ import annotations

import math

LANGUAGES = ("en", "nl", "fr", "de", "es")
MIN_ZIPF = 2.0


def common_words(languages: tuple[str, ...] = LANGUAGES, min_zipf: float = MIN_ZIPF) -> dict[str, float]:
    from wordfreq import get_frequency_dict

    from .normalize import fold

    floor = 10 ** (min_zipf - 9)
    out: dict[str, float] = {}
    for lang in languages:
        for word, freq in get_frequency_dict(lang).items():
            if freq < floor:
                continue
            w = fold(word)
            zipf = round(math.log10(freq) + 9, 2)
            if zipf > out.get(w, 0.0):
                out[w] = zipf
    return out
