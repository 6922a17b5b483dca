"""Verdicts: categories, actions, routes, AE details and hits that point at the original text."""

import pytest

from bot.engine import screen
from bot.models import Action, Message, Patient, Route


@pytest.mark.parametrize(
    "text, lang, category",
    [
        ("just take 400mg of ibuprofen three times a day", None, "prescription_advice"),
        ("since I started ozempic I throw up every morning", None, "adverse_event"),
        ("sinds ik metformine neem heb ik diarree", "nl", "adverse_event"),
        ("depuis que je prends du Levothyrox j'ai des vertiges", "fr", "adverse_event"),
        ("seit ich Sertralin nehme habe ich Kopfschmerzen", "de", "adverse_event"),
        ("desde que tomo metformina tengo diarrea", "es", "adverse_event"),
        ("I'm 8 weeks pregnant and still on my sertraline", None, "special_situation"),
        ("can I drink alcohol on metformin?", None, "medical_inquiry"),
    ],
)
def test_category_fires(rules, text, lang, category):
    assert category in screen(Message(text=text, language=lang), rules).categories


def test_negated_side_effects_are_not_an_adverse_event(rules):
    v = screen(Message(text="been on ozempic 6 months, no side effects at all"), rules)
    assert "adverse_event" not in v.categories and "drug_mention" in v.categories


def test_adverse_event_carries_what_the_safety_team_needs(rules):
    v = screen(Message(text="my son ended up in the ER after his amoxicillin, huge rash and swollen lips"), rules)
    assert v.action is Action.HOLD
    assert Route.PHARMACOVIGILANCE in v.routes
    ae = v.adverse_event
    assert ae.suspect_drugs == ("amoxicillin",)
    assert ae.patient is Patient.CHILD
    assert ae.seriousness.hospitalisation and ae.seriousness.serious
    assert any("rash" in e for e in ae.events)


@pytest.mark.parametrize("text, who", [
    ("My 6 year old son was hospitalised after his amoxicillin, rash everywhere", Patient.CHILD),
    ("my 80 year old mum got so dizzy on her new amlodipine that she fell", Patient.PARENT),
    ("mijn dochter van 4 heeft sinds de amoxicilline overal uitslag", Patient.CHILD),
    ("mi hijo de 3 años vomita desde que toma amoxicilina", Patient.CHILD),
])
def test_patient_is_found_when_words_sit_between_my_and_who(rules, text, who):
    """The PV case's patient criterion: "my 6 year old son" is the child, not the poster."""
    assert screen(Message(text=text), rules).adverse_event.patient is who


def test_hit_spans_point_at_the_original_text(rules):
    text = "🙂 honestly the Оzem\u200bpic pen is great"
    v = screen(Message(text=text), rules)
    (drug,) = v.drugs
    assert text[drug.span[0]:drug.span[1]] == "Оzem\u200bpic"
    assert all(text[h.span[0]:h.span[1]] == h.text for h in v.hits)


def test_benign_chatter_is_allowed(rules):
    v = screen(Message(text="good morning everyone, how was your weekend?"), rules)
    assert v.action is Action.ALLOW and v.hits == ()


@pytest.mark.parametrize("text", ["", " ", "\x00\x01\x02", "\ufeff\u200b"])
def test_empty_or_control_only_text_is_allowed(rules, text):
    assert screen(Message(text=text), rules).action is Action.ALLOW


def test_megabyte_message_gives_a_bounded_correct_result(rules):
    text = ("lorem ipsum dolor sit amet " * 40000) + "ozempic"
    v = screen(Message(text=text), rules)
    assert v.drug_names == ("semaglutide",)
    assert v.drugs[0].span == (len(text) - 7, len(text))


def test_binary_garbage_does_not_crash(rules):
    garbage = bytes(range(256)).decode("latin-1") * 50
    screen(Message(text=garbage), rules)


def test_merge_is_order_independent(rules):
    a = screen(Message(text="just take 2 of my mum's oxycodone, it gives me a buzz"), rules)
    b = screen(Message(text="just take 2 of my mum's oxycodone, it gives me a buzz"), rules)
    assert a == b  # verdicts are values


@pytest.mark.parametrize(
    "text, lang",
    [
        ("sumatriptan doet echt helemaal niks meer bij mij", "nl"),   # words inside the phrase
        ("Maxalt macht jetzt einfach gar nix mehr", "de"),
        ("my ozempic doesn't really work anymore", "en"),
    ],
)
def test_phrases_with_a_gap_allow_words_inside(rules, text, lang):
    assert "lack_of_efficacy" in screen(Message(text=text, language=lang), rules).special_situations


def test_gapped_phrase_parts_must_be_close(rules):
    text = "sumatriptan doet het goed, ik heb nu veel minder aanvallen en niks meer last"
    assert "lack_of_efficacy" not in screen(Message(text=text, language="nl"), rules).special_situations


@pytest.mark.parametrize(
    "piece, drugs",
    [
        # Regression: each of these once took minutes or exhausted memory at 1 MB (quadratic
        # overlap checks, a fuzzy lookup building deletes of a 1 MB "word", a joiner restarting
        # at every piece). They must give a correct result in linear time.
        ("oz\u200bem💉pic ß ", 1),
        ("o z e m p i c ", 1),
        ("a.b.c.d.", 0),
        ("since I started ozempic I throw up, ", 1),
    ],
)
def test_adversarial_long_messages_give_a_correct_result(rules, piece, drugs):
    repeats = 200_000 // len(piece)
    v = screen(Message(text=piece * repeats), rules)
    assert len(v.drugs) == drugs * repeats


def test_a_single_giant_word_is_not_looked_up(rules):
    assert screen(Message(text="x" * 1_000_000), rules).drugs == ()


def test_phrases_match_on_word_boundaries_only():
    """Phrases are found in the spaced text (every non-letter a space) and checked against the
    folded text where punctuation or spaces are part of them; this is the contract either way."""
    from bot.normalize import Normalized
    from bot.terms import PhraseIndex

    index = PhraseIndex()
    index.add("terms:en:x", ["i", "side effects", "hospital*", "après l'*", "j'ai", "any advice?"], "en")
    index.compile(lambda list_id: True)

    def found(text, triggers_only=False):
        norm = Normalized(text)
        return sorted(norm.text[a:b] for spans in index.find(norm, ("en", ""), triggers_only).values() for a, b in spans)

    for triggers_only in (False, True):
        assert found("ill, still, Iris", triggers_only) == []
        assert found("I think i", triggers_only) == ["i", "i"]
        assert found("side effects, side-effects", triggers_only) == ["side effects", "side effects"]
        assert found("side.effects, side  effects", triggers_only) == []
        assert found("hospital, hospitalised, in-hospital", triggers_only) == ["hospital", "hospital", "hospitalised"]
        assert found("après l'Augmentin", triggers_only) == ["apres l'augmentin"]
        assert found("j'ai, j ai, j.ai, jj'ai", triggers_only) == ["j'ai"]
        assert found("any advice? any advice", triggers_only) == ["any advice?"]
