"""Generate a synthetic organisation for benchmarking governor: export files plus a config.

Stdlib only, seeded and deterministic: the same flags (including --seed and --as-of) give
byte-identical files. Default size (``--scale 1``):

    hr.csv               200,000 people (~3% leavers with past end dates, ~5% contractors
                         or agency staff, ~2% interns, ~1% on leave, ~0.5% pre-hires)
    directory.csv        200,000 SSO accounts (one per person; MFA factors, groups)
    accounts.toml         20,000 social accounts on x, facebook, instagram, linkedin,
                         youtube and tiktok (sso_tool, delegated and shared_login)
    grants_<platform>.csv 2,000,000 grants in all, one file per platform (~0.5% held by
                         principals no person has; no (account, principal) pair twice)
    vault.json             1,000 shared logins (keyed fingerprints, some passwords reused)
    governor.toml        a config reading all of the above (database governor.db here)
    manifest.json        the parameters and row counts, for run.py

Usage::

    python benchmarks/generate.py --out /tmp/org                 # full size
    python benchmarks/generate.py --out /tmp/org-small --scale 0.01
    python benchmarks/generate.py --out /tmp/org --people 50000 --grants 500000

Dates are laid out around ``--as-of`` (default a fixed day, so output does not change
from one day to the next): leavers' end dates lie before it, most contractors' after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

DEFAULTS = {"people": 200_000, "grants": 2_000_000, "accounts": 20_000, "credentials": 1_000}
DEFAULT_AS_OF = "2026-11-01"
DOMAIN = "northwind.example"
LEGACY_DOMAIN = "northwind-legacy.example"

PLATFORMS = ("x", "facebook", "instagram", "linkedin", "youtube", "tiktok")
PLATFORM_WEIGHTS = (22, 22, 22, 12, 10, 12)

# Raw role names as the platforms export them (case varies; governor lower-cases). They are
# the keys of governor.roles.PLATFORM_ROLE_MAPS, copied here so this script needs only the
# stdlib; benchmarks/README.md says to keep them in step. Each: (raw, weight, is_top).
# The first grant on an account gets a top role, the next few an admin-level one.
ROLES: dict[str, dict[str, tuple[tuple[str, int], ...]]] = {
    "x": {"top": (("Owner", 1),), "admin": (("Admin", 1),),
          "rest": (("Contributor", 30), ("Delegate", 20), ("Analyst", 50))},
    "facebook": {"top": (("Admin", 3), ("Full control", 1)), "admin": (("Admin", 1),),
                 "rest": (("Editor", 25), ("Moderator", 20), ("Advertiser", 15),
                          ("Analyst", 35), ("Partial access", 5))},
    "instagram": {"top": (("Admin", 3), ("Full control", 1)), "admin": (("Admin", 1),),
                  "rest": (("Editor", 30), ("Moderator", 20), ("Advertiser", 15),
                           ("Analyst", 35))},
    "linkedin": {"top": (("Super Admin", 1),), "admin": (("Super Admin", 1),),
                 "rest": (("Content Admin", 30), ("Curator", 15), ("Analyst", 45),
                          ("Sponsored Content Poster", 10))},
    "youtube": {"top": (("Primary Owner", 1),), "admin": (("Owner", 1), ("Manager", 3)),
                "rest": (("Editor", 25), ("Editor (limited)", 15), ("Subtitle Editor", 10),
                         ("Viewer", 40), ("Viewer (limited)", 10))},
    "tiktok": {"top": (("Owner", 1),), "admin": (("Admin", 1),),
               "rest": (("Operator", 40), ("Analyst", 60))},
}



def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST = _words("james mary robert patricia john jennifer michael linda david elizabeth william "
         "barbara richard susan joseph jessica thomas sarah charles karen christopher lisa "
         "daniel nancy matthew betty anthony margaret mark sandra donald ashley steven "
         "kimberly paul emily andrew donna joshua michelle kenneth carol kevin amanda brian "
         "dorothy george melissa timothy deborah ronald stephanie edward rebecca jason sharon "
         "jeffrey laura ryan cynthia jacob kathleen gary amy nicholas angela eric shirley "
         "jonathan anna stephen brenda larry pamela justin emma scott nicole brandon helen "
         "benjamin samantha samuel katherine gregory christine alexander debra frank rachel "
         "patrick carolyn raymond janet jack catherine dennis maria jerry heather tyler diane "
         "aaron ruth jose julie adam olivia nathan joyce henry virginia douglas victoria zachary "
         "kelly peter lauren kyle christina ethan joan walter evelyn noah judith jeremy megan "
         "christian andrea keith cheryl roger hannah terry jacqueline gerald martha harold "
         "gloria sean teresa austin ann carl sara arthur madison lawrence frances dylan kathryn "
         "jesse janice jordan jean bryan abigail billy alice joe judy bruce sophia gabriel grace "
         "logan denise albert amber willie doris alan marilyn juan danielle wayne beverly elijah "
         "isabella randy theresa roy diana vincent natalie ralph brittany eugene charlotte "
         "russell marie bobby kayla mason alexis philip lori aiko chen priya ahmed fatima "
         "sven ingrid mateo lucia kenji yuki olu amara ravi ananya")
LAST = _words("smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez "
        "lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson "
        "white harris sanchez clark ramirez lewis robinson walker young allen king wright scott "
        "torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter "
        "roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart "
        "morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed "
        "kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray "
        "mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez "
        "powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales "
        "fisher vasquez simmons romero jordan patterson alexander hamilton graham reynolds "
        "griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina aguilar "
        "stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington "
        "kennedy wells vargas henry chen freeman webb tucker guzman burns crawford olson "
        "simpson porter hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks "
        "holmes palmer wagner black robertson boyd rose stone salazar fox warren mills meyer "
        "rice schmidt garza daniels ferguson nichols stephens soto weaver ryan gardner payne "
        "grant dunn kelley spencer hawkins arnold pierce hansen muller schneider fischer weber "
        "okafor tanaka suzuki sato kowalski nowak novak rossi russo bianchi dubois laurent "
        "singh kumar sharma haddad nakamura larsen berg lindqvist")
DEPARTMENTS = ("Engineering", "Sales", "Customer Support", "Operations", "Finance", "Marketing",
               "Communications", "Human Resources", "Legal", "Product", "Design", "Retail",
               "Logistics", "Research")
DEPT_WEIGHTS = (20, 14, 14, 12, 5, 7, 3, 3, 2, 6, 3, 6, 3, 2)
TITLES = ("Associate", "Specialist", "Senior Specialist", "Analyst", "Senior Analyst",
          "Manager", "Senior Manager", "Director", "Coordinator", "Lead", "Engineer",
          "Senior Engineer", "Consultant", "Assistant", "Head of Team")
SOCIAL_TITLES = ("Social Media Manager", "Community Manager", "Content Producer",
                 "Social Media Coordinator", "Brand Manager", "Digital Marketing Specialist")
REGIONS = ("us", "uk", "de", "fr", "es", "it", "jp", "br", "in", "au", "ca", "mx", "nl", "se")
BRANDS = ("northwind", "nwtraders", "nwcoffee", "nwoutdoor", "nwhome", "nwkids", "nwsport",
          "nwfresh", "nwtravel", "nwtech", "nwbeauty", "nwpets", "nwgarden", "nwauto",
          "nwcareers", "nwnews", "nwsupport", "nwdeals", "nwfoundation", "nwlabs")
CHANNELS = ("", "official", "help", "news", "deals", "careers", "live", "events", "stories",
            "community", "shop", "studio", "tv", "club", "insider")
TOOLS = ("hootsuite", "sproutsocial")
UNKNOWN_DOMAINS = ("gmail.com", "outlook.com", "agency-brightpath.example",
                   "freelance-media.example", "yahoo.com", "oldvendor.example")

# Directory MFA enrolments (CSV form) and weights; "" is none enrolled.
MFA = (("totp:active", 24), ("push:active;sms:active", 22), ("webauthn:active;totp:active", 10),
       ("sms:active", 14), ("", 8), ("totp:pending", 2), ("email:active", 3),
       ("token:software:totp:active", 6), ("call:active;sms:active", 2),
       ("push:active;webauthn:active", 6), ("sms:active;totp:inactive", 3))


def table(pairs: tuple[tuple[str, int], ...] | list[tuple[str, int]], size: int = 1000
          ) -> list[str]:
    """A lookup list in which each value fills a share of ``size`` slots by its weight, so a
    weighted pick in a hot loop is ``t[int(random() * len(t))]``."""
    total = sum(w for _, w in pairs)
    out: list[str] = []
    for value, w in pairs:
        out.extend([value] * max(1, round(size * w / total)))
    return out


def check_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        raise ValueError(f"{text!r} would need CSV quoting")
    return text


class Org:
    def __init__(self, out: Path, people: int, grants: int, accounts: int, credentials: int,
                 seed: int, as_of: date) -> None:
        self.out = out
        self.n_people, self.n_grants = people, grants
        self.n_accounts, self.n_credentials = accounts, credentials
        self.seed, self.as_of = seed, as_of
        self.rnd = random.Random(seed)
        self.counts: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        # Filled by people():
        self.emails: list[str] = []
        self.aliases: list[str] = []  # "" when none
        self.eids: list[str] = []
        self.pstatus: list[str] = []
        self.pdept: list[str] = []
        self.social: list[int] = []  # indexes of people who do social media work
        self.active_social: list[int] = []
        # Filled by inventory():
        self.account_keys: list[str] = []
        self.account_platform: list[str] = []
        self.shared_login: list[str] = []

    # ---- helpers -------------------------------------------------------------------
    def day(self, offset: int) -> str:
        return (self.as_of + timedelta(days=offset)).isoformat()

    def instants(self, n: int, days_back: int, days_forward: int = 0) -> list[str]:
        """A pool of ISO 8601 UTC instants to draw from (much cheaper than formatting one
        per row); seconds vary so values look real."""
        rnd = self.rnd
        base = datetime(self.as_of.year, self.as_of.month, self.as_of.day, 9, 0, 0)
        span = (days_back + days_forward) * 86400
        out = []
        for _ in range(n):
            t = base + timedelta(seconds=rnd.randrange(span) - days_back * 86400)
            out.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return out

    def _timed(self, name: str, fn) -> None:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        fn()
        self.timings[name] = round(time.perf_counter() - t0, 3)

    def generate(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self._timed("hr.csv", self.people)
        self._timed("directory.csv", self.directory)
        self._timed("accounts.toml", self.inventory)
        self._timed("grants", self.grants)
        self._timed("vault.json", self.vault)
        self.config()

    # ---- HR --------------------------------------------------------------------------
    def people(self) -> None:
        rand = self.rnd.random
        n = self.n_people
        dept_t = table(list(zip(DEPARTMENTS, DEPT_WEIGHTS, strict=True)))
        seen: dict[str, int] = {}
        lines = ["employee_id,email,aliases,name,status,worker_type,hire_date,end_date,"
                 "manager,department,job_title\n"]
        emails, aliases, eids = self.emails, self.aliases, self.eids
        social, active_social = self.social, self.active_social
        status_counts: dict[str, int] = {}
        worker_counts: dict[str, int] = {}
        for i in range(n):
            eid = f"E{i + 100001:07d}"
            first, last = FIRST[int(rand() * len(FIRST))], LAST[int(rand() * len(LAST))]
            base = f"{first}.{last}"
            k = seen.get(base, 0) + 1
            seen[base] = k
            local = base if k == 1 else f"{base}{k}"
            email = f"{local}@{DOMAIN}"
            # ~5% have a second address: the old domain, or initial.surname
            r = rand()
            if r < 0.03:
                alias = f"{local}@{LEGACY_DOMAIN}"
            elif r < 0.05:
                alias = f"{first[0]}{last}{i}@{DOMAIN}"
            else:
                alias = ""
            # Mixed case in the HR file: governor lower-cases emails.
            shown = email if rand() < 0.9 else f"{first.capitalize()}.{last.capitalize()}" \
                                                  f"{'' if k == 1 else k}@{DOMAIN}"
            name = f"{first.capitalize()} {last.capitalize()}"
            # worker type: ~3.5% contractor, ~1.5% agency, ~2% intern
            r = rand()
            if r < 0.035:
                worker = "Contractor"
            elif r < 0.05:
                worker = "Agency"
            elif r < 0.07:
                worker = "Intern"
            else:
                worker = "Employee"
            # status: ~3% left (past end date), ~1% on leave, ~0.5% pre-hire
            r = rand()
            end = ""
            if r < 0.03:
                status = "Terminated" if rand() < 0.6 else "Resigned"
                hire = self.day(-int(rand() * 7000) - 400)
                end = self.day(-1 - int(rand() * 700))
            elif r < 0.04:
                status, hire = "On Leave", self.day(-int(rand() * 7000) - 60)
            elif r < 0.045:
                status, hire = "Pre-hire", self.day(1 + int(rand() * 60))
            else:
                status, hire = "Active", self.day(-int(rand() * 7300))
            if not end and worker in ("Contractor", "Agency"):
                r = rand()
                if r < 0.6:
                    end = self.day(1 + int(rand() * 365))
                elif r < 0.7:
                    end = self.day(-1 - int(rand() * 120))  # expired, HR still says active
            elif not end and worker == "Intern":
                end = self.day(int(rand() * 200) - 20)  # some just past
            if end and end < hire:
                # no employment ends before it starts (governor refuses such a row); no
                # draw of rand() here, so every other row stays as it was
                end = hire
            dept = dept_t[int(rand() * len(dept_t))]
            is_social = dept in ("Marketing", "Communications") and rand() < 0.25 \
                or rand() < 0.005
            title = SOCIAL_TITLES[int(rand() * len(SOCIAL_TITLES))] if is_social \
                else TITLES[int(rand() * len(TITLES))]
            manager = eids[int(rand() * min(i, 2000))] if i else ""
            lines.append(f"{eid},{shown},{alias},{name},{status},{worker},{hire},{end},"
                         f"{manager},{dept},{title}\n")
            emails.append(email)
            aliases.append(alias)
            eids.append(eid)
            self.pstatus.append(status)
            self.pdept.append(dept)
            if is_social:
                social.append(i)
                if status == "Active":
                    active_social.append(i)
            status_counts[status] = status_counts.get(status, 0) + 1
            worker_counts[worker] = worker_counts.get(worker, 0) + 1
        if not social:
            social.append(0)
        if not active_social:
            active_social.append(social[0])
        (self.out / "hr.csv").write_text("".join(lines), encoding="utf-8")
        self.counts["people"] = n
        self.counts["people_social"] = len(social)
        self.counts["people_status"] = status_counts  # type: ignore[assignment]
        self.counts["people_worker_type"] = worker_counts  # type: ignore[assignment]

    # ---- directory ------------------------------------------------------------------
    def directory(self) -> None:
        rand = self.rnd.random
        mfa_t = table(MFA)
        logins = self.instants(20_000, 90)
        platforms = PLATFORMS
        social = set(self.social)
        lines = ["login,email,employee_id,status,mfa_factors,groups,last_login\n"]
        for i in range(self.n_people):
            status, dept = self.pstatus[i], self.pdept[i]
            email, eid = self.emails[i], self.eids[i]
            if status in ("Terminated", "Resigned"):
                # Most leavers were deprovisioned; some were missed.
                r = rand()
                d = "DEPROVISIONED" if r < 0.7 else "SUSPENDED" if r < 0.8 else "ACTIVE"
            elif status == "On Leave":
                d = "SUSPENDED" if rand() < 0.7 else "ACTIVE"
            elif status == "Pre-hire":
                d = "STAGED"
            else:
                r = rand()
                d = "ACTIVE" if r < 0.97 else "PASSWORD_EXPIRED" if r < 0.985 else "LOCKED_OUT"
            mfa = mfa_t[int(rand() * len(mfa_t))]
            groups = f"everyone;dept-{dept.lower().replace(' ', '-')}"
            if i in social:
                p = platforms[i % len(platforms)]
                groups += f";social-{p}-{REGIONS[(i // 6) % len(REGIONS)]};social-team"
            last = "" if d == "STAGED" or rand() < 0.03 else logins[int(rand() * 20_000)]
            # A few accounts carry no employee id: governor falls back to the email.
            shown_eid = eid if rand() < 0.98 else ""
            lines.append(f"{email},{email},{shown_eid},{d},{mfa},{groups},{last}\n")
        (self.out / "directory.csv").write_text("".join(lines), encoding="utf-8")
        self.counts["directory"] = len(lines) - 1

    # ---- inventory ------------------------------------------------------------------
    def inventory(self) -> None:
        rand = self.rnd.random
        plat_t = table(list(zip(PLATFORMS, PLATFORM_WEIGHTS, strict=True)))
        crit_t = table((("critical", 5), ("high", 20), ("medium", 45), ("low", 30)))
        access_t = table((("sso_tool", 50), ("delegated", 35), ("shared_login", 15)))
        teams = ("Communications", "Marketing", "Customer Support", "Retail", "Product")
        seen: set[str] = set()
        out: list[str] = [f"# Synthetic social account inventory ({self.n_accounts} accounts, "
                          f"seed {self.seed})\n"]
        act = self.active_social
        per_platform: dict[str, int] = {}
        for _ in range(self.n_accounts):
            platform = plat_t[int(rand() * len(plat_t))]
            while True:
                brand = BRANDS[int(rand() * len(BRANDS))]
                region = REGIONS[int(rand() * len(REGIONS))]
                channel = CHANNELS[int(rand() * len(CHANNELS))]
                slug = f"{brand}{region}{channel}"
                if platform == "linkedin":
                    handle = f"{brand}-{region}" + (f"-{channel}" if channel else "")
                else:
                    handle = f"@{slug}"
                key = f"{platform}:{handle}"
                if key not in seen:
                    break
                # Past the word combinations: number the handle.
                handle = f"{handle}{len(seen)}"
                key = f"{platform}:{handle}"
                if key not in seen:
                    break
            seen.add(key)
            self.account_keys.append(key)
            self.account_platform.append(platform)
            per_platform[platform] = per_platform.get(platform, 0) + 1
            access = access_t[int(rand() * len(access_t))]
            owner = self.eids[act[int(rand() * len(act))]]
            e = [f'\n[[accounts]]\nplatform = "{platform}"\nhandle = "{handle}"\n'
                 f'criticality = "{crit_t[int(rand() * len(crit_t))]}"\n'
                 f'owner = "{owner}"\nowner_team = "{teams[int(rand() * len(teams))]}"\n'
                 f'access = "{access}"\n']
            if access == "sso_tool":
                e.append(f'tool = "{TOOLS[int(rand() * 2)]}"\n')
            elif access == "shared_login":
                self.shared_login.append(key)
            r = rand()
            if r < 0.8:
                e.append("account_2fa = true\n")
            elif r < 0.9:
                e.append("account_2fa = false\n")
            e.append(f'grants_source = "{platform}_grants"\n')
            r = rand()
            if r < 0.7:
                e.append(f'recovery_email = "social+{slug}@{DOMAIN}"\n'
                         'recovery_email_kind = "corporate"\n')
            elif r < 0.8:
                who = act[int(rand() * len(act))]
                e.append(f'recovery_email = "{FIRST[who % len(FIRST)]}{who}@gmail.com"\n'
                         f'recovery_email_kind = "personal"\n'
                         f'recovery_email_owner = "{self.eids[who]}"\n')
            elif r < 0.9:
                e.append(f'recovery_email = "social-team@{DOMAIN}"\n'
                         'recovery_email_kind = "shared"\n')
            if rand() < 0.5:
                who = act[int(rand() * len(act))]
                kind = "corporate" if rand() < 0.6 else "personal"
                e.append(f'recovery_phone = "+1555{int(rand() * 10_000_000):07d}"\n'
                         f'recovery_phone_kind = "{kind}"\n')
                if kind == "personal":
                    e.append(f'recovery_phone_owner = "{self.eids[who]}"\n')
            if rand() < 0.05:
                at = -int(rand() * 200)
                e.append(f'attested_by = "{owner}"\nattested_at = {self.day(at)}\n'
                         f'next_due = {self.day(at + 90)}\n')
            out.append("".join(e))
        (self.out / "accounts.toml").write_text("".join(out), encoding="utf-8")
        self.counts["accounts"] = self.n_accounts
        self.counts["accounts_by_platform"] = per_platform  # type: ignore[assignment]
        self.counts["accounts_shared_login"] = len(self.shared_login)

    # ---- grants ---------------------------------------------------------------------
    def allocate(self) -> list[int]:
        """Grants per account: skewed (a few big brand accounts hold thousands), summing
        to exactly n_grants, none above what the people can fill."""
        rnd = self.rnd
        n_acc, total = self.n_accounts, self.n_grants
        cap = self.n_people  # each person at most once per account
        if total > n_acc * cap:
            raise SystemExit(f"{total} grants do not fit on {n_acc} accounts with "
                             f"{self.n_people} people (at most {n_acc * cap})")
        weights = [rnd.lognormvariate(0.0, 1.1) for _ in range(n_acc)]
        counts = [0] * n_acc
        free = list(range(n_acc))
        left = total
        while left > 0 and free:
            w = sum(weights[i] for i in free)
            nxt = []
            given = 0
            for i in free:
                add = int(left * weights[i] / w)
                if counts[i] + add >= cap:
                    add = cap - counts[i]
                else:
                    nxt.append(i)
                counts[i] += add
                given += add
            left -= given
            if given == 0 or not nxt:  # the remainder: one each, round robin
                for i in (nxt or free):
                    if left == 0:
                        break
                    if counts[i] < cap:
                        counts[i] += 1
                        left -= 1
            free = [i for i in (nxt or free) if counts[i] < cap]
        return counts

    def grants(self) -> None:
        rnd = self.rnd
        rand, sample = rnd.random, rnd.sample
        counts = self.allocate()
        granted = self.instants(20_000, 3650)
        # last activity: most within the month, about 5% stale past dormant-grant's 90
        # days (a rate seen in real organisations, not a flood of findings)
        active = (self.instants(18_000, 45) + self.instants(1_400, 90, -45)
                  + self.instants(600, 730, -95))
        n_people = self.n_people
        emails, aliases = self.emails, self.aliases
        pool = self.social
        role_t = {p: (table(r["top"], 100), table(r["admin"], 100), table(r["rest"], 1000))
                  for p, r in ROLES.items()}
        for tables in role_t.values():
            for t in tables:
                for v in set(t):
                    check_cell(v)
        header = "account,principal,role,granted_at,last_active\n"
        files = {p: (self.out / f"grants_{p}.csv").open("w", encoding="utf-8", newline="")
                 for p in PLATFORMS}
        for fh in files.values():
            fh.write(header)
        per_file = dict.fromkeys(PLATFORMS, 0)
        unknown = 0
        unknown_t = UNKNOWN_DOMAINS
        try:
            for a, k in enumerate(counts):
                if k == 0:
                    continue
                key = self.account_keys[a]
                platform = self.account_platform[a]
                top, admin, rest = role_t[platform]
                # About a third from the social team, the rest from anyone.
                n_pool = min(k // 3, len(pool) // 2)
                picks = sample(pool, n_pool) if n_pool else []
                need = k - n_pool
                if need:
                    taken = set(picks)
                    extra = [p for p in sample(range(n_people), min(n_people, need + n_pool))
                             if p not in taken]
                    if len(extra) < need:  # only when an account holds nearly everyone
                        have = taken | set(extra)
                        extra += [p for p in range(n_people) if p not in have]
                    picks.extend(extra[:need])
                lines = []
                # 1-3 holders at admin level or above; a few accounts have more
                n_admin = int(rand() * 3) if rand() < 0.95 else 3 + int(rand() * 4)
                for j, p in enumerate(picks):
                    r = rand()
                    if r < 0.005:
                        unknown += 1
                        dom = unknown_t[unknown % len(unknown_t)]
                        principal = f"ext.{unknown:07d}@{dom}"
                    elif r < 0.012 and aliases[p]:
                        principal = aliases[p]
                    elif r < 0.04:
                        principal = emails[p].capitalize()
                    else:
                        principal = emails[p]
                    if j == 0:
                        role = top[int(rand() * len(top))]
                    elif j <= n_admin:
                        role = admin[int(rand() * len(admin))]
                    else:
                        role = rest[int(rand() * len(rest))]
                    last = "" if rand() < 0.2 else active[int(rand() * 20_000)]
                    lines.append(f"{key},{principal},{role},{granted[int(rand() * 20_000)]},"
                                 f"{last}\n")
                files[platform].write("".join(lines))
                per_file[platform] += len(lines)
        finally:
            for fh in files.values():
                fh.close()
        self.counts["grants"] = sum(per_file.values())
        self.counts["grants_by_platform"] = per_file  # type: ignore[assignment]
        self.counts["grants_unknown_principal"] = unknown
        self.counts["grants_max_per_account"] = max(counts) if counts else 0

    # ---- vault ----------------------------------------------------------------------
    def vault(self) -> None:
        rnd = self.rnd
        rand = rnd.random
        changed = self.instants(2_000, 900)
        act = self.active_social
        targets = self.shared_login or self.account_keys
        team = sorted({self.emails[act[int(rand() * len(act))]] for _ in range(12)})
        agency = [f"ext.agency{i:03d}@agency-brightpath.example" for i in range(5)]
        groups = {"social-team-vault": team, "agency-partners": agency}
        records = []
        fingerprints: list[str] = []
        for _ in range(self.n_credentials):
            k = 1 if rand() < 0.85 else 2 + int(rand() * 2)
            accts = sorted({targets[int(rand() * len(targets))] for _ in range(k)})
            readers = sorted({self.emails[act[int(rand() * len(act))]]
                              for _ in range(1 + int(rand() * 5))})
            r = rand()
            if r < 0.2:
                readers.append("group:social-team-vault")
            elif r < 0.25:
                readers.append("group:agency-partners")
            elif r < 0.35:
                i = act[int(rand() * len(act))]
                readers.append(f"group:social-{PLATFORMS[i % len(PLATFORMS)]}-"
                               f"{REGIONS[(i // 6) % len(REGIONS)]}")  # a directory group
            rec: dict[str, object] = {
                "id": f"itm-{rnd.getrandbits(64):016x}",
                "title": f"Shared login {accts[0]}",
                "accounts": accts,
                "readers": readers,
                "password_changed_at": changed[int(rand() * len(changed))],
            }
            r = rand()
            if r < 0.6:
                rec["totp_in_vault"] = True
            elif r < 0.9:
                rec["totp_in_vault"] = False
            r = rand()
            if r < 0.06 and fingerprints:  # the same password as another item
                rec["fingerprint"] = fingerprints[int(rand() * len(fingerprints))]
            elif r < 0.95:
                fp = f"hmac-sha256:{rnd.getrandbits(256):064x}"
                fingerprints.append(fp)
                rec["fingerprint"] = fp
            records.append(rec)
        doc = {"exported_at": f"{self.as_of.isoformat()}T06:00:00Z", "groups": groups,
               "records": records}
        (self.out / "vault.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        self.counts["credentials"] = len(records)

    # ---- config ---------------------------------------------------------------------
    def config(self) -> None:
        parts = [
            "# Generated by benchmarks/generate.py: a synthetic organisation for benchmarks.\n"
            f"# seed {self.seed}, as of {self.as_of.isoformat()}\n\n"
            "[governor]\n"
            'database = "sqlite:///governor.db"\n'
            'report_dir = "reports"\n'
            f'org_domains = ["{DOMAIN}"]\n\n'
            "[sources.hr]\n"
            'type = "hr_file"\n'
            'path = "hr.csv"\n\n'
            "[sources.directory]\n"
            'type = "directory_file"\n'
            'path = "directory.csv"\n\n'
            "[sources.inventory]\n"
            'type = "inventory_file"\n'
            'path = "accounts.toml"\n\n'
        ]
        for p in PLATFORMS:
            parts.append(f"[sources.{p}_grants]\n"
                         'type = "grants_file"\n'
                         f'path = "grants_{p}.csv"\n\n')
        parts.append("[sources.vault]\n"
                     'type = "vault_file"\n'
                     'path = "vault.json"\n')
        (self.out / "governor.toml").write_text("".join(parts), encoding="utf-8")


def generator_version() -> str:
    """A digest of this script: run.py regenerates when the generator has changed."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


FILES = ("hr.csv", "directory.csv", "accounts.toml", *(f"grants_{p}.csv" for p in PLATFORMS),
         "vault.json", "governor.toml")


def sizes(out: Path) -> dict[str, int]:
    return {name: (out / name).stat().st_size for name in FILES}


def resolve_counts(args: argparse.Namespace) -> dict[str, int]:
    out = {}
    for name, default in DEFAULTS.items():
        given = getattr(args, name)
        out[name] = given if given is not None else max(1, round(default * args.scale))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="directory to write (created)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every default size (0.01 = 2,000 people, 20,000 grants)")
    ap.add_argument("--people", type=int, help=f"people and directory accounts "
                                                f"(default {DEFAULTS['people']:,} x scale)")
    ap.add_argument("--grants", type=int, help=f"grants (default {DEFAULTS['grants']:,} x scale)")
    ap.add_argument("--accounts", type=int,
                    help=f"social accounts (default {DEFAULTS['accounts']:,} x scale)")
    ap.add_argument("--credentials", type=int,
                    help=f"vault items (default {DEFAULTS['credentials']:,} x scale)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--as-of", default=DEFAULT_AS_OF, type=date.fromisoformat,
                    help=f"the day the data is laid out around (default {DEFAULT_AS_OF})")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be positive")
    for name in DEFAULTS:
        v = getattr(args, name)
        if v is not None and v < 1:
            ap.error(f"--{name} must be at least 1")
    return args


def generate(out: Path, *, people: int, grants: int, accounts: int, credentials: int,
             seed: int = 1, as_of: date | None = None, scale: float | None = None
             ) -> dict[str, object]:
    """Write the organisation into ``out`` and return its manifest (also manifest.json)."""
    as_of = as_of or date.fromisoformat(DEFAULT_AS_OF)
    t0 = time.perf_counter()
    org = Org(out, people, grants, accounts, credentials, seed, as_of)
    org.generate()
    elapsed = time.perf_counter() - t0
    manifest: dict[str, object] = {
        "generator": generator_version(),
        "params": {"people": people, "grants": grants, "accounts": accounts,
                   "credentials": credentials, "seed": seed, "as_of": as_of.isoformat()},
        "scale": scale,
        "counts": org.counts,
        "seconds": round(elapsed, 2),
        "step_seconds": org.timings,
        "bytes": sizes(out),
    }
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "manifest.json")  # written last: its presence means complete
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n = resolve_counts(args)
    manifest_path = args.out / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()
    m = generate(args.out, seed=args.seed, as_of=args.as_of, scale=args.scale, **n)
    if not args.quiet:
        b = m["bytes"]
        assert isinstance(b, dict)
        print(f"wrote {args.out} in {m['seconds']} s: {n['people']:,} people, "
              f"{n['accounts']:,} accounts, {n['grants']:,} grants, "
              f"{n['credentials']:,} credentials; {sum(b.values()) / 1e6:.1f} MB")
        for name, size in b.items():
            print(f"  {name:<24} {size / 1e6:9.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
