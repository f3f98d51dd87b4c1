"""Correlation order and the situations mature IGA tools distinguish."""

from __future__ import annotations

from governor.correlate import UNMATCHED, Correlator, Declared, MatchStatus
from governor.records import Person, PersonStatus, WorkerType


def person(eid: str, email: str, *aliases: str) -> Person:
    return Person(employee_id=eid, email=email, name=eid, status=PersonStatus.ACTIVE,
                  worker_type=WorkerType.EMPLOYEE, aliases=aliases)


PEOPLE = [person("E1", "ann@corp.example", "a.smith@corp.example", "team@corp.example"),
          person("E2", "bob@corp.example", "team@corp.example")]


def test_employee_id_then_email_then_alias_then_plus_address() -> None:
    c = Correlator(PEOPLE)
    assert (c.match("s", "E2").employee_id, c.match("s", "E2").method) == ("E2", "employee_id")
    assert c.match("s", "ANN@corp.example").method == "email"
    assert c.match("s", "a.smith@corp.example").method == "alias"
    m = c.match("s", "ann+social@corp.example")
    assert (m.employee_id, m.method) == ("E1", "plus_address")
    # the directory's own employee id wins over an email that says otherwise
    assert c.match("okta", "login1", employee_id="E2", email="ann@corp.example"
                   ).employee_id == "E2"


def test_employee_ids_match_in_any_case_as_hr_spells_them() -> None:
    # (fixed) "e2" was an orphan and an owner "e2" matched nobody, though `governor
    # person e2` found E2
    c = Correlator([*PEOPLE, person("x9", "cy@corp.example")])
    for ref, eid in [("e2", "E2"), ("E2", "E2"), ("X9", "x9")]:
        m = c.match("s", ref)
        assert (m.status, m.employee_id, m.method) == (MatchStatus.MATCHED, eid,
                                                       "employee_id"), ref
        assert c.person(ref) is c.by_id[eid]
    assert "ignoring case" in c.match("s", "e2").reason
    assert c.match("okta", "login1", employee_id="e1").employee_id == "E1"


def test_a_login_that_reads_as_another_s_employee_id_is_not_taken_for_them() -> None:
    # review: Bob's directory account, login "e1" (his email his own), was taken for E1's:
    # offboarding E1 planned to disable Bob's login
    c = Correlator(PEOPLE)
    m = c.match("okta", "e1", email="bob@corp.example")
    assert (m.status, m.employee_id, m.candidates) == (MatchStatus.AMBIGUOUS, None,
                                                       ("E1", "E2"))
    assert m.reason == ("login e1 is employee id E1, but email bob@corp.example is E2's")
    # the record's own address agreeing, or saying nothing HR knows, leaves it matched
    assert c.match("okta", "e1", email="ann@corp.example").employee_id == "E1"
    assert c.match("okta", "e1", email="ghost@else.example").employee_id == "E1"
    assert c.match("okta", "e1").employee_id == "E1"
    # a record's own employee id attribute is not a guess: it stands
    assert c.match("okta", "login1", employee_id="E1", email="bob@corp.example"
                   ).employee_id == "E1"


def test_employee_ids_differing_only_in_case_are_not_merged() -> None:
    c = Correlator([person("AB1", "ann@corp.example"), person("ab1", "bob@corp.example"),
                    person("Cd2", "cy@corp.example"), person("cD2", "di@corp.example")])
    # the exact spelling is that person's, as in `governor person`
    assert c.match("s", "AB1").employee_id == "AB1"
    assert c.match("s", "ab1").employee_id == "ab1"
    for ref, both in [("Ab1", ("AB1", "ab1")), ("cd2", ("Cd2", "cD2")),
                      ("CD2", ("Cd2", "cD2"))]:
        m = c.match("s", ref)
        assert (m.status, m.employee_id, m.candidates) == (MatchStatus.AMBIGUOUS, None,
                                                           both), ref
        assert c.person(ref) is None


def test_ambiguous_is_reported_not_guessed() -> None:
    m = Correlator(PEOPLE).match("s", "team@corp.example")
    assert m.status is MatchStatus.AMBIGUOUS and m.employee_id is None
    assert m.candidates == ("E1", "E2")


def test_an_address_one_person_claims_twice_is_still_theirs() -> None:
    # ann's alias is her own plus-address: both strip to ann@, which is E1's alone
    c = Correlator([person("E1", "ann@corp.example", "ann+social@corp.example"),
                    *PEOPLE[1:]])
    m = c.match("s", "ann+ads@corp.example")
    assert (m.status, m.employee_id, m.method) == (MatchStatus.MATCHED, "E1", "plus_address")
    three = Correlator([*PEOPLE, person("E3", "cy@corp.example", "team@corp.example")])
    assert three.match("s", "team@corp.example").candidates == ("E1", "E2", "E3")


def test_unmatched_link_and_declared() -> None:
    c = Correlator(PEOPLE, links={("fb", "1234567"): "E2"},
                   declared=[Declared("*", "svc-bot", "E1", "scheduler", "service")])
    assert c.match("fb", "999").status is MatchStatus.UNMATCHED
    linked = c.match("fb", "1234567")
    assert (linked.employee_id, linked.method) == ("E2", "link")
    assert c.match("other", "1234567").status is MatchStatus.UNMATCHED  # links are per source
    bot = c.match("x", "SVC-BOT")
    assert bot.status is MatchStatus.NONHUMAN and bot.owner == "E1"
    stale = Correlator(PEOPLE, links={("fb", "42"): "E9"}).match("fb", "42")
    assert stale.status is MatchStatus.UNMATCHED and "not in HR" in stale.reason


def test_a_directory_account_matches_through_its_other_addresses() -> None:
    c = Correlator(PEOPLE)
    m = c.match("ad", "asmith", email="ann.smith@legacy.example",
                aliases=("bob@corp.example",))
    assert (m.employee_id, m.method) == ("E2", "email")


def test_a_settled_snapshot_still_resolves_owners_and_keeps_its_matches() -> None:
    from datetime import UTC, datetime

    from governor.records import DirectoryAccount, DirectoryStatus, Grant
    from governor.roles import Role
    from governor.snapshot import Snapshot

    snap = Snapshot.build(
        datetime(2026, 11, 20, tzinfo=UTC), persons=[("hr", p) for p in PEOPLE],
        directory=[("okta", DirectoryAccount(login="u1", status=DirectoryStatus.ACTIVE,
                                             email=None, employee_id="E2"))],
        grants=[("x", Grant(account="x:@brand", principal="u1", raw_role="admin",
                            role=Role.ADMIN))])
    before = snap.grants[0].match
    assert snap.principals and before.employee_id is None  # u1 means nothing to x
    snap.settle()
    assert snap.principals == {}
    assert snap.grants[0].match is before
    owner = snap.person("ann@corp.example")
    assert owner is not None and owner.employee_id == "E1"


def test_a_link_settles_an_ambiguous_principal_but_not_a_unique_match() -> None:
    links = {("yt", "team@corp.example"): "E2", ("*", "ann@corp.example"): "E2",
             ("yt", "stale@corp.example"): "E9"}
    c = Correlator([*PEOPLE, person("E3", "cy@corp.example", "stale@corp.example"),
                    person("E4", "di@corp.example", "stale@corp.example")], links=links)
    m = c.match("yt", "TEAM@corp.example")
    assert (m.status, m.employee_id, m.method) == (MatchStatus.MATCHED, "E2", "link")
    assert m.candidates == ("E1", "E2") and "E1, E2" in m.reason
    # the link is yt's: another source still reports the principal as ambiguous
    assert c.match("fb", "team@corp.example").status is MatchStatus.AMBIGUOUS
    # a unique automatic match wins over a link, wildcard or not
    assert (c.match("yt", "ann@corp.example").employee_id,
            c.match("yt", "ann@corp.example").method) == ("E1", "email")
    # a link to someone HR no longer has decides nothing
    assert c.match("yt", "stale@corp.example").status is MatchStatus.AMBIGUOUS
    # a directory account's own data goes through the same order
    d = c.match("yt", "team-login", email="team@corp.example")
    assert d.status is MatchStatus.AMBIGUOUS  # links are by principal: this one has none
    wild = Correlator(PEOPLE, links={("*", "team@corp.example"): "E1"})
    assert wild.match("any", "team@corp.example").employee_id == "E1"
    declared = Correlator(PEOPLE, links={("yt", "team@corp.example"): "E1"},
                          declared=[Declared("*", "team@corp.example", "E1", "inbox", "service")])
    assert declared.match("yt", "team@corp.example").status is MatchStatus.NONHUMAN


def test_an_address_that_is_one_persons_email_and_anothers_alias_is_ambiguous() -> None:
    # a leaver's old address handed on as someone's alias: either could be the holder
    c = Correlator([person("E1", "social@corp.example"),
                    person("E2", "bob@corp.example", "social@corp.example")])
    for principal in ("social@corp.example", "SOCIAL@corp.example",
                      "social+ads@corp.example"):
        m = c.match("s", principal)
        assert (m.status, m.employee_id, m.candidates) == (
            MatchStatus.AMBIGUOUS, None, ("E1", "E2")), principal
    assert c.person("social@corp.example") is None  # an owner reference decides no one
    # a person's alias equal to their own email is still theirs alone
    own = Correlator([person("E1", "ann@corp.example", "ann@corp.example")])
    m = own.match("s", "ann@corp.example")
    assert (m.status, m.employee_id, m.method) == (MatchStatus.MATCHED, "E1", "email")


def test_an_address_a_dropped_person_shares_with_someone_listed_is_ambiguous() -> None:
    from dataclasses import replace
    from datetime import date
    gone = replace(person("E1", "jane@corp.example", "social@corp.example"),
                   status=PersonStatus.LEFT, dropped_from_hr=date(2026, 3, 1))
    # her address handed on to a new hire, her mailbox an alias of her manager's: a grant
    # to either may still be hers, so neither is guessed
    c = Correlator([gone, person("E9", "jane@corp.example"),
                    person("E5", "boss@corp.example", "social@corp.example")])
    for address in ("jane@corp.example", "jane+x@corp.example", "social@corp.example"):
        assert c.match("s", address).status is MatchStatus.AMBIGUOUS, address
    assert c.match("s", "jane@corp.example").candidates == ("E1", "E9")
    # an address only she had is still hers
    alone = Correlator([gone, person("E9", "new@corp.example")])
    assert alone.match("s", "jane@corp.example").employee_id == "E1"


def test_a_kelvin_sign_for_a_k_is_nobodys_address() -> None:
    """str.lower() turns the Kelvin sign (U+212A, drawn as K) into an ASCII "k": a grant
    to "ann" spelt with one would have been credited to the real person, and the
    lookalike held its role unseen. governor compares principals with lookalike.fold,
    which keeps it; it is the only such character (walked below)."""
    import sys

    from governor.lookalike import KELVIN, fold

    people = [person("E1", "kim@corp.example")]
    m = Correlator(people).match("s", f"{KELVIN}im@corp.example")
    assert m.status is MatchStatus.UNMATCHED and m.employee_id is None
    assert Correlator(people).match("s", "KIM@corp.example").employee_id == "E1"
    assert fold(f"A{KELVIN}B") == f"a{KELVIN}b" and fold("ÄB") == "äb"
    folding_to_ascii = {chr(c) for c in range(128, sys.maxunicode + 1)
                        if chr(c).lower().isascii()}
    assert folding_to_ascii == {KELVIN}


def test_an_address_with_a_combining_accent_is_the_address_with_the_accented_letter() -> None:
    """Review: "tomás" written with a combining accent (NFD, as macOS exports write it)
    was an orphan drawn like Tomás's own address, a critical finding. Composing is no
    way around the Kelvin check: it never makes ASCII of what was not (walked below)."""
    import sys
    import unicodedata

    from governor.lookalike import KELVIN, NFC_TO_ASCII, fold

    people = [person("E1", "tom\u00e1s@corp.example")]
    m = Correlator(people).match("s", "toma\u0301s@corp.example")
    assert (m.status, m.employee_id) == (MatchStatus.MATCHED, "E1")
    assert fold(f"{KELVIN}a\u0301") == f"{KELVIN}\u00e1"
    assert Correlator(people).match("s", f"tom\u00e1s@corp.example{KELVIN}").status \
        is MatchStatus.UNMATCHED
    to_ascii = {chr(c) for c in range(128, sys.maxunicode + 1)
                if unicodedata.normalize("NFC", chr(c)).isascii()}
    assert to_ascii == NFC_TO_ASCII
    for c in NFC_TO_ASCII:
        assert fold(f"a{c}b") == f"a{c}b"  # kept as it is, not composed to ASCII


def test_a_bare_principal_is_an_employee_id_only_where_its_source_names_people_so() -> None:
    c = Correlator(PEOPLE, id_sources={"okta"})
    fb = c.match("fb", "E2")
    assert fb.status is MatchStatus.UNMATCHED and fb.employee_id is None
    assert "E2 is one in HR" in fb.reason and "match_employee_ids" in fb.reason
    assert c.match("fb", "e2").status is MatchStatus.UNMATCHED  # nor ignoring case
    assert c.match("okta", "E2").employee_id == "E2"  # a directory login may be one
    assert c.lookup("e2").employee_id == "E2"  # and so may what people write
    assert c.match("fb", "ann@corp.example").employee_id == "E1"  # addresses always
    # an id nobody has keeps the plain reason
    assert c.match("fb", "E99").reason == UNMATCHED.reason
    # the same principal answered per source, not once for all
    assert c.match("okta", "E2").matched and not c.match("fb", "E2").matched
