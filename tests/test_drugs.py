"""Medicine names: exact, misspelt, disguised, and ordinary words that must not match."""

import pytest

from bot.engine import screen
from bot.models import Message


@pytest.mark.parametrize(
    "text, drug",
    [
        ("started metforman last week", "metformin"),
        ("ozempik made me sick", "semaglutide"),
        ("need my xanaxx", "alprazolam"),
        ("lisinoprill for my bp", "lisinopril"),
        ("Metformine 500 le matin", "metformin"),
        ("tomo metformina", "metformin"),
        ("x4n4x", "alprazolam"),
        ("0zemp1c", "semaglutide"),
        ("o z e m p i c", "semaglutide"),
        ("oz.em.pic", "semaglutide"),
        ("met-for-min", "metformin"),
        ("oz\u200bempic", "semaglutide"),          # zero-width space inside the word
        ("oze💉mpic", "semaglutide"),               # emoji between letters
        ("seit Akne\u200bnormin", "isotretinoin"), # long pieces around an invisible character
        ("x\x00anax", "alprazolam"),               # control character
        ("Doliprane 1000", "acetaminophen"),      # French registry brand
        ("Nolotil para el dolor", "dipyrone"),      # owner lexicon (Spain)
        ("insulin glargine pen", "insulin glargine"),
        ("Synthroid every morning", "levothyroxine"),  # canonical rename
        ("got some xans off a guy", "alprazolam"),     # street name (owner lexicon)
        ("on tirz for 3 months now", "tirzepatide"),   # community slang
    ],
)
def test_names_are_found(rules, text, drug):
    assert drug in screen(Message(text=text), rules).drug_names


@pytest.mark.parametrize(
    "text",
    [
        "my niece Allegra is visiting this weekend",   # first name, also a brand
        "Alli from the support team will answer",
        "speed walking every morning, crystal clear skies",
        "I started a new job and my doctor is great",  # "started" is not fosinopril
        "stress + psoriasis is a real thing",           # rare word, not a fuzzy drug
        "ya concerté la cita con el endo",
    ],
)
def test_bait_does_not_match(rules, text):
    assert screen(Message(text=text), rules).drug_names == ()


def test_ambiguous_name_with_medicine_context_counts(rules):
    assert screen(Message(text="Allegra 180mg for my hay fever"), rules).drug_names == ("fexofenadine",)


@pytest.mark.parametrize("text", [
    "took an allegra tablet this morning, hay fever gone",  # a medicine word, no strength
    "ik slik sinds maart lithium tabletten",
])
def test_ambiguous_name_next_to_a_medicine_word_counts(rules, text):
    """The phrase list `drug_context` resolves an ambiguous name, not only a strength or a dose
    (it was read before the phrase scan had found it, so it never counted)."""
    assert screen(Message(text=text), rules).drug_names != ()


def test_ambiguous_name_without_context_is_explained_not_silent(rules):
    v = screen(Message(text="Allegra is my daughter"), rules)
    assert v.drug_names == () and "Allegra" in v.notes[0].explanation


def test_thread_context_names_the_suspect_drug(rules):
    from bot.models import ReplyContext

    v = screen(Message(text="it gave me a horrible rash after two weeks",
                       reply_to=ReplyContext(message_id="1", text="anyone on lamotrigine?")), rules)
    assert "adverse_event" in v.categories
    assert v.adverse_event.suspect_drugs == ("lamotrigine",)
    assert v.drug_names == ()  # named in the parent, not in this message


def test_thread_parent_ambiguous_name_counts_when_the_parent_shows_a_strength(rules):
    """"ASS 500" in the parent is aspirin; "Allegra" the girl in the parent is nobody's suspect drug."""
    from bot.models import ReplyContext

    reply = "I did exactly that and got nosebleeds for days"
    v = screen(Message(text=reply, reply_to=ReplyContext(message_id="1", text="try ASS 500, two with a coke")), rules)
    assert v.adverse_event is not None and v.adverse_event.suspect_drugs == ("aspirin",)
    v = screen(Message(text=reply, reply_to=ReplyContext(message_id="1", text="Allegra said to try it")), rules)
    assert v.adverse_event is None


def test_names_of_ordinary_words_and_numbers():
    """A word and a number is dictionary noise and dropped ("nu 3" in "ben nu 3 weken"); a letter
    and a number ("T-20", enfuvirtide) and an owner's product of ordinary words ("Good Night")
    stay, needing medicine context."""
    from bot.drugs import DrugIndex
    from bot.lexicon import LexiconData

    data = LexiconData()
    data.add("nu-3", ["bisphosphocin nu-3"], "dner")
    data.add("T-20", ["enfuvirtide"], "dner")
    data.add("Good Night", ["somebrand"], "owner-x", owner=True)
    index = DrugIndex(data, {"nu": 5.0, "t": 5.0, "good": 6.0, "night": 5.5})
    assert "nu 3" in index.dropped and "nu 3" not in index.exact
    assert {"t 20", "good night"} <= index.ambiguous


def test_multi_word_names_that_begin_with_a_letter_or_an_ordinary_word():
    """Such names are only looked for when their rarest word is in the message, so the gate must
    never hide one that is there, whatever order its words come in elsewhere in the message."""
    from bot.drugs import DrugIndex
    from bot.lexicon import LexiconData
    from bot.normalize import Normalized

    data = LexiconData()
    data.add("N-acetylcysteine", ["acetylcysteine"], "dner")
    data.add("a disintegrin and metalloproteinase", ["adam"], "dner")
    data.add("a a", ["noise"], "dner")  # every word common: still found where it stands
    index = DrugIndex(data, {"n": 6.0, "a": 7.0, "and": 7.0})

    def keys(text):
        return [h.key for h in index.find(Normalized(text))[0]]

    assert keys("took N-acetylcysteine 600 and a nap") == ["n acetylcysteine"]
    assert keys("acetylcysteine and n") == []  # its words, not in order
    assert keys("metalloproteinase: a disintegrin and metalloproteinase") == ["a disintegrin and metalloproteinase"]
    assert keys("a a") == ["a a"] and keys("a b a") == []


def test_the_quick_check_for_disguised_names_agrees_with_its_one_pattern_definition():
    """`_joinable` splits one regular expression into three that Python searches faster; on any
    text they must agree."""
    import random
    import re

    from bot.drugs import _joinable

    reference = re.compile(r"[^\W_][^\w\s'’]{1,3}[^\W_]|(?:^| )[^\W_] [^\W_] ")
    rng = random.Random(7)
    alphabet = "ab1 ._-'’é\u200b💊*_/x"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert _joinable(text) == (reference.search(text) is not None), repr(text)
