"""LDAP / Active Directory directory (ldap3): accounts, their status and groups.

One paged subtree search per base DN reads every user the filter selects, asking only
for the attributes the mapping needs. Two presets name those attributes:

- ``active_directory``: sAMAccountName, mail (else the primary ``SMTP:`` proxyAddress),
  employeeID, memberOf, lastLogonTimestamp; disabled when userAccountControl has the
  ACCOUNTDISABLE bit (2) or accountExpires lies in the past (0 and 9223372036854775807
  both mean never). find_accounts also looks a person up by ``smtp:`` alias.
- ``openldap``: inetOrgPerson's uid, mail, employeeNumber, memberOf (the memberof
  overlay); locked by ppolicy's pwdAccountLockedTime, disabled by nsAccountLock (which
  389-DS and FreeIPA enforce; OpenLDAP itself does not).

pwdAccountLockedTime locks an account only where the ppolicy overlay applies a policy
with pwdLockout TRUE to it (slapo-ppolicy(5)); elsewhere the server ignores it and the
account still binds. So it counts, when read and when written to disable, only under
such a policy: the entry's own pwdPolicySubentry, else ``password_policy`` (the
overlay's default, which sits in cn=config where governor does not read). An entry it
does not lock is as active as its other attributes say.

``attributes`` overrides either per field; an empty name turns a field off. LDAP knows
nothing of MFA, so accounts carry mfa = None (unknown), never "no factors".

Offboarding actions (the bind account then needs write rights), each on one connection
with the same TLS, failover and bind as a read:

- ``group_remove`` (user, group): delete the user's DN from the group's ``member``. The
  user is the login as governor stores it, found by an escaped search of the base DNs;
  the group is a DN, or a CN searched for (escaped) in the directories the base DNs
  belong to (the root DSE's naming contexts). Done when a base search of the group for
  ``(member=<user DN>)`` finds nothing: the server matches the DN, so spelling and case
  do not matter and a group of any size is never read whole (AD ranges ``member``).
- ``disable`` (user): Active Directory sets the ACCOUNTDISABLE bit of userAccountControl;
  OpenLDAP writes pwdAccountLockedTime = 000001010000Z (an administrator's lock) when the
  schema has it (ppolicy), and refuses (a failed step, saying why) when no policy with
  pwdLockout TRUE applies to the entry; nsAccountLock = TRUE only where the schema has
  no pwdAccountLockedTime (389-DS, FreeIPA). Done when that holds.

Faults are SourceErrors (the run goes on with this source failed and its last good data
kept): no server reachable, TLS not trusted, bind refused, a size or admin limit hit,
a value that is not UTF-8. A search that ends early is never taken for a complete one:
every page's result code is checked before its entries are handed on, because ldap3's
own paged_search generator ends quietly on sizeLimitExceeded. The password comes only
from an environment variable or a file and never appears in a message.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import ssl
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import ldap3
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from governor.errors import SourceError
from governor.lookalike import fold
from governor.options import REQUIRED, Option, OptionError
from governor.records import DirectoryAccount, DirectoryStatus, Grant, SourceKind
from governor.roles import Role
from governor.sources._common import private_file
from governor.sources._groups import GROUP_GRANTS, GroupGrants
from governor.sources._groups import validate as validate_group_grants
from governor.sources.base import (
    Action,
    Check,
    Connector,
    check_env_name,
    env_named,
    held_by_another,
    register,
)

FIELDS = ("login", "email", "aliases", "employee_id", "groups", "manager", "last_login",
          "disabled_flags", "expires", "locked_time", "lock_flag")
PRESETS: dict[str, dict[str, str]] = {
    "active_directory": {
        "login": "sAMAccountName", "email": "mail", "aliases": "proxyAddresses",
        "employee_id": "employeeID", "groups": "memberOf", "manager": "manager",
        # lastLogonTimestamp is replicated (up to ~14 days behind); lastLogon is exact
        # but per domain controller, so it would need every DC read and the maximum
        "last_login": "lastLogonTimestamp", "disabled_flags": "userAccountControl",
        "expires": "accountExpires", "locked_time": "", "lock_flag": ""},
    "openldap": {
        "login": "uid", "email": "mail", "aliases": "", "employee_id": "employeeNumber",
        "groups": "memberOf", "manager": "manager", "last_login": "", "disabled_flags": "",
        "expires": "", "locked_time": "pwdAccountLockedTime", "lock_flag": "nsAccountLock"},
}
# objectCategory=person would be AD's cheapest test, but it is a DN-valued attribute
# other servers holding the AD schema cannot match on; objectClass works everywhere.
DEFAULT_FILTER = {"active_directory": "(&(objectClass=user)(!(objectClass=computer)))",
                  "openldap": "(objectClass=inetOrgPerson)"}
UNREAD: frozenset[str] = frozenset()  # every mapped attribute is read
PAGED_RESULTS = "1.2.840.113556.1.4.319"
# Active Directory's application partitions, referred to by every search of a domain's
# root: DNS zones, no users
AD_PARTITIONS = frozenset({("dc", "domaindnszones"), ("dc", "forestdnszones")})
UF_ACCOUNTDISABLE = 0x2
NEVER = frozenset({0, 0x7FFFFFFFFFFFFFFF})  # accountExpires: both mean "does not expire"
FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
PERMANENT_LOCK = "000001010000Z"  # ppolicy: locked by an administrator, not by lockout
POLICY_ENTRY = "pwdPolicySubentry"  # operational: returned only when asked for by name
GROUP_CLASS = {"active_directory": "group", "openldap": "groupOfNames"}
MEMBER = "member"  # AD groups and groupOfNames alike
TRUE_WORDS = frozenset({"true", "yes", "1"})
_SCHEMA_NAME = re.compile(r"\bNAME\s+(\([^)]*\)|'[^']*')", re.IGNORECASE)
_GENERALIZED = re.compile(r"^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)?(\d\d)?(?:[.,]\d+)?(Z|[+-]\d{4})?$")


class _Unreachable(Exception):
    """Every URL failed before a bind: why, one per URL."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("no LDAP server reachable: " + "; ".join(reasons))


@register
class LdapDirectory(Connector):
    type = "ldap_directory"
    remote = True
    kind = SourceKind.DIRECTORY
    grant_options = ("group_grants",)
    description = "LDAP or Active Directory (ldap3): accounts, status, groups"
    actions = frozenset({"group_remove", "disable"})
    options = {
        "urls": Option("list[str]", REQUIRED, "Server URLs, tried in order (failover): "
                       "ldaps://host:636 for tls = ldaps, ldap://host:389 otherwise.",
                       example=["ldaps://dc1.corp.example:636", "ldaps://dc2.corp.example:636"]),
        "bind_dn": Option("str", "", "DN to bind as; empty binds anonymously.",
                          example="CN=svc-governor,OU=Service Accounts,DC=corp,DC=example"),
        "password_env": Option("str", "", "Name of the environment variable holding the bind "
                               "password (the password itself is never in this file).",
                               example="GOVERNOR_LDAP_PASSWORD"),
        "password_file": Option("str", "", "File holding the bind password (relative to the "
                                "config file), instead of password_env."),
        "base_dns": Option("list[str]", REQUIRED, "Subtrees searched for users.",
                           example=["OU=Staff,DC=corp,DC=example"]),
        "user_filter": Option("str", "", "LDAP filter selecting users; empty: the preset's ("
                              + "; ".join(f"{k}: {v}" for k, v in DEFAULT_FILTER.items())
                              + ")."),
        "preset": Option("str", "active_directory", "Attribute names and status rules of "
                         "this kind of server.", choices=tuple(PRESETS)),
        "attributes": Option("dict[str,str]", {}, "Override the preset's attribute for a "
                             "field (an empty name turns it off). Fields: "
                             + ", ".join(FIELDS) + ".", choices=FIELDS,
                             example={"login": "userPrincipalName"}),
        "tls": Option("str", "ldaps", "ldaps (TLS from the first byte), starttls (upgrade "
                      "an ldap:// connection) or none (plain text: only for tests on "
                      "loopback).", choices=("ldaps", "starttls", "none")),
        "ca_file": Option("str", "", "PEM file of the CA(s) that issued the servers' "
                          "certificates (relative to the config file); empty: the system's."),
        "tls_verify": Option("bool", True, "Verify the server certificate and host name. "
                             "Turning this off lets anyone on the path read the password."),
        "page_size": Option("int", 500, "Entries per page of the paged search (Active "
                            "Directory serves at most 1000).", min=1, max=10000),
        "connect_timeout": Option("int", 10, "Seconds to wait for a TCP connection.",
                                  min=1, max=300),
        # whole seconds: ldap3 packs the receive timeout into SO_RCVTIMEO as an integer
        "receive_timeout": Option("int", 60, "Seconds to wait for any one response.",
                                  min=1, max=3600),
        "password_policy": Option(
            "str", "", "DN of the password policy the ppolicy overlay applies to entries with "
            "no pwdPolicySubentry of their own (its ppolicy_default / olcPPolicyDefault). "
            "pwdAccountLockedTime locks an account only under a policy with pwdLockout TRUE, "
            "so governor counts it as a lock, and writes it to disable, only then; empty: "
            "only under an entry's own pwdPolicySubentry.",
            example="cn=default,ou=policies,dc=example,dc=org"),
        "require_email": Option("bool", False, "Fail the source when a user entry has no "
                                "email attribute (by default it is an account without one)."),
        "group_grants": GROUP_GRANTS,
    }

    def __init__(self, name: str, settings: dict[str, Any], base_dir: Path) -> None:
        super().__init__(name, settings, base_dir)
        # password policy DN (lower case) -> whether it sets pwdLockout TRUE, read once
        self._lockout: dict[str, bool] = {}

    @classmethod
    def validate(cls, settings: dict[str, Any], key: str) -> None:
        check_env_name(settings, "password_env", key)  # first: later errors may quote it
        _validate_urls(settings, key)
        if not settings["base_dns"]:
            raise OptionError(f"{key}.base_dns", "name at least one base DN")
        if settings["password_env"] and settings["password_file"]:
            raise OptionError(f"{key}.password_file", "set password_env or password_file, "
                                                      "not both")
        has_password = bool(settings["password_env"] or settings["password_file"])
        if settings["bind_dn"] and not has_password:
            raise OptionError(f"{key}.bind_dn", "a bind DN needs password_env or "
                                                "password_file (never a password here)")
        if has_password and not settings["bind_dn"]:
            raise OptionError(f"{key}.bind_dn", "a password is set but no bind_dn to use it")
        if not settings["attributes"].get("login", "x").strip():
            raise OptionError(f"{key}.attributes.login", "the login attribute cannot be "
                                                         "turned off")
        if settings["tls"] == "none" and settings["ca_file"]:
            raise OptionError(f"{key}.ca_file", "has no effect with tls = none")
        if settings["tls"] == "none" and has_password:
            remote = [u for u in settings["urls"] if not _loopback(urlsplit(u).hostname or "")]
            if remote:
                # the bind is a simple bind: the password crosses the network as it is
                raise OptionError(f"{key}.tls", f"tls = none would send the bind password "
                                  f"in clear text to {remote[0]}: use ldaps or starttls "
                                  "(none is for a test server on this machine)")
        _validate_filter(settings["user_filter"], f"{key}.user_filter")
        policy = settings["password_policy"].strip()
        if policy and not _is_dn(policy):
            raise OptionError(f"{key}.password_policy", f"{policy!r} is not a DN")
        validate_group_grants(settings["group_grants"], f"{key}.group_grants")

    # ---- settings -----------------------------------------------------------------------
    @property
    def fields(self) -> dict[str, str]:
        preset = PRESETS[self.settings["preset"]]
        return {**preset, **{k: v.strip() for k, v in self.settings["attributes"].items()}}

    @property
    def user_filter(self) -> str:
        return self.settings["user_filter"].strip() or DEFAULT_FILTER[self.settings["preset"]]

    def _requested(self) -> list[str]:
        """Only the attributes the mapping reads (never '*': less to send and to parse)."""
        names = [a for f, a in self.fields.items() if a and f not in UNREAD]
        if self.fields["locked_time"]:
            names.append(POLICY_ENTRY)  # whether the lock holds
        return list(dict.fromkeys(names))

    def _password(self) -> str | None:
        s = self.settings
        if s["password_env"]:
            value = os.environ.get(s["password_env"])
            if value is None:
                raise SourceError(f"{self.name}: {env_named(s, 'password_env')} is not set")
            where = env_named(s, "password_env")
        elif s["password_file"]:
            path = (self.base_dir / s["password_file"]).resolve()
            try:
                value = path.read_text(encoding="utf-8-sig").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise SourceError(f"{self.name}: cannot read password_file {path}: "
                                  f"{type(exc).__name__}") from None
            where = f"password_file {path}"
        else:
            return None
        if not value:
            raise SourceError(f"{self.name}: the bind password in {where} is empty")
        return value

    def _tls(self) -> ldap3.Tls | None:
        s = self.settings
        if s["tls"] == "none":
            return None
        ca = str((self.base_dir / s["ca_file"]).resolve()) if s["ca_file"] else None
        if ca is not None and not Path(ca).is_file():
            raise SourceError(f"{self.name}: ca_file {ca} does not exist")
        # CERT_REQUIRED also makes ldap3 match the certificate against the URL's host
        return ldap3.Tls(validate=ssl.CERT_REQUIRED if s["tls_verify"] else ssl.CERT_NONE,
                         ca_certs_file=ca)

    # ---- connection ---------------------------------------------------------------------
    def _connection(self, url: str, password: str | None, write: bool = False
                    ) -> ldap3.Connection:
        s = self.settings
        server = ldap3.Server(url, use_ssl=s["tls"] == "ldaps", tls=self._tls(),
                              get_info=ldap3.NONE, connect_timeout=s["connect_timeout"])
        auth = ldap3.SIMPLE if s["bind_dn"] else ldap3.ANONYMOUS
        return ldap3.Connection(server, user=s["bind_dn"] or None, password=password,
                                authentication=auth, read_only=not write,
                                raise_exceptions=True,
                                receive_timeout=s["receive_timeout"], auto_referrals=False)

    def _reach(self, password: str | None, write: bool = False
               ) -> tuple[ldap3.Connection, str]:
        """The first server, in config order, that accepts a connection (and TLS).

        Failover is done here rather than by an ldap3 ServerPool so that each URL's own
        reason (refused, timed out, certificate not trusted) is in the error."""
        reasons = []
        for url in self.settings["urls"]:
            conn = self._connection(url, password, write)
            try:
                conn.open()
                # ldap3 raises when the server refuses; a False answer is a refusal too,
                # and the bind after it would send the password in clear text
                if self.settings["tls"] == "starttls" and not conn.start_tls():
                    raise lx.LDAPStartTLSError("StartTLS failed: the server did not "
                                               "start TLS")
            except (lx.LDAPException, OSError) as exc:
                reasons.append(f"{url}: {_reach_reason(exc, self.settings, password)}")
                _close(conn)
                continue
            return conn, url
        raise _Unreachable(reasons)

    def _bind(self, conn: ldap3.Connection, url: str, password: str | None) -> None:
        who = self.settings["bind_dn"] or "anonymous"
        try:
            conn.bind()
        except lx.LDAPInvalidCredentialsResult:
            raise SourceError(f"{self.name}: {url} refused the bind as {who}: invalid "
                              "credentials (wrong password, or the account is locked, "
                              "disabled or expired)") from None
        except lx.LDAPOperationResult as exc:
            raise SourceError(f"{self.name}: {url} refused the bind as {who}: "
                              f"{_result_text(exc.description, exc.message)}") from None
        except (lx.LDAPException, OSError) as exc:
            raise SourceError(f"{self.name}: bind as {who} on {url} failed: "
                              f"{_scrub(_io_reason(exc, self.settings), password)}") from None

    def _connect(self, write: bool = False) -> tuple[ldap3.Connection, str]:
        password = self._password()
        try:
            conn, url = self._reach(password, write)
        except _Unreachable as exc:
            raise SourceError(f"{self.name}: {exc}") from None
        try:
            self._bind(conn, url, password)
        except SourceError:
            _close(conn)
            raise
        return conn, url

    # ---- search -------------------------------------------------------------------------
    def _pages(self, conn: ldap3.Connection, url: str, base: str, search_filter: str,
               attributes: list[str], max_pages: int | None = None
               ) -> Iterator[dict[str, Any]]:
        """Every entry of one paged subtree search; any result but success raises.

        Each page's result is checked before its entries are yielded, so a search the
        server cut short (size, time or admin limit) fails instead of looking complete."""
        cookie: bytes | None = None
        page = 0
        while True:
            page += 1
            try:
                conn.search(base, search_filter, ldap3.SUBTREE, attributes=attributes,
                            paged_size=self.settings["page_size"], paged_criticality=True,
                            paged_cookie=cookie)
                result = conn.result
            except lx.LDAPOperationResult as exc:
                result = {"result": exc.result, "description": exc.description,
                          "message": exc.message}
            except (lx.LDAPException, OSError) as exc:
                raise SourceError(f"{self.name}: reading {base} on {url} failed at page "
                                  f"{page}: {_io_reason(exc, self.settings)}") from None
            if result.get("result") != 0:
                raise SourceError(self._search_failure(result, base, url, page))
            for entry in conn.response or ():
                if entry.get("type") == "searchResEntry":
                    yield entry
                elif entry.get("type") == "searchResRef":
                    self._referred(entry, base, url)
            cookie = _cookie(result)
            if not cookie or page == max_pages:
                if cookie:  # tell the server to drop the rest (RFC 2696: size 0)
                    _abandon(conn, base, search_filter, cookie)
                return

    def _referred(self, entry: dict[str, Any], base: str, url: str) -> None:
        """A continuation reference: part of the subtree is held by another server
        (RFC 4511 4.5.3). Not followed, so it fails the read, or that part's accounts
        would read as gone (and close offboarding steps as observed gone); but for the
        application partitions every Active Directory root search refers to (DNS zones,
        configuration), which hold no users, and other domains (a forest root's child
        domains), which are theirs to read."""
        for uri in entry.get("uri") or ():
            dn = _dn_key(unquote(str(uri).partition("://")[2].partition("/")[2]
                                 .partition("?")[0]))
            if dn and (dn[0] in AD_PARTITIONS or dn[0] == ("cn", "configuration")
                       or all(attr == "dc" for attr, _ in dn)):
                # another domain (a forest root's child domain, DC=emea,DC=corp,...)
                # is read as a source of its own, not a part of this one gone missing
                continue
            raise SourceError(f"{self.name}: {url} refers part of {base} to {uri}, which "
                              "governor does not follow (its accounts would read as gone): "
                              "read that server or domain as a source of its own, or leave "
                              "that subtree out of base_dns")

    def _search_failure(self, result: dict[str, Any], base: str, url: str, page: int) -> str:
        code = result.get("result")
        text = _result_text(result.get("description"), result.get("message"))
        where = f"{self.name}: search of {base} on {url}"
        if code == 4:  # sizeLimitExceeded
            return (f"{where} hit the server's size limit at page {page} ({text}): the "
                    "result is incomplete, so none of it is used; raise the limit for the "
                    "bind account (slapd: limits size.prtotal; AD: MaxPageSize/MaxResultSetSize)")
        if code == 3:  # timeLimitExceeded
            return f"{where} hit the server's time limit at page {page}: the result is incomplete"
        if code == 11:  # adminLimitExceeded: slapd says so for a page above size.pr
            return (f"{where} was refused ({text}) with page_size "
                    f"{self.settings['page_size']}: lower page_size")
        if code == 32:
            return f"{where}: base DN {base} does not exist ({text})"
        if code == 12:
            return f"{where}: the server does not support paged results ({text})"
        return f"{where} failed at page {page}: {text}"

    def _entries(self, search_filter: str) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """(dn, raw attributes keyed in lower case) of every entry in every base DN."""
        conn, url = self._connect()
        attributes = self._requested()
        several = len(self.settings["base_dns"]) > 1
        seen_dns: set[str] = set()
        try:
            for base in self.settings["base_dns"]:
                for entry in self._pages(conn, url, base, search_filter, attributes):
                    dn = entry.get("dn", "")
                    if several:  # nested base DNs would return an entry twice
                        if dn.lower() in seen_dns:
                            continue
                        seen_dns.add(dn.lower())
                    raw = entry.get("raw_attributes") or {}
                    yield dn, {k.lower(): list(v) for k, v in raw.items()}
        finally:
            _close(conn)

    # ---- mapping ------------------------------------------------------------------------
    def _now(self) -> datetime:
        context = getattr(self, "context", None)
        return context.now if context is not None else datetime.now(UTC)

    def _account(self, dn: str, raw: dict[str, list[bytes]], now: datetime
                 ) -> tuple[DirectoryAccount, list[tuple[str, str]]]:
        """The account of one entry and its group memberships as (DN, CN) pairs."""
        v = _Values(self.name, dn, raw, self.fields)
        login = v.first("login")
        if login is None:
            raise SourceError(f"{self.name}: entry {dn} has no {self.fields['login']} "
                              "(the login attribute): cannot tell whose account it is")
        email = v.first("email") or _primary_smtp(v.all("aliases"))
        if email is None and self.settings["require_email"]:
            raise SourceError(f"{self.name}: entry {dn} has no {self.fields['email']} "
                              "(require_email is set)")
        memberships = [(g, _cn(g)) for g in v.all("groups")]
        account = DirectoryAccount(
            login=fold(login), status=self._status(v, now),
            email=fold(email) if email else None, employee_id=v.first("employee_id"),
            mfa=None,  # LDAP does not know MFA: unknown, not "none enrolled"
            groups=tuple(dict.fromkeys(cn for _, cn in memberships)),
            last_login=v.instant("last_login"),
            aliases=_aliases(v.all("aliases"), email), manager=v.first("manager"))
        return account, memberships

    def _status(self, v: _Values, now: datetime) -> DirectoryStatus:
        flags = v.integer("disabled_flags")
        if flags is not None and flags & UF_ACCOUNTDISABLE:
            return DirectoryStatus.DISABLED
        expires = v.integer("expires")
        if expires is not None and expires not in NEVER:
            at = _filetime(expires)
            if at is not None and at <= now:
                return DirectoryStatus.DISABLED
        flag = v.first("lock_flag")
        if flag is not None and flag.strip().lower() in TRUE_WORDS:
            return DirectoryStatus.DISABLED
        locked = v.first("locked_time")
        if locked is not None and self._lock_holds(v.raw) is None:
            # an administrator's lock is meant to last; a lockout (a timestamp) may lift
            return (DirectoryStatus.DISABLED if locked.strip() == PERMANENT_LOCK
                    else DirectoryStatus.LOCKED)
        return DirectoryStatus.ACTIVE

    def _lock_holds(self, raw: dict[str, list[bytes]]) -> str | None:
        """None when pwdAccountLockedTime locks this entry, else why it does not."""
        own = _decoded(raw.get(POLICY_ENTRY.lower(), []))
        dn = own[0] if own else self.settings["password_policy"].strip()
        if not dn:
            return ("no password policy applies to it that governor can read (name the "
                    "ppolicy overlay's default in password_policy)")
        cache = self._lockout
        if dn.lower() not in cache:
            conn, url = self._connect()
            try:
                # a policy an entry names that does not exist locks nothing; the configured
                # one missing is a mistake in the config
                found = self._read(conn, url, dn, ["pwdLockout"], None if own else
                                   f"password_policy {dn} does not exist")
            finally:
                _close(conn)
            values = _decoded(found[1].get("pwdlockout", [])) if found else []
            cache[dn.lower()] = bool(values) and values[0].upper() == "TRUE"
        if cache[dn.lower()]:
            return None
        return f"its password policy {dn} does not set pwdLockout TRUE"

    def _group_grants(self, via: GroupGrants, login: str,
                      memberships: Iterable[tuple[str, str]], seen: set[tuple[str, str]]
                      ) -> Iterator[Grant]:
        """The grants a member holds through its groups, each once.

        A mapping may name a group by CN or by full DN (or both), so each membership is
        looked up in both forms; ``held`` keeps one grant per membership and role, and
        ``seen`` the loader's own key (account, via_detail) across memberships."""
        for dn, cn in memberships:
            held: set[tuple[str, Role]] = set()
            for name in dict.fromkeys((dn, cn)):
                for grant in via.grants(login, (name,)):
                    key = (grant.account, name.lower())
                    if (grant.account, grant.role) in held or key in seen:
                        continue
                    held.add((grant.account, grant.role))
                    seen.add(key)
                    yield grant

    # ---- the contract -------------------------------------------------------------------
    def fetch(self) -> Iterator[DirectoryAccount | Grant]:
        via = GroupGrants.parse(self.settings["group_grants"])
        now = self._now()
        logins: set[str] = set()  # logins only, not DNs: 200,000 of them stay small
        for dn, raw in self._entries(self.user_filter):
            account, memberships = self._account(dn, raw, now)
            if account.login in logins:
                raise SourceError(f"{self.name}: entry {dn} has login {account.login!r}, "
                                  "which an earlier entry has too: logins must be unique")
            logins.add(account.login)
            yield account
            if via:
                yield from self._group_grants(via, account.login, memberships, set())

    def find_accounts(self, login_or_email: str) -> list[DirectoryAccount]:
        """The accounts whose login, email or alias is ``login_or_email`` (for offboarding).

        Every value is escaped (RFC 4515) before it reaches the filter, so ``*)(uid=*``
        is looked up literally and matches nobody."""
        value = escape_filter_chars(login_or_email.strip())
        if not value:
            return []
        f = self.fields
        terms = [f"({f['login']}={value})"]
        if f["email"]:
            terms.append(f"({f['email']}={value})")
        if f["aliases"]:
            terms.append(f"({f['aliases']}=smtp:{value})")
        search_filter = f"(&{self.user_filter}(|{''.join(terms)}))"
        now = self._now()
        return [self._account(dn, raw, now)[0] for dn, raw in self._entries(search_filter)]

    # ---- offboarding actions ------------------------------------------------------------
    def is_done(self, action: Action, since: datetime | None = None) -> bool:
        login, group = self._targets(action)
        conn, url = self._connect()
        try:
            if group is not None:
                user_dn, _ = self._user(conn, url, login, [], action)
                group_dn = self._group(conn, url, group)
                return not self._is_member(conn, url, group_dn, user_dn)
            field, attr = self._disable_attribute(conn, url)
            dn, raw = self._user(conn, url, login, _with_policy(field, attr), action)
            return self._disabled(field, dn, raw)
        finally:
            _close(conn)

    def perform(self, action: Action) -> str:
        login, group = self._targets(action)
        conn, url = self._connect(write=True)
        try:
            if group is not None:
                return self._remove_member(conn, url, login, group, action)
            return self._disable(conn, url, login, action)
        finally:
            _close(conn)

    def _targets(self, action: Action) -> tuple[str, str | None]:
        """(login, group or None for disable), or a SourceError naming what is missing."""
        if action.kind not in self.actions:
            raise SourceError(f"{self.name}: cannot {action.kind}: an LDAP directory can "
                              + " or ".join(sorted(self.actions)))
        keys = ("user", "group") if action.kind == "group_remove" else ("user",)
        values = dict(action.target)
        for key in keys:
            if not values.get(key, "").strip():
                raise SourceError(f"{self.name}: {action.kind} names no {key}")
        return values["user"], (values["group"] if action.kind == "group_remove" else None)

    def _remove_member(self, conn: ldap3.Connection, url: str, login: str, group: str,
                       action: Action) -> str:
        user_dn, _ = self._user(conn, url, login, [], action)
        group_dn = self._group(conn, url, group)
        gone = f"{user_dn} is not a member of {group_dn}"
        if not self._is_member(conn, url, group_dn, user_dn):
            return gone
        what = f"remove {user_dn} from {group_dn}"
        try:
            self._modify(conn, url, group_dn, {MEMBER: [(ldap3.MODIFY_DELETE, [user_dn])]},
                         what)
        except _Refused as exc:
            if exc.code == 16:  # noSuchAttribute: someone else removed it meanwhile
                return gone
            if exc.code == 65:  # objectClassViolation: groupOfNames MUST have a member
                raise SourceError(f"{self.name}: {url} refused to {what}: it is the group's "
                                  f"last member and the group's object class requires one "
                                  f"({exc.text})") from None
            raise SourceError(exc.message) from None
        return f"removed {user_dn} from {group_dn}"

    def _disable(self, conn: ldap3.Connection, url: str, login: str, action: Action) -> str:
        field, attr = self._disable_attribute(conn, url)
        dn, raw = self._user(conn, url, login, _with_policy(field, attr), action)
        why = self._lock_holds(raw) if field == "locked_time" else None
        if why is not None:
            # written, it would read as disabled while the account still binds
            raise SourceError(f"{self.name}: {attr} would not lock {dn}: {why} "
                              "(slapo-ppolicy(5)); disable it another way, then record the "
                              "step done")
        if self._disabled(field, dn, raw):
            shown = _Values(self.name, dn, raw, self.fields).first(field)
            return f"{dn} is already disabled ({attr} {shown})"
        if field == "disabled_flags":
            old = self._flags(dn, raw)
            value, was = str(old | UF_ACCOUNTDISABLE), f" (was {old})"
        else:
            value = PERMANENT_LOCK if field == "locked_time" else "TRUE"
            before = _Values(self.name, dn, raw, self.fields).first(field)
            was = f" (was {before})" if before is not None else ""
        what = f"set {attr} of {dn} to {value}"
        try:
            self._modify(conn, url, dn, {attr: [(ldap3.MODIFY_REPLACE, [value])]}, what)
        except _Refused as exc:
            if exc.code == 65:  # objectClassViolation: e.g. nsAccountLock not allowed here
                raise SourceError(f"{self.name}: {url} refused to {what}: the entry's object "
                                  f"classes do not allow {attr} ({exc.text})") from None
            raise SourceError(exc.message) from None
        return f"set {attr} of {dn} to {value}{was}"

    def _disabled(self, field: str, dn: str, raw: dict[str, list[bytes]]) -> bool:
        if field == "disabled_flags":
            return bool(self._flags(dn, raw) & UF_ACCOUNTDISABLE)
        value = _Values(self.name, dn, raw, self.fields).first(field)
        if field == "locked_time":  # a lockout's timestamp lifts by itself: not disabled
            return (value is not None and value.strip() == PERMANENT_LOCK
                    and self._lock_holds(raw) is None)
        return value is not None and value.strip().lower() in TRUE_WORDS

    def _flags(self, dn: str, raw: dict[str, list[bytes]]) -> int:
        flags = _Values(self.name, dn, raw, self.fields).integer("disabled_flags")
        if flags is None:
            raise SourceError(f"{self.name}: entry {dn} has no "
                              f"{self.fields['disabled_flags']}: cannot tell whether it is "
                              "disabled")
        return flags

    def _disable_attribute(self, conn: ldap3.Connection, url: str) -> tuple[str, str]:
        """(field, attribute) that disables an account here: userAccountControl on Active
        Directory; on OpenLDAP ppolicy's lock when the schema has it, else nsAccountLock."""
        f = self.fields
        if self.settings["preset"] == "active_directory":
            if not f["disabled_flags"]:
                raise SourceError(f"{self.name}: cannot disable accounts: attributes."
                                  "disabled_flags is turned off")
            return "disabled_flags", f["disabled_flags"]
        candidates = [(k, f[k]) for k in ("locked_time", "lock_flag") if f[k]]
        if not candidates:
            raise SourceError(f"{self.name}: cannot disable accounts: attributes.locked_time "
                              "and attributes.lock_flag are both turned off")
        known = self._schema_attributes(conn, url)
        for field, attr in candidates:
            if attr.lower() in known:
                return field, attr
        names = [a for _, a in candidates]
        raise SourceError(f"{self.name}: cannot disable accounts: the schema of {url} has "
                          + (f"neither {names[0]} nor {names[1]}" if len(names) > 1
                             else f"no {names[0]}")
                          + (" (load the ppolicy module for pwdAccountLockedTime)"
                             if any(a.lower() == "pwdaccountlockedtime" for a in names)
                             else ""))

    def _schema_attributes(self, conn: ldap3.Connection, url: str) -> frozenset[str]:
        """Every attribute type name (and alias) the server's schema defines, lower case."""
        root = self._read(conn, url, "", ["subschemaSubentry"], "the root DSE is missing")
        where = _decoded(root[1].get("subschemasubentry", [])) if root else []
        if not where:
            raise SourceError(f"{self.name}: {url} does not say where its schema is (no "
                              "subschemaSubentry in the root DSE): cannot tell which lock "
                              "attribute it has")
        schema = self._read(conn, url, where[0], ["attributeTypes"],
                            f"its schema entry {where[0]} does not exist",
                            "(objectClass=subschema)")
        names: set[str] = set()
        for definition in _decoded(schema[1].get("attributetypes", []) if schema else []):
            m = _SCHEMA_NAME.search(definition)
            if m:
                names.update(n.lower() for n in re.findall(r"'([^']+)'", m.group(0)))
        return frozenset(names)

    # ---- finding the user and the group ------------------------------------------------
    def _user(self, conn: ldap3.Connection, url: str, login: str, attributes: list[str],
              action: Action | None = None) -> tuple[str, dict[str, list[bytes]]]:
        """The one entry whose login attribute is ``login`` (escaped: ``*`` is a star).

        The preset's own filter is tried too: once disabled, an account a filter of
        active accounts no longer selects must still be found (is_done after a crash)."""
        attr = self.fields["login"]
        value = escape_filter_chars(login.strip())
        default = DEFAULT_FILTER[self.settings["preset"]]
        users = self.user_filter if self.user_filter == default \
            else f"(|{self.user_filter}{default})"
        search_filter = f"(&{users}({attr}={value}))"
        # the employee id too, to tell a login given to someone else since (an action's
        # person: held_by_another)
        wanted = [*attributes, *([self.fields["employee_id"]] if action is not None
                                 and self.fields["employee_id"] else [])]
        found = self._search(conn, url, self.settings["base_dns"], search_filter,
                             wanted or ["1.1"])
        bases = "; ".join(self.settings["base_dns"])
        if not found:
            raise SourceError(f"{self.name}: no such user {login!r}: no entry under {bases} "
                              f"has {attr} {login!r}")
        if len(found) > 1:
            raise SourceError(f"{self.name}: user {login!r} is ambiguous: {len(found)} "
                              f"entries have {attr} {login!r} ({'; '.join(found)})")
        [(dn, raw)] = found.items()
        if action is not None:
            held_by_another(action, _Values(self.name, dn, raw, self.fields).first(
                "employee_id"), self.name, login)
        return dn, raw

    def _group(self, conn: ldap3.Connection, url: str, group: str) -> str:
        """The DN of the group named by ``group``: a DN as it is, or a CN looked up."""
        cls = GROUP_CLASS[self.settings["preset"]]
        name = group.strip()
        if _is_dn(name):
            entry = self._read(conn, url, name, ["objectClass"], f"no such group {name}")
            dn, raw = entry or (name, {})
            if cls.lower() not in {c.lower() for c in _decoded(raw.get("objectclass", []))}:
                raise SourceError(f"{self.name}: {name} is not a group (no objectClass "
                                  f"{cls})")
            return dn
        bases = self._group_bases(conn, url)
        found = self._search(conn, url, bases, f"(&(objectClass={cls})(cn="
                                               f"{escape_filter_chars(name)}))", ["1.1"])
        if not found:
            raise SourceError(f"{self.name}: no such group {name!r}: no {cls} under "
                              f"{'; '.join(bases)} has cn {name!r}")
        if len(found) > 1:
            raise SourceError(f"{self.name}: group {name!r} is ambiguous: {len(found)} groups "
                              f"have cn {name!r} ({'; '.join(found)}): name it by its DN")
        return next(iter(found))

    def _group_bases(self, conn: ldap3.Connection, url: str) -> list[str]:
        """Where groups are searched for: the naming context (the whole directory) each
        base DN lies in, as the root DSE names them; groups rarely sit under the users."""
        root = self._read(conn, url, "", ["namingContexts", "defaultNamingContext"],
                          "the root DSE is missing")
        raw = root[1] if root else {}
        contexts = _decoded([*raw.get("namingcontexts", []),
                             *raw.get("defaultnamingcontext", [])])
        bases: list[str] = []
        for base in self.settings["base_dns"]:
            key = _dn_key(base)
            above = [c for c in contexts if (k := _dn_key(c)) and key[-len(k):] == k]
            best = max(above, key=lambda c: len(_dn_key(c)), default=None)
            if best is None:  # no root DSE to go by: the domain part (DC=...) of the base
                tail = [i for i, (attr, _) in enumerate(key) if attr == "dc"]
                best = _dn_tail(base, tail[0]) if tail else base
            if _dn_key(best) not in (_dn_key(b) for b in bases):
                bases.append(best)
        return bases

    def _is_member(self, conn: ldap3.Connection, url: str, group_dn: str, user_dn: str
                   ) -> bool:
        """Is ``user_dn`` a value of the group's member? Asked of the server (it matches
        DNs by their meaning), so no group is read whole, however large."""
        found = self._read(conn, url, group_dn, ["1.1"], f"group {group_dn} no longer exists",
                           f"({MEMBER}={escape_filter_chars(user_dn)})")
        return found is not None

    # ---- reading and writing single entries -------------------------------------------
    def _search(self, conn: ldap3.Connection, url: str, bases: Iterable[str],
                search_filter: str, attributes: list[str]
                ) -> dict[str, dict[str, list[bytes]]]:
        """DN -> raw attributes of every entry matching under ``bases``, each once."""
        found: dict[str, dict[str, list[bytes]]] = {}
        seen: set[str] = set()
        for base in bases:
            for entry in self._pages(conn, url, base, search_filter, attributes):
                dn = entry.get("dn", "")
                if dn.lower() not in seen:
                    seen.add(dn.lower())
                    raw = entry.get("raw_attributes") or {}
                    found[dn] = {k.lower(): list(v) for k, v in raw.items()}
        return found

    def _read(self, conn: ldap3.Connection, url: str, dn: str, attributes: list[str],
              missing: str | None, search_filter: str = "(objectClass=*)"
              ) -> tuple[str, dict[str, list[bytes]]] | None:
        """(DN as the server spells it, raw attributes) of one entry by a base search; None
        when the filter does not match it; SourceError ``missing`` when it does not exist
        (None when ``missing`` is None)."""
        where = dn or "the root DSE"
        try:
            conn.search(dn, search_filter, ldap3.BASE, attributes=attributes)
        except lx.LDAPNoSuchObjectResult:
            if missing is None:
                return None
            raise SourceError(f"{self.name}: {missing} (on {url})") from None
        except lx.LDAPOperationResult as exc:
            raise SourceError(f"{self.name}: reading {where} on {url} failed: "
                              f"{_result_text(exc.description, exc.message)}") from None
        except (lx.LDAPException, OSError) as exc:
            raise SourceError(f"{self.name}: reading {where} on {url} failed: "
                              f"{_io_reason(exc, self.settings)}") from None
        for entry in conn.response or ():
            if entry.get("type") == "searchResEntry":
                raw = entry.get("raw_attributes") or {}
                return entry.get("dn") or dn, {k.lower(): list(v) for k, v in raw.items()}
        return None

    def _modify(self, conn: ldap3.Connection, url: str, dn: str,
                changes: dict[str, list[tuple[str, list[str]]]], what: str) -> None:
        """Apply ``changes`` to ``dn``; a refusal raises _Refused with its message made."""
        try:
            conn.modify(dn, changes)
        except lx.LDAPOperationResult as exc:
            raise _Refused(exc.result, _result_text(exc.description, exc.message),
                           self._write_failure(exc, url, dn, what)) from None
        except (lx.LDAPException, OSError) as exc:
            raise SourceError(f"{self.name}: could not {what} on {url}: "
                              f"{_io_reason(exc, self.settings)}") from None

    def _write_failure(self, exc: lx.LDAPOperationResult, url: str, dn: str, what: str
                       ) -> str:
        text = _result_text(exc.description, exc.message)
        where = f"{self.name}: {url} refused to {what}"
        bind_dn = self.settings["bind_dn"]
        if exc.result == 50:  # insufficientAccessRights
            who = f"the bind DN {bind_dn}" if bind_dn else "an anonymous bind"
            return f"{where}: {who} lacks write rights on {dn} ({text})"
        if exc.result == 8:  # strongAuthRequired: slapd's answer to an anonymous write
            if not bind_dn:
                return (f"{where}: an anonymous bind cannot write; set bind_dn to an account "
                        f"with write rights ({text})")
            return f"{where}: the server wants a stronger bind, e.g. over TLS ({text})"
        if exc.result == 10:  # referral: a read-only replica or another domain's DC
            refs = ", ".join(exc.referrals or ()) or "elsewhere"
            return (f"{where}: it refers writes to {refs} (a read-only replica?) ({text}): "
                    "list a writable server first in urls")
        if exc.result == 32:
            return f"{where}: {dn} no longer exists ({text})"
        return f"{where}: {text}"

    def check(self) -> list[Check]:
        return [*private_file(self.base_dir, self.settings["password_file"], "password_file"),
                *self._checks()]

    def _checks(self) -> list[Check]:
        password: str | None = None
        pw_error: str | None = None
        try:
            password = self._password()
        except SourceError as exc:
            pw_error = str(exc)
        try:
            conn, url = self._reach(password)
        except _Unreachable as exc:
            return [Check("reach", False, str(exc))]
        except SourceError as exc:  # a missing ca_file
            return [Check("reach", False, str(exc))]
        checks = [Check("reach", True, f"{url}{_tls_note(self.settings)}")]
        try:
            if pw_error is not None:
                return [*checks, Check("authenticate", False, pw_error)]
            try:
                self._bind(conn, url, password)
            except SourceError as exc:
                return [*checks, Check("authenticate", False, str(exc))]
            checks.append(Check("authenticate", True,
                                f"bound as {self.settings['bind_dn'] or 'anonymous'}"))
            checks.append(self._read_check(conn, url))
            return checks
        finally:
            _close(conn)

    def _read_check(self, conn: ldap3.Connection, url: str) -> Check:
        base = self.settings["base_dns"][0]
        try:
            n = sum(1 for _ in self._pages(conn, url, base, self.user_filter,
                                           self._requested(), max_pages=1))
        except SourceError as exc:
            return Check("read", False, str(exc))
        return Check("read", True, f"{n} user entr{'y' if n == 1 else 'ies'} in the first "
                                   f"page of {base}")


class _Refused(Exception):
    """The server refused a write: its result code and text, and the message to show."""

    def __init__(self, code: int, text: str, message: str) -> None:
        super().__init__(message)
        self.code, self.text, self.message = code, text, message


# ---- values -----------------------------------------------------------------------------
class _Values:
    """One entry's raw values, decoded strictly: a value that is not UTF-8 is an error
    naming the entry and the attribute, never a guess."""

    __slots__ = ("dn", "fields", "raw", "source")

    def __init__(self, source: str, dn: str, raw: dict[str, list[bytes]],
                 fields: dict[str, str]) -> None:
        self.source, self.dn, self.raw, self.fields = source, dn, raw, fields

    def all(self, field: str) -> list[str]:
        attr = self.fields[field]
        if not attr:
            return []
        values = self.raw.get(attr.lower())
        if values is None:
            self._not_ranged(attr)
        out = []
        for value in values or ():
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                raise SourceError(f"{self.source}: entry {self.dn}: attribute {attr} holds a "
                                  f"value that is not UTF-8 ({_hex_preview(value)})") from None
            if text.strip():
                out.append(text.strip())
        return out

    def _not_ranged(self, attr: str) -> None:
        """Active Directory sends an attribute with more values than its MaxValRange
        (1500) in ranges, as "memberOf;range=0-1499", and the rest only when asked: read
        as the plain name it would be empty (a user in no groups). Refused instead."""
        prefix = attr.lower() + ";range="
        ranged = next((k for k in self.raw if k.startswith(prefix)), None)
        if ranged is not None:
            raise SourceError(f"{self.source}: entry {self.dn}: the server sent {attr} in "
                              f"ranges ({ranged}: more values than it sends at once), which "
                              "governor does not read: the entry's values would be "
                              "incomplete")

    def first(self, field: str) -> str | None:
        values = self.all(field)
        return values[0] if values else None

    def integer(self, field: str) -> int | None:
        text = self.first(field)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            raise SourceError(f"{self.source}: entry {self.dn}: attribute "
                              f"{self.fields[field]} is not an integer: {text[:40]!r}") from None

    def instant(self, field: str) -> datetime | None:
        """A FILETIME (AD: 100 ns since 1601) or an LDAP GeneralizedTime, as UTC."""
        text = self.first(field)
        if text is None:
            return None
        if text.lstrip("-").isdigit():
            return _filetime(int(text))
        at = _generalized(text)
        if at is None:
            raise SourceError(f"{self.source}: entry {self.dn}: attribute "
                              f"{self.fields[field]} is not a time: {text[:40]!r}")
        return at


def _aliases(addresses: list[str], email: str | None) -> tuple[str, ...]:
    """proxyAddresses' SMTP addresses other than the primary one, lower-cased (X400:,
    SIP: and other address types are not email)."""
    primary = fold(email or "")
    out = [fold(a[5:].strip()) for a in addresses if a[:5].lower() == "smtp:" and a[5:]]
    return tuple(dict.fromkeys(a for a in out if a != primary))


def _primary_smtp(addresses: list[str]) -> str | None:
    """AD's primary address is the proxyAddresses value with an upper-case ``SMTP:``
    prefix (lower-case ``smtp:`` marks the other aliases): the email when mail is empty."""
    return next((a[5:] for a in addresses if a.startswith("SMTP:") and a[5:]), None)


def _filetime(value: int) -> datetime | None:
    if value <= 0:
        return None  # 0: never logged on / never set
    try:
        return FILETIME_EPOCH + timedelta(microseconds=value // 10)
    except OverflowError:
        return None  # beyond year 9999: as good as never


def _generalized(text: str) -> datetime | None:
    m = _GENERALIZED.match(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    try:
        at = datetime(int(y), int(mo), int(d), int(h), int(mi or 0), int(s or 0), tzinfo=UTC)
    except ValueError:
        return None
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        at -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5]))
    return at


def _with_policy(field: str, attr: str) -> list[str]:
    """The attributes to read to tell whether ``attr`` disables an entry."""
    return [attr, POLICY_ENTRY] if field == "locked_time" else [attr]


@functools.lru_cache(maxsize=65536)
def _cn(dn: str) -> str:
    """The group's CN from its DN (the whole DN when its first RDN is not a CN, or when
    the CN itself reads as a DN: a group named "cn=admins,ou=groups,..." would be taken
    for that other group when acted on, and match a mapping of its DN).

    Cached: a directory has few groups and many members, and parse_dn is slow."""
    try:
        attr, value, _ = parse_dn(dn)[0]
    except (lx.LDAPException, IndexError, ValueError):
        return dn
    if attr.strip().lower() != "cn":
        return dn
    cn = _unescape_dn_value(value)
    return dn if _is_dn(cn) else cn


def _unescape_dn_value(value: str) -> str:
    out = re.sub(r"\\([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)
    return re.sub(r"\\(.)", r"\1", out).strip()


def _is_dn(text: str) -> bool:
    """A DN (cn=...,ou=...) rather than a bare group name."""
    try:
        return bool(parse_dn(text)) and "=" in text
    except (lx.LDAPException, ValueError):
        return False


def _dn_key(dn: str) -> tuple[tuple[str, str], ...]:
    """A DN compared by meaning: attribute names and values without case, escapes or
    spacing (() when it does not parse)."""
    try:
        return tuple((a.strip().lower(), _unescape_dn_value(v).lower())
                     for a, v, _ in parse_dn(dn))
    except (lx.LDAPException, ValueError):
        return ()


def _dn_tail(dn: str, start: int) -> str:
    """The DN from its ``start``-th RDN on (0: the whole DN)."""
    rdns = parse_dn(dn)[start:]
    return ",".join(f"{a}={v}" for a, v, _ in rdns)


def _decoded(values: Iterable[bytes]) -> list[str]:
    return [v.decode("utf-8", "replace") for v in values]


def _hex_preview(value: bytes) -> str:
    return f"{len(value)} bytes starting {value[:12].hex(' ')}"


def _cookie(result: dict[str, Any]) -> bytes | None:
    try:
        cookie = result["controls"][PAGED_RESULTS]["value"]["cookie"]
    except (KeyError, TypeError):
        return None
    return cookie if isinstance(cookie, bytes) and cookie else None


def _abandon(conn: ldap3.Connection, base: str, search_filter: str, cookie: bytes) -> None:
    # only a courtesy: the connection is closed next anyway
    with contextlib.suppress(lx.LDAPException, OSError):
        conn.search(base, search_filter, ldap3.SUBTREE, attributes=["1.1"], paged_size=0,
                    paged_cookie=cookie)


def _close(conn: ldap3.Connection) -> None:
    # closing a connection that never opened, or one the server dropped
    with contextlib.suppress(lx.LDAPException, OSError):
        conn.unbind()


# ---- messages ---------------------------------------------------------------------------
def _exc_text(exc: BaseException) -> str:
    # ldap3 wraps messages in tuples of reprs and can carry a whole certificate dict:
    # keep one short line without the wrapping
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"^[\s(\"',]+|[\s)\"',]+$", "", text) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _reach_reason(exc: BaseException, settings: dict[str, Any], password: str | None) -> str:
    text = str(exc)
    low = text.lower()
    timeout = settings["connect_timeout"]
    if "certificate_verify_failed" in low or "certificate verify failed" in low:
        detail = re.search(r"certificate verify failed: ([^(\]]+)", text)
        what = detail.group(1).strip() if detail else "not trusted"
        source = f"ca_file {settings['ca_file']}" if settings["ca_file"] else "the system CAs"
        return f"TLS certificate not trusted by {source} ({what})"
    if "doesn't match any name" in low or "hostname mismatch" in low:
        return "TLS certificate does not name this host"
    if any(w in low for w in ("wrong version number", "unexpected_eof", "unexpected eof",
                              "eof occurred", "record layer", "packet length too long")):
        return "TLS handshake failed (is the port speaking TLS? check tls and the URL's port)"
    if "starttls failed" in low or settings["tls"] == "starttls" and (
            "unsupported extended operation" in low or "protocolerror" in low):
        # slapd without TLS answers the StartTLS request protocolError: never plain text
        return f"the server refused StartTLS ({_scrub(_exc_text(exc), password)})"
    if "refused" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        # the TCP connect, a TLS handshake or the StartTLS answer: either limit applies
        return (f"no answer in time (connect_timeout {timeout:g}s, receive_timeout "
                f"{settings['receive_timeout']:g}s)")
    if "name or service not known" in low or "nodename nor servname" in low \
            or "temporary failure in name resolution" in low or "invalid server address" in low:
        return "host name not found (DNS)"
    if "ssl" in low or "tls" in low:
        return f"TLS failed: {_scrub(_exc_text(exc), password)}"
    return _scrub(_exc_text(exc), password)


def _io_reason(exc: BaseException, settings: dict[str, Any]) -> str:
    """Why a bound connection failed mid-operation."""
    low = str(exc).lower()
    if "timed out" in low or "timeout" in low:
        return f"no answer within receive_timeout ({settings['receive_timeout']:g}s)"
    if isinstance(exc, lx.LDAPSessionTerminatedByServerError) or "reset by peer" in low \
            or "closed" in low or "terminated" in low:
        return f"the server closed the connection ({_exc_text(exc)})"
    return _exc_text(exc)


def _result_text(description: Any, message: Any) -> str:
    text = str(description or "error")
    return f"{text}: {message}" if message else text


def _scrub(text: str, password: str | None) -> str:
    """Belt and braces: no library message should hold the password, but if one did it
    would go to logs and the run record."""
    if password and len(password) >= 3:
        return text.replace(password, "***")
    return text


def _tls_note(settings: dict[str, Any]) -> str:
    if settings["tls"] == "none":
        return " (no TLS)"
    how = "LDAPS" if settings["tls"] == "ldaps" else "StartTLS"
    if not settings["tls_verify"]:
        return f" ({how}, certificate NOT verified)"
    return f" ({how}, certificate verified)"


# ---- config checks ----------------------------------------------------------------------
def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_urls(settings: dict[str, Any], key: str) -> None:
    urls = settings["urls"]
    if not urls:
        raise OptionError(f"{key}.urls", "name at least one server URL")
    want = "ldaps" if settings["tls"] == "ldaps" else "ldap"
    for i, url in enumerate(urls):
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
            raise OptionError(f"{key}.urls[{i}]", f"{url!r} is not ldap://host[:port] or "
                                                  "ldaps://host[:port]")
        if parts.scheme.lower() != want:
            raise OptionError(f"{key}.urls[{i}]", f"{url!r} does not match tls = "
                                                  f"{settings['tls']!r} (use {want}://)")


def _validate_filter(text: str, key: str) -> None:
    if not text.strip():
        return
    from ldap3.operation.search import parse_filter

    try:
        parse_filter(text, None, True, True, None, False)
    except lx.LDAPException as exc:
        raise OptionError(key, f"not an LDAP filter: {_exc_text(exc)}") from None
