"""A throwaway OpenLDAP slapd for the LDAP tests and the LDAP benchmark.

Each server lives in its own folder: a plain slapd.conf (no cn=config), an mdb database
loaded offline with ``slapadd -q`` and slapd itself in the foreground (``-d 0``), so the
process we start is the one we stop, by the pid in its pidfile. Two variants:

- ``AD``: the Active Directory attribute schema Debian ships (msuser.schema, after nis),
  so the server itself evaluates ``(userAccountControl:1.2.840.113556.1.4.803:=2)``;
  memberOf is written into the entries (extensibleObject), as AD computes it. Debian's
  file gives sAMAccountName no equality rule, so ``(sAMAccountName=x)`` would match
  nothing; each server includes a copy that matches it without case, as AD does.
- ``OPENLDAP``: inetOrgPerson with the memberof overlay (groups are added over LDAP after
  start, since slapadd bypasses overlays), the ppolicy module for pwdAccountLockedTime
  and a one-attribute schema for nsAccountLock (389-DS / FreeIPA).

Both keep slapd's anonymous size limit at 500 but let paged searches run to the end,
and cap one reader account (``LIMITED_UID``) at 50 entries even when paging, so the
tests see a size limit the client cannot page around. Everyone may read every entry but
the passwords; only ``WRITER_UID`` may write (the offboarding actions), so a write as the
reader is refused with insufficientAccessRights.

No pytest here at import time: benchmarks/ldap_bench.py uses it too.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ldap"
ROOT_PW = "root-secret-not-for-prod"
READER_UID = "governor-reader"  # a service account with no limits of its own
READER_PW = "reader-secret-4c1e"
WRITER_UID = "governor-writer"  # may modify every entry (offboarding's actions)
WRITER_PW = "writer-secret-7d3a"
LIMITED_UID = "limited-reader"
LIMITED_PW = "limited-secret"
LIMITED_SIZE = 50
MAX_PAGE = 1000  # size.pr, as AD's MaxPageSize: a larger page is refused (adminLimitExceeded)

Value = str | bytes
Entry = tuple[str, Mapping[str, Sequence[Value]]]


def tool(name: str) -> str | None:
    # slapd and slapadd live in /usr/sbin, which is not on every user's PATH
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()),
        None)


def missing() -> str | None:
    """Why a slapd cannot be run here (None: it can)."""
    for name in ("slapd", "slapadd"):
        if tool(name) is None:
            return f"{name} is not installed (Debian packages slapd and ldap-utils)"
    for schema in ("core", "cosine", "inetorgperson", "nis", "msuser"):
        if not (SCHEMA_DIR / f"{schema}.schema").exists():
            return f"{SCHEMA_DIR / schema}.schema is missing"
    if not (MODULE_DIR / "back_mdb.la").exists() and not (MODULE_DIR / "back_mdb.so").exists():
        return f"no back_mdb module in {MODULE_DIR}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Variant:
    name: str
    suffix: str
    schemas: tuple[Path, ...]
    modules: tuple[str, ...]
    overlays: str  # slapd.conf lines after the database section

    @property
    def rootdn(self) -> str:
        return f"cn=admin,{self.suffix}"


AD = Variant(
    "ad", "dc=corp,dc=example",
    tuple(SCHEMA_DIR / f"{s}.schema" for s in ("core", "cosine", "inetorgperson", "nis",
                                                "msuser")),
    ("back_mdb",), "")

OL_SUFFIX = "dc=example,dc=org"
MEMBEROF_OVERLAY = ("overlay memberof\nmemberof-group-oc groupOfNames\n"
                    "memberof-member-ad member\nmemberof-memberof-ad memberOf\n"
                    "memberof-refint true\n")
# the policy the ppolicy overlay applies by default: it enforces pwdAccountLockedTime
LOCKOUT_POLICY = f"cn=lockout,ou=policies,{OL_SUFFIX}"
# a policy that does not: an entry under it binds whatever pwdAccountLockedTime says
NO_LOCKOUT_POLICY = f"cn=nolockout,ou=policies,{OL_SUFFIX}"
OPENLDAP = Variant(
    "openldap", OL_SUFFIX,
    (*(SCHEMA_DIR / f"{s}.schema" for s in ("core", "cosine", "inetorgperson")),
     FIXTURES / "nsaccountlock.schema"),
    # ppolicy defines pwdAccountLockedTime (its schema is built in since 2.5)
    ("back_mdb", "memberof", "ppolicy"),
    MEMBEROF_OVERLAY + f'overlay ppolicy\nppolicy_default "{LOCKOUT_POLICY}"\n')


@dataclass
class TlsFiles:
    ca_file: Path  # the CA that issued the server's certificate
    cert_file: Path
    key_file: Path


@dataclass
class Slapd:
    """One server: its folder, its ports, and the process while it runs."""

    variant: Variant
    root: Path
    port: int
    tls: TlsFiles | None = None
    tls_port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        assert self.tls_port is not None, "started without TLS"
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def suffix(self) -> str:
        return self.variant.suffix

    @property
    def conf(self) -> Path:
        return self.root / "slapd.conf"

    @property
    def pidfile(self) -> Path:
        return self.root / "slapd.pid"

    @property
    def log(self) -> Path:
        return self.root / "slapd.log"

    @property
    def reader_dn(self) -> str:
        return f"uid={READER_UID},{self.suffix}"

    @property
    def writer_dn(self) -> str:
        return f"uid={WRITER_UID},{self.suffix}"

    @property
    def limited_dn(self) -> str:
        return f"uid={LIMITED_UID},{self.suffix}"

    def start(self, timeout: float = 15.0) -> None:
        slapd = tool("slapd")
        assert slapd is not None, missing()
        urls = [f"ldap://127.0.0.1:{self.port}/"]
        if self.tls_port is not None:
            urls.append(f"ldaps://127.0.0.1:{self.tls_port}/")
        with self.log.open("ab") as log:
            # -d 0: stay in the foreground with no debug output, so this Popen is slapd
            self.process = subprocess.Popen(
                [slapd, "-d", "0", "-f", str(self.conf), "-h", " ".join(urls)],
                stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import ldap3

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}:\n"
                                   + self.log.read_text(errors="replace")[-2000:])
            try:
                conn = ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE,
                                                     connect_timeout=1),
                                        receive_timeout=2, raise_exceptions=True)
                conn.open()
                conn.search(self.suffix, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
                conn.unbind()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet, whatever the reason
                last = exc
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd on port {self.port} did not answer in {timeout}s: {last}")

    def stop(self) -> None:
        """Stop the server by the pid in its pidfile, and wait until it is gone."""
        proc, self.process = self.process, None
        if proc is None:
            return
        pid = proc.pid
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text().split()[0])
        if pid != proc.pid:  # pragma: no cover - only if slapd forked despite -d
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung slapd
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def admin(self) -> Any:
        """An ldap3 connection bound as the rootdn (for adding entries after start)."""
        import ldap3

        return ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), self.variant.rootdn,
                                ROOT_PW, auto_bind=True, raise_exceptions=True)


def issue_tls(folder: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_file))
    with files.cert_file.open("wb") as fh:
        for blob in leaf.cert_chain_pems:
            fh.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(files.key_file))
    files.key_file.chmod(0o600)
    return files


# Active Directory matches sAMAccountName without case; Debian's msuser.schema has no rule
_SCHEMA_FIXES = {"msuser.schema": ("NAME 'sAMAccountName'\n",
                                   "NAME 'sAMAccountName'\n\tEQUALITY caseIgnoreMatch\n")}


def _schema(path: Path, root: Path) -> Path:
    """The schema file to include: ``path``, or a fixed copy of it in the server's folder."""
    fix = _SCHEMA_FIXES.get(path.name)
    if fix is None:
        return path
    text = path.read_text(encoding="utf-8")
    if fix[0] not in text:
        return path  # a different file than the one fixed: leave it as it is
    copy = root / path.name
    copy.write_text(text.replace(fix[0], fix[1], 1), encoding="utf-8")
    return copy


def write_conf(server: Slapd, extra: str = "") -> None:
    v, root = server.variant, server.root
    (root / "db").mkdir(parents=True, exist_ok=True)
    lines = [f"include {_schema(p, root)}" for p in v.schemas]
    lines += [f"modulepath {MODULE_DIR}", *(f"moduleload {m}" for m in v.modules),
              f"pidfile {server.pidfile}", f"argsfile {root / 'slapd.args'}"]
    if server.tls is not None:
        lines += [f"TLSCertificateFile {server.tls.cert_file}",
                  f"TLSCertificateKeyFile {server.tls.key_file}"]
    # 500 entries for a search without paging (slapd's default), a page of at most
    # MAX_PAGE, and no total cap on a paged search; one reader is capped even when paging.
    lines += [f"sizelimit size.soft=500 size.hard=500 size.pr={MAX_PAGE} "
              "size.prtotal=unlimited",
              "database mdb", f'suffix "{v.suffix}"', f'rootdn "{v.rootdn}"',
              f"rootpw {ROOT_PW}", f"directory {root / 'db'}", "maxsize 4294967296",
              "index objectClass eq", "index uid,mail,cn eq",
              f'limits dn.exact="uid={LIMITED_UID},{v.suffix}" size={LIMITED_SIZE} '
              f"size.prtotal={LIMITED_SIZE}",
              "access to attrs=userPassword by anonymous auth by * none",
              # one service account may write (the offboarding actions); the rest read
              f'access to * by dn.exact="uid={WRITER_UID},{v.suffix}" write by * read',
              v.overlays, extra]
    server.conf.write_text("\n".join(lines) + "\n")


def slapadd(server: Slapd, ldif: Path) -> None:
    tool_path = tool("slapadd")
    assert tool_path is not None, missing()
    done = subprocess.run([tool_path, "-q", "-f", str(server.conf), "-l", str(ldif)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"slapadd {ldif} failed ({done.returncode}): {done.stderr}")


def make(variant: Variant, root: Path, entries: Iterable[Entry], *, tls: bool = False,
         extra_conf: str = "") -> Slapd:
    """A server loaded with the base entries and ``entries``, not yet started."""
    root.mkdir(parents=True, exist_ok=True)
    server = Slapd(variant, root, free_port())
    if tls:
        server.tls, server.tls_port = issue_tls(root / "tls"), free_port()
    write_conf(server, extra_conf)
    ldif = root / "data.ldif"
    with ldif.open("w", encoding="utf-8") as fh:
        write_ldif(fh, [*base_entries(variant), *entries])
    slapadd(server, ldif)
    return server


# ---- LDIF -------------------------------------------------------------------------------
def _plain(value: Value) -> str | None:
    """The value as written after ``attr: `` when LDIF allows it unencoded (RFC 2849)."""
    if isinstance(value, bytes):
        return None
    if (not value or value.isascii() and value.isprintable() and value[0] not in " :<"
            and not value.endswith(" ")):
        return value
    return None


def ldif_lines(entry: Entry) -> Iterator[str]:
    dn, attrs = entry
    yield f"dn: {dn}\n"
    for attr, values in attrs.items():
        for value in values:
            plain = _plain(value)
            if plain is not None:
                yield f"{attr}: {plain}\n"
            else:
                raw = value if isinstance(value, bytes) else value.encode()
                yield f"{attr}:: {base64.b64encode(raw).decode()}\n"
    yield "\n"


def write_ldif(fh: IO[str], entries: Iterable[Entry]) -> int:
    n = 0
    for entry in entries:
        fh.writelines(ldif_lines(entry))
        n += 1
    return n


def base_entries(variant: Variant) -> list[Entry]:
    dc = variant.suffix.split(",")[0].split("=")[1]
    ous = ("users", "groups") if variant is AD else ("people", "groups")
    out: list[Entry] = [(variant.suffix, {"objectClass": ["dcObject", "organization"],
                                          "o": [dc], "dc": [dc]})]
    out += [(f"ou={ou},{variant.suffix}", {"objectClass": ["organizationalUnit"], "ou": [ou]})
            for ou in ous]
    out += [(f"uid={uid},{variant.suffix}", {
        "objectClass": ["account", "simpleSecurityObject"], "uid": [uid], "userPassword": [pw]})
        for uid, pw in ((READER_UID, READER_PW), (WRITER_UID, WRITER_PW),
                        (LIMITED_UID, LIMITED_PW))]
    if "ppolicy" in variant.modules:
        out.append((f"ou=policies,{variant.suffix}", {"objectClass": ["organizationalUnit"],
                                                      "ou": ["policies"]}))
        out += [(dn, {"objectClass": ["organizationalRole", "pwdPolicy"],
                      "cn": [dn.split(",")[0][3:]], "pwdAttribute": ["userPassword"],
                      "pwdLockout": [lockout]})
                for dn, lockout in ((LOCKOUT_POLICY, "TRUE"), (NO_LOCKOUT_POLICY, "FALSE"))]
    return out


# ---- entry builders ---------------------------------------------------------------------
# the attributes msuser.schema's mstop class makes mandatory
AD_MUST: dict[str, Sequence[Value]] = {"instanceType": ["4"],
                                       "nTSecurityDescriptor": [b"\x01\x00\x04\x80"]}


def ad_user(cn: str, sam: str, *, uac: int = 512, mail: str | None = None,
            **attrs: Sequence[Value]) -> Entry:
    """A user as Active Directory holds it; extensibleObject because msuser.schema's
    ``user`` class leaves memberOf-style attributes out of its MAY list."""
    values: dict[str, Sequence[Value]] = {
        "objectClass": ["top", "person", "organizationalPerson", "user", "extensibleObject"],
        "cn": [cn], "sn": [cn.split()[-1]], "sAMAccountName": [sam],
        "userAccountControl": [str(uac)], **AD_MUST,
        "objectCategory": [f"cn=Person,cn=Schema,cn=Configuration,{AD.suffix}"]}
    if mail is not None:
        values["mail"] = [mail]
    values.update(attrs)
    return f"cn={cn},ou=users,{AD.suffix}", values


def ad_group(cn: str, members: Sequence[str]) -> Entry:
    values: dict[str, Sequence[Value]] = {
        "objectClass": ["top", "group"], "cn": [cn], "groupType": ["-2147483646"],
        **AD_MUST, "objectCategory": [f"cn=Group,cn=Schema,cn=Configuration,{AD.suffix}"]}
    if members:
        values["member"] = list(members)
    return f"cn={cn},ou=groups,{AD.suffix}", values


def person(uid: str, *, mail: str | None = None, suffix: str = OPENLDAP.suffix,
           **attrs: Sequence[Value]) -> Entry:
    values: dict[str, Sequence[Value]] = {
        "objectClass": ["inetOrgPerson"], "uid": [uid], "cn": [uid], "sn": [uid]}
    if mail is not None:
        values["mail"] = [mail]
    values.update(attrs)
    return f"uid={uid},ou=people,{suffix}", values


def group_of_names(cn: str, members: Sequence[str], suffix: str = OPENLDAP.suffix) -> Entry:
    return f"cn={cn},ou=groups,{suffix}", {"objectClass": ["groupOfNames"], "cn": [cn],
                                           "member": list(members)}


def add_entries(server: Slapd, entries: Iterable[Entry]) -> None:
    """Add entries over LDAP (so overlays such as memberof see them)."""
    conn = server.admin()
    try:
        for dn, attrs in entries:
            conn.add(dn, attributes={k: list(v) for k, v in attrs.items()})
    finally:
        conn.unbind()
