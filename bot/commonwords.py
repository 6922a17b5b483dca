"""Ordinary words of the five supported languages, from wordfreq.

Two uses, both computed once when the lexicon is compiled:

- `common`: word -> its highest zipf value over the languages, from zipf 2 (about once in ten
  million words).  A known word never matches a medicine fuzzily ("started" is not fosinopril,
  "doctor" is not a stool softener); from zipf 3 a lexicon entry that is also a word is ambiguous.
  A word counts in any language, because members switch languages mid-sentence.
- `languages`: word -> the languages it marks, for guessing a message's language.  A word marks
  a language when it is among that language's most frequent words and, there, within half a
  zipf point of its most frequent use: wordfreq's French list holds "my" and "is" from
  code-mixed text, and a curated handful of function words misreads short messages.

wordfreq's frequency list is bucketed by centibel (bucket i holds the words of frequency
10^(-i/100)), so reading the buckets down to zipf 2 avoids building its whole dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("en", "nl", "fr", "de", "es")
MIN_ZIPF = 2.0
PER_LANGUAGE = 3000


@dataclass
class WordStatistics:
    common: dict[str, float]
    languages: dict[str, tuple[str, ...]]


def word_statistics(languages: tuple[str, ...] = LANGUAGES, min_zipf: float = MIN_ZIPF,
                    per_language: int = PER_LANGUAGE) -> WordStatistics:
    from wordfreq import get_frequency_list

    from .normalize import fold

    last_bucket = round((9 - min_zipf) * 100)
    common: dict[str, float] = {}
    zipf_in: dict[str, dict[str, float]] = {}
    frequent: list[str] = []
    for lang in languages:
        zipfs = zipf_in[lang] = {}
        rank = 0
        for i, bucket in enumerate(get_frequency_list(lang)[: last_bucket + 1]):
            zipf = round(9 - i / 100, 2)
            for word in bucket:
                w = word if word.isascii() and word.isalpha() else fold(word)
                if not w:
                    continue
                if zipf > common.get(w, 0.0):
                    common[w] = zipf
                zipfs.setdefault(w, zipf)
                if rank < per_language:
                    frequent.append(w)
                rank += 1
    marks: dict[str, tuple[str, ...]] = {}
    for w in dict.fromkeys(frequent):
        here = {lang: zipf_in[lang].get(w, 0.0) for lang in languages}
        top = max(here.values())
        marks[w] = tuple(lang for lang, z in here.items() if z >= top - 0.5)
    return WordStatistics(common, marks)
