"""ICH E2B(R3) ICSR export: one `PVCase` as an HL7 v3 batch the safety team's database can import.

Built with the standard library's ElementTree (no string templates), so every text is escaped and
the output is well-formed by construction; `missing_elements` parses a file back and lists the
required elements it lacks, for the store's self-check before it writes anything.

Structure and codes follow the ICH E2B(R3) Implementation Guide (IG) and its reference instance:
batch wrapper MCCI_IN200100UV01 (N.1) > message PORR_IN049016UV (N.2.r) > controlActProcess >
investigationEvent (C.1, H.1) > adverseEventAssessment > primaryRole (D patient, E.i reactions,
G.k drugs). Element numbers are given next to each element below. Notable choices:

- Reactions carry only the reported words (E.i.1.1a/b). MedDRA is licensed, so E.i.2.1a/b, which
  the IG requires, are left to the safety team: the CE value is sent with nullFlavor UNC ("un-encoded:
  the raw text is in originalText", HL7 NullFlavor vocabulary) and `LEFT_TO_SAFETY_TEAM` says so.
- The seriousness criteria E.i.3.2a-f take only `true` or nullFlavor NI in the IG (false is not a
  value allowed), and all six are required on every reaction.
- Dates are TS values at full precision with the UTC offset, CCYYMMDDhhmmss+ZZzz (IG Appendix II).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from .pv import PVCase

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# ICH OIDs (IG section 3 and the reference instance). 1.1.x are code systems, 3.x identifier roots.
OID = "2.16.840.1.113883.3.989.2.1"
CS_MESSAGE_TYPE = f"{OID}.1.1"      # N.1.1: 1 = ichicsr
CS_REPORT_TYPE = f"{OID}.1.2"       # C.1.3
CS_FIRST_SENDER = f"{OID}.1.3"      # C.1.8.2
CS_QUALIFICATION = f"{OID}.1.6"     # C.2.r.4
CS_SENDER_TYPE = f"{OID}.1.7"       # C.3.1
CS_STUDY_TYPE = f"{OID}.1.8"        # C.5.4
CS_OUTCOME = f"{OID}.1.11"          # E.i.7
CS_DRUG_ROLE = f"{OID}.1.13"        # G.k.1
CS_OBSERVATION = f"{OID}.1.19"      # ICH observation codes (29 = reaction, 34 = death, ...)
CS_ORGANIZER = f"{OID}.1.20"        # 4 = drug information
CS_SOURCE = f"{OID}.1.21"           # 2 = reporter (author of H.5.r)
CS_RELATED = f"{OID}.1.22"          # 1 = first sender (C.1.8.2), 2 = primary source (C.2.r)
CS_CHARACTERISTIC = f"{OID}.1.23"   # 1 = type of report, 2 = other case ids
ROOT_REPORT_ID = f"{OID}.3.1"       # C.1.1 and N.2.r.1
ROOT_WORLDWIDE_ID = f"{OID}.3.2"    # C.1.8.1
ROOT_MSG_SENDER = f"{OID}.3.11"     # N.2.r.2
ROOT_MSG_RECEIVER = f"{OID}.3.12"   # N.2.r.3
ROOT_BATCH_SENDER = f"{OID}.3.13"   # N.1.3
ROOT_BATCH_RECEIVER = f"{OID}.3.14"  # N.1.4
ROOT_BATCH_ID = f"{OID}.3.22"       # N.1.2
MEDDRA = "2.16.840.1.113883.6.163"
COUNTRY = "1.0.3166.1.2.2"          # ISO 3166-1 alpha-2

# E.i.3.2a-f: the six criteria, in IG order, with their ICH observation codes.
SERIOUSNESS_CODES: dict[str, tuple[str, str]] = {
    "death": ("E.i.3.2a", "34"),
    "life_threatening": ("E.i.3.2b", "21"),
    "hospitalisation": ("E.i.3.2c", "33"),
    "disability": ("E.i.3.2d", "35"),
    "congenital_anomaly": ("E.i.3.2e", "12"),
    "other_medically_important": ("E.i.3.2f", "26"),
}
QUALIFICATION = {"physician": "1", "pharmacist": "2", "other_hcp": "3", "lawyer": "4", "consumer": "5"}
# E.i.1.1b and H.5.r.1b take ISO 639-2 alpha-3; "und" (undetermined) is ISO 639-2's own code for unknown.
LANGUAGE = {"en": "eng", "nl": "nld", "fr": "fra", "de": "deu", "es": "spa"}
# Required by the IG but coded by the safety team with its licensed MedDRA: never filled here.
LEFT_TO_SAFETY_TEAM = ("E.i.2.1a", "E.i.2.1b")

# Characters XML 1.0 forbids; ElementTree would write them raw and produce an ill-formed file.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """Append `tag`; `xsi_type` becomes xsi:type.

    Tags stay unqualified while building and the root declares xmlns and xmlns:xsi itself:
    ElementTree's `default_namespace` rejects unqualified attributes, and `register_namespace`
    would change a process-wide table. Parsed back, every element is in urn:hl7-org:v3.
    """
    if "xsi_type" in attrs:
        attrs["xsi:type"] = attrs.pop("xsi_type")
    e = ET.SubElement(parent, tag, attrs)
    if text is not None:
        e.text = _NOT_XML.sub("", text)
    return e


def _ts(moment: datetime) -> str:
    """IG Appendix II: CCYYMMDDhhmmss+ZZzz; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.strftime("%Y%m%d%H%M%S%z")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _observation(parent: ET.Element, rel: str, code: str, /, **value: str) -> ET.Element:
    """`<rel><observation><code/><value/></observation></rel>`, the IG's shape for coded facts."""
    obs = _el(_el(parent, rel, typeCode="PERT" if rel == "outboundRelationship2" else "SBJ"),
              "observation", classCode="OBS", moodCode="EVN")
    _el(obs, "code", code=code, codeSystem=CS_OBSERVATION)
    _el(obs, "value", **value)
    return obs


def _reactions(case: PVCase) -> list[tuple[str, str]]:
    """(text as reported, ISO 639-2 language) per reaction; a special situation stands in when no event."""
    if case.events:
        lang = LANGUAGE.get(case.language or "", "und")
        return [(e, lang) for e in case.events]
    # Our own English label, not the poster's words: pv.py does not keep the situation's span.
    return [(s.replace("_", " "), "eng") for s in case.special_situations]


def to_e2b(case: PVCase, *, sender: str = "pharmamod", receiver: str = "drug-safety",
           batch_id: str | None = None, created: datetime | None = None) -> bytes:
    """The case as one ICH E2B(R3) batch holding one ICSR message, UTF-8 XML with declaration."""
    created = created or datetime.now(timezone.utc)
    now = _ts(created)
    ids = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:pharmamod:{case.report_id}")  # stable per case

    # N.1 batch wrapper: N.1.2 batch number, N.1.5 date of transmission, N.1.1 type (1 = ichicsr).
    batch = ET.Element("MCCI_IN200100UV01", {"xmlns": HL7, "xmlns:xsi": XSI, "ITSVersion": "XML_1.0"})
    _el(batch, "id", root=ROOT_BATCH_ID, extension=batch_id or f"{case.report_id}-{now[:14]}")
    _el(batch, "creationTime", value=now)
    _el(batch, "responseModeCode", code="D")
    _el(batch, "interactionId", root="2.16.840.1.113883.1.6", extension="MCCI_IN200100UV01")
    _el(batch, "name", code="1", codeSystem=CS_MESSAGE_TYPE)

    # N.2.r message wrapper: N.2.r.1 = C.1.1 (IG), N.2.r.4 = C.1.2, N.2.r.3 receiver, N.2.r.2 sender.
    msg = _el(batch, "PORR_IN049016UV")
    _el(msg, "id", root=ROOT_REPORT_ID, extension=case.report_id)
    _el(msg, "creationTime", value=now)
    _el(msg, "interactionId", root="2.16.840.1.113883.1.6", extension="PORR_IN049016UV")
    _el(msg, "processingCode", code="P")
    _el(msg, "processingModeCode", code="T")
    _el(msg, "acceptAckCode", code="AL")
    _device(msg, "receiver", ROOT_MSG_RECEIVER, receiver)
    _device(msg, "sender", ROOT_MSG_SENDER, sender)
    act = _el(msg, "controlActProcess", classCode="CACT", moodCode="EVN")
    _el(act, "code", code="PORR_TE049016UV", codeSystem="2.16.840.1.113883.1.18")
    _el(act, "effectiveTime", value=now)  # C.1.2 date of creation
    inv = _el(_el(act, "subject", typeCode="SUBJ"), "investigationEvent", classCode="INVSTG", moodCode="EVN")

    # C.1.1 sender's report id, C.1.8.1 worldwide unique id (the same: we are the first sender).
    _el(inv, "id", root=ROOT_REPORT_ID, extension=case.report_id)
    _el(inv, "id", root=ROOT_WORLDWIDE_ID, extension=case.report_id)
    _el(inv, "code", code="PAT_ADV_EVNT", codeSystem="2.16.840.1.113883.5.4")
    _el(inv, "text", _clip(case.narrative, 100_000))  # H.1 case narrative: post text + permalink
    _el(inv, "statusCode", code="active")
    _el(_el(inv, "effectiveTime"), "low", value=_ts(case.day_zero))  # C.1.4 first received = day 0
    _el(inv, "availabilityTime", value=_ts(case.day_zero))  # C.1.5: no follow-up in PVCase yet

    assessment = _el(_el(inv, "component", typeCode="COMP"), "adverseEventAssessment",
                     classCode="INVSTG", moodCode="EVN")
    role = _el(_el(assessment, "subject1", typeCode="SBJ"), "primaryRole", classCode="INVSBJ")
    # D.1 initials and D.5 sex are not in a post: UNK (MSK is for known-but-withheld). Who the
    # patient is (child, parent, ...) is in the narrative; D.10 is only for parent-child exposure.
    person = _el(role, "player1", classCode="PSN", determinerCode="INSTANCE")
    _el(person, "name", nullFlavor="UNK")
    _el(person, "administrativeGenderCode", nullFlavor="UNK")
    if case.solicited:
        # C.5.4 study type 3 = other studies: with C.1.3 = 2, the IG's home for solicited reports
        # from organised data collection (FDA: "solicited reports ... 2 (report from study)").
        study = _el(_el(role, "subjectOf1", typeCode="SBJ"), "researchStudy", classCode="CLNTRL", moodCode="EVN")
        _el(study, "code", code="3", codeSystem=CS_STUDY_TYPE)
    # D.2.3 age group; D.2.2 age takes no nullFlavor, so it is left out.
    _observation(role, "subjectOf2", "4", xsi_type="CE", nullFlavor="UNK")

    flags = case.seriousness.model_dump()
    for i, (text, lang) in enumerate(_reactions(case)):
        # E.i reaction: code 29; E.i.1.1a/b in originalText; E.i.2.1b left un-encoded (see docstring).
        obs = _el(_el(role, "subjectOf2", typeCode="SBJ"), "observation", classCode="OBS", moodCode="EVN")
        _el(obs, "id", root=str(uuid.uuid5(ids, f"reaction/{i}")))
        _el(obs, "code", code="29", codeSystem=CS_OBSERVATION)
        value = _el(obs, "value", xsi_type="CE", nullFlavor="UNC", codeSystem=MEDDRA)
        _el(value, "originalText", _clip(text, 250), language=lang)
        for name, (_, code) in SERIOUSNESS_CODES.items():  # E.i.3.2a-f: true or nullFlavor NI
            flag = {"value": "true"} if flags[name] else {"nullFlavor": "NI"}
            _observation(obs, "outboundRelationship2", code, xsi_type="BL", **flag)
        # E.i.7 outcome: 0 = unknown.
        _observation(obs, "outboundRelationship2", "27", xsi_type="CE", code="0", codeSystem=CS_OUTCOME)

    if case.suspect_drugs:  # G.k drugs, in the organizer the IG gives code 4
        drugs = _el(_el(role, "subjectOf2", typeCode="SBJ"), "organizer", classCode="CATEGORY", moodCode="EVN")
        _el(drugs, "code", code="4", codeSystem=CS_ORGANIZER)
    for k, drug in enumerate(case.suspect_drugs):
        gid = str(uuid.uuid5(ids, f"drug/{k}"))
        sbadm = _el(_el(drugs, "component", typeCode="COMP"), "substanceAdministration",
                    classCode="SBADM", moodCode="EVN")
        _el(sbadm, "id", root=gid)
        product = _el(_el(_el(sbadm, "consumable", typeCode="CSM"), "instanceOfKind", classCode="INST"),
                      "kindOfProduct", classCode="MMAT", determinerCode="KIND")
        _el(product, "name", _clip(drug.as_reported, 250))  # G.k.2.2 name as reported
        if drug.canonical:  # G.k.2.3.r.1 substance name: the dictionary's INN for what was named
            substance = _el(_el(product, "ingredient", classCode="ACTI"), "ingredientSubstance",
                            classCode="MMAT", determinerCode="KIND")
            _el(substance, "name", _clip(drug.canonical, 250))
        # G.k.1 characterisation of drug role, 1 = suspect: kept apart in the assessment, pointing
        # at the drug by its id.
        role_of = _el(_el(assessment, "component", typeCode="COMP"), "causalityAssessment",
                      classCode="OBS", moodCode="EVN")
        _el(role_of, "code", code="20", codeSystem=CS_OBSERVATION)
        _el(role_of, "value", xsi_type="CE", code="1", codeSystem=CS_DRUG_ROLE)
        ref = _el(_el(role_of, "subject2", typeCode="SUBJ"), "productUseReference", classCode="SBADM", moodCode="EVN")
        _el(ref, "id", root=gid)

    _case_observation(inv, "1", xsi_type="BL", value="false")  # C.1.6.1 additional documents
    _case_observation(inv, "23", xsi_type="BL", value="true" if case.serious else "false")  # C.1.7 expedited
    lang = LANGUAGE.get(case.language or "")
    if lang and lang != "eng" and case.narrative:
        # H.5.r case summary in the reporter's language (H.1 itself should be English for the EU).
        summary = _case_observation(inv, "36", lang=lang, text=_clip(case.narrative, 100_000))
        _el(_el(_el(summary, "author", typeCode="AUT"), "assignedEntity", classCode="ASSIGNED"),
            "code", code="2", codeSystem=CS_SOURCE)

    # C.1.8.2 first sender: 2 = other than a regulator.
    first = _el(_el(inv, "outboundRelationship", typeCode="SPRT"), "relatedInvestigation",
                classCode="INVSTG", moodCode="EVN")
    _el(first, "code", code="1", codeSystem=CS_RELATED)
    _el(_author(_el(first, "subjectOf2", typeCode="SUBJ")), "code", code="2", codeSystem=CS_FIRST_SENDER)

    # C.2.r primary source, C.2.r.5 = 1 (the one for regulatory purposes); C.2.r.4, C.2.r.3.
    source = _el(inv, "outboundRelationship", typeCode="SPRT")
    _el(source, "priorityNumber", value="1")
    related = _el(source, "relatedInvestigation", classCode="INVSTG", moodCode="EVN")
    _el(related, "code", code="2", codeSystem=CS_RELATED)
    reporter = _el(_author(_el(related, "subjectOf2", typeCode="SUBJ")), "assignedPerson",
                   classCode="PSN", determinerCode="INSTANCE")
    _el(_el(reporter, "asQualifiedEntity", classCode="QUAL"), "code",
        code=QUALIFICATION[case.reporter.qualification], codeSystem=CS_QUALIFICATION)
    country = (case.reporter.country or case.country).upper()
    if re.fullmatch(r"[A-Z]{2}", country):
        place = _el(_el(reporter, "asLocatedEntity", classCode="LOCE"), "location",
                    classCode="COUNTRY", determinerCode="INSTANCE")
        _el(place, "code", code=country, codeSystem=COUNTRY)

    # C.3.1 sender type 1 = pharmaceutical company; C.3.2 sender's organisation.
    entity = _author(_el(inv, "subjectOf1", typeCode="SUBJ"))
    _el(entity, "code", code="1", codeSystem=CS_SENDER_TYPE)
    org = _el(_el(_el(entity, "representedOrganization", classCode="ORG", determinerCode="INSTANCE"),
                  "assignedEntity", classCode="ASSIGNED"),
              "representedOrganization", classCode="ORG", determinerCode="INSTANCE")
    _el(org, "name", sender)

    # C.1.3 type of report: 1 spontaneous, 2 report from study (solicited); C.1.9.1 other ids: NI.
    _characteristic(inv, "1", xsi_type="CE", code="2" if case.solicited else "1", codeSystem=CS_REPORT_TYPE)
    _characteristic(inv, "2", xsi_type="BL", nullFlavor="NI")

    _device(batch, "receiver", ROOT_BATCH_RECEIVER, receiver)  # N.1.4
    _device(batch, "sender", ROOT_BATCH_SENDER, sender)        # N.1.3
    ET.indent(batch, space="  ")  # whitespace between elements only: readable for the safety team
    return ET.tostring(batch, encoding="UTF-8", xml_declaration=True)


def _device(parent: ET.Element, side: str, root: str, name: str) -> None:
    device = _el(_el(parent, side, typeCode="RCV" if side == "receiver" else "SND"), "device",
                 classCode="DEV", determinerCode="INSTANCE")
    _el(device, "id", root=root, extension=name)


def _author(parent: ET.Element) -> ET.Element:
    """`controlActEvent/author/assignedEntity` under `parent`: who the C.1.8.2, C.2.r or C.3 block is about."""
    event = _el(parent, "controlActEvent", classCode="CACT", moodCode="EVN")
    return _el(_el(event, "author", typeCode="AUT"), "assignedEntity", classCode="ASSIGNED")


def _case_observation(inv: ET.Element, code: str, /, *, lang: str | None = None, text: str | None = None,
                      **value: str) -> ET.Element:
    obs = _el(_el(inv, "component", typeCode="COMP"), "observationEvent", classCode="OBS", moodCode="EVN")
    _el(obs, "code", code=code, codeSystem=CS_OBSERVATION)
    if text is not None:
        _el(obs, "value", text, xsi_type="ED", language=lang or "und")
    else:
        _el(obs, "value", **value)
    return obs


def _characteristic(inv: ET.Element, code: str, /, **value: str) -> None:
    obs = _el(_el(inv, "subjectOf2", typeCode="SUBJ"), "investigationCharacteristic", classCode="OBS", moodCode="EVN")
    _el(obs, "code", code=code, codeSystem=CS_CHARACTERISTIC)
    _el(obs, "value", **value)


# --- Self-check -----------------------------------------------------------------------------------
# Element paths from the IG's XPath column (ElementTree's XPath subset: `..` steps back to the element
# that carries the code). After the last "/": "text", "@attr", "@attr=value", alternatives joined
# by "|" (a value or a nullFlavor), or nothing when the element only has to exist.
NS = {"hl7": HL7}
_MSG = "hl7:PORR_IN049016UV"
_INV = f"{_MSG}/hl7:controlActProcess/hl7:subject/hl7:investigationEvent"
_ASSESSMENT = f"{_INV}/hl7:component/hl7:adverseEventAssessment"
_ROLE = f"{_ASSESSMENT}/hl7:subject1/hl7:primaryRole"
_SOURCE = f"{_INV}/hl7:outboundRelationship/hl7:relatedInvestigation/hl7:code[@code='2'][@codeSystem='{CS_RELATED}']/.."
_REPORTER = f"{_SOURCE}/hl7:subjectOf2/hl7:controlActEvent/hl7:author/hl7:assignedEntity/hl7:assignedPerson"
_SENDER = f"{_INV}/hl7:subjectOf1/hl7:controlActEvent/hl7:author/hl7:assignedEntity"


def _coded(base: str, tag: str, code: str, system: str = CS_OBSERVATION) -> str:
    return f"{base}/hl7:{tag}/hl7:code[@code='{code}'][@codeSystem='{system}']/.."


REQUIRED_PATHS: dict[str, str] = {
    "N.1.2 batch number": f"hl7:id[@root='{ROOT_BATCH_ID}']/@extension",
    "N.1.3 batch sender": f"hl7:sender/hl7:device/hl7:id[@root='{ROOT_BATCH_SENDER}']/@extension",
    "N.1.4 batch receiver": f"hl7:receiver/hl7:device/hl7:id[@root='{ROOT_BATCH_RECEIVER}']/@extension",
    "N.1.5 date of batch transmission": "hl7:creationTime/@value",
    "N.2.r.1 message identifier": f"{_MSG}/hl7:id[@root='{ROOT_REPORT_ID}']/@extension",
    "N.2.r.2 message sender": f"{_MSG}/hl7:sender/hl7:device/hl7:id[@root='{ROOT_MSG_SENDER}']/@extension",
    "N.2.r.3 message receiver": f"{_MSG}/hl7:receiver/hl7:device/hl7:id[@root='{ROOT_MSG_RECEIVER}']/@extension",
    "N.2.r.4 date of message creation": f"{_MSG}/hl7:creationTime/@value",
    "C.1.1 sender's safety report unique identifier": f"{_INV}/hl7:id[@root='{ROOT_REPORT_ID}']/@extension",
    "C.1.2 date of creation": f"{_MSG}/hl7:controlActProcess/hl7:effectiveTime/@value",
    "C.1.3 type of report":
        f"{_coded(_INV, 'subjectOf2/hl7:investigationCharacteristic', '1', CS_CHARACTERISTIC)}"
        f"/hl7:value[@codeSystem='{CS_REPORT_TYPE}']/@code",
    "C.1.4 date first received": f"{_INV}/hl7:effectiveTime/hl7:low/@value",
    "C.1.5 date of most recent information": f"{_INV}/hl7:availabilityTime/@value",
    "C.1.6.1 additional documents available": f"{_coded(_INV, 'component/hl7:observationEvent', '1')}/hl7:value/@value",
    "C.1.7 fulfils local criteria for expedited report":
        f"{_coded(_INV, 'component/hl7:observationEvent', '23')}/hl7:value/@value",
    "C.1.8.1 worldwide unique case identification": f"{_INV}/hl7:id[@root='{ROOT_WORLDWIDE_ID}']/@extension",
    "C.1.8.2 first sender":
        f"{_coded(_INV, 'outboundRelationship/hl7:relatedInvestigation', '1', CS_RELATED)}/hl7:subjectOf2"
        f"/hl7:controlActEvent/hl7:author/hl7:assignedEntity/hl7:code[@codeSystem='{CS_FIRST_SENDER}']/@code",
    "C.1.9.1 other case identifiers":
        f"{_coded(_INV, 'subjectOf2/hl7:investigationCharacteristic', '2', CS_CHARACTERISTIC)}"
        "/hl7:value/@value|@nullFlavor",
    "C.2.r.3 reporter's country (required as C.2.r.5 = 1)":
        f"{_REPORTER}/hl7:asLocatedEntity/hl7:location/hl7:code[@codeSystem='{COUNTRY}']/@code",
    "C.2.r.4 qualification": f"{_REPORTER}/hl7:asQualifiedEntity/hl7:code/@code|@nullFlavor",
    "C.2.r.5 primary source for regulatory purposes": f"{_SOURCE}/../hl7:priorityNumber/@value",
    "C.3.1 sender type": f"{_SENDER}/hl7:code[@codeSystem='{CS_SENDER_TYPE}']/@code",
    "C.3.2 sender's organisation":
        f"{_SENDER}/hl7:representedOrganization/hl7:assignedEntity/hl7:representedOrganization/hl7:name/text",
    "D.1 patient (name or initials)": f"{_ROLE}/hl7:player1/hl7:name/text|@nullFlavor",
    "E.i reaction/event": f"{_coded(_ROLE, 'subjectOf2/hl7:observation', '29')}/",
    "G.k drug":
        f"{_coded(_ROLE, 'subjectOf2/hl7:organizer', '4', CS_ORGANIZER)}/hl7:component/hl7:substanceAdministration/",
    "H.1 case narrative": f"{_INV}/hl7:text/text",
}
# Checked on every reaction (relative to its observation) and every drug (its substanceAdministration).
REACTION_PATHS: dict[str, str] = {
    "E.i.1.1a reaction as reported": f"hl7:value[@codeSystem='{MEDDRA}']/hl7:originalText/text",
    "E.i.1.1b language of the reaction as reported": f"hl7:value[@codeSystem='{MEDDRA}']/hl7:originalText/@language",
    **{f"{eid} seriousness":
       f"{_coded('.', 'outboundRelationship2/hl7:observation', code)}/hl7:value/@value=true|@nullFlavor=NI"
       for eid, code in SERIOUSNESS_CODES.values()},
    "E.i.7 outcome":
        f"{_coded('.', 'outboundRelationship2/hl7:observation', '27')}/hl7:value[@codeSystem='{CS_OUTCOME}']/@code",
}
DRUG_PATHS: dict[str, str] = {
    "G.k.2.2 medicinal product as reported": "hl7:consumable/hl7:instanceOfKind/hl7:kindOfProduct/hl7:name/text",
}


def _has(start: ET.Element, spec: str) -> bool:
    path, _, need = spec.rpartition("/")
    found = start.findall(path, NS) if path not in ("", ".") else [start]
    if not need:
        return bool(found)
    for alt in need.split("|"):
        attr, _, wanted = alt.lstrip("@").partition("=")
        for e in found:
            got = (e.text or "").strip() if alt == "text" else e.get(attr)
            if got and (not wanted or got == wanted):
                return True
    return False


def missing_elements(xml: bytes) -> list[str]:
    """Required E2B(R3) elements absent from `xml`, as "<element number> <name>" lines; [] if complete.

    Checks what `to_e2b` is responsible for; `LEFT_TO_SAFETY_TEAM` (MedDRA coding) is not checked.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        return [f"well-formed XML ({exc})"]
    if root.tag != f"{{{HL7}}}MCCI_IN200100UV01":
        return [f"N.1 batch wrapper MCCI_IN200100UV01 in {HL7} (root is {root.tag})"]
    missing = [name for name, spec in REQUIRED_PATHS.items() if not _has(root, spec)]
    reactions = root.findall(_coded(_ROLE, "subjectOf2/hl7:observation", "29"), NS)
    for i, reaction in enumerate(reactions, 1):
        missing += [f"{name} (reaction {i})" for name, spec in REACTION_PATHS.items() if not _has(reaction, spec)]
    drugs = root.findall(f"{_coded(_ROLE, 'subjectOf2/hl7:organizer', '4', CS_ORGANIZER)}"
                         "/hl7:component/hl7:substanceAdministration", NS)
    # G.k.1 sits apart from the drug and points at it by id (IG: causalityAssessment code 20).
    roles = {ref.get("root") for ref in root.findall(
        f"{_coded(_ASSESSMENT, 'component/hl7:causalityAssessment', '20')}"
        f"/hl7:value[@codeSystem='{CS_DRUG_ROLE}'][@code]/../hl7:subject2/hl7:productUseReference/hl7:id", NS)}
    for k, drug in enumerate(drugs, 1):
        missing += [f"{name} (drug {k})" for name, spec in DRUG_PATHS.items() if not _has(drug, spec)]
        gid = drug.find("hl7:id", NS)
        if gid is None or gid.get("root") not in roles:
            missing.append(f"G.k.1 characterisation of drug role (drug {k})")
    return missing
