"""The config file (TOML): loading, validation with key paths, and defaults.

Secrets never live here: the database URL may name a password only through the
environment (GOVERNOR_DATABASE_URL overrides ``governor.database``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from governor import clock
from governor.errors import ConfigError
from governor.models import SOURCE_NAME_MAX
from governor.options import REQUIRED, Option, OptionError, _kind, apply

GOVERNOR_OPTIONS: dict[str, Option] = {
    "database": Option("str", "sqlite:///governor.db",
                       "SQLAlchemy URL of the store; a relative sqlite path is relative to this "
                       "file. GOVERNOR_DATABASE_URL overrides it (credentials go there, not "
                       "here)."),
    "report_dir": Option("str", "reports", "Where reports are written (relative to this file)."),
    "org_domains": Option("list[str]", [], "Email domains that are the organisation's own; a "
                          "recovery email outside them counts as personal.",
                          example=["northwind.example"]),
    "timezone": Option("str", "UTC", "IANA time zone of the organisation "
                       "('America/Los_Angeles', 'Europe/Berlin'). An HR end date or a review "
                       "due date is a calendar day that ends at midnight here (rules, the "
                       "offboarding sweep and receipt, exception --expires), and a date-time "
                       "without an offset in a file export is read as this zone's local time "
                       "unless its source sets its own timezone. Stored times stay UTC.",
                       example="America/Los_Angeles"),
}

FEED_GUARD_OPTIONS: dict[str, Option] = {
    "max_drop": Option("float", 0.30, "Stop the run when a source returns this share fewer "
                       "records than at its last good run (0.30 = a drop of more than 30%).",
                       min=0.0, max=1.0),
    "min_baseline": Option("int", 0, "Only compare against a last good run that had at least "
                           "this many records. 0 guards every source: on a small one (a "
                           "Page's eight roles) a drop of a third resolves findings as "
                           "surely as on a large one, so a real one needs --force --reason.",
                           min=0),
    "max_new_leavers": Option("float", 0.05, "Stop the run when more than this share of the "
                              "people who hold access count as having left since the last "
                              "run (0.05 = 5%): an HR export cut in two, or wrong end dates, "
                              "would otherwise open an offboarding case for each of them. A "
                              "real layoff needs --force --reason.", min=0.0, max=1.0),
    "min_new_leavers": Option("int", 10, "Never stop for this many new leavers or fewer (a "
                              "small organisation's ordinary week).", min=0),
    "max_mfa_loss": Option("float", 0.30, "Stop the run when more than this share of a "
                           "directory source's accounts that had an active MFA factor at its "
                           "last read (or at any of its last 7 reads) have less now: none, "
                           "none reported, or only weak factors (SMS, voice, email, security "
                           "question) where they had a strong one; counted while still listed "
                           "and able "
                           "to sign in (0.30 = 30%). An export job that dropped or emptied "
                           "the MFA column would otherwise raise a user-mfa-missing finding "
                           "for everyone who can publish. A real MFA reset for everyone "
                           "needs --force --reason.", min=0.0, max=1.0),
    "min_mfa_loss": Option("int", 10, "Never stop for this many such accounts of one source "
                           "or fewer (people re-enrolling a lost phone).", min=0),
}

REPORT_OPTIONS: dict[str, Option] = {
    "findings_html_max": Option("int", 200, "Finding cards shown per section (and per "
                                "severity) in the HTML report; the JSON and CSV have all.",
                                min=0, max=100_000),
    "matrix_html_max_rows": Option("int", 5000, "Rows of the access matrix shown in the HTML "
                                   "report; the CSV always has all of them.", min=0,
                                   max=1_000_000),
    "keep_days": Option("int", 0, "After each successful run, delete the report files of runs "
                        "that started more than this many days before it (the newest run's "
                        "are always kept; each deletion is audited). 0 keeps every report.",
                        min=0, max=36_500),
}

OFFBOARD_OPTIONS: dict[str, Option] = {
    "allow": Option("list[str]", ["okta.group_remove", "okta.app_unassign",
                                  "okta.sessions_revoke", "okta.suspend",
                                  "ldap.group_remove"],
                    "Automatic steps offboard --execute may take, as CONNECTOR_TYPE.ACTION "
                    "(okta: group_remove, app_unassign, sessions_revoke, suspend, deactivate; "
                    "ldap_directory: group_remove, disable). Anything else is a manual step. "
                    "Okta deactivation is off unless listed."),
    "max_accounts": Option("int", 10, "An offboarding that touches more social accounts than "
                           "this needs --force --reason.", min=1, max=100_000),
    "protected": Option("list[str]", [], "Principals never touched by offboarding (break-glass "
                        "and other named accounts), as logins or emails; a directory "
                        "account named by its login or email is protected under all its "
                        "names (login, email, aliases).",
                        example=["breakglass@northwind.example"]),
    "sla_critical_hours": Option("int", 24, "Hours from the person's last day (the HR end "
                                 "date, or for someone no HR export lists any more the day "
                                 "of the last read that did) to full revocation on critical "
                                 "accounts.", min=1, max=24 * 90),
    "sla_hours": Option("int", 72, "Hours from the person's last day (as for "
                        "sla_critical_hours) to full revocation elsewhere.",
                        min=1, max=24 * 90),
    "auto_open": Option("bool", True, "A reconciliation that sees a new leaver opens their "
                        "case (plan only)."),
    "auto_execute": Option("list[str]", [], "Automatic step kinds (as in allow) a "
                           "reconciliation may carry out on its own for cases it opened."),
}

PRINCIPAL_OPTIONS: dict[str, Option] = {
    "source": Option("str", "*", "The [sources.NAME] whose records name the principal, or "
                     "'*' for every source; any other name stops governor."),
    "principal": Option("str", REQUIRED, "The principal exactly as that source names it "
                        "(matched case-insensitively); not blank, declared once per source.",
                        example="svc-bot"),
    "owner": Option("str", REQUIRED, "Person accountable for it (employee id or email); not "
                    "blank. An owner HR does not know, or who left, makes its access an "
                    "orphan-grant finding.", example="E1002"),
    "reason": Option("str", REQUIRED, "Why it exists; not blank. Kept as the match reason.",
                     example="The CMS posts scheduled articles"),
    "kind": Option("str", "service", "What it is; shown in its match reason.",
                   choices=("service", "api", "bot", "shared")),
}

SOURCE_COMMON: dict[str, Option] = {
    "type": Option("str", REQUIRED, "The connector that reads this source; it decides which "
                   "other keys the table takes."),
    "enabled": Option("bool", True, "Read this source; false leaves it out of reconcile, "
                      "doctor and offboarding."),
}

RULE_COMMON: dict[str, Option] = {
    "enabled": Option("bool", True, "Evaluate this rule."),
    "severity": Option("str", "", "Override the rule's default severity.",
                       choices=("", "critical", "high", "medium", "low", "info")),
}

SECTIONS = ("governor", "feed_guard", "report", "offboard", "sources", "rules", "principals")


@dataclass(frozen=True)
class SourceConfig:
    name: str
    type: str
    enabled: bool
    settings: dict[str, Any]


@dataclass(frozen=True)
class RuleConfig:
    enabled: bool
    severity: str  # "" keeps the default
    params: dict[str, Any]


@dataclass(frozen=True)
class NonHuman:
    source: str
    principal: str
    owner: str
    reason: str
    kind: str


@dataclass(frozen=True)
class Config:
    path: Path | None
    base_dir: Path
    database_url: str
    report_dir: Path
    org_domains: tuple[str, ...]
    feed_guard: dict[str, Any]
    report: dict[str, Any]
    offboard: dict[str, Any]
    sources: dict[str, SourceConfig]
    rules: dict[str, RuleConfig]
    principals: tuple[NonHuman, ...] = field(default_factory=tuple)
    # the zone's name, not the ZoneInfo: evaluation_key hashes every field as a plain
    # value, so changing the zone re-evaluates the rules
    timezone: str = "UTC"

    def rule(self, rule_id: str) -> RuleConfig | None:
        return self.rules.get(rule_id)

    def id_sources(self) -> frozenset[str]:
        """The sources whose bare principals may be employee ids (governor.correlate):
        directories (a login is often the employee number) and exports that say so."""
        from governor.records import SourceKind
        from governor.sources import CONNECTORS

        return frozenset(name for name, sc in self.sources.items()
                         if CONNECTORS[sc.type].kind is SourceKind.DIRECTORY
                         or sc.settings.get("match_employee_ids"))

    def platforms(self) -> frozenset[str]:
        """Every platform an enabled source declares as its own (a grants export's
        ``platform``): a name the inventory may use though governor does not know it."""
        from governor.sources import CONNECTORS

        return frozenset().union(*(CONNECTORS[sc.type].platforms(sc.settings)
                                   for sc in self.sources.values() if sc.enabled))

    @property
    def zone(self) -> ZoneInfo:
        """The organisation's time zone (checked when the config was loaded)."""
        return clock.zone(self.timezone)


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # Notepad writes a BOM
    except FileNotFoundError:
        raise ConfigError(str(p), "", "config file not found (write one with `governor init`)"
                          ) from None
    except IsADirectoryError:
        raise ConfigError(str(p), "", "is a directory, not a config file (name the TOML "
                                      "file itself)") from None
    except OSError as exc:
        # no permission, a failing disk: the operator's to fix, not a traceback
        raise ConfigError(str(p), "", f"cannot read the config file: {exc.strerror or exc}"
                          ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), "", "not UTF-8 text") from None
    return parse(raw, p)


def parse(raw: dict[str, Any], path: Path | None) -> Config:
    where = str(path) if path else "<config>"
    try:
        return _parse(raw, path)
    except OptionError as exc:
        raise ConfigError(where, exc.key, str(exc)) from None


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise OptionError(key, "expected a table")
    return value


def _parse(raw: dict[str, Any], path: Path | None) -> Config:
    # Imported here: the registries import this module's Option declarations.
    from governor.rules import RULES
    from governor.sources import CONNECTORS

    for key in raw:
        if key not in SECTIONS:
            raise OptionError(key, f"unknown section; expected one of {', '.join(SECTIONS)}")
    base = path.parent.resolve() if path else Path.cwd()
    gov = apply(GOVERNOR_OPTIONS, _table(raw, "governor"), "governor")
    _check_zone(gov["timezone"], "governor.timezone")
    guard = apply(FEED_GUARD_OPTIONS, _table(raw, "feed_guard"), "feed_guard")
    report = apply(REPORT_OPTIONS, _table(raw, "report"), "report")
    offboard = apply(OFFBOARD_OPTIONS, _table(raw, "offboard"), "offboard")
    for i, item in enumerate(offboard["allow"] + offboard["auto_execute"]):
        ctype, _, action = item.partition(".")
        connector = CONNECTORS.get({"ldap": "ldap_directory"}.get(ctype, ctype))
        if connector is None or action not in connector.actions:
            raise OptionError(f"offboard.allow[{i}]" if i < len(offboard["allow"])
                              else f"offboard.auto_execute[{i - len(offboard['allow'])}]",
                              f"{item!r} is not an action a connector can take")

    sources: dict[str, SourceConfig] = {}
    for name, body in _table(raw, "sources").items():
        key = f"sources.{name}"
        if not isinstance(body, dict):
            raise OptionError(key, "expected a table")
        if len(name) > SOURCE_NAME_MAX:
            # stored with everything it reports: PostgreSQL refused it mid-run
            raise OptionError(key, f"the source's name is {len(name)} characters long; "
                                   f"governor keeps at most {SOURCE_NAME_MAX}")
        stype = body.get("type")
        if stype is None:
            raise OptionError(f"{key}.type", "required key is missing")
        if not isinstance(stype, str):
            raise OptionError(f"{key}.type", f"expected a string, got {_kind(stype)}")
        connector = CONNECTORS.get(stype)
        if connector is None:
            raise OptionError(f"{key}.type", f"unknown source type {stype!r}; known: "
                                             + ", ".join(sorted(CONNECTORS)))
        common = apply(SOURCE_COMMON, {k: body[k] for k in SOURCE_COMMON if k in body}, key)
        settings = apply(connector.options, body, key, ignore=frozenset(SOURCE_COMMON))
        if "timezone" in settings:
            # Settled here, not in the connector: the zone then belongs to the source's
            # settings, which its fingerprint covers, so a changed governor.timezone
            # re-reads an unchanged export instead of keeping times read in the old zone.
            settings["timezone"] = settings["timezone"] or gov["timezone"]
            _check_zone(settings["timezone"], f"{key}.timezone")
        connector.validate(settings, key)
        sources[name] = SourceConfig(name, stype, common["enabled"], settings)
    _one_source_per_file(sources, base)

    rules: dict[str, RuleConfig] = {}
    for rule_id, body in _table(raw, "rules").items():
        key = f"rules.{rule_id}"
        rule = RULES.get(rule_id)
        if rule is None:
            raise OptionError(key, "unknown rule id; see `governor rules`")
        if not isinstance(body, dict):
            raise OptionError(key, "expected a table")
        common = apply(RULE_COMMON, {k: body[k] for k in RULE_COMMON if k in body}, key)
        params = apply(rule.params, body, key, ignore=frozenset(RULE_COMMON))
        rule.validate(params, key)
        rules[rule_id] = RuleConfig(common["enabled"], common["severity"], params)

    principals = []
    declared_at: dict[tuple[str, str], str] = {}
    items = raw.get("principals", [])
    if not isinstance(items, list):
        raise OptionError("principals", "expected an array of tables ([[principals]])")
    for i, body in enumerate(items):
        key = f"principals[{i}]"
        if not isinstance(body, dict):
            raise OptionError(key, "expected a table")
        values = apply(PRINCIPAL_OPTIONS, body, key)
        principals.append(_principal(values, key, sources, declared_at))

    _no_password(gov["database"], "governor.database")
    _supported_store(gov["database"], "governor.database")
    env_url = os.environ.get("GOVERNOR_DATABASE_URL")
    return Config(
        path=path,
        base_dir=base,
        database_url=env_url or _resolve_sqlite(gov["database"], base),
        # '~' as in a shell: taken literally it made a folder named '~' beside the config
        report_dir=(base / Path(_report_dir(gov["report_dir"])).expanduser()).resolve(),
        org_domains=_domains(gov["org_domains"]),
        feed_guard=guard,
        report=report,
        offboard=offboard,
        sources=sources,
        rules=rules,
        principals=tuple(principals),
        timezone=gov["timezone"],
    )


def _report_dir(value: str) -> str:
    if not value.strip():
        # read as the config's own folder: reports among the exports and the config
        raise OptionError("governor.report_dir", "is empty; name the folder for reports "
                                                 "(relative to the config file)")
    return value


def _domains(values: list[str]) -> tuple[str, ...]:
    """The organisation's email domains, as the part after an address's '@' is compared
    with them. "@corp.example" or a stray space matched no address: every recovery email
    on the company's own domain counted as personal."""
    out = []
    for i, raw in enumerate(values):
        key, domain = f"governor.org_domains[{i}]", raw.strip().lower()
        if not domain:
            raise OptionError(key, "is empty; give a domain such as 'corp.example'")
        if domain.startswith("@"):
            raise OptionError(key, f"{raw!r}: write the domain without '@' "
                                   f"({domain.lstrip('@')!r})")
        if any(c.isspace() or c == "@" for c in domain):
            raise OptionError(key, f"{raw!r} is not a domain (such as 'corp.example')")
        out.append(domain)
    return tuple(out)


def _one_source_per_file(sources: dict[str, SourceConfig], base: Path) -> None:
    """Refuse two enabled sources reading one file. An export configured twice counts
    each record twice (an intern's excess privilege, two findings), and a copy of the
    inventory with other values decided the rules silently, the later one winning."""
    read_by: dict[Path, str] = {}
    for name, sc in sources.items():
        path = sc.settings.get("path")
        if not sc.enabled or not isinstance(path, str) or not path:
            continue
        where = (base / Path(path).expanduser()).resolve()
        first = read_by.setdefault(where, name)
        if first != name:
            raise OptionError(f"sources.{name}.path", f"{path!r} is read by sources.{first} "
                                                      "already: an export is one source")


def _check_zone(name: str, key: str) -> None:
    try:
        clock.zone(name)
    except ValueError as exc:
        raise OptionError(key, str(exc)) from None


def _principal(values: dict[str, Any], key: str, sources: dict[str, SourceConfig],
               declared_at: dict[tuple[str, str], str]) -> NonHuman:
    # A declaration that names no real source, or says nothing, would be accepted and
    # match nothing: its principal would show up as an orphan with no hint why.
    source = values["source"]
    if source != "*" and source not in sources:
        raise OptionError(f"{key}.source", f"{source!r} is not a configured source "
                                           f"(configured: {', '.join(sorted(sources))}; "
                                           "or '*' for every source)")
    if source != "*" and not _names_principals(sources[source]):
        raise OptionError(f"{key}.source", f"source {source!r} reports no principals (it "
                                           "is HR or the inventory); name the directory, "
                                           "grants or vault source that does, or '*'")
    for name in ("principal", "owner", "reason"):
        values[name] = values[name].strip()
        if not values[name]:
            raise OptionError(f"{key}.{name}", "is blank; a declaration needs a principal, "
                                               "an owner and a reason")
    # correlation keeps one declaration per (source, principal): a second would silently
    # replace the first's owner and reason
    ident = (source, values["principal"].lower())
    if ident in declared_at:
        raise OptionError(f"{key}.principal", f"{values['principal']!r} in source {source!r} "
                                              f"is already declared by {declared_at[ident]}")
    declared_at[ident] = key
    return NonHuman(source, values["principal"], values["owner"], values["reason"],
                    values["kind"])


def _names_principals(sc: SourceConfig) -> bool:
    """Does this source report principals (directory logins, grant holders, vault readers)?"""
    from governor.records import SourceKind
    from governor.sources import CONNECTORS

    kinds = CONNECTORS[sc.type].kinds(sc.settings)
    return bool(kinds & {SourceKind.DIRECTORY, SourceKind.GRANTS, SourceKind.VAULT})


def _no_password(url: str, key: str) -> None:
    """Credentials belong in GOVERNOR_DATABASE_URL (the environment), not in a file that
    is read by anyone who can read the config, copied into tickets and committed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # not a URL at all: _supported_store says so
    # user:password@host, or ?password=... (libpq reads it there too)
    if parsed.password or any(k.lower() in ("password", "passfile") and v
                              for k, v in parsed.query.items()):
        raise OptionError(key, "holds a password: set the whole URL in GOVERNOR_DATABASE_URL "
                               "(the environment, e.g. the service's EnvironmentFile) instead; "
                               "the value is not shown. Treat the password as exposed")


def _supported_store(url: str, key: str) -> None:
    """A URL governor cannot open is the config's mistake, said with its key path when
    the config loads, not a store error (exit 1) when a command first opens it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    supported = "governor supports sqlite:///PATH and postgresql://HOST/DATABASE"
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        # not echoed: a mangled URL may still hold a password
        raise OptionError(key, f"is not a database URL (the value is not shown); "
                               f"{supported}") from None
    if backend == "postgres":
        raise OptionError(key, "write postgresql://, not the old postgres:// scheme (which "
                               "SQLAlchemy no longer takes)")
    if backend not in ("sqlite", "postgresql"):
        raise OptionError(key, f"{backend!r} databases are not supported; {supported}")


def _resolve_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base / Path(url[len(prefix):]).expanduser()).resolve())
    return url
