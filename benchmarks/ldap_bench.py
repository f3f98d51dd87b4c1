"""Benchmark the LDAP connector: a paged search of a large directory from a real slapd.

    python benchmarks/ldap_bench.py [--entries N] [--page-size P] [--out DIR] [--keep]

1. Writes N inetOrgPerson entries (uid, mail, employeeNumber, memberOf: 1 to 3 of 20
   groups, five of them mapped to grants) as LDIF and loads them offline with slapadd
   into a throwaway slapd (tests/ldap_peer.py, OpenLDAP variant), then starts it.
2. Times ``ldapsearch -E pr=P`` of the same attributes into /dev/null: the floor
   (server plus wire, a C client).
3. Runs the connector's fetch() in a child process (the same interpreter) and reports
   its wall time, entries per second and the child's own peak RSS
   (resource.getrusage), so nothing of steps 1 and 2 is counted.
4. Stops slapd and deletes DIR unless --keep.

Not a timed test: it prints figures (and writes DIR/results.json) and exits 0 when the
read returned every entry.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

import ldap_peer as lp  # noqa: E402  (tests/ldap_peer.py: the throwaway slapd)

GROUPS = 20
MAPPED = {f"cn=team-{g:02d},ou=groups,{lp.OPENLDAP.suffix}": [f"publisher x:@brand{g}"]
          for g in range(5)}
ATTRS = ["uid", "mail", "employeeNumber", "memberOf", "pwdAccountLockedTime", "nsAccountLock"]


def entries(n: int) -> Iterator[lp.Entry]:
    suffix = lp.OPENLDAP.suffix
    for g in range(GROUPS):
        # memberOf below is written directly (slapadd bypasses the overlay), so the
        # groups themselves need no member lists for the read being measured
        yield (f"cn=team-{g:02d},ou=groups,{suffix}",
               {"objectClass": ["groupOfNames"], "cn": [f"team-{g:02d}"],
                "member": [f"uid=user{g:06d},ou=people,{suffix}"]})
    for i in range(n):
        groups = [f"cn=team-{(i + k * 7) % GROUPS:02d},ou=groups,{suffix}"
                  for k in range(1 + i % 3)]
        yield lp.person(f"user{i:06d}", mail=f"user{i:06d}@example.org",
                        employeeNumber=[f"E{i:06d}"], memberOf=groups,
                        givenName=["Test"], displayName=[f"Test User {i}"])


def child(url: str, base: str, page_size: int, password: str | None) -> None:
    """The measured part: fetch() every record, keep nothing, report to stdout."""
    from governor.options import apply
    from governor.records import DirectoryAccount
    from governor.sources.ldap_directory import LdapDirectory

    body: dict[str, Any] = {"urls": [url], "tls": "none", "preset": "openldap",
                            "base_dns": [base], "page_size": page_size,
                            "group_grants": MAPPED}
    if password:
        os.environ["LDAP_BENCH_PW"] = password
        body.update(bind_dn=f"uid={lp.READER_UID},{lp.OPENLDAP.suffix}",
                    password_env="LDAP_BENCH_PW")
    settings = apply(LdapDirectory.options, body, "sources.ldap")
    LdapDirectory.validate(settings, "sources.ldap")
    conn = LdapDirectory("bench", settings, Path.cwd())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    accounts = grants = 0
    for record in conn.fetch():
        if isinstance(record, DirectoryAccount):
            accounts += 1
        else:
            grants += 1
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"accounts": accounts, "grants": grants, "seconds": round(seconds, 2),
                      "entries_per_second": round(accounts / seconds),
                      "rss_before_fetch_mb": round(before / 1024, 1),
                      "peak_rss_mb": round(peak / 1024, 1)}))


def floor(server: lp.Slapd, base: str, page_size: int) -> float | None:
    ldapsearch = lp.tool("ldapsearch")
    if ldapsearch is None:
        return None
    start = time.perf_counter()
    subprocess.run([ldapsearch, "-x", "-LLL", "-H", server.url, "-D", server.reader_dn,
                    "-w", lp.READER_PW, "-b", base, "-E", f"pr={page_size}/noprompt",
                    "(objectClass=inetOrgPerson)", *ATTRS],
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("URL", "BASE", "PAGE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), os.environ.get("BENCH_PW"))
        return 0
    why = lp.missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="governor-ldap-bench-"))
    if out.exists() and not args.keep and args.out is not None:
        shutil.rmtree(out)
    base = f"ou=people,{lp.OPENLDAP.suffix}"
    t0 = time.perf_counter()
    server = lp.Slapd(lp.OPENLDAP, out, lp.free_port())
    out.mkdir(parents=True, exist_ok=True)
    lp.write_conf(server)
    ldif = out / "data.ldif"
    with ldif.open("w", encoding="utf-8") as fh:
        lp.write_ldif(fh, [*lp.base_entries(lp.OPENLDAP)])
        written = lp.write_ldif(fh, entries(args.entries))
    t_ldif = time.perf_counter() - t0
    t0 = time.perf_counter()
    lp.slapadd(server, ldif)
    t_load = time.perf_counter() - t0
    server.start(timeout=60)
    try:
        t_floor = floor(server, base, args.page_size)
        env = {**os.environ, "BENCH_PW": lp.READER_PW}
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                               server.url, base, str(args.page_size)],
                              capture_output=True, text=True, env=env, cwd=REPO, check=False)
    finally:
        server.stop()
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 2
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(entries=args.entries, page_size=args.page_size, ldif_entries=written,
                  ldif_seconds=round(t_ldif, 2), slapadd_seconds=round(t_load, 2),
                  ldapsearch_seconds=round(t_floor, 2) if t_floor is not None else None,
                  cpus=os.cpu_count())
    (out / "results.json").write_text(json.dumps(result, indent=2))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if result["accounts"] == args.entries else 1


if __name__ == "__main__":
    sys.exit(main())
