"""Ordinary words of the five supported languages, from wordfreq, keyed to their highest zipf value.

A word counts as known from zipf 2 (about once in 10 million words): known words never match a
medicine fuzzily.  From zipf 3 a word is common: a lexicon entry that is common is ambiguous.
The drug matcher refuses to let an ordinary word match a medicine fuzzily ("started" is not
fosinopril, "doctor" is not a stool softener) and treats lexicon entries that are ordinary words
as ambiguous.  wordfreq's lists are per language; a word counts as common if it is common in
any of them, because members switch languages mid-sentence.
"""

from __future__ import annotations


LANGUAGES = ("en", "nl", "fr", "de", "es")
MIN_ZIPF = 2.0


def common_words(languages: tuple[str, ...] = LANGUAGES, min_zipf: float = MIN_ZIPF) -> dict[str, float]:
    """Word -> highest zipf value over `languages`, for words from `min_zipf` up.

    wordfreq's frequency list is bucketed by centibel (bucket i holds the words of frequency
    10^(-i/100)), so reading buckets down to the floor avoids building its whole dictionary.
    """
    from wordfreq import get_frequency_list

    from .normalize import fold

    last_bucket = round((9 - min_zipf) * 100)
    out: dict[str, float] = {}
    for lang in languages:
        for i, bucket in enumerate(get_frequency_list(lang)[: last_bucket + 1]):
            zipf = round(9 - i / 100, 2)
            for word in bucket:
                w = word if word.isascii() and word.isalpha() else fold(word)
                if zipf > out.get(w, 0.0):
                    out[w] = zipf
    return out


def language_words(languages: tuple[str, ...] = LANGUAGES, per_language: int = 3000) -> dict[str, tuple[str, ...]]:
    """Word -> the languages it marks: it is among a language's `per_language` most frequent
    words and, in that language, within half a zipf point of its most frequent use.

    The engine guesses a message's language by counting such words per language.  A curated
    handful of function words misreads short messages ("de apotheek gaf me ..." has more
    English-looking function words than Dutch ones), and plain top lists overlap too much
    (wordfreq's French list holds "my" and "is" from code-mixed text), hence the comparison.
    """
    from wordfreq import top_n_list, zipf_frequency

    from .normalize import fold

    candidates: dict[str, str] = {}
    for lang in languages:
        for word in top_n_list(lang, per_language):
            candidates.setdefault(word, lang)
    out: dict[str, tuple[str, ...]] = {}
    for word in candidates:
        zipfs = {lang: zipf_frequency(word, lang) for lang in languages}
        top = max(zipfs.values())
        langs = tuple(lang for lang, z in zipfs.items() if z >= top - 0.5)
        w = word if word.isascii() and word.isalpha() else fold(word)
        if w:
            out[w] = tuple(dict.fromkeys((*out.get(w, ()), *langs)))
    return out
