"""A loopback Okta Management API, served over HTTPS with a throwaway CA, for the tests and
the benchmark. It is driven by the official okta SDK, never by our own HTTP code.

What it speaks, as Okta's OpenAPI (okta/okta-sdk-python openapi/api.yaml) and its docs
describe it:

- GET  /api/v1/users                  limit, after (cursor), search=, filter=, q=; Link
                                      headers rel="self" and rel="next"; without search or
                                      filter it leaves out DEPROVISIONED users, as Okta does
- GET  /api/v1/users/{id}/factors     the user's enrolled factors
- GET  /api/v1/groups                 q= (name prefix), search=, filter=, limit, after
- GET  /api/v1/groups/{id}/users      members, paged
- GET  /api/v1/apps                   q= (label or name prefix), limit, after
- GET  /api/v1/apps/{id}/users        app assignments (AppUser), paged
- GET  /api/v1/logs                   since, until, filter (eventType eq "..." or ...,
                                      target.id eq "..."), paged
- GET  /api/v1/users/{id or login}, /api/v1/users/{id}/groups, /api/v1/groups/{id},
  /api/v1/apps/{id}, /api/v1/apps/{appId}/users/{uid}: the reads an offboarding step's
  ``is_done`` makes (the user's groups are one page unless PAGE["user_groups"] is lowered)
- DELETE /api/v1/groups/{gid}/users/{uid}, DELETE /api/v1/apps/{appId}/users/{uid},
  POST /api/v1/users/{id}/lifecycle/suspend | /deactivate, DELETE /api/v1/users/{id}/sessions
  (for offboarding): they change the state the reads above return (membership and app
  assignment removed, status changed, the revocation recorded in ``sessions_revoked`` and,
  as Okta does, in the System Log as a ``user.session.clear`` event targeting the user,
  published at ``clock()`` (the real time unless a test pins it)).
  ``json_204`` makes the 204s carry Content-Type: application/json, as some proxies do.

Every response carries X-Rate-Limit-Limit/Remaining/Reset and Date, counted per endpoint
bucket in fixed windows aligned to the epoch (``window`` seconds, 60 like Okta's minute by
default); a request over the limit gets 429 with an E0000047 body. A bad token gets 401
E0000011. Faults (any status, truncated JSON, slow responses, 429s without the headers)
are injected per path with ``fail()``; a ``storm()`` answers 429 to everything for a while,
as when another integration has used up the org's budget. Every call is recorded with its
time, so tests can assert how the client paced itself.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import trustme

TOKEN = "00TESTabcdefghijklmnopqrstuvwxyzABCDEFGHIJ"  # looks like an Okta API token

ERRORS = {
    400: ("E0000031", "Invalid search criteria."),
    401: ("E0000011", "Invalid token provided"),
    403: ("E0000006", "You do not have permission to perform the requested action"),
    404: ("E0000007", "Not found: Resource not found"),
    429: ("E0000047", "API call exceeded rate limit due to too many requests."),
    500: ("E0000009", "Internal Server Error"),
    502: ("E0000009", "Internal Server Error"),
    503: ("E0000010", "Service is temporarily unavailable"),
    504: ("E0000009", "Internal Server Error"),
}

# Page size caps and defaults per listing (Okta's documented maximums).
PAGE = {"users": (200, 200), "groups": (10000, 10000), "group_users": (1000, 1000),
        "apps": (200, 20), "app_users": (500, 50), "logs": (1000, 100),
        "user_groups": (10000, 10000)}


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def okta_id(prefix: str, n: int) -> str:
    """A 20-character id shaped like Okta's ('00u' + 17)."""
    return f"{prefix}{n:09d}nw7x0h7"[:20].ljust(20, "0")


@dataclass
class Call:
    t: float  # when the request arrived (time.time())
    method: str
    path: str
    query: dict[str, str]
    status: int = 0
    bucket: str = ""
    auth: str = ""
    done: float = 0.0  # when the answer was written

    @property
    def span(self) -> tuple[float, float]:
        return self.t, self.done


@dataclass
class Fault:
    method: str | None
    pattern: re.Pattern[str]
    status: int | None = 500  # None: answer normally (after the delay)
    times: int | None = None  # how many matching requests it hits (None: all)
    skip: int = 0  # let this many matching requests through first
    body: Any = None  # the error body; default: Okta's for the status
    truncate: bool = False  # cut the (200) JSON body in half
    delay: float = 0.0
    rate_headers: bool = True  # False: a 429 without X-Rate-Limit-* (the SDK gives up)
    seen: int = 0
    hit: int = 0


@dataclass
class Storm:
    until: float
    bucket: str | None  # None: every bucket


def bucket_of(method: str, path: str) -> str:
    parts = path.strip("/").split("/")[2:]  # after api/v1
    if method != "GET":
        return "actions"
    if parts == ["users"]:
        return "users"
    if len(parts) == 3 and parts[0] == "users" and parts[2] == "factors":
        return "factors"
    if parts == ["groups"]:
        return "groups"
    if len(parts) == 3 and parts[0] == "groups" and parts[2] == "users":
        return "group_users"
    if parts == ["apps"]:
        return "apps"
    if len(parts) == 3 and parts[0] == "apps" and parts[2] == "users":
        return "app_users"
    if parts == ["logs"]:
        return "logs"
    if len(parts) == 2 and parts[0] == "users":
        return "user"
    if len(parts) == 3 and parts[0] == "users" and parts[2] == "groups":
        return "user_groups"
    if len(parts) == 2 and parts[0] == "groups":
        return "group"
    if len(parts) == 2 and parts[0] == "apps":
        return "app"
    if len(parts) == 4 and parts[0] == "apps" and parts[2] == "users":
        return "app_user"
    return "other"


class OktaPeer:
    """The server's state and behaviour; ``start()`` serves it on 127.0.0.1."""

    def __init__(self, directory: Path, *, token: str = TOKEN, window: int = 60,
                 limits: dict[str, int] | None = None, default_limit: int = 1200,
                 delay: float = 0.0) -> None:
        self.directory = directory
        self.token = token
        self.window = max(1, int(window))
        self.limits = dict(limits or {})
        self.default_limit = default_limit
        self.delay = delay
        self.users: dict[str, dict[str, Any]] = {}
        self.factors: dict[str, list[dict[str, Any]]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, list[str]] = defaultdict(list)
        self.apps: dict[str, dict[str, Any]] = {}
        self.app_users: dict[str, list[str]] = defaultdict(list)
        self.logs: list[dict[str, Any]] = []
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # Okta's clock
        self.admin = {"id": okta_id("00u", 0), "type": "User",
                      "alternateId": "governor-admin@northwind.example",
                      "displayName": "Governor Admin"}  # the API token's owner
        self.sessions_revoked: list[str] = []  # user ids, once per DELETE .../sessions
        self.json_204 = False  # send 204s with Content-Type: application/json
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.storms: list[Storm] = []
        self.counts: dict[tuple[str, int], int] = defaultdict(int)
        self.lock = threading.RLock()
        self._n = 0
        self.ca = trustme.CA()
        self.ca_file = directory / "okta-peer-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---- state -------------------------------------------------------------------------

    def _next(self) -> int:
        self._n += 1
        return self._n

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def add_user(self, login: str, *, status: str = "ACTIVE", email: str | None = None,
                 employee_number: str | None = None, first: str = "Test", last: str = "User",
                 last_login: datetime | None = None, last_updated: datetime | None = None,
                 factors: list[tuple[str, str] | tuple[str, str, dict[str, Any]]] | None = None,
                 groups: Iterable[str] = (), apps: Iterable[str] = ()) -> str:
        with self.lock:
            n = self._next()
            uid = okta_id("00u", n)
            created = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
            updated = last_updated or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
            base = "https://northwind.okta.example"
            profile: dict[str, Any] = {
                "firstName": first, "lastName": last, "mobilePhone": None, "secondEmail": None,
                "login": login, "email": email or login}
            if employee_number is not None:
                profile["employeeNumber"] = employee_number
            self.users[uid] = {
                "id": uid, "status": status, "created": iso(created),
                "activated": iso(created) if status != "STAGED" else None,
                "statusChanged": iso(updated), "lastLogin": iso(last_login),
                "lastUpdated": iso(updated), "passwordChanged": iso(created),
                "type": {"id": "oty1a2b3c4d5e6f7g8h9"},
                "profile": profile,
                "credentials": {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}},
                "_links": {"self": {"href": f"{base}/api/v1/users/{uid}"}},
            }
            self.factors[uid] = []
            for item in factors or []:
                self.add_factor(uid, *item)
            for g in groups:
                self.add_member(g, uid)
            for a in apps:
                self.assign(a, uid)
            return uid

    def add_factor(self, uid: str, ftype: str, status: str = "ACTIVE",
                   profile: dict[str, Any] | None = None) -> dict[str, Any]:
        provider = {"webauthn": "FIDO", "u2f": "FIDO", "token:hardware": "YUBICO",
                    "token:software:totp": "GOOGLE"}.get(ftype, "OKTA")
        if profile is None:
            profile = {
                "sms": {"phoneNumber": "+12065550100"}, "call": {"phoneNumber": "+12065550101"},
                "email": {"email": self.users[uid]["profile"]["email"]},
                "question": {"question": "disliked_food",
                             "questionText": "What is the food you least liked as a child?"},
                "push": {"credentialId": self.users[uid]["profile"]["login"],
                         "deviceType": "SmartPhone_IPhone", "name": "iPhone",
                         "platform": "IOS", "version": "17.1"},
                "token:software:totp": {"credentialId": self.users[uid]["profile"]["login"]},
                "webauthn": {"authenticatorName": "YubiKey 5", "credentialId": "vdCxGjA"},
            }.get(ftype, {})
        fid = okta_id({"sms": "sms", "call": "clf", "email": "emf", "push": "opf",
                       "webauthn": "fwf", "u2f": "fuf"}.get(ftype, "uft"), self._next())
        factor = {"id": fid, "factorType": ftype, "provider": provider, "vendorName": provider,
                  "status": status, "created": "2024-03-01T10:00:00.000Z",
                  "lastUpdated": "2024-03-01T10:00:00.000Z", "profile": profile,
                  "_links": {"self": {"href": f"https://northwind.okta.example/api/v1/users/"
                                              f"{uid}/factors/{fid}"}}}
        with self.lock:
            self.factors[uid].append(factor)
        return factor

    def add_group(self, name: str, *, gtype: str = "OKTA_GROUP") -> str:
        with self.lock:
            gid = okta_id("00g", self._next())
            self.groups[gid] = {
                "id": gid, "created": "2019-02-01T10:00:00.000Z",
                "lastUpdated": "2025-05-01T10:00:00.000Z",
                "lastMembershipUpdated": "2026-11-01T10:00:00.000Z",
                "objectClass": ["okta:user_group"], "type": gtype,
                "profile": {"name": name, "description": f"{name} (governor test)"},
                "_links": {"users": {"href": f"https://northwind.okta.example/api/v1/groups/"
                                             f"{gid}/users"}},
            }
            return gid

    def group_id(self, name_or_id: str) -> str:
        if name_or_id in self.groups:
            return name_or_id
        for gid, g in self.groups.items():
            if g["profile"]["name"] == name_or_id:
                return gid
        return self.add_group(name_or_id)

    def add_member(self, group: str, uid: str) -> None:
        with self.lock:
            gid = self.group_id(group)
            if uid not in self.members[gid]:
                self.members[gid].append(uid)

    def add_app(self, label: str, *, name: str = "hootsuite") -> str:
        with self.lock:
            aid = okta_id("0oa", self._next())
            self.apps[aid] = {
                "id": aid, "name": name, "label": label, "status": "ACTIVE",
                "created": "2021-04-01T10:00:00.000Z", "lastUpdated": "2025-04-01T10:00:00.000Z",
                "signOnMode": "SAML_2_0",
                "accessibility": {"selfService": False, "errorRedirectUrl": None,
                                  "loginRedirectUrl": None},
                "visibility": {"autoSubmitToolbar": False,
                               "hide": {"iOS": False, "web": False},
                               "appLinks": {f"{name}_link": True}},
                "features": [],
                "_links": {"users": {"href": f"https://northwind.okta.example/api/v1/apps/"
                                             f"{aid}/users"}},
            }
            return aid

    def app_id(self, label_or_id: str) -> str:
        if label_or_id in self.apps:
            return label_or_id
        for aid, a in self.apps.items():
            if a["label"] == label_or_id:
                return aid
        return self.add_app(label_or_id)

    def assign(self, app: str, uid: str) -> None:
        with self.lock:
            aid = self.app_id(app)
            if uid not in self.app_users[aid]:
                self.app_users[aid].append(uid)

    def add_log(self, event_type: str, uid: str, published: datetime, *,
                actor: dict[str, Any] | None = None,
                legacy: str | None = "core.user.factor.activate",
                message: str = "Activate factor or authenticator") -> dict[str, Any]:
        """A System Log event about user ``uid`` (its target; the actor too unless given)."""
        user = self.users[uid]
        with self.lock:
            event = {
                "uuid": str(uuid.uuid4()), "published": iso(published),
                "eventType": event_type, "version": "0", "severity": "INFO",
                "legacyEventType": legacy, "displayMessage": message,
                "actor": actor or {"id": uid, "type": "User",
                                   "alternateId": user["profile"]["login"],
                                   "displayName": "Test User"},
                "client": {"ipAddress": "198.51.100.7", "userAgent": {"rawUserAgent": "x"}},
                "outcome": {"result": "SUCCESS"},
                "target": [{"id": uid, "type": "User",
                            "alternateId": user["profile"]["login"],
                            "displayName": "Test User"}],
                "transaction": {"type": "WEB", "id": "Xtx1"},
            }
            self.logs.append(event)
            self.logs.sort(key=lambda e: (e["published"], e["uuid"]))
            return event

    def set_status(self, uid: str, status: str, when: datetime | None = None) -> None:
        with self.lock:
            self.users[uid]["status"] = status
            stamp = iso(when or datetime.now(UTC))
            self.users[uid]["statusChanged"] = stamp
            self.users[uid]["lastUpdated"] = stamp

    def by_login(self, login: str) -> str:
        for uid, u in self.users.items():
            if u["profile"]["login"].lower() == login.lower():
                return uid
        raise KeyError(login)

    # ---- behaviour ---------------------------------------------------------------------

    def fail(self, path: str, status: int | None = 500, *, method: str | None = "GET",
             times: int | None = None, skip: int = 0, body: Any = None, truncate: bool = False,
             delay: float = 0.0, rate_headers: bool = True) -> Fault:
        """Make requests whose path matches the regex ``path`` (fully) misbehave."""
        f = Fault(method, re.compile(path), status, times, skip, body, truncate, delay,
                  rate_headers)
        with self.lock:
            self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.storms.clear()

    def storm(self, seconds: float, bucket: str | None = None) -> None:
        """Answer 429 to every request (of one bucket) for this long."""
        with self.lock:
            self.storms.append(Storm(time.time() + seconds, bucket))

    def limit_of(self, bucket: str) -> int:
        return self.limits.get(bucket, self.default_limit)

    def calls_to(self, bucket: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.bucket == bucket]

    def most_at_once(self, bucket: str) -> int:
        """The most requests of a bucket the server was answering at the same time."""
        edges = sorted([(c.t, 1) for c in self.calls_to(bucket)]
                       + [(c.done, -1) for c in self.calls_to(bucket)],
                       key=lambda e: (e[0], e[1]))
        now = most = 0
        for _, step in edges:
            now += step
            most = max(most, now)
        return most

    def per_window(self, bucket: str) -> dict[int, int]:
        out: dict[int, int] = defaultdict(int)
        for c in self.calls_to(bucket):
            out[int(c.t // self.window)] += 1
        return dict(out)

    # ---- serving -----------------------------------------------------------------------

    def start(self) -> OktaPeer:
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        peer = self

        class Handler(_Handler):
            state = peer

        server = _Server(("127.0.0.1", 0), Handler)
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="okta-peer",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(5)

    def __enter__(self) -> OktaPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # TLS refusals and dropped connections are the client's business here


# ---- the request handler -------------------------------------------------------------

class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, summary: str | None = None) -> _Reply:
    code, default = ERRORS.get(status, ("E0000009", "Internal Server Error"))
    return _Reply(status, {"errorCode": code, "errorSummary": summary or default,
                           "errorLink": code, "errorId": f"oae{uuid.uuid4().hex[:19]}",
                           "errorCauses": []})


_TERM = re.compile(r'^\s*\(?\s*([\w.]+)\s+(eq|sw|co|gt|ge|lt|le)\s+"((?:[^"\\]|\\.)*)"\s*\)?\s*$',
                   re.IGNORECASE)


def _lookup(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if isinstance(cur, list):
            cur = [c.get(part) for c in cur if isinstance(c, dict)]
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def _term(obj: dict[str, Any], text: str) -> bool:
    m = _TERM.match(text)
    if not m:
        raise _error(400)
    attr, op, value = m.group(1), m.group(2).lower(), m.group(3).replace('\\"', '"')
    got = _lookup(obj, attr)
    values = got if isinstance(got, list) else [got]
    for v in values:
        if v is None:
            continue
        a, b = str(v).lower(), value.lower()
        if attr in ("lastUpdated", "created", "published", "statusChanged"):
            a_t, b_t = parse_iso(str(v)), parse_iso(value)
            ok = {"eq": a_t == b_t, "gt": a_t > b_t, "ge": a_t >= b_t, "lt": a_t < b_t,
                  "le": a_t <= b_t}.get(op)
            if ok is None:
                raise _error(400)
        else:
            ok = {"eq": a == b, "sw": a.startswith(b), "co": b in a, "gt": a > b, "ge": a >= b,
                  "lt": a < b, "le": a <= b}[op]
        if ok:
            return True
    return False


def matches(obj: dict[str, Any], expr: str) -> bool:
    """Okta's filter/search expressions, the subset governor and tests use:
    ATTR (eq|sw|co|gt|ge|lt|le) "VALUE" joined by 'and' (binds first) and 'or'."""
    return any(all(_term(obj, t) for t in re.split(r"\s+and\s+", alt, flags=re.IGNORECASE))
               for alt in re.split(r"\s+or\s+", expr.strip(), flags=re.IGNORECASE))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "okta-peer"
    state: OktaPeer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        peer = self.state
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        call = Call(time.time(), method, path, query, bucket=bucket_of(method, path),
                    auth=self.headers.get("Authorization", ""))
        now = call.t
        window = int(now // peer.window)
        reset = (window + 1) * peer.window
        limit = peer.limit_of(call.bucket)
        fault: Fault | None = None
        with peer.lock:
            peer.calls.append(call)
            peer.counts[(call.bucket, window)] += 1
            used = peer.counts[(call.bucket, window)]
            stormy = any(s.until > now and s.bucket in (None, call.bucket)
                         for s in peer.storms)
            for f in peer.faults:
                if (f.method is None or f.method == method) and f.pattern.fullmatch(path):
                    f.seen += 1
                    if f.seen > f.skip and (f.times is None or f.hit < f.times):
                        f.hit += 1
                        fault = f
                        break
        rate = {"X-Rate-Limit-Limit": str(limit),
                "X-Rate-Limit-Remaining": str(max(0, limit - used)),
                "X-Rate-Limit-Reset": str(reset)}
        delay = peer.delay + (fault.delay if fault else 0.0)
        if delay:
            time.sleep(delay)
        truncate = False
        try:
            if not self._authorised(call.auth):
                raise _error(401)
            if stormy or used > limit:
                rate["X-Rate-Limit-Remaining"] = "0"
                raise _error(429)
            if fault is not None and fault.status is not None:
                if not fault.rate_headers:
                    rate = {}
                if fault.body is not None:
                    raise _Reply(fault.status, fault.body)
                raise _error(fault.status)
            truncate = bool(fault and fault.truncate)
            reply = self._route(method, path, query)
        except _Reply as r:
            reply = r
        call.status = reply.status
        body = b"" if reply.body is None else (
            reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body).encode())
        if truncate:
            body = body[: max(1, len(body) // 2)]
        self.send_response(reply.status)
        if reply.status != 204:  # no content, no type (the SDK would parse '' as JSON)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        elif peer.json_204:
            self.send_header("Content-Type", "application/json")
        self.send_header("X-Okta-Request-Id", f"req{uuid.uuid4().hex[:16]}")
        for k, v in {**rate, **reply.headers}.items():
            self.send_header(k, v)
        for link in reply.headers.get("_links", "").split("\n"):
            if link:
                self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(body)
        call.done = time.time()

    def send_header(self, keyword: str, value: str) -> None:
        if keyword != "_links":
            super().send_header(keyword, value)

    def _authorised(self, header: str) -> bool:
        token = self.state.token
        # As Okta documents it: governor mends the SDK's "SSWS<token>" (3.4.6) on its way
        return header == f"SSWS {token}"

    # ---- routes ----------------------------------------------------------------------

    def _route(self, method: str, path: str, q: dict[str, str]) -> _Reply:
        peer = self.state
        p = [unquote(s) for s in path.rstrip("/").split("/")[3:]]  # after /api/v1
        with peer.lock:
            if method == "GET":
                if p == ["users"]:
                    return self._users(q)
                if len(p) == 2 and p[0] == "users":
                    uid = p[1] if p[1] in peer.users else next(
                        (k for k, u in peer.users.items()
                         if u["profile"]["login"].lower() == p[1].lower()), None)
                    if uid is None:
                        raise _error(404, f"Not found: Resource not found: {p[1]} (User)")
                    return _Reply(200, peer.users[uid])
                if len(p) == 3 and p[0] == "users" and p[2] == "groups":
                    if p[1] not in peer.users:
                        raise _error(404, f"Not found: Resource not found: {p[1]} (User)")
                    items = [g for gid, g in sorted(peer.groups.items())
                             if p[1] in peer.members[gid]]
                    return self._page(items, lambda g: g["id"], q, "user_groups")
                if len(p) == 2 and p[0] == "groups":
                    if p[1] not in peer.groups:
                        raise _error(404, f"Not found: Resource not found: {p[1]} (UserGroup)")
                    return _Reply(200, peer.groups[p[1]])
                if len(p) == 2 and p[0] == "apps":
                    if p[1] not in peer.apps:
                        raise _error(404, f"Not found: Resource not found: {p[1]} (AppInstance)")
                    return _Reply(200, peer.apps[p[1]])
                if len(p) == 4 and p[0] == "apps" and p[2] == "users":
                    if p[1] not in peer.apps:
                        raise _error(404, f"Not found: Resource not found: {p[1]} (AppInstance)")
                    if p[3] not in peer.app_users[p[1]]:
                        raise _error(404, f"Not found: Resource not found: {p[3]} (AppUser)")
                    return _Reply(200, self._app_user(p[1], p[3]))
                if len(p) == 3 and p[0] == "users" and p[2] == "factors":
                    if p[1] not in peer.users:
                        raise _error(404, f"Not found: Resource not found: {p[1]} (User)")
                    return _Reply(200, list(peer.factors.get(p[1], [])))
                if p == ["groups"]:
                    return self._groups(q)
                if len(p) == 3 and p[0] == "groups" and p[2] == "users":
                    if p[1] not in peer.groups:
                        raise _error(404, f"Not found: Resource not found: {p[1]} (UserGroup)")
                    items = [peer.users[u] for u in sorted(peer.members[p[1]])]
                    return self._page(items, lambda u: u["id"], q, "group_users")
                if p == ["apps"]:
                    items = [a for _, a in sorted(peer.apps.items())]
                    if "q" in q:
                        s = q["q"].lower()
                        items = [a for a in items if a["label"].lower().startswith(s)
                                 or a["name"].lower().startswith(s)]
                    return self._page(items, lambda a: a["id"], q, "apps")
                if len(p) == 3 and p[0] == "apps" and p[2] == "users":
                    if p[1] not in peer.apps:
                        raise _error(404, f"Not found: Resource not found: {p[1]} (AppInstance)")
                    items = [self._app_user(p[1], u) for u in sorted(peer.app_users[p[1]])]
                    return self._page(items, lambda a: a["id"], q, "app_users")
                if p == ["logs"]:
                    return self._logs(q)
            if method == "DELETE":
                if len(p) == 4 and p[0] == "groups" and p[2] == "users":
                    if p[1] not in peer.groups or p[3] not in peer.users:
                        raise _error(404)
                    if p[3] in peer.members[p[1]]:
                        peer.members[p[1]].remove(p[3])
                    return _Reply(204, None)
                if len(p) == 4 and p[0] == "apps" and p[2] == "users":
                    if p[1] not in peer.apps or p[3] not in peer.app_users[p[1]]:
                        raise _error(404)
                    peer.app_users[p[1]].remove(p[3])
                    return _Reply(204, None)
                if len(p) == 3 and p[0] == "users" and p[2] == "sessions":
                    if p[1] not in peer.users:
                        raise _error(404)
                    peer.sessions_revoked.append(p[1])
                    peer.add_log("user.session.clear", p[1], peer.clock(), actor=peer.admin,
                                 legacy=None,
                                 message="Clear user session")
                    return _Reply(204, None)
            if method == "POST" and len(p) == 4 and p[0] == "users" and p[2] == "lifecycle":
                user = peer.users.get(p[1])
                if user is None:
                    raise _error(404)
                if p[3] == "suspend":
                    if user["status"] != "ACTIVE":
                        raise _Reply(400, {"errorCode": "E0000001", "errorSummary":
                                           "Api validation failed: Cannot suspend a user that "
                                           "is not active", "errorLink": "E0000001",
                                           "errorId": "oae1", "errorCauses": []})
                    peer.set_status(p[1], "SUSPENDED")
                    return _Reply(200, {})
                if p[3] == "deactivate":
                    peer.set_status(p[1], "DEPROVISIONED")
                    return _Reply(200, {})
        raise _error(404, f"Not found: Resource not found: {path}")

    def _users(self, q: dict[str, str]) -> _Reply:
        peer = self.state
        items = [u for _, u in sorted(peer.users.items())]
        expr = q.get("search") or q.get("filter")
        if expr:
            items = [u for u in items if matches(u, expr)]
        else:
            items = [u for u in items if u["status"] != "DEPROVISIONED"]
            if "q" in q:
                s = q["q"].lower()
                items = [u for u in items if any(
                    str(u["profile"].get(k) or "").lower().startswith(s)
                    for k in ("firstName", "lastName", "email"))]
                return _Reply(200, items[: int(q.get("limit") or 10)])
        return self._page(items, lambda u: u["id"], q, "users")

    def _groups(self, q: dict[str, str]) -> _Reply:
        peer = self.state
        items = [g for _, g in sorted(peer.groups.items())]
        if "q" in q:
            s = q["q"].lower()
            items = [g for g in items if g["profile"]["name"].lower().startswith(s)]
        expr = q.get("search") or q.get("filter")
        if expr:
            items = [g for g in items if matches(g, expr)]
        return self._page(items, lambda g: g["id"], q, "groups")

    def _logs(self, q: dict[str, str]) -> _Reply:
        peer = self.state
        items = list(peer.logs)
        if "since" in q:
            since = parse_iso(q["since"])
            items = [e for e in items if parse_iso(e["published"]) >= since]
        if "until" in q:
            until = parse_iso(q["until"])
            items = [e for e in items if parse_iso(e["published"]) < until]
        if q.get("filter"):
            items = [e for e in items if matches(e, q["filter"])]
        return self._page(items, lambda e: e["uuid"], q, "logs")

    def _app_user(self, aid: str, uid: str) -> dict[str, Any]:
        user = self.state.users[uid]
        return {"id": uid, "externalId": None, "created": "2024-01-10T10:00:00.000Z",
                "lastUpdated": "2024-01-10T10:00:00.000Z", "scope": "USER",
                "status": "ACTIVE" if user["status"] != "DEPROVISIONED" else "INACTIVE",
                "statusChanged": "2024-01-10T10:00:00.000Z", "passwordChanged": None,
                "syncState": "DISABLED",
                "credentials": {"userName": user["profile"]["login"]},
                "profile": {"email": user["profile"]["email"]},
                "_links": {"app": {"href": f"https://northwind.okta.example/api/v1/apps/{aid}"},
                           "user": {"href": f"https://northwind.okta.example/api/v1/users/"
                                            f"{uid}"}}}

    def _page(self, items: list[dict[str, Any]], key: Callable[[dict[str, Any]], str],
              q: dict[str, str], kind: str) -> _Reply:
        cap, default = PAGE[kind]
        try:
            limit = min(cap, max(1, int(q.get("limit") or default)))
        except ValueError:
            raise _error(400, "Invalid limit") from None
        start = 0
        if q.get("after"):
            keys = [key(i) for i in items]
            try:
                start = keys.index(q["after"]) + 1
            except ValueError:
                raise _error(400, "Invalid after cursor") from None
        page = items[start:start + limit]
        host = self.headers.get("Host", "127.0.0.1")
        base = f"https://{host}{urlsplit(self.path).path}"
        keep = {k: v for k, v in q.items() if k != "after"}
        links = [f'<{base}?{urlencode(keep)}>; rel="self"']
        if start + limit < len(items):
            links.append(f'<{base}?{urlencode({**keep, "after": key(page[-1])})}>; rel="next"')
        return _Reply(200, page, {"_links": "\n".join(links)})


def demo_directory(peer: OktaPeer, records: list[dict[str, Any]]) -> dict[str, str]:
    """Seed the peer from the demo's flattened Okta export (governor/demo/directory.json):
    users, factors, group memberships. Returns login -> user id."""
    out = {}
    for r in records:
        factors: list[tuple[str, str] | tuple[str, str, dict[str, Any]]] = [
            (f["type"], f.get("status", "ACTIVE")) for f in r.get("factors") or []]
        last_login = parse_iso(r["lastLogin"]) if r.get("lastLogin") else None
        out[r["login"]] = peer.add_user(
            r["login"], status=r["status"], email=r.get("email"),
            employee_number=r.get("employeeNumber"), last_login=last_login,
            factors=factors, groups=[g for g in r.get("groups") or [] if g != "Everyone"])
    return out


def iter_windows(calls: list[Call], window: int) -> Iterator[tuple[int, list[Call]]]:
    by: dict[int, list[Call]] = defaultdict(list)
    for c in calls:
        by[int(c.t // window)].append(c)
    yield from sorted(by.items())


__all__ = ["TOKEN", "Call", "Fault", "OktaPeer", "demo_directory", "iter_windows", "matches",
           "okta_id"]


def demo_on_okta(peer: OktaPeer, demo_dir: Path, extra: str = "") -> Path:
    """The demo organisation with its directory served by ``peer``: seeds the peer from
    directory.json and points the config's [sources.okta] at it. Returns the config."""
    import re

    demo_directory(peer, json.loads((demo_dir / "directory.json").read_text())["records"])
    cfg = demo_dir / "governor.toml"
    text = cfg.read_text()
    block = re.search(r'\[sources\.okta\]\ntype = "directory_file"\n(?:[^\[\n].*\n)*', text)
    assert block is not None
    cfg.write_text(text.replace(block.group(0), (
        "[sources.okta]\n"
        'type = "okta"\n'
        f'org_url = "{peer.url}"\n'
        'token_env = "GOVERNOR_TEST_OKTA_TOKEN"\n'
        f'ca_file = "{peer.ca_file}"\n'
        "full_refresh_days = 1\n"
        'priority_groups = ["social-media-team", "marketing-promotions"]\n'
        + extra + "\n")))
    return cfg
