"""Okta through the official okta SDK: users in every status, MFA factors, groups and app
assignments.

What it reads:

- every user: a normal listing (which leaves DEPROVISIONED users out) plus a search for
  ``status eq "DEPROVISIONED"``; login, email, employeeNumber, status, lastLogin;
- the members of the configured groups (``group_grants`` keys and ``priority_groups``)
  and the users assigned to the configured apps (``app_grants``, by app id or label); they
  become grants next to the accounts (SSO group, or a tool seat for a Hootsuite or Sprout
  Social app);
- MFA factors, one call per user: too many for a nightly sweep of a large org (at 600
  calls a minute, 200,000 users take 5.5 hours). So each run reads, within
  ``factor_budget`` calls: first the people who matter (in a mapped group or app, or a
  priority group) whose facts are unknown or changed, then the rest of them, then anyone
  whose Okta record changed (lastUpdated) or who has a factor event in the System Log since
  their facts were read, then a slice of everyone else, oldest facts first, so that all are
  read again within ``full_refresh_days`` runs. Everyone not read keeps the facts the last
  good run stored, with the time they were read (rules treat old facts as unknown); someone
  never read has MFA unknown.

Pages are followed to the end by their Link rel="next" cursor and any error on any page
fails the whole source: a partial list never looks complete. Transport failures (refused,
TLS, timeouts: the SDK turns them into AttributeErrors), payloads its models refuse and
malformed JSON become a SourceError with a clear reason; the token never appears in one.

Per-user calls run ``concurrency`` at a time through a limiter that reads
X-Rate-Limit-Limit/Remaining/Reset from every answer, keeps ``rate_headroom`` of each
window's budget in reserve and waits for the reset instead of running into 429s; a 429
that still comes is retried by the SDK after the reset, then by this connector.

For offboarding it also acts (``actions``: group_remove, app_unassign, sessions_revoke,
suspend, deactivate), each with an ``is_done`` that reads the effect back so an interrupted
run resumes without repeating a step (a session revocation, which leaves nothing on the
user, from its System Log event); see OktaDirectory.is_done and perform.

The SDK is asyncio; it stays inside this module (fetch() runs its own event loop, collects,
then yields), so the rest of governor stays synchronous.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import errno
import logging
import math
import os
import re
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

from governor.clock import as_utc
from governor.errors import SourceError
from governor.lookalike import fold
from governor.options import REQUIRED, Option, OptionError
from governor.records import (
    AccessPath,
    DirectoryAccount,
    DirectoryStatus,
    Grant,
    MfaFactor,
    SourceKind,
)
from governor.sources._common import private_file
from governor.sources._groups import GROUP_GRANTS, GroupGrants
from governor.sources._groups import validate as validate_group_grants
from governor.sources._okta_ratelimit import LimiterStats, RateLimiter, bucket_of
from governor.sources.base import (
    Action,
    Check,
    Connector,
    SourceContext,
    check_env_name,
    env_named,
    held_by_another,
    register,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_STATUS = {
    "ACTIVE": DirectoryStatus.ACTIVE, "PROVISIONED": DirectoryStatus.ACTIVE,
    "RECOVERY": DirectoryStatus.ACTIVE, "PASSWORD_EXPIRED": DirectoryStatus.ACTIVE,
    "LOCKED_OUT": DirectoryStatus.LOCKED, "SUSPENDED": DirectoryStatus.SUSPENDED,
    "DEPROVISIONED": DirectoryStatus.DEPROVISIONED, "STAGED": DirectoryStatus.STAGED,
}
# Okta factorType -> governor's factor words (records.FACTOR_TYPES).
FACTOR_TYPE = {
    "token:software:totp": "totp", "token:hotp": "hotp", "token:hardware": "token",
    "token": "token", "push": "push", "signed_nonce": "push", "web": "push", "sms": "sms",
    "call": "call", "email": "email", "webauthn": "webauthn", "u2f": "u2f",
    "question": "question",
}
FACTOR_STATUS = {
    "ACTIVE": "active", "ENROLLED": "active", "PENDING_ACTIVATION": "pending",
    "NOT_SETUP": "inactive", "INACTIVE": "inactive", "DISABLED": "inactive",
    "EXPIRED": "inactive",
}
# System Log events after which a user's factors must be read again.
FACTOR_EVENTS = (
    "user.mfa.factor.activate", "user.mfa.factor.deactivate", "user.mfa.factor.reset_all",
    "user.mfa.factor.suspend", "user.mfa.factor.unsuspend", "user.mfa.factor.update",
    "system.mfa.factor.deactivate",
)
SDK_MAX_RETRIES = 2  # the SDK's own retries of a 429/503/504, each after the reset
RATE_ROUNDS = 5  # then this many more waits for a reset before the source fails
LOG_RETENTION = timedelta(days=89)  # Okta keeps 90 days of System Log
# The System Log event Okta records when a user's sessions are cleared by an admin or the
# API (DELETE /api/v1/users/{id}/sessions), once per call, the user as its target.
SESSION_CLEAR_EVENT = "user.session.clear"
CLOCK_SKEW = timedelta(minutes=5)  # governor's clock and Okta's may differ this much
_GROUP_ID = re.compile(r"^00g[A-Za-z0-9]{17}$")
_APP_ID = re.compile(r"^0oa[A-Za-z0-9]{17}$")
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^",;\s]+)"?')


# ---- what one HTTP exchange left behind (per asyncio task) ---------------------------

@dataclass
class Exchange:
    method: str
    url: str
    status: int | None
    headers: Any  # aiohttp's CIMultiDict of the answer (every Link header kept)
    error: BaseException | None  # the transport error the SDK swallowed
    body: str = ""  # the start of an error answer's body (for its errorCode)


_LAST: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "governor_okta_last_exchange", default=None)


def _http_client_class(limiter: RateLimiter, timeout: float) -> type:
    """The SDK's HTTP client, with every request (its own retries included) passing the
    rate limiter, a real per-request timeout, and the last exchange kept for this task."""
    import aiohttp
    from multidict import CIMultiDict
    from okta.http_client import HTTPClient

    class GovernorHTTPClient(HTTPClient):
        def __init__(self, http_config: dict[str, Any]) -> None:
            super().__init__(http_config)  # type: ignore[no-untyped-call]
            self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 15))

        async def send_request(self, request: dict[str, Any]) -> Any:
            request = _documented_auth(request)
            key = bucket_of(request["method"], request["url"])
            await limiter.acquire(key)
            status: int | None = None
            headers: Any = None
            error: BaseException | None = None
            body: Any = None
            try:
                info, response, body, error = await super().send_request(  # type: ignore[no-untyped-call]
                    request)
                if response is not None:
                    status, headers = response.status, CIMultiDict(response.headers)
            finally:
                await limiter.release(key, status, headers)
            _LAST.set(Exchange(request["method"], request["url"], status, headers, error,
                               body[:2000] if status is not None and status >= 400
                               and isinstance(body, str) else ""))
            return info, response, body, error

        @staticmethod
        def check_response_for_error(url: str, response_details: Any,
                                     response_body: Any) -> Any:
            # A 204 No Content, or an error without a body, sent with Content-Type:
            # application/json would make the SDK json.loads('') and fail a call that worked
            # (or hide the error's status): the status alone speaks, call() reads it. An
            # empty 200 is still refused as not JSON.
            status = response_details.status
            if (status == 204 or status >= 400) and not str(response_body or "").strip():
                return None, None
            return HTTPClient.check_response_for_error(  # type: ignore[no-untyped-call]
                url, response_details, response_body)

    return GovernorHTTPClient


def _documented_auth(request: dict[str, Any]) -> dict[str, Any]:
    """The request with its API token in the header form Okta documents, "SSWS <token>".
    SDK 3.4.6 sends some calls' as "SSWS<token>" (the generated client joins its mode
    and the token with nothing between): an org that holds to its documentation would
    answer 401 to every read."""
    headers = request.get("headers")
    if not isinstance(headers, dict):
        return request
    auth = headers.get("Authorization")
    if not isinstance(auth, str) or not auth.startswith("SSWS") or auth.startswith("SSWS "):
        return request
    return {**request, "headers": {**headers, "Authorization": "SSWS " + auth[4:]}}


# ---- errors ---------------------------------------------------------------------------

class Unreachable(SourceError):
    """No HTTP answer at all: refused, TLS, timeout, DNS."""


class Unauthorised(SourceError):
    """Okta refused the token (401)."""


class Missing(SourceError):
    """Okta answered 404: the user, group, app or assignment is not there."""


def _first_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _transport_reason(exc: BaseException | None, hostport: str, where: str,
                      timeout: float) -> str:
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        detail = getattr(cert, "verify_message", None) or _first_line(str(cert))
        return f"okta: TLS certificate not trusted for {hostport} ({detail})"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return f"okta: TLS handshake with {hostport} failed ({_first_line(str(exc))})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if getattr(os_error, "errno", None) == errno.ECONNREFUSED:
            why = "connection refused"
        elif isinstance(os_error, OSError) and os_error.strerror:
            why = os_error.strerror
        else:
            why = _first_line(str(os_error))
        return f"okta: cannot connect to {hostport} ({why})"
    if isinstance(exc, TimeoutError):
        return f"okta: no answer from {hostport} within {timeout:g} s ({where})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"okta: {hostport} closed the connection during {where}"
    if exc is not None:
        return f"okta: {where} failed: {type(exc).__name__}: {_first_line(str(exc))}"
    return f"okta: {where} failed without an answer from {hostport}"


def _says_when(ex: Exchange | None) -> bool:
    """Whether an answer tells when the rate-limit window resets (the SDK needs both)."""
    return ex is not None and ex.headers is not None and "X-Rate-Limit-Reset" in ex.headers \
        and "Date" in ex.headers


def _body_error(body: str) -> Any:
    """An Okta error body as the SDK's OktaAPIError would read it."""
    import json
    from types import SimpleNamespace

    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("errorCode"):
        return SimpleNamespace(error_code=str(data["errorCode"]),
                               error_summary=str(data.get("errorSummary") or ""))
    return SimpleNamespace(error_code="", error_summary="", message=body)


def _api_reason(where: str, path: str, status: int | None, err: Any,
                ex: Exchange | None, token_source: str) -> SourceError:
    code = getattr(err, "error_code", "") or ""
    summary = getattr(err, "error_summary", "") or ""
    if not code and status is not None:
        body = getattr(err, "message", None)
        body = str(err) if body is None else body
        text = str(body).removeprefix(f"HTTP {status} ")
        if text.lstrip().startswith("<"):  # an HTML error page (a proxy's): its words
            text = " ".join(re.sub(r"<[^>]*>", " ", text).split())[:200]
        summary = _first_line(text) or "(no body)"
    head = f"{status} {code}".strip()
    if status == 401:
        return Unauthorised(f"okta: {head} invalid token (the API token from {token_source} "
                            f"was refused)")
    if status == 403:
        return SourceError(f"okta: {head} the token lacks permission for {path}")
    if status == 404:
        return Missing(f"okta: {head} not found: {path}")
    if status == 429:
        if not _says_when(ex):
            return SourceError(f"okta: {head} rate limited on {path} without the "
                               f"X-Rate-Limit-Reset and Date headers that say when to retry")
        tries = (RATE_ROUNDS + 1) * (SDK_MAX_RETRIES + 1)
        return SourceError(f"okta: {head} rate limit still exceeded on {path} after {tries} "
                           f"tries, each after the window's reset")
    if status is None:
        return SourceError(f"okta: {where} failed: {_first_line(str(err))}")
    return SourceError(f"okta: {where} failed: {head} {_first_line(summary)}".rstrip())


# ---- the factor plan ------------------------------------------------------------------

@dataclass(slots=True)
class OktaUser:
    id: str
    login: str
    email: str | None
    employee_id: str | None
    okta_status: str
    status: DirectoryStatus
    last_login: datetime | None
    last_updated: datetime | None


@dataclass
class FactorPlan:
    order: list[str]  # user ids to read, most important first, within the budget
    tiers: dict[str, int] = field(default_factory=dict)  # planned per reason, before the cut
    wanted: int = 0  # planned before the budget cut


def plan_factor_reads(users: Mapping[str, OktaUser], prior: Mapping[str, DirectoryAccount],
                      matters: set[str], flagged: Mapping[str, datetime], budget: int,
                      refresh_days: int) -> FactorPlan:
    """Which users' factors to read this run, in order, within ``budget`` calls.

    1. people who matter (mapped groups and apps, priority groups) whose facts are unknown,
       or changed since they were read (lastUpdated, or a System Log factor event);
    2. the other people who matter (their facts are the ones rules judge by);
    3. anyone else whose record or factors changed since their facts were read;
    4. a slice of everyone else, oldest facts first (never read before all), sized so all
       are read within ``refresh_days`` runs.
    Deprovisioned users are not read (they cannot sign in); they keep what was stored."""
    never = datetime.min.replace(tzinfo=UTC)
    tiers: list[list[tuple[datetime, str, str]]] = [[], [], [], []]
    eligible = 0
    for uid, u in users.items():
        if u.status is DirectoryStatus.DEPROVISIONED:
            continue
        eligible += 1
        p = prior.get(u.login)
        read_at = p.mfa_read_at if p is not None and p.mfa is not None else None
        changed = read_at is None or (
            (u.last_updated is not None and u.last_updated > read_at)
            or (uid in flagged and flagged[uid] > read_at))
        item = (read_at or never, u.login, uid)
        if uid in matters:
            tiers[0 if changed else 1].append(item)
        elif changed and read_at is not None:
            tiers[2].append(item)
        else:
            tiers[3].append(item)
    for t in tiers:
        t.sort()
    slice_size = math.ceil(eligible / max(1, refresh_days))
    tiers[3] = tiers[3][:slice_size]
    names = ("matters_changed", "matters", "changed", "refresh")
    order = [uid for t in tiers for _, _, uid in t]
    return FactorPlan(order[:budget], {n: len(t) for n, t in zip(names, tiers, strict=True)},
                      len(order))


# ---- the connector --------------------------------------------------------------------

def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also when the caller already runs an event loop (then in a thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _value(x: Any) -> str:
    return str(getattr(x, "value", x) or "")


def _group_name(group: Any) -> str:
    profile = getattr(group, "profile", None)
    inst = getattr(profile, "actual_instance", None) or profile
    return str(getattr(inst, "name", None) or "")


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _app_user(au: Any) -> tuple[str, str]:
    """An app assignment: user id, and the user name the app knows them by."""
    creds = getattr(au, "credentials", None)
    return str(au.id), str(getattr(creds, "user_name", None) or au.id)


def _event_users(e: Any) -> tuple[datetime | None, list[str]]:
    """A System Log event: when, and the users it is about (targets, else the actor)."""
    users = [str(t.id) for t in e.target or [] if _value(t.type) == "User" and t.id]
    if not users and e.actor is not None and _value(e.actor.type) == "User" and e.actor.id:
        users = [str(e.actor.id)]
    when: datetime | None = e.published
    return when, users


def next_cursor(headers: Any) -> str | None:
    """The ``after`` cursor of the Link rel="next" header, if any (all Link headers read:
    Okta sends rel="self" and rel="next" as two)."""
    if headers is None:
        return None
    values = headers.getall("Link", []) if hasattr(headers, "getall") else \
        [headers.get("Link") or headers.get("link") or ""]
    for value in values:
        for url, rel in _LINK.findall(value or ""):
            if rel == "next":
                after = parse_qs(urlsplit(url).query).get("after")
                return after[0] if after else None
    return None


@register
class OktaDirectory(Connector):
    type = "okta"
    remote = True
    kind = SourceKind.DIRECTORY
    grant_options = ("group_grants", "app_grants")
    description = ("Okta org through the okta SDK: users in every status, MFA factors, "
                   "groups, app assignments")
    options = {
        "org_url": Option("str", REQUIRED, "The Okta org URL (https://, not the -admin one).",
                          example="https://northwind.okta.com"),
        "token_env": Option("str", "OKTA_API_TOKEN", "Environment variable that holds the "
                            "API token (SSWS; a read-only admin's is enough). The token "
                            "itself never goes in this file."),
        "token_file": Option("str", "", "File that holds the API token instead (relative to "
                             "the config file); used when set."),
        "ca_file": Option("str", "", "Extra CA bundle (PEM) to trust, e.g. a TLS-inspecting "
                          "proxy's; the system store is always trusted."),
        "group_grants": GROUP_GRANTS,
        "app_grants": Option(
            "dict[str,list[str]]", {},
            "Okta app (id, or label as shown in Okta) -> the grants its assigned users hold, "
            "each 'ROLE ACCOUNT'; 'publisher tool:hootsuite' is a seat on every account that "
            "tool manages. Prefer ids: a label is looked up through the app listing.",
            example={"Hootsuite": ["publisher tool:hootsuite"]}),
        "priority_groups": Option(
            "list[str]", [], "More groups to read: people in them can reach social accounts "
            "some other way (a vault item shared with the group, platform roles), so their MFA "
            "is read first, and accounts list these groups (a vault's group:NAME readers are "
            "expanded through them)."),
        "factor_budget": Option("int", 10000, "At most this many MFA factor calls per run "
                                "(one per user).", min=0),
        "full_refresh_days": Option("int", 7, "Read everyone's factors again within this "
                                    "many runs, a slice each run.", min=1, max=365),
        "system_log": Option("bool", True, "Read factor events from the System Log since the "
                             "last good read, to refresh those users first."),
        "concurrency": Option("int", 4, "Per-user calls in flight at once.", min=1, max=32),
        "rate_headroom": Option("float", 0.1, "Share of each X-Rate-Limit-Limit window left "
                                "unused for the org's other integrations.", min=0, max=0.9),
        "page_size": Option("int", 200, "Items per page of a listing.", min=1, max=200),
        "timeout": Option("float", 30.0, "Seconds to wait for one answer.", min=1, max=600),
    }
    # Offboarding steps (the token must then belong to an admin allowed to make them).
    actions: ClassVar[frozenset[str]] = frozenset(
        {"group_remove", "app_unassign", "sessions_revoke", "suspend", "deactivate"})

    def __init__(self, name: str, settings: dict[str, Any], base_dir: Path) -> None:
        super().__init__(name, settings, base_dir)
        self.org_url = str(settings["org_url"]).rstrip("/")
        parts = urlsplit(self.org_url)
        self.hostport = f"{parts.hostname}:{parts.port or 443}"
        self.group_grants = GroupGrants.parse(settings["group_grants"])
        self.app_grants = GroupGrants.parse(settings["app_grants"], via=AccessPath.TOOL_SEAT)
        self._read_at: datetime | None = None
        self.stats: dict[str, Any] = {}
        self.limiter_stats: LimiterStats | None = None
        # resolved for offboarding actions, kept for this instance's life
        self.user_ids: dict[str, str] = {}  # lower-cased login -> Okta user id
        self.action_groups: dict[str, tuple[str, list[str]]] = {}  # key -> name, ids
        self.action_apps: dict[str, list[tuple[str, str]]] = {}  # key -> [(id, label)]

    @classmethod
    def validate(cls, settings: dict[str, Any], key: str) -> None:
        check_env_name(settings, "token_env", key)  # first: later errors may quote it
        url = urlsplit(str(settings["org_url"]))
        if url.scheme != "https" or not url.hostname:
            raise OptionError(f"{key}.org_url", "must be an https:// URL (the okta SDK refuses "
                                                "anything else)")
        if "-admin" in url.hostname:
            raise OptionError(f"{key}.org_url", "use the org URL, not the -admin console one")
        if not settings["token_file"] and not settings["token_env"]:
            raise OptionError(f"{key}.token_env", "set token_env or token_file")
        validate_group_grants(settings["group_grants"], f"{key}.group_grants")
        validate_group_grants(settings["app_grants"], f"{key}.app_grants")

    def freshness(self) -> datetime | None:
        return self._read_at

    # ---- secrets and TLS --------------------------------------------------------------

    @property
    def token_source(self) -> str:
        if self.settings["token_file"]:
            return f"token_file {self.settings['token_file']}"
        return env_named(self.settings, "token_env")

    def _token(self) -> str:
        s = self.settings
        if s["token_file"]:
            path = (self.base_dir / s["token_file"]).resolve()
            try:
                token: str = path.read_text(encoding="utf-8-sig").strip()
            except OSError as exc:
                raise SourceError(f"okta: cannot read token_file {path}: "
                                  f"{exc.strerror or exc}") from None
            if not token:
                raise SourceError(f"okta: token_file {path} is empty")
            return token
        token = str(os.environ.get(s["token_env"], "")).strip()
        if not token:
            raise SourceError(f"okta: no API token: {env_named(s, 'token_env')} is not set")
        return token

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()  # the system store (and SSL_CERT_FILE)
        if self.settings["ca_file"]:
            path = (self.base_dir / self.settings["ca_file"]).resolve()
            try:
                ctx.load_verify_locations(cafile=str(path))
            except (OSError, ssl.SSLError) as exc:
                raise SourceError(f"okta: cannot load ca_file {path}: {exc}") from None
        return ctx

    @contextlib.asynccontextmanager
    async def _api(self, token: str) -> AsyncIterator[_Api]:
        import aiohttp

        limiter = RateLimiter(self.settings["rate_headroom"])
        self.limiter_stats = limiter.stats
        ssl_ctx = self._ssl_context()
        try:
            from okta.client import Client

            client = Client({
                "orgUrl": self.org_url, "token": token, "authorizationMode": "SSWS",
                "rateLimit": {"maxRetries": SDK_MAX_RETRIES}, "requestTimeout": 0,
                "cache": {"enabled": False}, "logging": {"enabled": False},
                "httpClient": _http_client_class(limiter, self.settings["timeout"]),
            })
        except (ValueError, TypeError, KeyError) as exc:
            raise SourceError("okta: the okta SDK refused the configuration: "
                              + _first_line(str(exc).replace(token, "[token]"))) from None
        connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=self.settings["concurrency"] + 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            client.get_request_executor().set_session(session)  # type: ignore[no-untyped-call]
            yield _Api(self, client, limiter, token)

    # ---- reading ----------------------------------------------------------------------

    def fetch(self) -> Iterator[DirectoryAccount | Grant]:
        context: SourceContext = getattr(self, "context", None) or SourceContext(
            now=datetime.now(UTC))
        token = self._token()
        records = _run(self._read(token, context))
        self._read_at = context.now
        yield from records

    async def _read(self, token: str, context: SourceContext) -> list[DirectoryAccount | Grant]:
        s = self.settings
        async with self._api(token) as api:
            users = await api.users()
            group_keys = list(dict.fromkeys([*s["group_grants"], *s["priority_groups"]]))
            in_groups: dict[str, set[str]] = {}  # user id -> group keys
            names: dict[str, str] = {}  # group key -> Okta's name for it
            for key in group_keys:
                found = await api.group_members(key)
                names[key] = found[0]
                for u in found[1]:
                    users.setdefault(u.id, u)
                    in_groups.setdefault(u.id, set()).add(key)
            in_apps: dict[str, set[str]] = {}
            app_logins: dict[str, str] = {}  # assigned user ids the listing did not have
            for key in s["app_grants"]:
                for uid, user_name in (await api.app_members(key)).items():
                    in_apps.setdefault(uid, set()).add(key)
                    app_logins[uid] = user_name
            flagged: dict[str, datetime] = {}
            if s["system_log"] and context.last_good_read is not None:
                flagged = await api.factor_events(context.last_good_read, context.now)
            prior = context.prior_directory()
            matters = set(in_groups) | set(in_apps)
            plan = plan_factor_reads(users, prior, matters, flagged, s["factor_budget"],
                                     s["full_refresh_days"])
            facts = await api.factors(plan.order)
        out: list[DirectoryAccount | Grant] = []
        kept = unknown = 0
        for uid, u in sorted(users.items(), key=lambda kv: kv[1].login):
            mfa: tuple[MfaFactor, ...] | None
            read_at: datetime | None
            if uid in facts:
                mfa, read_at = facts[uid], context.now
            else:
                p = prior.get(u.login)
                if p is not None and p.mfa is not None:
                    mfa, read_at = p.mfa, p.mfa_read_at
                    kept += 1
                else:
                    mfa, read_at = None, None
                    unknown += 1
            groups = sorted(in_groups.get(uid, ()))
            out.append(DirectoryAccount(
                login=u.login, status=u.status, email=u.email, employee_id=u.employee_id,
                mfa=mfa, mfa_read_at=read_at, groups=tuple(sorted(names[g] for g in groups)),
                last_login=u.last_login))
            out.extend(self.group_grants.grants(u.login, groups))
            out.extend(self.app_grants.grants(u.login, sorted(in_apps.get(uid, ()))))
        for uid, keys in sorted(in_apps.items()):
            if uid not in users:  # assigned, but not in the listing (created meanwhile)
                out.extend(self.app_grants.grants(fold(app_logins[uid]), sorted(keys)))
        self.stats = {"users": len(users), "factor_reads": len(facts), "factor_kept": kept,
                      "factor_unknown": unknown, "factor_wanted": plan.wanted,
                      "factor_tiers": plan.tiers, "log_flagged": len(flagged)}
        ls = self.limiter_stats
        log.info("okta %s: %d users, factors read for %d (wanted %d, budget %d), %d kept from "
                 "earlier runs, %d unknown; %d requests, %d throttled, %d answered 429",
                 self.name, len(users), len(facts), plan.wanted, s["factor_budget"], kept,
                 unknown, ls.requests if ls else 0, ls.throttled if ls else 0,
                 ls.seen_429 if ls else 0)
        return out

    # ---- doctor -----------------------------------------------------------------------

    def check(self) -> list[Check]:
        return [*private_file(self.base_dir, self.settings["token_file"], "token_file"),
                *self._checks()]

    def _checks(self) -> list[Check]:
        try:
            token = self._token()
        except SourceError as exc:
            return [Check("authenticate", False, str(exc))]
        try:
            return _run(self._check(token))
        except SourceError as exc:  # TLS or SDK configuration, before any request
            return [Check("reach", False, str(exc))]

    async def _check(self, token: str) -> list[Check]:
        checks: list[Check] = []
        async with self._api(token) as api:
            try:
                data, ex = await api.call("/api/v1/users", "/api/v1/users",
                                          api.client.list_users, limit=1)
            except Unreachable as exc:
                return [Check("reach", False, str(exc))]
            except Unauthorised as exc:
                return [Check("reach", True, f"{self.hostport} answered over TLS"),
                        Check("authenticate", False, str(exc))]
            except SourceError as exc:
                return [Check("reach", True, f"{self.hostport} answered over TLS"),
                        Check("authenticate", True, f"API token from {self.token_source} "
                                                   f"accepted"),
                        Check("read", False, str(exc))]
            checks += [Check("reach", True, f"{self.hostport} answered over TLS"),
                       Check("authenticate", True, f"API token from {self.token_source} "
                                                   f"accepted"),
                       Check("read", True, f"listed users (first page: {len(data or [])} of "
                                           f"limit 1)")]
            s = self.settings
            keys = list(dict.fromkeys([*s["group_grants"], *s["priority_groups"]]))
            if keys:
                try:
                    found = [await api.find_group(k) for k in keys]
                    checks.append(Check("groups", True, f"{len(found)} mapped group(s) found: "
                                        + ", ".join(sorted(keys))))
                except SourceError as exc:
                    checks.append(Check("groups", False, str(exc)))
            if s["app_grants"]:
                try:
                    for k in s["app_grants"]:
                        await api.find_app(k)
                    checks.append(Check("apps", True, f"{len(s['app_grants'])} mapped app(s) "
                                        "found: " + ", ".join(sorted(s["app_grants"]))))
                except SourceError as exc:
                    checks.append(Check("apps", False, str(exc)))
        return checks

    # ---- offboarding actions ----------------------------------------------------------

    def is_done(self, action: Action, since: datetime | None = None) -> bool:
        """Whether the effect of ``action`` holds in Okta now; reads only.

        - group_remove: the user is in none of the groups the ``group`` target names (a
          name, or an id) - read from the user's groups, or from each group's members when
          Okta pages the user's groups;
        - app_unassign: Okta has no assignment of the user to the ``app`` (id or label)
          (GET /api/v1/apps/{appId}/users/{uid} answers 404);
        - suspend: the user is SUSPENDED or DEPROVISIONED; deactivate: DEPROVISIONED;
        - sessions_revoke: a revocation cannot be read back from the user. True when the
          user is DEPROVISIONED (Okta ended every session then). Otherwise, with ``since``
          (when an interrupted attempt started), True when the System Log has a
          ``user.session.clear`` event targeting the user since then, less CLOCK_SKEW:
          GET /api/v1/logs?since=...&filter=eventType eq "user.session.clear" and
          target.id eq "UID", followed to the end (an error on any page is a
          SourceError). Without ``since``, False. Performing it again is harmless: it ends
          whatever sessions and tokens exist, none or some.

        A user, group or app Okta does not have is a SourceError naming it (``okta: no user
        LOGIN``), never "done": the engine decides what a missing user means."""
        return self._act(action, lambda api, login: api.is_done(action, login, since))

    def perform(self, action: Action) -> str:
        """Make one offboarding change through the okta SDK; returns what was done, with
        Okta's request id (X-Okta-Request-Id) for the journal. Each first reads whether the
        change is still needed, so performing a done action changes nothing and says so.

        - group_remove: DELETE /api/v1/groups/{gid}/users/{uid} for each group of that name
          the user is in;
        - app_unassign: DELETE /api/v1/apps/{appId}/users/{uid} for each app so labelled
          the user is assigned to;
        - sessions_revoke: DELETE /api/v1/users/{uid}/sessions?oauthTokens=true (ends every
          session and revokes the OAuth/OIDC tokens issued to the user; idempotent);
        - suspend: POST /api/v1/users/{uid}/lifecycle/suspend, for an ACTIVE user only
          (Okta suspends no other status: a SourceError says which it is);
        - deactivate: POST /api/v1/users/{uid}/lifecycle/deactivate (never sent for a
          DEPROVISIONED user).
        Any failure is a SourceError with the status, Okta's errorCode and the path."""
        return self._act(action, lambda api, login: api.perform(action, login))

    def _act(self, action: Action, fn: Callable[[_Api, str], Coroutine[Any, Any, T]]) -> T:
        if action.kind not in self.actions:
            raise SourceError(f"okta: cannot {action.kind}: the okta connector can "
                              + ", ".join(sorted(self.actions)))
        login = _target(action, "user")
        token = self._token()

        async def go() -> T:
            async with self._api(token) as api:
                if dict(action.target).get("person"):
                    user = await api.action_user(login)
                    held_by_another(action, user.employee_id, "okta", login)
                return await fn(api, login)

        return _run(go())


def _target(action: Action, key: str) -> str:
    value = dict(action.target).get(key, "").strip()
    if not value:
        raise SourceError(f"okta: {action.kind} needs a {key} target (got "
                          f"{dict(action.target)})")
    return value


def _ids(ids: list[str]) -> str:
    return ", ".join(ids)


class _Api:
    """The SDK calls this connector makes, each turned into data or a SourceError."""

    def __init__(self, conn: OktaDirectory, client: Any, limiter: RateLimiter,
                 token: str) -> None:
        self.conn = conn
        self.client = client
        self.limiter = limiter
        self.token = token
        self.page_size: int = conn.settings["page_size"]
        self.concurrency: int = conn.settings["concurrency"]
        self.timeout: float = conn.settings["timeout"]

    def _scrub(self, exc: SourceError) -> SourceError:
        text = str(exc)
        if self.token and self.token in text:
            return type(exc)(text.replace(self.token, "[token]"))
        return exc

    async def call(self, where: str, path: str, fn: Callable[..., Awaitable[Any]],
                   *args: Any, **kwargs: Any) -> tuple[Any, Exchange | None]:
        """One SDK call: its data and the exchange, or a SourceError saying precisely why not.
        A 429 the SDK gave up on is tried again after the reset (the limiter waits)."""
        from pydantic import ValidationError

        for attempt in range(RATE_ROUNDS + 1):
            _LAST.set(None)
            try:
                result = await fn(*args, **kwargs)
                # Calls typed Success or None (the lifecycle and DELETE ones) hand a failure
                # back as a pair, (response, error) or (None, error); the others as a triple.
                data, err = (None, result[1]) if len(result) == 2 else (result[0], result[2])
            except AttributeError as exc:
                # The SDK dereferences the missing answer of a failed request.
                ex = _LAST.get()
                if ex is not None and ex.status is None:
                    raise self._scrub(Unreachable(_transport_reason(
                        ex.error, self.conn.hostport, where, self.timeout))) from None
                if ex is not None and ex.status is not None and ex.status >= 400:
                    # e.g. a 429 without X-Rate-Limit-Reset: the SDK gives up without
                    # handing back the answer
                    raise self._scrub(_api_reason(where, path, ex.status, _body_error(ex.body),
                                                  ex, self.conn.token_source)) from None
                raise self._scrub(SourceError(f"okta: {where}: the okta SDK failed "
                                              f"(AttributeError: {exc})")) from None
            except ValidationError as exc:
                errors = exc.errors()
                loc = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
                why = str(errors[0]["msg"]) if errors else str(exc)
                what = f"{exc.title}.{loc}" if loc else exc.title
                raise self._scrub(SourceError(
                    f"okta: {where}: the okta SDK refused the response ({what}: "
                    f"{_first_line(why)})")) from None
            except ValueError as exc:  # json.JSONDecodeError among them
                ex = _LAST.get()
                if ex is not None and ex.status is not None and ex.status >= 400:
                    # a proxy's HTML error page: its status is the news, not the JSON
                    raise self._scrub(_api_reason(where, path, ex.status, _body_error(ex.body),
                                                  ex, self.conn.token_source)) from None
                raise self._scrub(SourceError(f"okta: {where}: the response is not valid JSON "
                                              f"({_first_line(str(exc))})")) from None
            except Exception as exc:  # anything else inside the SDK: this source failed
                raise self._scrub(SourceError(f"okta: {where}: the okta SDK failed "
                                              f"({type(exc).__name__}: "
                                              f"{_first_line(str(exc))})")) from None
            ex = _LAST.get()
            if err is None and ex is not None and ex.status is not None and ex.status >= 400:
                err = _body_error(ex.body)  # an error without a body reads as a success
            if err is None:
                return data, ex
            status = ex.status if ex is not None and ex.status is not None else \
                getattr(err, "status", None)
            retry = status == 429 and attempt < RATE_ROUNDS and _says_when(ex)
            if not retry:
                raise self._scrub(_api_reason(where, path, status, err, ex,
                                              self.conn.token_source))
            log.info("okta: %s still rate limited after the SDK's retries; waiting for the "
                     "reset (%d of %d)", path, attempt + 1, RATE_ROUNDS)
            # the limiter saw the 429: the next acquire() sleeps until the window resets
        raise AssertionError("unreachable")  # pragma: no cover

    async def pages(self, path: str, fn: Callable[..., Awaitable[Any]],
                    item: Callable[[Any], T], label: str = "", stop_on_empty: bool = False,
                    **kwargs: Any) -> list[T]:
        """Every item of a listing, following Link rel="next" to the end, each mapped by
        ``item`` as its page arrives (the SDK's models of a 200,000-user listing are never
        all held at once). Any failure on any page fails the whole source (never a partial
        list)."""
        out: list[T] = []
        after: str | None = None
        seen: set[str] = set()
        page = 0
        while True:
            page += 1
            args = dict(kwargs, limit=self.page_size)
            if after is not None:
                args["after"] = after
            data, ex = await self.call(f"page {page} of {label or path}", path, fn, **args)
            out.extend(item(x) for x in data or [])
            after = next_cursor(ex.headers if ex is not None else None)
            if after is None or (stop_on_empty and not data):
                return out
            if after in seen:
                raise SourceError(f"okta: page {page} of {label or path} points back to an "
                                  f"earlier page (cursor {after!r}); the listing never ends")
            seen.add(after)

    def user(self, u: Any) -> OktaUser:
        okta_status = _value(u.status)
        status = USER_STATUS.get(okta_status)
        if status is None:
            raise SourceError(f"okta: user {u.id} has status {okta_status!r}, which governor "
                              f"does not know")
        profile = u.profile
        login = fold(str(getattr(profile, "login", None) or u.id))
        email = getattr(profile, "email", None)
        employee = getattr(profile, "employee_number", None)
        return OktaUser(id=str(u.id), login=login, email=fold(str(email)) if email else None,
                        employee_id=str(employee) if employee else None,
                        okta_status=okta_status, status=status,
                        last_login=u.last_login, last_updated=u.last_updated)

    async def users(self) -> dict[str, OktaUser]:
        """Every user: the listing leaves DEPROVISIONED out, so they come from a search."""
        listed = await self.pages("/api/v1/users", self.client.list_users, self.user)
        gone = await self.pages("/api/v1/users", self.client.list_users, self.user,
                                label='/api/v1/users?search=status eq "DEPROVISIONED"',
                                search='status eq "DEPROVISIONED"')
        return {u.id: u for u in [*listed, *gone]}

    async def find_group(self, key: str, origin: str = " (from group_grants or priority_groups)"
                         ) -> tuple[str, list[str]]:
        """Okta's name for a configured group key and the ids of the groups it names."""
        if _GROUP_ID.match(key):
            return key, [key]
        escaped = key.replace("\\", "\\\\").replace('"', '\\"')
        found = await self.pages("/api/v1/groups", self.client.list_groups,
                                 lambda g: (_group_name(g), str(g.id)),
                                 label=f'/api/v1/groups?search=profile.name eq "{key}"',
                                 search=f'profile.name eq "{escaped}"')
        named = [(name, gid) for name, gid in found if name.lower() == key.strip().lower()]
        if not named:
            raise SourceError(f"okta: no Okta group named {key!r}{origin}")
        return named[0][0], [gid for _, gid in named]

    async def group_members(self, key: str) -> tuple[str, list[OktaUser]]:
        name, ids = await self.find_group(key)
        members: list[OktaUser] = []
        for gid in ids:
            path = f"/api/v1/groups/{gid}/users"
            members += await self.pages(path, self.client.list_group_users, self.user,
                                        group_id=gid)
        return name, members

    async def find_app(self, key: str) -> list[str]:
        if _APP_ID.match(key):
            return [key]
        return [aid for aid, _ in await self.find_app_labels(key)]

    async def find_app_labels(self, key: str, origin: str = " (from app_grants)"
                              ) -> list[tuple[str, str]]:
        """The (id, label) of every app with this label."""
        found = await self.pages("/api/v1/apps", self.client.list_applications,
                                 lambda a: (str(a.id), str(a.label or "")),
                                 label=f"/api/v1/apps?q={key}", q=key)
        apps = [(aid, label) for aid, label in found if label.lower() == key.strip().lower()]
        if not apps:
            raise SourceError(f"okta: no Okta app labelled {key!r}{origin}")
        return apps

    async def app_members(self, key: str) -> dict[str, str]:
        """Assigned user id -> the user name the app knows them by."""
        out: dict[str, str] = {}
        for aid in await self.find_app(key):
            path = f"/api/v1/apps/{aid}/users"
            out.update(await self.pages(path, self.client.list_application_users, _app_user,
                                        app_id=aid))
        return out

    # ---- offboarding actions ----------------------------------------------------------

    async def action_user(self, login: str) -> OktaUser:
        """The user as Okta has them now: by the id resolved earlier, else by login."""
        cache = self.conn.user_ids
        key = cache.get(fold(login), login)
        path = f"/api/v1/users/{key}"
        try:
            data, _ = await self.call(f"GET {path}", path, self.client.get_user, key)
        except Missing:
            cache.pop(fold(login), None)
            raise SourceError(f"okta: no user {login}") from None
        if data is None:
            raise SourceError(f"okta: GET {path} answered without a user")
        user = self.user(data)
        if user.login != fold(login):  # Okta also resolves a login's short name
            raise SourceError(f"okta: {login} resolves to another Okta user, {user.login} "
                              f"({user.id}); give the full login")
        cache[fold(login)] = user.id
        return user

    async def user_id(self, login: str) -> str:
        uid = self.conn.user_ids.get(fold(login))
        return uid if uid is not None else (await self.action_user(login)).id

    async def action_group(self, key: str) -> tuple[str, list[str]]:
        """A group target (name or id): Okta's name for it and the ids of the groups."""
        found = self.conn.action_groups.get(key)
        if found is not None:
            return found
        if _GROUP_ID.match(key):
            path = f"/api/v1/groups/{key}"
            try:
                data, _ = await self.call(f"GET {path}", path, self.client.get_group, key)
            except Missing:
                raise SourceError(f"okta: no Okta group with id {key}") from None
            found = (_group_name(data) or key, [key])
        else:
            found = await self.find_group(key, origin="")
        self.conn.action_groups[key] = found
        return found

    async def action_app(self, key: str) -> list[tuple[str, str]]:
        """An app target (id or label): the id and label of each app it names."""
        found = self.conn.action_apps.get(key)
        if found is not None:
            return found
        if _APP_ID.match(key):
            path = f"/api/v1/apps/{key}"
            try:
                data, _ = await self.call(f"GET {path}", path, self.client.get_application,
                                          key)
            except Missing:
                raise SourceError(f"okta: no Okta app with id {key}") from None
            inst = getattr(data, "actual_instance", None) or data
            found = [(key, str(getattr(inst, "label", None) or key))]
        else:
            found = await self.find_app_labels(key, origin="")
        self.conn.action_apps[key] = found
        return found

    async def member_of(self, login: str, uid: str, gids: list[str]) -> list[str]:
        """Which of these groups the user is in: from the user's groups (one answer), or,
        when Okta pages those, from each group's members followed to the end."""
        path = f"/api/v1/users/{uid}/groups"
        try:
            data, ex = await self.call(f"GET {path}", path, self.client.list_user_groups, uid)
        except Missing:
            raise SourceError(f"okta: no user {login} (id {uid})") from None
        if next_cursor(ex.headers if ex is not None else None) is None:
            theirs = {str(g.id) for g in data or []}
            return [gid for gid in gids if gid in theirs]
        member: list[str] = []
        for gid in gids:
            gpath = f"/api/v1/groups/{gid}/users"
            ids = await self.pages(gpath, self.client.list_group_users, lambda u: str(u.id),
                                   group_id=gid)
            if uid in ids:
                member.append(gid)
        return member

    async def assigned(self, aid: str, uid: str) -> bool:
        path = f"/api/v1/apps/{aid}/users/{uid}"
        try:
            await self.call(f"GET {path}", path, self.client.get_application_user, aid, uid)
        except Missing:
            return False
        return True

    async def mutate(self, what: str, method: str, path: str,
                     fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> str:
        """One change; returns ' [okta request ID]' for the journal (empty without one)."""
        _, ex = await self.call(f"{what} ({method} {path})", f"{method} {path}", fn, *args,
                                **kwargs)
        rid = ex.headers.get("X-Okta-Request-Id") if ex is not None and \
            ex.headers is not None else None
        return f" [okta request {rid}]" if rid else ""

    async def is_done(self, action: Action, login: str, since: datetime | None = None
                      ) -> bool:
        kind = action.kind
        if kind in ("suspend", "deactivate", "sessions_revoke"):
            user = await self.action_user(login)
            status = user.okta_status
            if kind == "suspend":
                return status in ("SUSPENDED", "DEPROVISIONED")
            if status == "DEPROVISIONED":
                return True
            if kind == "sessions_revoke" and since is not None:
                return await self.sessions_cleared(user.id, since)
            return False
        if kind == "group_remove":
            _, gids = await self.action_group(_target(action, "group"))
            return not await self.member_of(login, await self.user_id(login), gids)
        apps = await self.action_app(_target(action, "app"))
        uid = await self.user_id(login)
        for aid, _ in apps:
            if await self.assigned(aid, uid):
                return False
        return True

    async def perform(self, action: Action, login: str) -> str:
        kind = action.kind
        if kind == "group_remove":
            name, gids = await self.action_group(_target(action, "group"))
            uid = await self.user_id(login)
            member = await self.member_of(login, uid, gids)
            if not member:
                return f"{login} is not in group {name} ({_ids(gids)}); nothing to do"
            rids = [await self.mutate(f"removing {login} from group {name}", "DELETE",
                                      f"/api/v1/groups/{gid}/users/{uid}",
                                      self.client.unassign_user_from_group, gid, uid)
                    for gid in member]
            return f"removed {login} from group {name} ({_ids(member)}){''.join(rids)}"
        if kind == "app_unassign":
            apps = await self.action_app(_target(action, "app"))
            uid = await self.user_id(login)
            held = [(aid, label) for aid, label in apps if await self.assigned(aid, uid)]
            if not held:
                return (f"{login} is not assigned to app {apps[0][1]} "
                        f"({_ids([aid for aid, _ in apps])}); nothing to do")
            rids = [await self.mutate(f"unassigning {login} from app {label}", "DELETE",
                                      f"/api/v1/apps/{aid}/users/{uid}",
                                      self.client.unassign_user_from_application, aid, uid)
                    for aid, label in held]
            return (f"unassigned {login} from app {held[0][1]} "
                    f"({_ids([aid for aid, _ in held])}){''.join(rids)}")
        if kind == "sessions_revoke":
            uid = await self.user_id(login)
            rid = await self.mutate(f"revoking the sessions of {login}", "DELETE",
                                    f"/api/v1/users/{uid}/sessions",
                                    self.client.revoke_user_sessions, uid, oauth_tokens=True)
            return f"revoked every session and OAuth token of {login} ({uid}){rid}"
        user = await self.action_user(login)
        status = user.okta_status
        if status == "DEPROVISIONED" or (kind == "suspend" and status == "SUSPENDED"):
            return f"{login} ({user.id}) is already {status}; nothing to do"
        if kind == "suspend":
            if status != "ACTIVE":
                raise SourceError(f"okta: cannot suspend {login} ({user.id}): Okta suspends "
                                  f"only ACTIVE users and this one is {status}")
            rid = await self.mutate(f"suspending {login}", "POST",
                                    f"/api/v1/users/{user.id}/lifecycle/suspend",
                                    self.client.suspend_user, user.id)
            return f"suspended {login} ({user.id}){rid}"
        rid = await self.mutate(f"deactivating {login}", "POST",
                                f"/api/v1/users/{user.id}/lifecycle/deactivate",
                                self.client.deactivate_user, user.id)
        return f"deactivated {login} ({user.id}){rid}"

    async def sessions_cleared(self, uid: str, since: datetime) -> bool:
        """Whether the System Log records the user's sessions cleared since ``since`` (less
        CLOCK_SKEW, and no further back than Okta keeps its log). A polling query (no
        ``until``, so no bound taken from this machine's clock), followed until a page
        comes back empty; any failure is a SourceError."""
        start = max((as_utc(since) or since) - CLOCK_SKEW, datetime.now(UTC) - LOG_RETENTION)
        expr = f'eventType eq "{SESSION_CLEAR_EVENT}" and target.id eq "{uid}"'
        events = await self.pages("/api/v1/logs", self.client.list_log_events,
                                  lambda e: [str(t.id) for t in e.target or []],
                                  label=f"/api/v1/logs ({SESSION_CLEAR_EVENT} of {uid})",
                                  stop_on_empty=True, since=_iso(start), filter=expr)
        return any(uid in targets for targets in events)

    async def factor_events(self, since: datetime, now: datetime) -> dict[str, datetime]:
        """User id -> the latest factor event in the System Log since the last good read."""
        start = max(since - timedelta(minutes=5), now - LOG_RETENTION)
        if start >= now:
            return {}
        expr = " or ".join(f'eventType eq "{t}"' for t in FACTOR_EVENTS)
        events = await self.pages("/api/v1/logs", self.client.list_log_events, _event_users,
                                  label="/api/v1/logs (factor events)", stop_on_empty=True,
                                  since=_iso(start), until=_iso(now), filter=expr)
        out: dict[str, datetime] = {}
        for when, users in events:
            for uid in users:
                if when is not None and (uid not in out or out[uid] < when):
                    out[uid] = when
        return out

    def factor(self, uid: str, f: Any) -> MfaFactor:
        ftype = _value(f.factor_type)
        mapped = FACTOR_TYPE.get(ftype)
        if mapped is None:
            raise SourceError(f"okta: user {uid} has an MFA factor of type {ftype!r}, which "
                              f"governor does not know")
        provider = getattr(f, "provider", None)
        return MfaFactor(mapped, FACTOR_STATUS.get(_value(f.status), "inactive"),
                         _value(provider) if provider is not None else None)

    async def factors(self, order: list[str]) -> dict[str, tuple[MfaFactor, ...]]:
        """Factors of these users, ``concurrency`` calls at a time; any failure fails all
        but a user Okta no longer has (404), whose factors are left out."""
        results: dict[str, tuple[MfaFactor, ...]] = {}
        if not order:
            return results
        queue: asyncio.Queue[str] = asyncio.Queue()
        for uid in order:
            queue.put_nowait(uid)
        bar = _progress(len(order), f"okta {self.conn.name}: MFA factors")

        async def worker() -> None:
            while True:
                try:
                    uid = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                path = f"/api/v1/users/{uid}/factors"
                try:
                    data, _ = await self.call(path, path, self.client.list_factors, uid)
                except Missing:
                    # deleted since the listing (a factor sweep can take hours): that
                    # user's MFA stays as last read, or unknown, not the whole source
                    bar(1)
                    continue
                results[uid] = tuple(self.factor(uid, f) for f in data or [])
                bar(1)

        tasks = [asyncio.create_task(worker()) for _ in range(min(self.concurrency,
                                                                   len(order)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            bar(0, done=True)
        return results


def _progress(total: int, label: str) -> Callable[..., None]:
    """A click progress bar on stderr when it is a terminal; otherwise nothing."""
    if total < 50 or not sys.stderr.isatty():
        return lambda n, done=False: None
    import click

    # governor's own drawing (a carriage return, cursor codes, a fixed label): written
    # past the stream that shows terminal controls from data as \uXXXX (cli._Harmless)
    stream = getattr(sys.stderr, "unfiltered", sys.stderr)
    bar = click.progressbar(length=total, label=label, file=stream)
    bar.__enter__()

    def update(n: int, done: bool = False) -> None:
        if n:
            bar.update(n)
        if done:
            bar.__exit__(None, None, None)

    return update
