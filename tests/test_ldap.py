"""The LDAP / Active Directory connector against real OpenLDAP slapd servers.

Each module-scoped server is started from a throwaway slapd.conf and LDIF (tests/
ldap_peer.py) on a free loopback port and stopped afterwards:

- ``ad``: Debian's msuser.schema (Active Directory attributes), so the server itself
  evaluates the userAccountControl bitwise rule; memberOf written into the entries.
- ``ol``: inetOrgPerson with the memberof overlay, ppolicy and nsAccountLock, more than
  500 people (slapd's anonymous size limit), LDAPS and StartTLS with a throwaway CA.

Without slapd the tests skip, or fail under GOVERNOR_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ldap3
import ldap_peer as lp
import pytest
from conftest import REQUIRE_SERVICES, demo_env, run_cli
from sqlalchemy import create_engine, text

from governor.config import parse
from governor.errors import ConfigError, SourceError
from governor.options import apply
from governor.records import AccessPath, DirectoryAccount, DirectoryStatus, Grant, SourceKind
from governor.roles import Role
from governor.sources import CONNECTORS, SourceContext
from governor.sources.ldap_directory import LdapDirectory

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
ADS = lp.AD.suffix
OLS = lp.OPENLDAP.suffix
AD_USERS = f"ou=users,{ADS}"
AD_PUBLISHERS = f"cn=Social-X-Publishers,ou=groups,{ADS}"
AD_STAFF = f"cn=staff,ou=groups,{ADS}"
OL_PEOPLE = f"ou=people,{OLS}"
OL_PUBLISHERS = f"cn=social-x-publishers,ou=groups,{OLS}"
BULK = 620  # more than slapd's 500-entry limit for a search without paging
WRONG_PASSWORD = "Tr0ub4dor&3-wrong"


def filetime(at: datetime) -> str:
    """An instant as Active Directory stores it: 100 ns intervals since 1601-01-01 UTC."""
    return str(int((at - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds()) * 10_000_000)


def ca_of(server: lp.Slapd) -> str:
    assert server.tls is not None
    return str(server.tls.ca_file)


def need_slapd() -> None:
    why = lp.missing()
    if why is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {why}")
    pytest.skip(why)


def ou(name: str, suffix: str) -> lp.Entry:
    return f"ou={name},{suffix}", {"objectClass": ["organizationalUnit"], "ou": [name]}


# ---- servers ----------------------------------------------------------------------------
def ad_entries() -> list[lp.Entry]:
    last = filetime(datetime(2026, 11, 18, 9, 30, tzinfo=UTC))
    return [
        lp.ad_user("John Doe", "JDoe", uac=514, mail="JDoe@Corp.Example", employeeID=["E1"],
                   accountExpires=["0"], memberOf=[AD_PUBLISHERS, AD_STAFF],
                   proxyAddresses=["SMTP:JDoe@Corp.Example", "smtp:john@corp.example"],
                   lastLogonTimestamp=[last], userPrincipalName=["john.doe@corp.example"]),
        lp.ad_user("Ann Lee", "alee", mail="ann.lee@corp.example", employeeID=["E2"],
                   accountExpires=["9223372036854775807"], memberOf=[AD_PUBLISHERS],
                   userPrincipalName=["ann.lee@corp.example"]),
        lp.ad_user("Old Contract", "oldc", mail="old@corp.example",
                   accountExpires=[filetime(datetime(2026, 6, 1, tzinfo=UTC))]),
        lp.ad_user("New Contract", "newc", mail="new@corp.example",
                   accountExpires=[filetime(datetime(2027, 6, 1, tzinfo=UTC))]),
        lp.ad_user("Locked Out", "lockd", uac=512 | 16 | 65536, mail="lockd@corp.example"),
        lp.ad_user("Also Disabled", "dexp", uac=546, mail="dexp@corp.example"),
        # no mail, but the primary SMTP proxy address stands in; and one with neither
        lp.ad_user("Proxy Only", "proxy", proxyAddresses=["smtp:alias@corp.example",
                                                           "SMTP:Proxy.Only@corp.example"]),
        lp.ad_user("No Mail", "nomail", employeeID=["E9"]),
        lp.ad_group("Social-X-Publishers", [f"cn=John Doe,{AD_USERS}", f"cn=Ann Lee,{AD_USERS}"]),
        lp.ad_group("staff", [f"cn=John Doe,{AD_USERS}"]),
        # entries the fault tests point at, each in a subtree of its own
        ou("bad-utf8", ADS),
        _moved(lp.ad_user("Bad Bytes", "badbytes", mail="bad@corp.example",
                          employeeID=[b"E\xff\xfe9"]), "bad-utf8"),
        ou("no-login", ADS),
        _moved(lp.ad_user("Nameless", "x"), "no-login", drop="sAMAccountName"),
        ou("twins", ADS),
        _moved(lp.ad_user("Twin One", "twin"), "twins"),
        _moved(lp.ad_user("Twin Two", "TWIN"), "twins"),
        ou("bad-uac", ADS),
        _moved(lp.ad_user("Odd Flags", "odd"), "bad-uac", set_={"userAccountControl": ["x2"]}),
    ]


def _moved(entry: lp.Entry, to_ou: str, drop: str | None = None,
           set_: dict[str, list[str]] | None = None) -> lp.Entry:
    dn, attrs = entry
    values = {k: v for k, v in attrs.items() if k != drop}
    values.update(set_ or {})
    return dn.replace(AD_USERS, f"ou={to_ou},{ADS}"), values


@pytest.fixture(scope="module")
def ad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lp.Slapd]:
    need_slapd()
    server = lp.make(lp.AD, tmp_path_factory.mktemp("slapd-ad"), ad_entries())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ol_entries() -> list[lp.Entry]:
    special = [
        lp.person("alice", mail="Alice@Example.ORG", employeeNumber=["E100"]),
        lp.person("bob", mail="bob@example.org", objectClass=["inetOrgPerson",
                                                              "extensibleObject"],
                  nsAccountLock=["TRUE"]),
        lp.person("carol", mail="carol@example.org",
                  pwdAccountLockedTime=["20261119080000Z"]),
        lp.person("dave", mail="dave@example.org", pwdAccountLockedTime=["000001010000Z"]),
        lp.person("erin"),  # no mail at all: still an account
        lp.person("o(brien)*", mail="obrien@example.org"),  # filter metacharacters in a uid
    ]
    bulk = [lp.person(f"user{i:04d}", mail=f"user{i:04d}@example.org",
                      employeeNumber=[f"B{i:04d}"]) for i in range(BULK)]
    return [*special, *bulk]


@pytest.fixture(scope="module")
def ol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lp.Slapd]:
    need_slapd()
    server = lp.make(lp.OPENLDAP, tmp_path_factory.mktemp("slapd-ol"), ol_entries(), tls=True)
    server.start()
    try:
        # over LDAP, after start: the memberof overlay fills memberOf on writes only
        lp.add_entries(server, [
            lp.group_of_names("social-x-publishers", [f"uid=alice,{OL_PEOPLE}",
                                                      f"uid=bob,{OL_PEOPLE}"]),
            lp.group_of_names("interns", [f"uid=alice,{OL_PEOPLE}"])])
        yield server
    finally:
        server.stop()


def connector(server: lp.Slapd, base: Path, **raw: Any) -> LdapDirectory:
    """A connector configured the way the config file would (defaults, checks)."""
    preset = "active_directory" if server.variant is lp.AD else "openldap"
    body = {"urls": [server.url], "tls": "none", "preset": preset,
            "base_dns": [AD_USERS if server.variant is lp.AD else OL_PEOPLE],
            **({} if server.variant is lp.AD else {"password_policy": lp.LOCKOUT_POLICY}),
            **raw}
    settings = apply(LdapDirectory.options, body, "sources.ldap")
    LdapDirectory.validate(settings, "sources.ldap")
    conn = LdapDirectory("ldap", settings, base)
    conn.prepare(SourceContext(now=NOW))
    return conn


def accounts(records: list[DirectoryAccount | Grant]) -> dict[str, DirectoryAccount]:
    return {r.login: r for r in records if isinstance(r, DirectoryAccount)}


def grants(records: list[DirectoryAccount | Grant]) -> list[tuple[str, str, Role, str]]:
    return sorted((g.principal, g.account, g.role, g.via_detail or "")
                  for g in records if isinstance(g, Grant))


def fails(conn: LdapDirectory, *secrets: str) -> str:
    """The SourceError a full read raises; never with a secret in it."""
    with pytest.raises(SourceError) as info:
        list(conn.fetch())
    message = str(info.value)
    for secret in (lp.ROOT_PW, lp.READER_PW, lp.LIMITED_PW, WRONG_PASSWORD, *secrets):
        assert secret not in message
    return message


# ---- Active Directory -------------------------------------------------------------------
def test_ad_accounts_status_email_and_groups(ad: lp.Slapd, tmp_path: Path) -> None:
    got = accounts(list(connector(ad, tmp_path).fetch()))
    assert set(got) == {"jdoe", "alee", "oldc", "newc", "lockd", "dexp", "proxy", "nomail"}
    john = got["jdoe"]
    assert john == DirectoryAccount(
        login="jdoe", status=DirectoryStatus.DISABLED, email="jdoe@corp.example",
        employee_id="E1", mfa=None, groups=("Social-X-Publishers", "staff"),
        last_login=datetime(2026, 11, 18, 9, 30, tzinfo=UTC),
        aliases=("john@corp.example",))  # proxyAddresses' other SMTP address
    status = {login: a.status for login, a in got.items()}
    assert status == {
        "jdoe": DirectoryStatus.DISABLED,  # 514: ACCOUNTDISABLE (accountExpires 0: never)
        "alee": DirectoryStatus.ACTIVE,  # 512, accountExpires max: never
        "oldc": DirectoryStatus.DISABLED,  # expired 2026-06-01
        "newc": DirectoryStatus.ACTIVE,  # expires 2027-06-01
        "lockd": DirectoryStatus.ACTIVE,  # lockout and other bits are not "disabled"
        "dexp": DirectoryStatus.DISABLED,  # 546 = 512 | 32 | 2
        "proxy": DirectoryStatus.ACTIVE, "nomail": DirectoryStatus.ACTIVE}
    assert got["proxy"].email == "proxy.only@corp.example"  # the primary SMTP: address
    assert got["nomail"].email is None and got["nomail"].employee_id == "E9"
    # LDAP knows nothing of MFA: unknown, never "no factors"
    assert all(a.mfa is None and a.mfa_read_at is None for a in got.values())
    assert got["alee"].last_login is None


def test_ad_bitwise_filter_is_evaluated_by_the_server(ad: lp.Slapd, tmp_path: Path) -> None:
    # the LDAP_MATCHING_RULE_BIT_AND rule: slapd evaluates it from msuser.schema
    disabled = connector(ad, tmp_path, user_filter=(
        "(&(objectClass=user)(userAccountControl:1.2.840.113556.1.4.803:=2))"))
    assert sorted(accounts(list(disabled.fetch()))) == ["dexp", "jdoe"]
    enabled = connector(ad, tmp_path, user_filter=(
        "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"))
    assert sorted(accounts(list(enabled.fetch()))) == [
        "alee", "lockd", "newc", "nomail", "oldc", "proxy"]


def test_ad_login_can_be_the_user_principal_name(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path, user_filter="(&(objectClass=user)(userPrincipalName=*))",
                     attributes={"login": "userPrincipalName", "last_login": ""})
    got = accounts(list(conn.fetch()))
    assert sorted(got) == ["ann.lee@corp.example", "john.doe@corp.example"]
    assert got["john.doe@corp.example"].last_login is None  # the field was turned off


def test_ad_group_grants_by_cn_or_dn_each_once(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path, group_grants={
        "social-x-publishers": ["publisher x:@northwind"],
        # the same group by its full DN, in another case: the same grant, not a second one
        AD_PUBLISHERS.upper(): ["publisher x:@northwind", "analyst facebook:Northwind"],
        "staff": ["publisher x:@northwind"]})
    assert LdapDirectory.kinds(conn.settings) == {SourceKind.DIRECTORY, SourceKind.GRANTS}
    records = list(conn.fetch())
    assert grants(records) == [
        ("alee", "facebook:Northwind", Role.ANALYST, AD_PUBLISHERS),
        ("alee", "x:@northwind", Role.PUBLISHER, AD_PUBLISHERS),
        ("jdoe", "facebook:Northwind", Role.ANALYST, AD_PUBLISHERS),
        ("jdoe", "x:@northwind", Role.PUBLISHER, AD_PUBLISHERS),
        ("jdoe", "x:@northwind", Role.PUBLISHER, "staff"),  # another group: its own grant
    ]
    assert all(g.via is AccessPath.SSO_GROUP for g in records if isinstance(g, Grant))
    assert LdapDirectory.kinds(connector(ad, tmp_path).settings) == {SourceKind.DIRECTORY}


def test_ad_value_that_is_not_utf8_fails_the_source(ad: lp.Slapd, tmp_path: Path) -> None:
    message = fails(connector(ad, tmp_path, base_dns=[f"ou=bad-utf8,{ADS}"]))
    assert message == (f"ldap: entry cn=Bad Bytes,ou=bad-utf8,{ADS}: attribute employeeID "
                       "holds a value that is not UTF-8 (4 bytes starting 45 ff fe 39)")


def test_ad_entry_faults_name_the_entry(ad: lp.Slapd, tmp_path: Path) -> None:
    assert fails(connector(ad, tmp_path, base_dns=[f"ou=no-login,{ADS}"])) == (
        f"ldap: entry cn=Nameless,ou=no-login,{ADS} has no sAMAccountName (the login "
        "attribute): cannot tell whose account it is")
    assert "login 'twin', which an earlier entry has too" in fails(
        connector(ad, tmp_path, base_dns=[f"ou=twins,{ADS}"]))
    assert fails(connector(ad, tmp_path, base_dns=[f"ou=bad-uac,{ADS}"])) == (
        f"ldap: entry cn=Odd Flags,ou=bad-uac,{ADS}: attribute userAccountControl is not an "
        "integer: 'x2'")


def test_entry_with_no_mail_is_an_account_unless_mail_is_required(
        ad: lp.Slapd, tmp_path: Path) -> None:
    assert accounts(list(connector(ad, tmp_path).fetch()))["nomail"].email is None
    assert fails(connector(ad, tmp_path, require_email=True)) == (
        f"ldap: entry cn=No Mail,{AD_USERS} has no mail (require_email is set)")


def test_nested_base_dns_yield_each_entry_once(ad: lp.Slapd, tmp_path: Path) -> None:
    records = list(connector(ad, tmp_path, base_dns=[AD_USERS, AD_USERS.upper()]).fetch())
    assert len(records) == 8


@pytest.mark.parametrize(("ref", "refused"), [
    ("ldap://other.example.org/ou=elsewhere,ou=people,dc=example,dc=org", True),
    # what every Active Directory root search refers to: DNS zones, no users
    ("ldap://DomainDnsZones.example.org/DC=DomainDnsZones,DC=example,DC=org", False),
    ("ldap://example.org/CN=Configuration,DC=example,DC=org", False),
    # a child domain of the forest root searched (review): another domain, not a gap
    ("ldap://emea.example.org/DC=emea,DC=example,DC=org", False),
])
def test_a_subtree_referred_elsewhere_fails_the_read(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, ref: str,
        refused: bool) -> None:
    # review: continuation references were dropped in silence: a delegated subtree read
    # as a complete directory, and its accounts as gone
    need_slapd()
    server = lp.make(lp.OPENLDAP, tmp_path_factory.mktemp("slapd-ref"), [
        lp.person("amy", mail="amy@example.org"),
        (f"ou=elsewhere,{OL_PEOPLE}", {"objectClass": ["referral", "extensibleObject"],
                                        "ou": ["elsewhere"], "ref": [ref]})])
    server.start()
    try:
        conn = connector(server, tmp_path)
        if refused:
            assert fails(conn) == (f"ldap: {server.url} refers part of {OL_PEOPLE} to {ref}??sub, "
                                   "which governor does not follow (its accounts would read "
                                   "as gone): read that server or domain as a source of its "
                                   "own, or leave that subtree out of base_dns")
        else:
            assert set(accounts(list(conn.fetch()))) == {"amy"}
    finally:
        server.stop()


def test_a_ranged_attribute_fails_the_entry_rather_than_read_as_empty() -> None:
    # review: Active Directory sends memberOf as "memberOf;range=0-1499" for a user in
    # more groups than MaxValRange; read under the plain name, their groups were none
    from governor.sources.ldap_directory import PRESETS, _Values

    dn = f"CN=Many Groups,{AD_USERS}"
    raw = {"samaccountname": [b"many"], "memberof;range=0-1499": [b"CN=g1,OU=groups"]}
    values = _Values("ldap", dn, raw, PRESETS["active_directory"])
    assert values.first("login") == "many"
    with pytest.raises(SourceError) as info:
        values.all("groups")
    assert str(info.value) == (f"ldap: entry {dn}: the server sent memberOf in ranges "
                               "(memberof;range=0-1499: more values than it sends at once), "
                               "which governor does not read: the entry's values would be "
                               "incomplete")
    assert values.all("aliases") == []  # absent, not ranged: empty as before


# ---- OpenLDAP ---------------------------------------------------------------------------
def test_openldap_memberof_overlay_and_locks(ol: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ol, tmp_path, group_grants={
        "social-x-publishers": ["publisher x:@northwind"],
        OL_PUBLISHERS: ["publisher x:@northwind"]})
    records = list(conn.fetch())
    got = accounts(records)
    assert len(got) == BULK + 6
    assert got["alice"] == DirectoryAccount(
        login="alice", status=DirectoryStatus.ACTIVE, email="alice@example.org",
        employee_id="E100", mfa=None, groups=("social-x-publishers", "interns"))
    assert got["bob"].status is DirectoryStatus.DISABLED  # nsAccountLock: TRUE
    assert got["carol"].status is DirectoryStatus.LOCKED  # a ppolicy lockout
    assert got["dave"].status is DirectoryStatus.DISABLED  # locked by an administrator
    assert got["erin"].email is None and got["erin"].status is DirectoryStatus.ACTIVE
    assert got["user0007"].employee_id == "B0007" and got["user0007"].groups == ()
    # CN and DN mapped to the same grant: one grant per member
    assert grants(records) == [("alice", "x:@northwind", Role.PUBLISHER, OL_PUBLISHERS),
                               ("bob", "x:@northwind", Role.PUBLISHER, OL_PUBLISHERS)]


def test_paged_search_reads_past_the_servers_size_limit(ol: lp.Slapd, tmp_path: Path) -> None:
    # the same anonymous search without paging stops at 500: the limit is real
    plain = ldap3.Connection(ldap3.Server(ol.url, get_info=ldap3.NONE), auto_bind=True)
    plain.search(OL_PEOPLE, "(objectClass=inetOrgPerson)", attributes=["uid"])
    assert plain.result["description"] == "sizeLimitExceeded" and len(plain.response) == 500
    plain.unbind()
    for page_size in (1, 100, 1000):
        got = accounts(list(connector(ol, tmp_path, page_size=page_size).fetch()))
        assert len(got) == BULK + 6, page_size


def test_a_size_limit_mid_search_fails_the_whole_source(
        ol: lp.Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDAP_LIMITED_PW", lp.LIMITED_PW)
    conn = connector(ol, tmp_path, bind_dn=ol.limited_dn, password_env="LDAP_LIMITED_PW",
                     page_size=20)
    seen = 0
    with pytest.raises(SourceError) as info:
        for _ in conn.fetch():
            seen += 1
    # two full pages went by before the server cut the third short: an error, not an end
    assert seen == 2 * 20
    assert str(info.value) == (
        f"ldap: search of {OL_PEOPLE} on {ol.url} hit the server's size limit at page 3 "
        "(sizeLimitExceeded): the result is incomplete, so none of it is used; raise the "
        "limit for the bind account (slapd: limits size.prtotal; AD: MaxPageSize/"
        "MaxResultSetSize)")


def test_a_page_above_the_servers_maximum_is_refused(ol: lp.Slapd, tmp_path: Path) -> None:
    assert fails(connector(ol, tmp_path, page_size=lp.MAX_PAGE + 1)) == (
        f"ldap: search of {OL_PEOPLE} on {ol.url} was refused (adminLimitExceeded: illegal "
        f"pagedResults page size) with page_size {lp.MAX_PAGE + 1}: lower page_size")


def test_find_accounts_escapes_every_value(ol: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ol, tmp_path)
    assert conn.find_accounts("*)(uid=*") == []
    assert conn.find_accounts("*") == []
    assert conn.find_accounts("alice)(|(uid=*") == []
    assert conn.find_accounts("") == []
    assert [a.login for a in conn.find_accounts("alice")] == ["alice"]
    assert [a.login for a in conn.find_accounts(" ALICE@example.org ")] == ["alice"]
    # metacharacters are matched literally, not as wildcards or filter syntax
    assert [a.login for a in conn.find_accounts("o(brien)*")] == ["o(brien)*"]


def test_find_accounts_on_active_directory(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path)
    assert [a.login for a in conn.find_accounts("ann.lee@corp.example")] == ["alee"]
    assert conn.find_accounts("*)(sAMAccountName=*") == []


# ---- connection faults ------------------------------------------------------------------
def test_server_down_and_failover(ol: lp.Slapd, tmp_path: Path) -> None:
    closed = f"ldap://127.0.0.1:{lp.free_port()}"
    assert fails(connector(ol, tmp_path, urls=[closed])) == (
        f"ldap: no LDAP server reachable: {closed}: connection refused")
    # URLs are tried in order: the first that answers serves the read
    got = accounts(list(connector(ol, tmp_path, urls=[closed, ol.url]).fetch()))
    assert len(got) == BULK + 6
    down = connector(ol, tmp_path, urls=[closed, "ldap://no-such-host.invalid:389"])
    [reach] = down.check()
    assert (reach.step, reach.ok) == ("reach", False)
    assert reach.detail.startswith(f"no LDAP server reachable: {closed}: connection refused; "
                                   "ldap://no-such-host.invalid:389: ")


def test_a_server_that_never_answers_times_out(ol: lp.Slapd, tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts TCP connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        quick = {"connect_timeout": 1, "receive_timeout": 1}
        assert fails(connector(ol, tmp_path, urls=[url], **quick)) == (
            f"ldap: bind as anonymous on {url} failed: no answer within receive_timeout (1s)")
        starttls = connector(ol, tmp_path, urls=[url], tls="starttls", ca_file=ca_of(ol),
                             **quick)
        assert fails(starttls) == (f"ldap: no LDAP server reachable: {url}: no answer in "
                                   "time (connect_timeout 1s, receive_timeout 1s)")


def test_a_server_lost_between_pages_fails_the_whole_read(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    need_slapd()
    server = lp.make(lp.OPENLDAP, tmp_path_factory.mktemp("slapd-lost"),
                     [lp.person(f"p{i:03d}", mail=f"p{i:03d}@example.org") for i in range(120)])
    server.start()
    seen = 0
    try:
        records = connector(server, tmp_path, page_size=50).fetch()
        with pytest.raises(SourceError) as info:
            for _ in records:
                seen += 1
                if seen == 1:
                    server.stop()  # the first page is in hand; the second never comes
    finally:
        server.stop()
    assert seen == 50
    assert str(info.value).startswith(f"ldap: reading {OL_PEOPLE} on {server.url} failed at "
                                      "page 2: ")


def test_wrong_password_is_a_refused_bind_without_the_password(
        ol: lp.Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDAP_PW", WRONG_PASSWORD)
    conn = connector(ol, tmp_path, bind_dn=ol.reader_dn, password_env="LDAP_PW")
    assert fails(conn) == (
        f"ldap: {ol.url} refused the bind as {ol.reader_dn}: invalid credentials (wrong "
        "password, or the account is locked, disabled or expired)")
    steps = [(c.step, c.ok) for c in conn.check()]
    assert steps == [("reach", True), ("authenticate", False)]
    assert all(WRONG_PASSWORD not in c.detail for c in conn.check())


def test_password_from_a_file_or_the_environment_only(
        ol: lp.Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ldap.pw").write_text(lp.READER_PW + "\n")
    conn = connector(ol, tmp_path, bind_dn=ol.reader_dn, password_file="ldap.pw")
    assert len(accounts(list(conn.fetch()))) == BULK + 6
    # doctor says when the file is readable by others (review: it did not)
    (tmp_path / "ldap.pw").chmod(0o644)
    first = conn.check()[0]
    assert (first.step, first.ok) == ("secret file", False)
    assert first.detail == (f"password_file {tmp_path / 'ldap.pw'} can be read by its group "
                            "or others (mode 0644): chmod 600 it")
    (tmp_path / "ldap.pw").chmod(0o600)
    assert [(c.step, c.ok) for c in conn.check()][0] == ("secret file", True)
    monkeypatch.delenv("LDAP_UNSET_PW", raising=False)
    unset = connector(ol, tmp_path, bind_dn=ol.reader_dn, password_env="LDAP_UNSET_PW")
    assert fails(unset) == "ldap: environment variable LDAP_UNSET_PW (password_env) is not set"
    # review: a password pasted in its place, shaped like a variable, was repeated into
    # the run record and the reports; only a name written as variables are is shown
    monkeypatch.delenv("Summer2024x", raising=False)
    pasted = connector(ol, tmp_path, bind_dn=ol.reader_dn, password_env="Summer2024x")
    message = fails(pasted)
    assert "Summer2024x" not in message
    assert message == ("ldap: the environment variable password_env names (not repeated: a "
                       "name not in capitals may be a secret pasted in its place) is not set")
    (tmp_path / "empty.pw").write_text("\n")
    empty = connector(ol, tmp_path, bind_dn=ol.reader_dn, password_file="empty.pw")
    assert fails(empty) == f"ldap: the bind password in password_file {tmp_path / 'empty.pw'} is empty"
    # no key can hold the password itself
    with pytest.raises(ConfigError, match=r"sources\.ldap\.password: unknown key \(did you mean "
                                          r"'password_env'\?\)"):
        parse({"sources": {"ldap": {"type": "ldap_directory", "urls": [ol.url], "tls": "none",
                                    "base_dns": [OLS], "bind_dn": ol.reader_dn,
                                    "password": lp.READER_PW}}}, tmp_path / "governor.toml")


def test_tls_to_an_untrusted_certificate_fails(ol: lp.Slapd, tmp_path: Path) -> None:
    other = lp.issue_tls(tmp_path / "other-ca")  # a CA that did not issue the server's cert
    for tls, url in (("ldaps", ol.ldaps_url), ("starttls", ol.url)):
        ok = connector(ol, tmp_path, urls=[url], tls=tls, ca_file=ca_of(ol))
        assert len(accounts(list(ok.fetch()))) == BULK + 6, tls
        how = "LDAPS" if tls == "ldaps" else "StartTLS"
        assert ok.check()[0].detail == f"{url} ({how}, certificate verified)"
        bad = connector(ol, tmp_path, urls=[url], tls=tls, ca_file=str(other.ca_file))
        assert fails(bad) == (f"ldap: no LDAP server reachable: {url}: TLS certificate not "
                              f"trusted by ca_file {other.ca_file} (unable to get local "
                              "issuer certificate)"), tls
    # verification is on by default: with no ca_file the system CAs do not know this one
    assert "TLS certificate not trusted by the system CAs" in fails(
        connector(ol, tmp_path, urls=[ol.ldaps_url], tls="ldaps"))
    # and can be turned off explicitly (said so in doctor's output)
    off = connector(ol, tmp_path, urls=[ol.ldaps_url], tls="ldaps", tls_verify=False)
    assert off.check()[0].detail == f"{ol.ldaps_url} (LDAPS, certificate NOT verified)"


def test_ldaps_to_a_plain_port_says_so(ol: lp.Slapd, tmp_path: Path) -> None:
    plain_as_tls = f"ldaps://127.0.0.1:{ol.port}"
    assert fails(connector(ol, tmp_path, urls=[plain_as_tls], tls="ldaps",
                           ca_file=ca_of(ol))) == (
        f"ldap: no LDAP server reachable: {plain_as_tls}: TLS handshake failed (is the port "
        "speaking TLS? check tls and the URL's port)")


def test_check_steps_on_a_good_source(ol: lp.Slapd, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDAP_PW", lp.READER_PW)
    conn = connector(ol, tmp_path, bind_dn=ol.reader_dn, password_env="LDAP_PW",
                     page_size=100)
    assert [(c.step, c.ok, c.detail) for c in conn.check()] == [
        ("reach", True, f"{ol.url} (no TLS)"),
        ("authenticate", True, f"bound as {ol.reader_dn}"),
        ("read", True, f"100 user entries in the first page of {OL_PEOPLE}")]
    missing = connector(ol, tmp_path, base_dns=[f"ou=nobody,{OLS}"])
    assert missing.check()[-1].detail == (
        f"ldap: search of ou=nobody,{OLS} on {ol.url}: base DN ou=nobody,{OLS} does not "
        "exist (noSuchObject)")


@pytest.mark.parametrize(("body", "key", "message"), [
    ({"urls": ["ldap://dc1:389"]}, "urls[0]", "does not match tls = 'ldaps' (use ldaps://)"),
    ({"urls": ["https://dc1"], "tls": "none"}, "urls[0]", "is not ldap://host"),
    ({"urls": []}, "urls", "name at least one server URL"),
    ({"base_dns": []}, "base_dns", "name at least one base DN"),
    ({"bind_dn": "cn=svc"}, "bind_dn", "needs password_env or password_file"),
    ({"password_env": "PW"}, "bind_dn", "no bind_dn"),
    ({"bind_dn": "cn=svc", "password_env": "A", "password_file": "b"}, "password_file",
     "not both"),
    ({"user_filter": "(objectClass=user"}, "user_filter", "not an LDAP filter"),
    ({"attributes": {"mobile": "mobile"}}, "attributes.mobile", "unknown key"),
    ({"attributes": {"login": " "}}, "attributes.login", "cannot be turned off"),
    ({"page_size": 0}, "page_size", "below the minimum 1"),
    ({"tls": "none", "urls": ["ldap://dc1"], "ca_file": "ca.pem"}, "ca_file", "no effect"),
    ({"tls": "none", "urls": ["ldap://127.0.0.1:3890", "ldap://dc1.corp.example"],
      "bind_dn": "cn=svc", "password_env": "PW"}, "tls",
     "tls = none would send the bind password in clear text to ldap://dc1.corp.example"),
    ({"group_grants": {"g": ["publisher nowhere"]}}, "group_grants.g[0]", "ROLE"),
])
def test_config_mistakes_name_the_key(tmp_path: Path, body: dict[str, Any], key: str,
                                      message: str) -> None:
    raw = {"type": "ldap_directory", "urls": ["ldaps://dc1.corp.example"],
           "base_dns": [ADS], **body}
    with pytest.raises(ConfigError) as info:
        parse({"sources": {"ldap": raw}}, tmp_path / "governor.toml")
    assert f"sources.ldap.{key}: " in str(info.value) and message in str(info.value)


def test_registered() -> None:
    assert CONNECTORS["ldap_directory"] is LdapDirectory


# ---- end to end through the CLI ---------------------------------------------------------
DEMO_LDAP = [
    # Maya Okafor (active) and Marcus Webb (left 2026-09-30) publish on x:@northwind
    # through an SSO group; Marcus's directory account is still active.
    lp.person("maya.okafor", mail="maya.okafor@northwind.example", employeeNumber=["E1001"]),
    lp.person("marcus.webb", mail="marcus.webb@northwind.example", employeeNumber=["E1010"]),
    lp.person("hannah.schultz", mail="hannah.schultz@northwind.example",
              employeeNumber=["E1202"], objectClass=["inetOrgPerson", "extensibleObject"],
              nsAccountLock=["true"]),
]


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_reconcile_with_ldap_then_ldap_down(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory
                                            ) -> None:
    need_slapd()
    server = lp.make(lp.OPENLDAP, tmp_path_factory.mktemp("slapd-demo"), DEMO_LDAP)
    server.start()
    try:
        lp.add_entries(server, [lp.group_of_names(
            "social-x-publishers", [f"uid=maya.okafor,{OL_PEOPLE}",
                                    f"uid=marcus.webb,{OL_PEOPLE}"])])
        cfg = demo_dir / "governor.toml"
        with cfg.open("a") as fh:
            fh.write(f"""
[sources.ldap]
type = "ldap_directory"
urls = ["{server.url}"]
tls = "none"
preset = "openldap"
base_dns = ["{OL_PEOPLE}"]
password_policy = "{lp.LOCKOUT_POLICY}"
bind_dn = "{server.reader_dn}"
password_env = "GOVERNOR_TEST_LDAP_PASSWORD"
group_grants = {{ "social-x-publishers" = ["publisher x:@northwind"] }}
""")
        url = f"sqlite:///{demo_dir / 'governor-demo.db'}"
        env = {**demo_env(url), "GOVERNOR_TEST_LDAP_PASSWORD": lp.READER_PW}
        assert run_cli("-c", str(cfg), "db", "upgrade", env=env).code == 0
        first = run_cli("-c", str(cfg), "reconcile", "--json", "--no-report", env=env)
        assert first.code == 0, first.err
        assert lp.READER_PW not in first.out + first.err

        assert sorted(_rows(url, "SELECT login, status, email, employee_id, groups, mfa FROM "
                                 "obs_directory_account WHERE source = 'ldap'")) == [
            ("hannah.schultz", "disabled", "hannah.schultz@northwind.example", "E1202", "[]",
             None),
            ("marcus.webb", "active", "marcus.webb@northwind.example", "E1010",
             '["social-x-publishers"]', None),
            ("maya.okafor", "active", "maya.okafor@northwind.example", "E1001",
             '["social-x-publishers"]', None)]
        assert sorted(_rows(url, "SELECT account, principal, role, via, via_detail FROM obs_grant "
                                 "WHERE source = 'ldap' AND ended_at IS NULL")) == [
            ("x:@northwind", "marcus.webb", int(Role.PUBLISHER), "sso_group",
             "social-x-publishers"),
            ("x:@northwind", "maya.okafor", int(Role.PUBLISHER), "sso_group",
             "social-x-publishers")]
        from_ldap = {k: s for k, s, src in _rows(url, "SELECT key, status, sources FROM finding")
                     if "ldap" in json.loads(src)}
        assert from_ldap.get("leaver-sso-active:E1010|ldap|marcus.webb") == "open"
        assert from_ldap.get(
            "leaver-holds-access:E1010|x:@northwind|sso_group|social-x-publishers") == "open"
    finally:
        server.stop()

    # the directory is gone: the run is partial, the LDAP data and findings are kept
    second = run_cli("-c", str(cfg), "reconcile", "--no-report", env=env)
    assert second.code == 5, second.err
    assert "source ldap failed" in second.err
    [(status, error)] = _rows(url, "SELECT status, error FROM source_read WHERE name = 'ldap' "
                                   "AND run_id = 2")
    assert status == "failed"
    assert error == f"ldap: no LDAP server reachable: {server.url}: connection refused"
    assert len(_rows(url, "SELECT id FROM obs_grant WHERE source = 'ldap' AND ended_at IS NULL")
               ) == 2
    after = {k: (s, resolved) for k, s, src, resolved in _rows(
        url, "SELECT key, status, sources, resolved_run_id FROM finding")
        if "ldap" in json.loads(src)}
    assert set(after) == set(from_ldap)
    assert all(s == "open" and resolved is None for s, resolved in after.values())
