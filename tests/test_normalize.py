"""Folding must defeat disguises and still point hits at the text the moderator sees."""

import pytest

from bot.normalize import Normalized, fold


@pytest.mark.parametrize(
    "original, needle",
    [
        ("I take Оzempic daily", "ozempic"),            # Cyrillic О
        ("I take ＯＺＥＭＰＩＣ daily", "ozempic"),        # fullwidth letters
        ("ﬁne, paracétamol", "paracetamol"),           # ligature before, accent inside
    ],
)
def test_disguised_word_is_found_and_maps_back(original, needle):
    n = Normalized(original)
    start = n.text.index(needle)
    s, e = n.span(start, start + len(needle))
    assert fold(original[s:e]) == needle


def test_plain_ascii_keeps_positions_without_an_offset_map():
    n = Normalized("Just take 400mg")
    assert n.identity and n.text == "just take 400mg" and n.span(5, 9) == (5, 9)


def test_every_ascii_character_folds_to_exactly_one():
    """`Normalized` skips its offset map for ASCII text without looking: this is why it may."""
    assert [len(Normalized(chr(c)).text) for c in range(128)] == [1] * 128


def test_words_and_their_positions():
    n = Normalized("Don't take 2.5mg—ask   Dr. Ünal_first!")
    assert n.words == ["don", "t", "take", "2", "5mg", "ask", "dr", "unal", "first"]
    assert [n.text[s:e] for s, e in zip(n.word_starts(), n.word_ends())] == n.words
    assert n.word_starts() == [0, 4, 6, 11, 13, 17, 23, 27, 32]


def test_expansion_maps_every_folded_char_to_its_source():
    n = Normalized("Straße ok")  # ß folds to two letters
    assert n.text.startswith("strasse")
    assert n.span(0, 7) == (0, 6)


@pytest.mark.parametrize("text", ["oz\u200bempic", "oze💉mpic", "x\x00anax", "love it ❤️ thanks"])
def test_invisible_and_symbol_characters_become_spaces_one_for_one(text):
    """The drug matcher joins the pieces again; keeping one char for one keeps offsets free."""
    n = Normalized(text)
    assert n.identity and len(n.text) == len(text)
