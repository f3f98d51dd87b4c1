"""The LDAP connector's offboarding actions (group_remove, disable) against real slapd.

Each action is checked the way offboarding uses it: is_done is false, perform changes the
directory, a fresh read (a new connector's fetch, or ldapsearch) shows the change, and
is_done is then true; performing it again changes nothing. Servers (tests/ldap_peer.py):

- ``ad``: the Active Directory schema (msuser.schema): groups of class ``group``,
  userAccountControl. memberOf is stored in the entries there, so membership is checked
  on the group's ``member``, as AD itself would answer.
- ``ol``: OpenLDAP with the memberof overlay (memberOf follows ``member``) and ppolicy
  (pwdAccountLockedTime), served over LDAPS too.
- ``nopp``: OpenLDAP without ppolicy, so disabling falls back to nsAccountLock.

The bind account is ldap_peer's writer, which the servers' ACL lets write; the reader
may only read, so its writes are refused with insufficientAccessRights.
Without slapd the tests skip, or fail under GOVERNOR_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ldap3
import ldap_peer as lp
import pytest
from conftest import REQUIRE_SERVICES

from governor.errors import SourceError
from governor.options import OptionError, apply
from governor.records import DirectoryAccount, DirectoryStatus
from governor.sources import SourceContext
from governor.sources.base import Action
from governor.sources.ldap_directory import LdapDirectory

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
ADS = lp.AD.suffix
OLS = lp.OPENLDAP.suffix
AD_USERS = f"ou=users,{ADS}"
AD_GROUPS = f"ou=groups,{ADS}"
AD_PUBLISHERS = f"cn=Social-X-Publishers,{AD_GROUPS}"
AD_STAFF = f"cn=staff,{AD_GROUPS}"
OL_PEOPLE = f"ou=people,{OLS}"
OL_GROUPS = f"ou=groups,{OLS}"
OL_PUBLISHERS = f"cn=social-x-publishers,{OL_GROUPS}"
OL_INTERNS = f"cn=interns,{OL_GROUPS}"
WRITER_ENV = "GOVERNOR_TEST_LDAP_WRITER_PW"
READER_ENV = "GOVERNOR_TEST_LDAP_READER_PW"
SECRETS = (lp.ROOT_PW, lp.READER_PW, lp.WRITER_PW, lp.LIMITED_PW)
# OpenLDAP without the ppolicy module: no pwdAccountLockedTime in its schema
NO_PPOLICY = lp.Variant("openldap-no-ppolicy", OLS, lp.OPENLDAP.schemas,
                        ("back_mdb", "memberof"), lp.MEMBEROF_OVERLAY)


def need_slapd() -> None:
    why = lp.missing() or (None if lp.tool("ldapsearch") else
                           "ldapsearch is not installed (Debian package ldap-utils)")
    if why is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {why}")
    pytest.skip(why)


# ---- servers ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lp.Slapd]:
    need_slapd()
    jane = f"cn=Doe\\, Jane,{AD_USERS}"  # a comma in the RDN: a backslash in the DN
    entries = [
        lp.ad_user("John Doe", "JDoe", mail="jdoe@corp.example",
                   memberOf=[AD_PUBLISHERS, AD_STAFF]),
        lp.ad_user("Ann Lee", "alee", mail="ann.lee@corp.example", memberOf=[AD_PUBLISHERS]),
        # 66048 = NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD: disabling keeps the other bit
        lp.ad_user("Kim Park", "kpark", uac=66048, mail="kim.park@corp.example"),
        lp.ad_user("Lee Chan", "lchan", mail="lee.chan@corp.example"),
        lp.ad_user("Max Roe", "mroe", mail="max.roe@corp.example"),
        (jane, lp.ad_user("Doe, Jane", "jane.doe", memberOf=[AD_STAFF])[1]),
        lp.ad_group("Social-X-Publishers", [f"cn=John Doe,{AD_USERS}",
                                            f"cn=Ann Lee,{AD_USERS}"]),
        lp.ad_group("staff", [f"cn=John Doe,{AD_USERS}", jane]),
        # the same CN twice, in two OUs: a CN alone cannot say which
        lp.ad_group("dup", [f"cn=Ann Lee,{AD_USERS}"]),
        (f"ou=other,{ADS}", {"objectClass": ["organizationalUnit"], "ou": ["other"]}),
        (f"cn=dup,ou=other,{ADS}", lp.ad_group("dup", [f"cn=Ann Lee,{AD_USERS}"])[1]),
    ]
    server = lp.make(lp.AD, tmp_path_factory.mktemp("slapd-ad-act"), entries)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lp.Slapd]:
    need_slapd()
    people = [lp.person("alice", mail="alice@example.org"),
              lp.person("bob", mail="bob@example.org"),
              lp.person("carol", mail="carol@example.org",
                        pwdAccountLockedTime=["20261119080000Z"]),  # a lockout, not a lock
              lp.person("frank", mail="frank@example.org"),
              lp.person("o(brien)*", mail="obrien@example.org")]
    server = lp.make(lp.OPENLDAP, tmp_path_factory.mktemp("slapd-ol-act"), people, tls=True)
    server.start()
    try:
        # over LDAP, after start: the memberof overlay fills memberOf on writes only
        lp.add_entries(server, [
            lp.group_of_names("social-x-publishers", [f"uid={u},{OL_PEOPLE}" for u in (
                "alice", "bob", "frank", "o(brien)*")]),
            lp.group_of_names("interns", [f"uid=alice,{OL_PEOPLE}"])])
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nopp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lp.Slapd]:
    need_slapd()
    people = [lp.person("dan", objectClass=["inetOrgPerson", "extensibleObject"]),
              lp.person("eve")]  # inetOrgPerson alone does not allow nsAccountLock
    server = lp.make(NO_PPOLICY, tmp_path_factory.mktemp("slapd-nopp-act"), people)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WRITER_ENV, lp.WRITER_PW)
    monkeypatch.setenv(READER_ENV, lp.READER_PW)


def connector(server: lp.Slapd, base: Path, *, as_reader: bool = False,
              **raw: Any) -> LdapDirectory:
    """A connector as the config file would make it, bound as the writer by default."""
    preset = "openldap" if server.variant.suffix == OLS else "active_directory"
    body = {"urls": [server.url], "tls": "none", "preset": preset,
            "base_dns": [OL_PEOPLE if preset == "openldap" else AD_USERS],
            **({"password_policy": lp.LOCKOUT_POLICY} if server.variant is lp.OPENLDAP
               else {}),
            "bind_dn": server.reader_dn if as_reader else server.writer_dn,
            "password_env": READER_ENV if as_reader else WRITER_ENV, **raw}
    settings = apply(LdapDirectory.options, body, "sources.ldap")
    LdapDirectory.validate(settings, "sources.ldap")
    conn = LdapDirectory("ldap", settings, base)
    conn.prepare(SourceContext(now=NOW))
    return conn


def account(server: lp.Slapd, base: Path, login: str) -> DirectoryAccount:
    """The account as a fresh connector reads it from the server."""
    [found] = [r for r in connector(server, base).fetch()
               if isinstance(r, DirectoryAccount) and r.login == login]
    return found


def ldapsearch(server: lp.Slapd, dn: str, attr: str) -> list[str]:
    """``attr`` of the entry ``dn`` as the OpenLDAP command-line client reads it."""
    tool = lp.tool("ldapsearch")
    assert tool is not None
    done = subprocess.run(
        [tool, "-x", "-LLL", "-o", "ldif-wrap=no", "-H", server.url, "-D", server.reader_dn,
         "-w", lp.READER_PW, "-s", "base", "-b", dn, "(objectClass=*)", attr],
        capture_output=True, text=True, check=True, timeout=30)
    prefix = f"{attr.lower()}: "
    return [line[len(prefix):] for line in done.stdout.splitlines()
            if line.lower().startswith(prefix)]


def fails(call: Any, action: Action) -> str:
    """The SourceError ``call(action)`` raises; never with a password in it."""
    with pytest.raises(SourceError) as info:
        call(action)
    message = str(info.value)
    assert not any(secret in message for secret in SECRETS), message
    return message


def remove(user: str, group: str) -> Action:
    return Action.make("group_remove", user=user, group=group)


def disable(user: str) -> Action:
    return Action.make("disable", user=user)


def test_declared_actions() -> None:
    assert LdapDirectory.actions == frozenset({"group_remove", "disable"})


# ---- Active Directory -------------------------------------------------------------------
def test_ad_group_remove_by_cn(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path)
    action = remove("jdoe", "Social-X-Publishers")  # the login as governor stores it
    assert conn.is_done(action) is False
    assert conn.perform(action) == f"removed cn=John Doe,{AD_USERS} from {AD_PUBLISHERS}"
    # re-read from the server: John is gone, Ann is still there
    assert ldapsearch(ad, AD_PUBLISHERS, "member") == [f"cn=Ann Lee,{AD_USERS}"]
    assert conn.is_done(action) is True
    # resumed after a crash between the write and its journal entry: nothing to do again
    assert conn.perform(action) == (f"cn=John Doe,{AD_USERS} is not a member of "
                                    f"{AD_PUBLISHERS}")
    assert ldapsearch(ad, AD_STAFF, "member")[0] == f"cn=John Doe,{AD_USERS}"  # untouched


def test_ad_group_remove_by_dn_with_an_escaped_comma(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path)
    # the group by its DN in another case; the member's DN holds a backslash, which the
    # membership filter must escape
    action = remove("JANE.DOE", AD_STAFF.upper())
    assert conn.is_done(action) is False
    # both DNs as the server spells them (slapd writes the comma as \2C)
    assert conn.perform(action) == f"removed cn=Doe\\2C Jane,{AD_USERS} from {AD_STAFF}"
    assert ldapsearch(ad, AD_STAFF, "member") == [f"cn=John Doe,{AD_USERS}"]
    assert conn.is_done(action) is True


def test_ad_disable_sets_the_accountdisable_bit(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path)
    action = disable("kpark")
    assert account(ad, tmp_path, "kpark").status is DirectoryStatus.ACTIVE
    assert conn.is_done(action) is False
    assert conn.perform(action) == (f"set userAccountControl of cn=Kim Park,{AD_USERS} to "
                                    "66050 (was 66048)")
    assert ldapsearch(ad, f"cn=Kim Park,{AD_USERS}", "userAccountControl") == ["66050"]
    assert account(ad, tmp_path, "kpark").status is DirectoryStatus.DISABLED
    assert conn.is_done(action) is True
    assert conn.perform(action) == (f"cn=Kim Park,{AD_USERS} is already disabled "
                                    "(userAccountControl 66050)")


def test_a_disabled_account_is_found_though_the_filter_selects_enabled_ones(
        ad: lp.Slapd, tmp_path: Path) -> None:
    # once disabled, the account leaves this filter: is_done must still find it, or a
    # resumed offboarding would fail a step that is done
    enabled = "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
    conn = connector(ad, tmp_path, user_filter=enabled)
    action = disable("lchan")
    assert conn.is_done(action) is False
    assert conn.perform(action).endswith("to 514 (was 512)")
    assert conn.find_accounts("lchan") == []  # the read side no longer selects it
    assert conn.is_done(action) is True


def test_ad_group_named_ambiguously_or_not_a_group(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path)
    assert fails(conn.is_done, remove("alee", "dup")) == (
        f"ldap: group 'dup' is ambiguous: 2 groups have cn 'dup' (cn=dup,{AD_GROUPS}; "
        f"cn=dup,ou=other,{ADS}): name it by its DN")
    by_dn = remove("alee", f"cn=dup,ou=other,{ADS}")
    assert conn.perform(by_dn) == f"removed cn=Ann Lee,{AD_USERS} from cn=dup,ou=other,{ADS}"
    assert conn.is_done(by_dn) is True
    assert conn.is_done(remove("alee", f"cn=dup,{AD_GROUPS}")) is False  # the other one
    assert fails(conn.perform, remove("alee", f"cn=Max Roe,{AD_USERS}")) == (
        f"ldap: cn=Max Roe,{AD_USERS} is not a group (no objectClass group)")


def test_ad_escaping_and_unknown_names(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path)
    assert fails(conn.perform, disable("*)(sAMAccountName=*")) == (
        f"ldap: no such user '*)(sAMAccountName=*': no entry under {AD_USERS} has "
        "sAMAccountName '*)(sAMAccountName=*'")
    assert fails(conn.is_done, disable("*")).startswith("ldap: no such user '*': ")
    assert fails(conn.perform, remove("alee", "Social-*")) == (
        f"ldap: no such group 'Social-*': no group under {ADS} has cn 'Social-*'")
    assert fails(conn.perform, remove("alee", f"cn=Nobody,{AD_GROUPS}")) == (
        f"ldap: no such group cn=Nobody,{AD_GROUPS} (on {ad.url})")


def test_ad_read_only_bind_is_refused_and_nothing_changes(ad: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ad, tmp_path, as_reader=True)
    action = disable("mroe")
    assert conn.is_done(action) is False  # reading is allowed
    assert fails(conn.perform, action) == (
        f"ldap: {ad.url} refused to set userAccountControl of cn=Max Roe,{AD_USERS} to 514: "
        f"the bind DN {ad.reader_dn} lacks write rights on cn=Max Roe,{AD_USERS} "
        "(insufficientAccessRights)")
    assert conn.is_done(action) is False
    assert ldapsearch(ad, f"cn=Max Roe,{AD_USERS}", "userAccountControl") == ["512"]


# ---- OpenLDAP ---------------------------------------------------------------------------
def test_openldap_group_remove_updates_memberof(ol: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ol, tmp_path)
    action = remove("frank", "social-x-publishers")
    assert ldapsearch(ol, f"uid=frank,{OL_PEOPLE}", "memberOf") == [OL_PUBLISHERS]
    assert conn.is_done(action) is False
    assert conn.perform(action) == f"removed uid=frank,{OL_PEOPLE} from {OL_PUBLISHERS}"
    # the overlay took memberOf off the person; a fresh read sees no group
    assert ldapsearch(ol, f"uid=frank,{OL_PEOPLE}", "memberOf") == []
    assert account(ol, tmp_path, "frank").groups == ()
    assert f"uid=frank,{OL_PEOPLE}" not in ldapsearch(ol, OL_PUBLISHERS, "member")
    assert conn.is_done(action) is True
    assert account(ol, tmp_path, "bob").groups == ("social-x-publishers",)  # untouched


def test_openldap_over_verified_ldaps_with_failover(ol: lp.Slapd, tmp_path: Path) -> None:
    assert ol.tls is not None
    closed = f"ldaps://127.0.0.1:{lp.free_port()}"
    conn = connector(ol, tmp_path, urls=[closed, ol.ldaps_url], tls="ldaps",
                     ca_file=str(ol.tls.ca_file))
    action = remove("bob", OL_PUBLISHERS)
    assert conn.is_done(action) is False
    assert conn.perform(action) == f"removed uid=bob,{OL_PEOPLE} from {OL_PUBLISHERS}"
    assert conn.is_done(action) is True
    assert ldapsearch(ol, f"uid=bob,{OL_PEOPLE}", "memberOf") == []
    down = connector(ol, tmp_path, urls=[closed], tls="ldaps", ca_file=str(ol.tls.ca_file))
    assert fails(down.perform, action) == (
        f"ldap: no LDAP server reachable: {closed}: connection refused")


def test_openldap_last_member_of_a_group_of_names(ol: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ol, tmp_path)
    action = remove("alice", "interns")
    assert fails(conn.perform, action) == (
        f"ldap: {ol.url} refused to remove uid=alice,{OL_PEOPLE} from {OL_INTERNS}: it is "
        "the group's last member and the group's object class requires one "
        "(objectClassViolation: object class 'groupOfNames' requires attribute 'member')")
    assert conn.is_done(action) is False  # failed, never done
    assert sorted(ldapsearch(ol, f"uid=alice,{OL_PEOPLE}", "memberOf")) == [
        OL_INTERNS, OL_PUBLISHERS]


def test_openldap_escaping(ol: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ol, tmp_path)
    for login in ("*)(uid=*", "*", "alice)(|(uid=*"):
        assert fails(conn.perform, remove(login, "social-x-publishers")) == (
            f"ldap: no such user {login!r}: no entry under {OL_PEOPLE} has uid {login!r}")
    for group in ("*", "social-x-*", "x)(cn=*"):
        assert fails(conn.is_done, remove("alice", group)) == (
            f"ldap: no such group {group!r}: no groupOfNames under {OLS} has cn {group!r}")
    # metacharacters in a real login are matched literally
    literal = remove("o(brien)*", "social-x-publishers")
    assert conn.is_done(literal) is False
    assert conn.perform(literal) == (f"removed uid=o(brien)*,{OL_PEOPLE} from "
                                     f"{OL_PUBLISHERS}")
    assert conn.is_done(literal) is True
    members = ldapsearch(ol, OL_PUBLISHERS, "member")
    assert f"uid=o(brien)*,{OL_PEOPLE}" not in members
    assert f"uid=alice,{OL_PEOPLE}" in members


def test_openldap_disable_with_ppolicy(ol: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ol, tmp_path)
    for login, was in (("carol", " (was 20261119080000Z)"), ("frank", "")):
        action = disable(login)
        # a lockout (a timestamp) lifts by itself: not disabled yet
        assert conn.is_done(action) is False, login
        assert conn.perform(action) == (f"set pwdAccountLockedTime of uid={login},"
                                        f"{OL_PEOPLE} to 000001010000Z{was}")
        assert ldapsearch(ol, f"uid={login},{OL_PEOPLE}", "pwdAccountLockedTime") == [
            "000001010000Z"]
        assert account(ol, tmp_path, login).status is DirectoryStatus.DISABLED
        assert conn.is_done(action) is True
        assert conn.perform(action) == (f"uid={login},{OL_PEOPLE} is already disabled "
                                        "(pwdAccountLockedTime 000001010000Z)")


@pytest.fixture(scope="module")
def pp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lp.Slapd]:
    """OpenLDAP whose ppolicy overlay enforces the default policy (pwdLockout TRUE); some
    entries name a policy of their own that does not lock."""
    need_slapd()
    nolock = {"pwdPolicySubentry": [lp.NO_LOCKOUT_POLICY]}
    people = [lp.person("gina", userPassword=["gina-pw"]),
              lp.person("hank", userPassword=["hank-pw"], **nolock),
              lp.person("ivan", pwdAccountLockedTime=[PERMANENT], **nolock),
              lp.person("jade", pwdAccountLockedTime=[PERMANENT],
                        pwdPolicySubentry=[f"cn=gone,ou=policies,{OLS}"]),
              lp.person("kira", pwdAccountLockedTime=[PERMANENT])]
    server = lp.make(lp.OPENLDAP, tmp_path_factory.mktemp("slapd-ppolicy"), people)
    server.start()
    try:
        yield server
    finally:
        server.stop()


PERMANENT = "000001010000Z"


def binds(server: lp.Slapd, uid: str, password: str) -> bool:
    """Can ``uid`` log in? Asked of the server, whatever governor says."""
    conn = ldap3.Connection(ldap3.Server(server.url), f"uid={uid},{OL_PEOPLE}", password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def test_openldap_disable_locks_only_under_a_policy_that_enforces_it(
        pp: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(pp, tmp_path)
    # under the default policy (pwdLockout TRUE) the lock is real: the login stops working
    assert binds(pp, "gina", "gina-pw")
    assert conn.perform(disable("gina")).startswith("set pwdAccountLockedTime of uid=gina")
    assert not binds(pp, "gina", "gina-pw") and conn.is_done(disable("gina")) is True
    assert account(pp, tmp_path, "gina").status is DirectoryStatus.DISABLED
    # under a policy without pwdLockout the server would ignore it: refused, not "done"
    assert fails(conn.perform, disable("hank")) == (
        f"ldap: pwdAccountLockedTime would not lock uid=hank,{OL_PEOPLE}: its password "
        f"policy {lp.NO_LOCKOUT_POLICY} does not set pwdLockout TRUE (slapo-ppolicy(5)); "
        "disable it another way, then record the step done")
    assert binds(pp, "hank", "hank-pw") and conn.is_done(disable("hank")) is False
    assert ldapsearch(pp, f"uid=hank,{OL_PEOPLE}", "pwdAccountLockedTime") == []
    # an entry the attribute does not lock is as active as it is: a leaver's finding stays
    assert account(pp, tmp_path, "ivan").status is DirectoryStatus.ACTIVE
    assert conn.is_done(disable("ivan")) is False
    # its own policy gone: nothing locks it (the overlay finds no policy to apply)
    assert account(pp, tmp_path, "jade").status is DirectoryStatus.ACTIVE
    assert account(pp, tmp_path, "kira").status is DirectoryStatus.DISABLED


def test_openldap_lock_without_a_policy_governor_can_read(pp: lp.Slapd, tmp_path: Path
                                                           ) -> None:
    # the overlay's default sits in cn=config: without password_policy nothing says it locks
    conn = connector(pp, tmp_path, password_policy="")
    kira = [r for r in conn.fetch() if isinstance(r, DirectoryAccount) and r.login == "kira"]
    assert kira[0].status is DirectoryStatus.ACTIVE
    assert fails(conn.perform, disable("gina")).startswith(
        f"ldap: pwdAccountLockedTime would not lock uid=gina,{OL_PEOPLE}: no password policy "
        "applies to it that governor can read (name the ppolicy overlay's default in "
        "password_policy)")
    wrong = connector(pp, tmp_path, password_policy=f"cn=defualt,ou=policies,{OLS}")
    with pytest.raises(SourceError, match=f"password_policy cn=defualt,ou=policies,{OLS} "
                                          "does not exist"):
        list(wrong.fetch())
    with pytest.raises(OptionError, match="'default policy' is not a DN"):
        connector(pp, tmp_path, password_policy="default policy")


def test_a_group_named_like_another_group_s_dn_is_acted_on_by_its_own(
        pp: lp.Slapd, tmp_path: Path) -> None:
    # review: a group whose CN is the text "cn=admins,ou=groups,..." was read as that
    # name, which group_remove then took for the admins group's DN: it acted there, found
    # the leaver absent and called the step done, the leaver still in the crafted group
    admins = f"cn=admins,ou=groups,{OLS}"
    crafted = "cn=" + admins.replace("=", "\\3D").replace(",", "\\2C") + f",ou=groups,{OLS}"
    lp.add_entries(pp, [
        lp.group_of_names("admins", [f"uid=hank,{OL_PEOPLE}", f"uid=ivan,{OL_PEOPLE}"]),
        (crafted, {"objectClass": ["groupOfNames"], "cn": [admins],
                   "member": [f"uid=hank,{OL_PEOPLE}", f"uid=jade,{OL_PEOPLE}"]})])
    conn = connector(pp, tmp_path)
    [hank] = [r for r in conn.fetch() if isinstance(r, DirectoryAccount) and r.login == "hank"]
    named = [g for g in hank.groups if g != "admins"]
    assert sorted(hank.groups) == sorted(["admins", named[0]]) and named[0] != admins
    assert conn.perform(remove("hank", named[0])).startswith(f"removed uid=hank,{OL_PEOPLE}")
    assert ldapsearch(pp, admins, "member") == [f"uid=hank,{OL_PEOPLE}", f"uid=ivan,{OL_PEOPLE}"]
    assert conn.is_done(remove("hank", named[0])) is True


def test_a_login_given_to_someone_else_since_is_not_acted_on(pp: lp.Slapd,
                                                             tmp_path: Path) -> None:
    lp.add_entries(pp, [lp.person("lena", employeeNumber=["E777"]),
                        lp.group_of_names("lena-team", [f"uid=lena,{OL_PEOPLE}"])])
    conn = connector(pp, tmp_path)
    for action in [Action.make("disable", user="lena", person="E100"),
                   Action.make("group_remove", user="lena", group="lena-team", person="E100")]:
        for call in (conn.is_done, conn.perform):
            assert fails(call, action) == (
                "ldap: lena is now the account of employee E777, not E100 (the login was "
                "given to someone else since the case opened): not acted on")
    assert ldapsearch(pp, f"uid=lena,{OL_PEOPLE}", "pwdAccountLockedTime") == []
    assert conn.perform(Action.make("disable", user="lena", person="e777")).startswith(
        f"set pwdAccountLockedTime of uid=lena,{OL_PEOPLE}")


def test_openldap_read_only_and_anonymous_binds_are_refused(ol: lp.Slapd,
                                                           tmp_path: Path) -> None:
    action = remove("alice", "social-x-publishers")
    reader = connector(ol, tmp_path, as_reader=True)
    assert fails(reader.perform, action) == (
        f"ldap: {ol.url} refused to remove uid=alice,{OL_PEOPLE} from {OL_PUBLISHERS}: the "
        f"bind DN {ol.reader_dn} lacks write rights on {OL_PUBLISHERS} "
        "(insufficientAccessRights)")
    anonymous = connector(ol, tmp_path, bind_dn="", password_env="")
    assert fails(anonymous.perform, disable("alice")) == (
        f"ldap: {ol.url} refused to set pwdAccountLockedTime of uid=alice,{OL_PEOPLE} to "
        "000001010000Z: an anonymous bind cannot write; set bind_dn to an account with "
        "write rights (strongerAuthRequired: modifications require authentication)")
    assert reader.is_done(action) is False and reader.is_done(disable("alice")) is False
    wrong = connector(ol, tmp_path, password_env="GOVERNOR_TEST_LDAP_WRONG")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVERNOR_TEST_LDAP_WRONG", "Tr0ub4dor&3-wrong")
        message = fails(wrong.perform, action)
    assert message == (f"ldap: {ol.url} refused the bind as {ol.writer_dn}: invalid "
                       "credentials (wrong password, or the account is locked, disabled or "
                       "expired)")
    assert "Tr0ub4dor&3-wrong" not in message


def test_openldap_disable_falls_back_to_nsaccountlock(nopp: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(nopp, tmp_path)
    action = disable("dan")
    assert conn.is_done(action) is False
    assert conn.perform(action) == f"set nsAccountLock of uid=dan,{OL_PEOPLE} to TRUE"
    assert ldapsearch(nopp, f"uid=dan,{OL_PEOPLE}", "nsAccountLock") == ["TRUE"]
    assert account(nopp, tmp_path, "dan").status is DirectoryStatus.DISABLED
    assert conn.is_done(action) is True
    # an entry whose object classes do not allow the attribute: said so, not done
    assert fails(conn.perform, disable("eve")) == (
        f"ldap: {nopp.url} refused to set nsAccountLock of uid=eve,{OL_PEOPLE} to TRUE: the "
        "entry's object classes do not allow nsAccountLock (objectClassViolation: "
        "attribute 'nsAccountLock' not allowed)")
    assert conn.is_done(disable("eve")) is False
    # neither lock attribute in the schema: nothing to write
    odd = connector(nopp, tmp_path, attributes={"lock_flag": "inetUserStatus"})
    assert fails(odd.is_done, disable("dan")) == (
        f"ldap: cannot disable accounts: the schema of {nopp.url} has neither "
        "pwdAccountLockedTime nor inetUserStatus (load the ppolicy module for "
        "pwdAccountLockedTime)")


def test_starttls_to_a_server_without_tls_is_refused_in_words(nopp: lp.Slapd,
                                                              tmp_path: Path) -> None:
    # review: ldap3's raw "LDAPProtocolErrorResult - 2 - protocolError - ..." was shown
    conn = connector(nopp, tmp_path, tls="starttls")
    message = fails(conn.perform, disable("dan"))
    assert message.startswith(f"ldap: no LDAP server reachable: {nopp.url}: the server "
                              "refused StartTLS ("), message


def test_actions_it_cannot_do_or_targets_missing(ol: lp.Slapd, tmp_path: Path) -> None:
    conn = connector(ol, tmp_path)
    assert fails(conn.perform, Action.make("suspend", user="alice")) == (
        "ldap: cannot suspend: an LDAP directory can disable or group_remove")
    assert fails(conn.is_done, Action.make("group_remove", user="alice")) == (
        "ldap: group_remove names no group")
    assert fails(conn.perform, Action.make("disable", user=" ")) == (
        "ldap: disable names no user")
