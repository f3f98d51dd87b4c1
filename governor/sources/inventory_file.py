"""Social account inventory (TOML or YAML): what accounts exist and how they are held.

One ``[[accounts]]`` entry per account::

    [[accounts]]
    platform = "x"                  # x, facebook, instagram, linkedin, youtube, tiktok, ...
                                    # (another: a new platform, unless a near miss of these)
    handle = "@northwind"           # key becomes "x:@northwind"
    criticality = "critical"        # critical | high | medium | low
    owner = "E1001"                 # accountable person: employee id or email
    owner_team = "Communications"   # department allowed to own it
    access = "sso_tool"             # sso_tool | delegated | shared_login
    tool = "hootsuite"              # management tool, for sso_tool
    account_2fa = true              # the account's own second factor; omit if unknown
    grants_source = "x_roles"       # source that reports its grants
    recovery_email = "social@northwind.example"
    recovery_email_kind = "corporate"   # corporate | personal | shared
    recovery_email_owner = "E1001"
    recovery_phone = "+15550100"
    recovery_phone_kind = "personal"
    recovery_phone_owner = "E1002"
    attested_by = "E1001"           # for accounts no API can list
    attested_at = 2026-09-01
    next_due = 2026-12-01

Errors name the entry's key path (``accounts[3].criticality``) and the key's line (the
entry's first line when the key is not there).

A platform governor does not know is a new one (an account no API lists, attested by
hand), unless its name is a slip for a known one ('twiter', 'instgram', or 'twitter',
X's former name) that no grants source declares as its ``platform``: its accounts would
match no grant. On platforms whose handles ignore case (governor.platforms.caseless),
@NorthWind and @northwind are one account, so listing both is listing it twice.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
import tomllib
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import yaml
from sqlalchemy import String

from governor import platforms
from governor.errors import DataError
from governor.models import ObsSocialAccount
from governor.options import REQUIRED, Option
from governor.records import (
    AccountAccess,
    Attestation,
    Criticality,
    RecoveryContact,
    SocialAccount,
    SourceKind,
)
from governor.sources._common import FileConnector, unreadable, utf8_error_line
from governor.sources._tabular import SENTINEL_YEARS
from governor.sources.base import register

KEYS = frozenset({"platform", "handle", "criticality", "owner", "owner_team", "access", "tool",
                  "account_2fa", "grants_source", "recovery_email", "recovery_email_kind",
                  "recovery_email_owner", "recovery_phone", "recovery_phone_kind",
                  "recovery_phone_owner", "attested_by", "attested_at", "next_due", "notes"})
CONTACT_KINDS = ("corporate", "personal", "shared")
# the most characters each stored key may have (PostgreSQL refuses more)
_WIDTHS = {c.name: c.type.length for c in ObsSocialAccount.__table__.columns
           if isinstance(c.type, String) and c.type.length}

class _YamlLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's guesses that change an inventory's text: a number
    stays the text it was written as (owner: 01001 read as octal was owner 513), a key
    written twice is an error, not the last one silently winning (criticality: critical,
    then low), and a date that is no date (2026-02-30) is an error with its line, not a
    traceback; 0000-00-00, an export's "no date", is none, as in every export."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False
                          ) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is written twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_date(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(node.value)
    if re.fullmatch(r"0000-00-00(?:[Tt ].*)?", text):
        return None
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a date ({exc})",
                                                node.start_mark) from None


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _yaml_date)

# (entry index, key or None for the entry) -> 1-based line, or None if it cannot be found
Locate = Callable[[int, str | None], int | None]

_ACCOUNTS_HEADER = re.compile(r"\s*\[\[\s*accounts\s*\]\]\s*(?:#.*)?$")
_ANY_HEADER = re.compile(r"\s*\[\[?[^\[\]=]+\]\]?\s*(?:#.*)?$")


def _toml_line(text: str, index: int, key: str | None) -> int | None:
    # tomllib keeps no positions, and parsing is the hot path while errors are rare: only
    # when one is raised, find the index-th [[accounts]] header and the key under it.
    lines = text.split("\n")
    headers = (n for n, t in enumerate(lines) if _ACCOUNTS_HEADER.match(t))
    start = next(itertools.islice(headers, index, None), None)
    if start is None:
        # accounts = [{...}, ...] as one array: the entries have no header of their own
        return next((n + 1 for n, t in enumerate(lines)
                     if re.match(r"\s*accounts\s*=", t)), None)
    if key is not None:
        assignment = re.compile(rf"\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|"
                                rf"'{re.escape(key)}')\s*[=.]")
        for n in range(start + 1, len(lines)):
            if _ANY_HEADER.match(lines[n]):
                break
            if assignment.match(lines[n]):
                return n + 1
    return start + 1


def _yaml_line(text: str, index: int, key: str | None) -> int | None:
    # Constructed values keep no marks; compose the nodes again, only when an error needs them.
    def get(node: yaml.Node | None, name: str) -> tuple[yaml.Node, yaml.Node] | None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == name:
                    return k, v
        return None

    try:
        found = get(yaml.compose(text, Loader=yaml.SafeLoader), "accounts")
    except yaml.YAMLError:
        return None
    entries = found[1] if found else None
    if not isinstance(entries, yaml.SequenceNode) or index >= len(entries.value):
        return None
    entry: yaml.Node = entries.value[index]
    at = get(entry, str(key)) if key is not None else None
    return (at[0] if at else entry).start_mark.line + 1


def _top_line(text: str, key: str, is_yaml: bool) -> int | None:
    """The line of a top-level key (a table header, or an assignment) in the file."""
    if is_yaml:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            return None
        if isinstance(node, yaml.MappingNode):
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return k.start_mark.line + 1
        return None
    name = rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
    at = re.compile(rf"\s*(?:\[\[?\s*{name}\s*[\].]|{name}\s*[=.])")
    return next((n + 1 for n, t in enumerate(text.split("\n")) if at.match(t)), None)


@register
class InventoryFile(FileConnector):
    type = "inventory_file"
    kind = SourceKind.INVENTORY
    description = "Social account inventory (TOML or YAML): owners, access, 2FA, recovery"
    options = {
        "path": Option("str", REQUIRED, "The inventory file (relative to the config file). "
                       "An account's platform is one governor knows (facebook, instagram, "
                       "linkedin, tiktok, x, youtube) or a new one (an account no API lists, "
                       "attested by hand); a slip for a known one ('twiter', or 'twitter' "
                       "for x) stops governor unless a grants source declares it as its "
                       "platform.", example="accounts.toml"),
    }

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.display = str(self.path)
        self._folded: dict[str, str] | None = None

    def _load(self) -> tuple[list[Any], Locate]:
        self.require_file()
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise unreadable(self.display, exc) from None
        except UnicodeDecodeError:
            raise DataError(self.display, utf8_error_line(self.path), None, "not UTF-8 text"
                            ) from None
        locate: Locate
        is_yaml = self.path.suffix.lower() in (".yaml", ".yml")
        if is_yaml:
            locate = functools.partial(_yaml_line, text)
            try:
                doc = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - safe: see _YamlLoader
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                raise DataError(self.display, mark.line + 1 if mark else None, None,
                                f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
        else:
            locate = functools.partial(_toml_line, text)
            try:
                doc = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise DataError(self.display, None, None, f"not valid TOML: {exc}") from None
        if isinstance(doc, dict):
            for name, value in doc.items():
                # [[acounts]], [[account]]: the entries under it were silently not in the
                # inventory. Other keys beside it (a version, a YAML anchor the entries
                # refer to) are the file's own business.
                alike = difflib.get_close_matches(str(name).lower(), ["accounts"],
                                                  cutoff=0.7)
                entries = isinstance(value, list) and any(isinstance(v, dict) for v in value)
                if name != "accounts" and (alike or entries):
                    hint = " (did you mean 'accounts'?)" if alike else ""
                    raise DataError(self.display, _top_line(text, str(name), is_yaml),
                                    str(name), f"entries under an unknown key{hint}; the "
                                               "inventory reads [[accounts]] only")
        if not isinstance(doc, dict) or not isinstance(doc.get("accounts"), list):
            raise DataError(self.display, None, "accounts", "expected a list of [[accounts]]")
        accounts: list[Any] = doc["accounts"]
        return accounts, locate

    def fetch(self) -> Iterator[SocialAccount]:
        seen: dict[str, tuple[str, str]] = {}  # key (case folded where it is ignored) ->
        # (where, key as written)
        accounts, locate = self._load()
        for i, entry in enumerate(accounts):
            e = _Entry(self.display, i, entry, locate)
            platform = e.req("platform").lower()
            wrong = platforms.problem(platform, self.context.platforms)
            if wrong is not None:
                raise e.fail("platform", wrong)
            handle = e.req("handle")
            key = f"{platform}:{handle}"
            caseless = platforms.caseless(platform, handle)
            twice = platforms.same_username(key) if caseless else key
            if caseless:
                # respelt in case only, or without the '@' (@northwind -> @NorthWind,
                # northwind): the same account, so it keeps the key it was stored under;
                # a new key would end its grants' history, resolve its findings and
                # close its offboarding steps as if the access had gone
                stored = self._stored().get(twice)
                if stored is not None and stored != key:
                    key, handle = stored, stored.partition(":")[2]
            if twice in seen:
                where, first = seen[twice]
                also = where if first == key else (f"{where}, as {first}: {platform} handles "
                                                   "ignore case" + (" and a leading '@'" if
                                                   platform in platforms.AT_NAMES else ""))
                raise e.fail("handle", f"{key} is listed twice (also {also})")
            seen[twice] = (e.where, key)
            access = AccountAccess(e.choice("access", [a.value for a in AccountAccess]))
            yield SocialAccount(
                key=key, platform=platform, handle=handle, access=access,
                criticality=Criticality(e.choice("criticality", [c.value for c in Criticality])),
                owner=e.opt("owner"), owner_team=e.opt("owner_team"),
                tool=e.opt("tool"),
                account_2fa=e.flag("account_2fa"),
                recovery_email=e.contact("recovery_email"),
                recovery_phone=e.contact("recovery_phone"),
                grants_source=self._grants_source(e),
                attestation=e.attestation(),
            )


    def _stored(self) -> dict[str, str]:
        """Folded key (platforms.same_username) -> the key as stored, for the accounts
        this source last listed."""
        if self._folded is None:
            self._folded = {platforms.same_username(k): k
                            for k in self.context.prior_accounts()}
        return self._folded

    def _grants_source(self, e: _Entry) -> str | None:
        """The source that reports the account's grants, which must be one the config
        has: a slip (x_teams) made single-owner read 'no grants data' for the account."""
        name = e.opt("grants_source")
        known = self.context.sources
        if name is None or known is None:
            return name
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise e.fail("grants_source", f"{name!r} is not a source in the config"
                         + (f" (did you mean {close[0]!r}?)" if close else "")
                         + "; name the [sources.NAME] that reports this account's grants")
        if SourceKind.GRANTS.value not in known[name]:
            # read as "no grants data" for the account: its admins would never count
            raise e.fail("grants_source", f"{name!r} reports no grants (it supplies "
                         f"{', '.join(sorted(known[name])) or 'nothing'}); name the "
                         "[sources.NAME] that reports this account's grants")
        return name


class _Entry:
    def __init__(self, path: str, index: int, raw: Any, locate: Locate) -> None:
        self.path, self.index, self.locate = path, index, locate
        self.where = f"accounts[{index}]"
        if not isinstance(raw, dict):
            raise self.fail(None, "expected a table")
        for key in raw:
            if key not in KEYS:
                raise self.fail(str(key), "unknown key")
        self.raw = raw

    def fail(self, field: str | None, message: str) -> DataError:
        label = f"{self.where}.{field}" if field else self.where
        return DataError(self.path, self.locate(self.index, field), label, message)

    def opt(self, field: str) -> str | None:
        value = self.raw.get(field)
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.fail(field, "expected text")
        text = str(value).strip()
        # what the store could not keep as written (history._storable, with the line)
        if "\x00" in text:
            raise self.fail(field, "holds a NUL character (\\x00)")
        width = _WIDTHS.get(field)
        if width is not None and len(text) > width:
            raise self.fail(field, f"is {len(text)} characters long; governor keeps at most "
                                   f"{width}")
        return text or None

    def req(self, field: str) -> str:
        value = self.opt(field)
        if value is None:
            raise self.fail(field, "required key is missing")
        return value

    def choice(self, field: str, allowed: list[str]) -> str:
        value = self.req(field).lower()
        if value not in allowed:
            raise self.fail(field, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def flag(self, field: str) -> bool | None:
        value = self.raw.get(field)
        if value is None or isinstance(value, bool):
            return value
        raise self.fail(field, "expected true or false (omit it when unknown)")

    def day(self, field: str) -> date | None:
        value = self.raw.get(field)
        if isinstance(value, str) and value.strip() in ("", "0000-00-00"):
            value = None  # an export's "no date", as a blank one
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                raise self.fail(field, "expected a date (YYYY-MM-DD)") from None
        if value is None:
            return None
        if not isinstance(value, date) or isinstance(value, datetime):
            raise self.fail(field, "expected a date (YYYY-MM-DD)")
        if value.year in SENTINEL_YEARS:
            # an export's "no date" (9999-12-31, 0001-01-01): a review due in 9999 is
            # never due, and the day arithmetic of the rules overflows at either end
            raise self.fail(field, f"{value.isoformat()} is a placeholder, not a real date; "
                                   f"give the date, or leave {field} out")
        return value

    def contact(self, field: str) -> RecoveryContact | None:
        value = self.opt(field)
        if value is None:
            return None
        kind = (self.opt(f"{field}_kind") or "corporate").lower()
        if kind not in CONTACT_KINDS:
            raise self.fail(f"{field}_kind", f"{kind!r} is not one of {', '.join(CONTACT_KINDS)}")
        return RecoveryContact(value=value.lower() if "@" in value else value, kind=kind,
                               owner=self.opt(f"{field}_owner"))

    def attestation(self) -> Attestation | None:
        by = self.opt("attested_by")
        at = self.day("attested_at")
        if by is None and at is None:
            return None
        if by is None or at is None:
            raise self.fail("attested_by" if by is None else "attested_at",
                            "attested_by and attested_at go together")
        return Attestation(by=by, at=at, next_due=self.day("next_due"))
