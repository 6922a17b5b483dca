"""E2B(R3) export: real posts screened into real cases, written as HL7 v3 XML and read back.

Paths here are written out from the ICH E2B(R3) implementation guide independently of bot/e2b.py's
own REQUIRED_PATHS, so the test does not just check the module against itself.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from bot.e2b import LEFT_TO_SAFETY_TEAM, missing_elements, to_e2b
from bot.engine import screen
from bot.models import Author, Message, Patient
from bot.pv import build_pv_case

NS = {"h": "urn:hl7-org:v3"}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
OBS = "2.16.840.1.113883.3.989.2.1.1.19"
CREATED = datetime(2024, 5, 2, 9, 15, 0, tzinfo=timezone.utc)
DAY_ZERO = datetime(2024, 5, 1, 22, 5, 30, tzinfo=timezone(timedelta(hours=2)))

INV = "h:PORR_IN049016UV/h:controlActProcess/h:subject/h:investigationEvent"
ROLE = f"{INV}/h:component/h:adverseEventAssessment/h:subject1/h:primaryRole"
REACTIONS = f"{ROLE}/h:subjectOf2/h:observation/h:code[@code='29']/.."
DRUGS = f"{ROLE}/h:subjectOf2/h:organizer/h:code[@code='4']/../h:component/h:substanceAdministration"
CRITERIA = {"death": "34", "life_threatening": "21", "hospitalisation": "33", "disability": "35",
            "congenital_anomaly": "12", "other_medically_important": "26"}  # E.i.3.2a-f

POSTS = {
    # Serious AE about a child, two suspect drugs, a brand and an INN.
    "en_child": "My daughter was hospitalised after taking Ozempic and ibuprofen, she had seizures and a rash",
    # Special situation only: no event term, so the situation stands in as the reaction.
    "nl_overdose": "Mijn zoon heeft per ongeluk een overdosis paracetamol genomen",
    "fr_accents": "Depuis que je prends le Lévothyrox j'ai des vertiges et des nausées très fortes",
    "es_emoji": "Desde que tomo ibuprofeno tengo dolor de estómago y náuseas 😭",
}


def make_case(rules, key, *, country="NL", **kw):
    msg = Message(text=POSTS[key], platform="discord", community="t2d", message_id=f"m-{key}",
                  author=Author(id="u1", display_name="Anne"),
                  permalink=f"https://discord.com/channels/1/2/m-{key}")
    return build_pv_case(msg, screen(msg, rules), DAY_ZERO, country=country, **kw)


def export(case, **kw):
    xml = to_e2b(case, created=CREATED, **kw)
    return xml, ET.fromstring(xml)


def one(root, path):
    found = root.findall(path, NS)
    assert len(found) == 1, f"{path}: {len(found)} elements"
    return found[0]


def coded(base, code):
    """The value of the observation under `base` whose ICH observation code is `code`."""
    return one(base, f"h:outboundRelationship2/h:observation/h:code[@code='{code}'][@codeSystem='{OBS}']/../h:value")


def test_output_is_utf8_hl7_v3_with_declaration(rules):
    xml, root = export(make_case(rules, "en_child"))
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert root.tag == "{urn:hl7-org:v3}MCCI_IN200100UV01"
    assert b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"' in xml
    assert all(e.tag.startswith("{urn:hl7-org:v3}") for e in root.iter())
    assert missing_elements(xml) == []


def test_batch_and_message_wrappers_carry_ids_parties_and_dates(rules):
    case = make_case(rules, "en_child")
    _, root = export(case, sender="acme-pv", receiver="argus", batch_id="B-1")
    assert one(root, "h:id[@root='2.16.840.1.113883.3.989.2.1.3.22']").get("extension") == "B-1"  # N.1.2
    assert one(root, "h:sender/h:device/h:id").attrib == {"root": "2.16.840.1.113883.3.989.2.1.3.13", "extension": "acme-pv"}
    assert one(root, "h:receiver/h:device/h:id").attrib == {"root": "2.16.840.1.113883.3.989.2.1.3.14", "extension": "argus"}
    assert one(root, "h:creationTime").get("value") == "20240502091500+0000"  # N.1.5
    assert one(root, "h:interactionId").get("extension") == "MCCI_IN200100UV01"
    msg = one(root, "h:PORR_IN049016UV")
    assert one(msg, "h:id").attrib == {"root": "2.16.840.1.113883.3.989.2.1.3.1", "extension": case.report_id}  # N.2.r.1
    assert one(msg, "h:sender/h:device/h:id").get("extension") == "acme-pv"     # N.2.r.2
    assert one(msg, "h:receiver/h:device/h:id").get("extension") == "argus"     # N.2.r.3
    assert one(msg, "h:creationTime").get("value") == "20240502091500+0000"     # N.2.r.4


def test_case_identification_follows_c1(rules):
    case = make_case(rules, "en_child")
    _, root = export(case)
    inv = one(root, INV)
    assert one(inv, "h:id[@root='2.16.840.1.113883.3.989.2.1.3.1']").get("extension") == case.report_id  # C.1.1
    assert one(root, "h:PORR_IN049016UV/h:controlActProcess/h:effectiveTime").get("value") == "20240502091500+0000"
    # C.1.4 is day zero, to the second, with the local UTC offset the bot saw it in.
    assert one(inv, "h:effectiveTime/h:low").get("value") == "20240501220530+0200"
    assert one(inv, "h:availabilityTime").get("value") == "20240501220530+0200"  # C.1.5
    report_type = one(inv, "h:subjectOf2/h:investigationCharacteristic/h:code[@code='1']/../h:value")
    assert (report_type.get("code"), report_type.get("codeSystem")) == ("1", "2.16.840.1.113883.3.989.2.1.1.2")
    expedited = one(inv, f"h:component/h:observationEvent/h:code[@code='23'][@codeSystem='{OBS}']/../h:value")
    assert expedited.get("value") == "true"  # C.1.7: serious


def test_solicited_report_is_a_report_from_other_studies(rules):
    _, root = export(make_case(rules, "fr_accents", solicited=True))
    assert one(root, f"{INV}/h:subjectOf2/h:investigationCharacteristic/h:code[@code='1']/../h:value").get("code") == "2"
    assert one(root, f"{ROLE}/h:subjectOf1/h:researchStudy/h:code").get("code") == "3"  # C.5.4 other studies


def test_primary_source_is_a_consumer_in_the_community_country(rules):
    _, root = export(make_case(rules, "en_child", country="BE"))
    source = one(root, f"{INV}/h:outboundRelationship/h:relatedInvestigation/h:code[@code='2']/../..")
    assert one(source, "h:priorityNumber").get("value") == "1"  # C.2.r.5
    person = one(source, "h:relatedInvestigation/h:subjectOf2/h:controlActEvent/h:author/h:assignedEntity/h:assignedPerson")
    assert one(person, "h:asQualifiedEntity/h:code").attrib == {"code": "5", "codeSystem": "2.16.840.1.113883.3.989.2.1.1.6"}
    assert one(person, "h:asLocatedEntity/h:location/h:code").get("code") == "BE"  # C.2.r.3


def test_patient_is_unknown_by_name_and_described_in_the_narrative(rules):
    case = make_case(rules, "en_child")
    assert case.patient is Patient.CHILD
    _, root = export(case)
    assert one(root, f"{ROLE}/h:player1/h:name").attrib == {"nullFlavor": "UNK"}  # D.1
    assert one(root, f"{ROLE}/h:player1/h:administrativeGenderCode").attrib == {"nullFlavor": "UNK"}  # D.5
    narrative = one(root, f"{INV}/h:text").text  # H.1
    assert "My daughter" in narrative and case.permalink in narrative


@pytest.mark.parametrize(
    "key, texts, language",
    [
        ("en_child", ["seizures", "rash"], "eng"),
        # Regression guard: a special-situation-only post still has a reaction element.
        ("nl_overdose", ["medication error", "overdose"], "eng"),
        ("fr_accents", ["vertiges", "nausées"], "fra"),
        ("es_emoji", ["dolor", "dolor de estómago", "náuseas"], "spa"),
    ],
)
def test_one_reaction_per_event_in_its_own_words_and_language(rules, key, texts, language):
    _, root = export(make_case(rules, key))
    reactions = root.findall(REACTIONS, NS)
    originals = [one(r, "h:value/h:originalText") for r in reactions]
    assert [o.text for o in originals] == texts                      # E.i.1.1a
    assert {o.get("language") for o in originals} == {language}     # E.i.1.1b, ISO 639-2
    for r in reactions:
        assert coded(r, "27").attrib == {"code": "0", "codeSystem": "2.16.840.1.113883.3.989.2.1.1.11",
                                         XSI_TYPE: "CE"}  # E.i.7 unknown


@pytest.mark.parametrize("key", ["en_child", "nl_overdose", "fr_accents", "es_emoji"])
def test_seriousness_flags_match_the_case_exactly(rules, key):
    case = make_case(rules, key)
    _, root = export(case)
    expected = case.seriousness.model_dump()
    reactions = root.findall(REACTIONS, NS)
    assert reactions
    for r in reactions:
        for name, code in CRITERIA.items():
            value = coded(r, code)
            assert value.get(XSI_TYPE) == "BL"
            # The IG allows only true or nullFlavor NI here; false is not a value allowed.
            assert (value.get("value"), value.get("nullFlavor")) == (("true", None) if expected[name] else (None, "NI"))


def test_seriousness_of_the_child_case_is_hospitalisation_and_medically_important(rules):
    case = make_case(rules, "en_child")
    assert case.seriousness.hospitalisation and case.seriousness.other_medically_important
    assert not case.seriousness.death


def test_non_serious_case_is_not_expedited(rules):
    _, root = export(make_case(rules, "fr_accents"))
    assert one(root, f"{INV}/h:component/h:observationEvent/h:code[@code='23']/../h:value").get("value") == "false"


def test_every_suspect_drug_is_named_as_reported_and_characterised_suspect(rules):
    case = make_case(rules, "en_child")
    _, root = export(case)
    drugs = root.findall(DRUGS, NS)
    product = "h:consumable/h:instanceOfKind/h:kindOfProduct"
    assert [one(d, f"{product}/h:name").text for d in drugs] == ["Ozempic", "ibuprofen"]  # G.k.2.2
    assert [one(d, f"{product}/h:ingredient/h:ingredientSubstance/h:name").text for d in drugs] == \
        ["semaglutide", "ibuprofen"]  # G.k.2.3.r.1
    roles = root.findall(f"{INV}/h:component/h:adverseEventAssessment/h:component/h:causalityAssessment", NS)
    by_drug = {one(r, "h:subject2/h:productUseReference/h:id").get("root"): one(r, "h:value") for r in roles}
    for d in drugs:
        value = by_drug[one(d, "h:id").get("root")]  # G.k.1 points at the drug by its id
        assert (value.get("code"), value.get("codeSystem")) == ("1", "2.16.840.1.113883.3.989.2.1.1.13")


def test_non_ascii_text_round_trips(rules):
    for key in ("fr_accents", "es_emoji"):
        case = make_case(rules, key)
        xml, root = export(case)
        assert one(root, f"{INV}/h:text").text == case.narrative
        assert POSTS[key].encode("utf-8") in xml  # written as UTF-8, not as character references
    _, root = export(make_case(rules, "fr_accents"))
    assert one(root, f"{DRUGS}/h:consumable/h:instanceOfKind/h:kindOfProduct/h:name").text == "Lévothyrox"


def test_summary_in_the_reporters_language_when_not_english(rules):
    _, root = export(make_case(rules, "nl_overdose"))
    summary = one(root, f"{INV}/h:component/h:observationEvent/h:code[@code='36']/../h:value")  # H.5.r
    assert summary.get("language") == "nld" and "overdosis" in summary.text
    _, root = export(make_case(rules, "en_child"))
    assert root.findall(f"{INV}/h:component/h:observationEvent/h:code[@code='36']", NS) == []


def test_no_meddra_codes_anywhere(rules):
    for key in POSTS:
        _, root = export(make_case(rules, key))
        meddra = [e for e in root.iter() if e.get("codeSystem") == "2.16.840.1.113883.6.163"]
        assert meddra and all(e.get("code") is None and e.get("nullFlavor") == "UNC" for e in meddra)
    assert LEFT_TO_SAFETY_TEAM == ("E.i.2.1a", "E.i.2.1b")


def test_characters_xml_forbids_are_dropped_not_written(rules):
    msg = Message(text="since I started ozempic I throw up every morning\x07\x00", platform="discord",
                  message_id="ctl", author=Author(id="u1"))
    case = build_pv_case(msg, screen(msg, rules), DAY_ZERO, country="NL")
    xml, root = export(case)
    assert one(root, f"{INV}/h:text").text == "since I started ozempic I throw up every morning"
    assert missing_elements(xml) == []


def test_same_case_gives_the_same_file(rules):
    # Reaction and drug ids derive from the report id, so a re-export is byte-identical.
    case = make_case(rules, "en_child")
    assert to_e2b(case, created=CREATED) == to_e2b(case, created=CREATED)


def test_unknown_country_is_reported_missing(rules):
    xml, root = export(make_case(rules, "en_child", country=""))
    assert root.findall(f"{INV}//h:asLocatedEntity", NS) == []
    assert missing_elements(xml) == ["C.2.r.3 reporter's country (required as C.2.r.5 = 1)"]


@pytest.mark.parametrize(
    "path, reported",
    [
        ("h:id[@root='2.16.840.1.113883.3.989.2.1.3.22']", "N.1.2 batch number"),
        ("h:receiver", "N.1.4 batch receiver"),
        (f"{INV}/h:id[@root='2.16.840.1.113883.3.989.2.1.3.1']", "C.1.1 sender's safety report unique identifier"),
        (f"{INV}/h:effectiveTime", "C.1.4 date first received"),
        (f"{INV}/h:component/h:observationEvent/h:code[@code='23']/../..", "C.1.7 fulfils local criteria for expedited report"),
        (f"{INV}/h:text", "H.1 case narrative"),
        (f"{ROLE}/h:player1/h:name", "D.1 patient (name or initials)"),
        # The second reaction loses its hospitalisation flag: reported for that reaction only.
        (f"({REACTIONS})[2]/h:outboundRelationship2/h:observation/h:code[@code='33']/../..", "E.i.3.2c seriousness (reaction 2)"),
        (f"{INV}/h:component/h:adverseEventAssessment/h:component", "G.k.1 characterisation of drug role (drug 1)"),
    ],
)
def test_missing_elements_reports_a_removed_element(rules, path, reported):
    xml, root = export(make_case(rules, "en_child"))
    assert missing_elements(xml) == []
    if path.startswith("("):  # ElementTree has no (...)[n]; pick the n-th reaction by hand
        reaction = root.findall(REACTIONS, NS)[1]
        rel = one(reaction, "h:outboundRelationship2/h:observation/h:code[@code='33']/../..")
        reaction.remove(rel)
    else:
        target = root.findall(path, NS)[0]
        parent = next(p for p in root.iter() if target in list(p))
        parent.remove(target)
    assert reported in missing_elements(ET.tostring(root))


def test_a_false_seriousness_flag_is_reported_as_the_ig_allows_only_true_or_ni(rules):
    _, root = export(make_case(rules, "fr_accents"))
    death = coded(root.findall(REACTIONS, NS)[0], "34")
    del death.attrib["nullFlavor"]
    death.set("value", "false")
    assert missing_elements(ET.tostring(root)) == ["E.i.3.2a seriousness (reaction 1)"]


def test_missing_elements_on_something_that_is_not_an_icsr():
    assert missing_elements(b"<not-closed>")[0].startswith("well-formed XML")
    assert missing_elements(b"<a/>")[0].startswith("N.1 batch wrapper")
