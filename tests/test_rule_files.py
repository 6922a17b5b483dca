"""Rule files: located errors with a suggested fix, safe YAML, linear-time regexes, no half-loads."""

import shutil
import textwrap
from pathlib import Path

import pytest

from bot.packs.errors import RuleFileError
from bot.ruleset import load_ruleset, shipped_rules_dir


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A copy of the shipped packs and profile to break on purpose."""
    shutil.copytree(shipped_rules_dir() / "packs", tmp_path / "packs")
    shutil.copytree(shipped_rules_dir() / "profiles", tmp_path / "profiles")
    return tmp_path


def _write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def _one_rule(rules_dir: Path, *lines: str, pack: str = "drug-mention", rule: str = "drug.named") -> None:
    """Write a pack with one rule; `lines` start at line 7 of the file, after the rule's title."""
    head = ["pack:", f"  id: {pack}", "  title: Test pack", "  rules:", f"    - id: {rule}", "      title: Test rule"]
    (rules_dir / "packs" / f"{pack}.yaml").write_text("\n".join(head + [f"      {l}" for l in lines]) + "\n", encoding="utf-8")


def _errors(rules_dir: Path) -> list[str]:
    with pytest.raises(RuleFileError) as exc:
        load_ruleset(rules_dir)
    return [str(i) for i in exc.value.issues]


def test_unknown_key_names_file_line_column_and_suggests(rules_dir):
    _one_rule(rules_dir, "category: drug_mention", "severty: high", "match: {drugs: named}")
    (err,) = _errors(rules_dir)
    assert "drug-mention.yaml:8:7" in err
    assert "unknown key 'severty'" in err and "did you mean 'severity'?" in err


def test_bad_enum_value_suggests_the_closest(rules_dir):
    _one_rule(rules_dir, "category: drug_mentoin", "match: {drugs: named}")
    (err,) = _errors(rules_dir)
    assert "drug-mention.yaml:7:" in err and "drug_mention" in err


def test_invalid_yaml_is_located(rules_dir):
    _write(rules_dir / "packs" / "drug-mention.yaml", "pack:\n  id: x\n  title: [unclosed\n")
    (err,) = _errors(rules_dir)
    assert "drug-mention.yaml:" in err and "invalid YAML" in err


def test_yaml_aliases_are_refused(rules_dir):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\npack: *b\n"
    _write(rules_dir / "packs" / "drug-mention.yaml", bomb)
    (err,) = _errors(rules_dir)
    assert "aliases" in err and "drug-mention.yaml:2:" in err


def test_deep_nesting_is_refused(rules_dir):
    _write(rules_dir / "packs" / "drug-mention.yaml", "pack: " + "[" * 5000 + "]" * 5000 + "\n")
    (err,) = _errors(rules_dir)
    assert "nesting deeper" in err


def test_backtracking_regex_is_refused_with_a_fix(rules_dir):
    _one_rule(rules_dir, "category: drug_mention", r"match: {regex: '(a+)+\1'}")
    (err,) = _errors(rules_dir)
    assert "drug-mention.yaml:8:" in err and "RE2" in err


def test_pathological_pattern_runs_in_linear_time(rules_dir):
    """The classic catastrophic pattern stays linear under RE2 (this would hang Python's re)."""
    from bot.engine import screen
    from bot.models import Message

    _one_rule(rules_dir, "category: medical_inquiry", "match: {regex: '(a|aa)+$'}", pack="custom", rule="custom.evil")
    _write(rules_dir / "profiles" / "default.yaml", "profile:\n  id: p\n  packs: [custom]\n")
    rs = load_ruleset(rules_dir)
    v = screen(Message(text="a" * 50_000 + "!"), rs)
    assert v.hits == ()


def test_unknown_term_list_is_located(rules_dir):
    _one_rule(rules_dir, "category: drug_mention", "match: {terms: ae_evnt}")
    (err,) = _errors(rules_dir)
    assert "drug-mention.yaml:8:" in err and "did you mean 'ae_event'?" in err


def test_all_errors_are_reported_in_one_pass(rules_dir):
    for name in ("drug-mention.yaml", "medical-inquiry.yaml"):
        _write(rules_dir / "packs" / name, "pack:\n  id: x\n  title: t\n  colour: red\n")
    assert len(_errors(rules_dir)) == 2


def test_a_broken_file_leaves_the_running_rules_untouched(rules, rules_dir):
    from bot.engine import screen
    from bot.models import Message

    before = rules.version
    _write(rules_dir / "packs" / "drug-mention.yaml", "pack: [")
    with pytest.raises(RuleFileError):
        load_ruleset(rules_dir)
    assert rules.version == before
    assert screen(Message(text="ozempic"), rules).held


def test_shipped_packs_pass_their_own_examples(rules):
    from bot.packs.checks import run_rule_tests

    run, failures = run_rule_tests(rules)
    assert run >= 60
    assert failures == []


def test_every_category_and_language_has_rules_and_terms(rules):
    cats = {r.rule.category.value for r in rules.rules}
    assert cats == {"drug_mention", "prescription_advice", "adverse_event", "special_situation", "medical_inquiry"}
    assert set(rules.function_words) == {"en", "nl", "fr", "de", "es"}
    for name, langs in rules.term_languages.items():
        assert langs == {"en", "nl", "fr", "de", "es"}, name


def test_default_packs_ship_inside_the_installed_package():
    root = shipped_rules_dir()
    assert (root / "packs" / "adverse-event.yaml").is_file()
    assert (root / "lexicons" / "fr_bdpm.tsv").is_file()


def test_a_rule_in_test_status_is_logged_but_does_not_hold(rules_dir):
    from bot.engine import screen
    from bot.models import Message

    _write(rules_dir / "profiles" / "default.yaml", """\
        profile:
          id: p
          packs: [drug-mention]
          overrides:
            drug.named: {status: test}
        """)
    v = screen(Message(text="anyone on ozempic?"), load_ruleset(rules_dir))
    assert not v.held and v.categories == ()
    assert [(h.rule, h.status) for h in v.hits] == [("drug.named", "test")]


def test_scope_limits_a_rule_to_its_communities_channels_and_audience(rules_dir):
    from bot.engine import screen
    from bot.models import Message

    _one_rule(rules_dir, "category: drug_mention", "match: {drugs: named}",
              "scope: {communities: [t2d], channels: [general], audience: [public]}")
    rs = load_ruleset(rules_dir)
    text = "anyone on ozempic?"
    assert screen(Message(text=text, community="t2d", channel="general"), rs).held
    assert not screen(Message(text=text, community="other", channel="general"), rs).held
    assert not screen(Message(text=text, community="t2d", channel="offtopic"), rs).held
    assert not screen(Message(text=text, community="t2d", channel="general", audience="hcp_verified"), rs).held


def test_exempt_roles_and_allowlisted_words_let_a_message_through_with_a_note(rules_dir):
    from bot.engine import screen
    from bot.models import Author, Message

    _one_rule(rules_dir, "category: drug_mention", "match: {drugs: named}",
              "exceptions: {roles: [medical-information], allow: [aspirin]}")
    rs = load_ruleset(rules_dir)
    staff = screen(Message(text="ozempic is available again", author=Author(roles=("medical-information",))), rs)
    assert not staff.held and "exempt" in staff.notes[-1].explanation
    assert not screen(Message(text="aspirin"), rs).held
    assert screen(Message(text="ozempic"), rs).held


def test_a_profile_override_changes_actions_without_editing_the_pack(rules_dir):
    from bot.engine import screen
    from bot.models import Message, Route

    _write(rules_dir / "profiles" / "default.yaml", """\
        profile:
          id: p
          packs: [drug-mention]
          overrides:
            drug.named: {actions: [route_medinfo]}
        """)
    v = screen(Message(text="anyone on ozempic?"), load_ruleset(rules_dir))
    assert not v.held and v.routes == (Route.MEDICAL_INFORMATION,)


def test_includes_compose_packs(rules_dir):
    from bot.engine import screen
    from bot.models import Message

    _one_rule(rules_dir, "category: medical_inquiry", "match: {phrases: [is it in stock]}", pack="extra", rule="x.stock")
    _write(rules_dir / "packs" / "base.yaml", "pack:\n  id: base\n  title: Base\n  includes: [extra]\n")
    _write(rules_dir / "profiles" / "default.yaml", "profile:\n  id: p\n  packs: [base]\n")
    v = screen(Message(text="is it in stock anywhere"), load_ruleset(rules_dir))
    assert [h.rule for h in v.hits] == ["x.stock"]


def test_a_rule_can_match_one_lexicon_only(rules_dir):
    """"Our products" rules: a rule limited to the owner's own lexicon ignores other medicines."""
    from bot.engine import screen
    from bot.models import Message

    (rules_dir / "lexicons").mkdir()
    _write(rules_dir / "lexicons" / "acme.yaml", "id: acme-products\nentries:\n  - {name: Acmezolam, generic: acmezolam}\n")
    _one_rule(rules_dir, "category: drug_mention", "match: {lexicon: acme-products}", pack="ours", rule="ours.named")
    _write(rules_dir / "profiles" / "default.yaml", "profile:\n  id: p\n  packs: [ours]\n")
    rs = load_ruleset(rules_dir)
    assert [h.text for h in screen(Message(text="Acmezolam works"), rs).hits] == ["Acmezolam"]
    assert screen(Message(text="ozempic works"), rs).hits == ()


def test_an_unknown_lexicon_is_located(rules_dir):
    _one_rule(rules_dir, "category: drug_mention", "match: {lexicon: fr_bdmp}")
    (err,) = _errors(rules_dir)
    assert "drug-mention.yaml:8:" in err and "did you mean 'fr_bdpm'?" in err


def test_a_guard_cue_running_into_the_span_does_not_guard_it(rules_dir):
    """"i have no" negates the event "nausea" after it, not the event "no appetite" it runs into;
    a cue over the whole span ("for weight loss" over "weight loss") still guards it."""
    from bot.engine import screen
    from bot.models import Message

    (rules_dir / "terms").mkdir()
    _write(rules_dir / "terms" / "en.yaml", """\
        language: en
        terms:
          function_words: [the, and, i, have, my, since, on]
          negation: [i have no]
          indication: [for weight loss]
          ae_event: [nausea, no appetite, weight loss]
        """)
    _write(rules_dir / "packs" / "t.yaml", """\
        pack:
          id: t
          title: Test pack
          rules:
            - id: ae.t
              title: Event near a medicine
              category: adverse_event
              match:
                near:
                  within: 10
                  of:
                    - {drugs: named}
                    - terms: [ae_event]
                      unless_preceded_by: [{terms: negation, within: 3}, {terms: indication, within: 3}]
        """)
    _write(rules_dir / "profiles" / "default.yaml", "profile:\n  id: p\n  packs: [t]\n")
    rs = load_ruleset(rules_dir)

    def fires(text: str) -> bool:
        return "adverse_event" in screen(Message(text=text, language="en"), rs).categories

    assert fires("since starting sertraline i have no appetite")
    assert not fires("since starting sertraline i have no nausea")
    assert not fires("my sister takes sertraline for weight loss")


def test_empty_matches_in_folded_text_give_one_hit_each(rules_dir):
    """Two empty folded spans inside "ß" (folded to "ss") are one place in the original text."""
    from bot.engine import screen
    from bot.models import Message

    _one_rule(rules_dir, "category: drug_mention", "match: {all: [{drugs: named}, {regex: 'z*'}]}")
    hits = [h.span for h in screen(Message(text="ßß ozempic"), load_ruleset(rules_dir)).hits]
    assert len(hits) == len(set(hits))
