"""One consistent, read-only picture of everything the sources said, correlated.

Rules read only this. It is built from the database's current rows after a run has
loaded its sources (so a failed source contributes its last good data), or directly
from records in tests: ``Snapshot.build(...)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo

from governor.clock import day_end, day_start
from governor.correlate import UNMATCHED, Correlator, Declared, Match
from governor.records import (
    AccessPath,
    Credential,
    DirectoryAccount,
    Grant,
    Person,
    PersonStatus,
    SocialAccount,
    SourceKind,
    WorkerType,
)
from governor.roles import Role

# How far ahead of the run a source's instant may be and still be taken as "now": clocks
# drift, and an export stamped in local time without an offset can be hours ahead.
CLOCK_SLACK = timedelta(days=1)
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SourceState:
    """One kind of data from one source (a directory that also reports group grants has
    two: the flags are the source's, the kind says what it supplies)."""

    name: str
    kind: SourceKind
    ok: bool  # read successfully in this run
    has_data: bool  # this run or an earlier one left records to judge by


@dataclass(slots=True, kw_only=True)
class HeldGrant(Grant):
    """A grant with the source that reported it and who holds it. One object per grant,
    not a wrapper around one: a snapshot holds two million of them."""

    source: str = ""
    match: Match = UNMATCHED

    @property
    def grant(self) -> Grant:
        return self

    @classmethod
    def of(cls, g: Grant, source: str, match: Match) -> HeldGrant:
        return cls(account=g.account, principal=g.principal, raw_role=g.raw_role,
                   role=g.role, via=g.via, via_detail=g.via_detail, granted_at=g.granted_at,
                   last_active=g.last_active, source=source, match=match)


@dataclass(slots=True)
class HeldAccount:
    source: str
    account: DirectoryAccount
    match: Match


@dataclass(slots=True)
class HeldCredential:
    source: str
    credential: Credential
    readers: list[tuple[str, Match]]  # (principal, match) after group expansion
    # reader groups neither the vault nor any directory source expanded: members unknown,
    # so who can read the item is not known (rules answer unknown, never "nobody")
    unexpanded: tuple[str, ...] = ()
    # a reader (as in readers) who reads it only through a directory group -> the group
    through: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupMember:
    """How a former reader read a vault item through a directory group: the group, and
    their directory account as it was then (matched as the directory matches it)."""

    group: str
    directory: str  # the directory source
    login: str
    employee_id: str | None = None
    email: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FormerReader:
    """Someone who could read a vault item in an earlier version of it and cannot now
    (from history): a password they knew is still the password until it is rotated."""

    principal: str
    # when they stopped being able to read it: when the last version of the item that
    # listed them ended (through a directory group: the end of the last time both the
    # item was shared with the group and they were in it). None: not known
    lost_at: datetime | None = None
    # the item's keyed fingerprint in the last version they could read: the same one
    # today means the password they knew is still the password, whatever its date says
    fingerprint: str | None = None
    through: GroupMember | None = None  # None: the vault named them


@dataclass(frozen=True, slots=True)
class Access:
    """One way one person (or orphan principal) reaches one social account."""

    account: str
    principal: str
    role: Role
    path: AccessPath
    detail: str | None
    source: str
    match: Match


@dataclass
class Snapshot:
    now: datetime
    org_domains: tuple[str, ...]
    persons: dict[str, Person]
    person_source: dict[str, str]
    accounts: dict[str, SocialAccount]
    directory: list[HeldAccount]
    grants: list[HeldGrant]
    credentials: list[HeldCredential]
    sources: dict[str, SourceState]  # by name: whether each source was read / has data
    correlator: Correlator
    directory_by_person: dict[str, list[HeldAccount]] = field(default_factory=dict)
    grants_by_person: dict[str, list[HeldGrant]] = field(default_factory=dict)
    grants_by_account: dict[str, list[HeldGrant]] = field(default_factory=dict)
    credentials_by_person: dict[str, list[HeldCredential]] = field(default_factory=dict)
    # employee id -> what a principal matching them *and someone else* holds: not theirs
    # for the rules, but a leaver among the candidates must not read as a pass
    ambiguous_by_person: dict[str, list[HeldGrant | HeldAccount | HeldCredential]] = field(
        default_factory=dict)
    group_members: dict[str, list[HeldAccount]] = field(default_factory=dict)
    # item id -> principals who could read it in an earlier version but no longer can
    # (from history): a password they knew is still the password until it is rotated.
    former_readers: dict[str, list[tuple[FormerReader, Match]]] = field(default_factory=dict)
    states: list[SourceState] = field(default_factory=list)  # every (source, kind)
    # source -> principal as the source wrote it -> match, for every principal a grant
    # names: the correlation kept for queries, without walking every grant again
    principals: dict[str, dict[str, Match]] = field(default_factory=dict)
    # The earliest instant after `now` at which a time limit someone asked about is
    # reached (an end date plus grace, a dormancy cut-off, a review due day): until
    # then, the same data gives every rule the same answer. None: no limit ahead.
    horizon: datetime | None = None
    # The organisation's zone (governor.timezone): where a calendar day (an HR end date,
    # a review due day) begins and ends. Every instant here is UTC all the same.
    zone: tzinfo = UTC
    # How long after an end date leaver-holds-access starts reporting someone (its
    # grace_hours): a rule that judges staff only hands a person over then, not at the
    # end date, so no day passes in which neither reports what they hold
    leaver_grace: timedelta = timedelta(0)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def build(
        cls,
        now: datetime,
        *,
        persons: Iterable[tuple[str, Person]] = (),
        directory: Iterable[tuple[str, DirectoryAccount]] = (),
        accounts: Iterable[tuple[str, SocialAccount]] = (),
        grants: Iterable[tuple[str, Grant]] = (),
        credentials: Iterable[tuple[str, Credential]] = (),
        sources: Iterable[SourceState] | None = None,
        links: Mapping[tuple[str, str], str] | None = None,
        declared: Iterable[Declared] = (),
        id_sources: Collection[str] | None = None,
        org_domains: Iterable[str] = (),
        former_readers: Mapping[str, Iterable[str | FormerReader]] | None = None,
        zone: tzinfo = UTC,
    ) -> Snapshot:
        people: dict[str, Person] = {}
        person_source: dict[str, str] = {}
        for src, p in persons:
            # The first HR source listing an id is authoritative; config order decides.
            if p.employee_id not in people:
                people[p.employee_id] = p
                person_source[p.employee_id] = src
        corr = Correlator(people.values(), links, declared, id_sources)
        snap = cls(
            now=now, org_domains=tuple(d.lower() for d in org_domains), persons=people,
            person_source=person_source, accounts={a.key: a for _, a in accounts},
            directory=[], grants=[], credentials=[], sources={}, correlator=corr,
            zone=zone,
        )
        by_person: dict[str, list[HeldAccount]] = defaultdict(list)
        groups: dict[str, list[HeldAccount]] = defaultdict(list)
        maybe: dict[str, list[HeldGrant | HeldAccount | HeldCredential]] = defaultdict(list)
        for src, acct in directory:
            m = corr.match(src, acct.login, acct.employee_id, acct.email, acct.aliases)
            # a group grant names the member by login: it is whoever the account is
            corr.remember(src, acct.login, m)
            held = HeldAccount(src, acct, m)
            snap.directory.append(held)
            if m.employee_id:
                by_person[m.employee_id].append(held)
            else:
                for cand in m.candidates:
                    maybe[cand].append(held)
            for group in acct.groups:
                groups[group.lower()].append(held)
        snap.directory_by_person, snap.group_members = dict(by_person), dict(groups)

        g_person: dict[str, list[HeldGrant]] = defaultdict(list)
        g_account: dict[str, list[HeldGrant]] = defaultdict(list)
        by_tool: dict[str, list[str]] = defaultdict(list)
        for social in snap.accounts.values():
            if social.tool:
                by_tool[social.tool.lower()].append(social.key)
        # per source, by the principal exactly as given: most grants' holders hold others
        matches = snap.principals
        append = snap.grants.append
        for src, g in grants:
            principal = g.principal
            of_source = matches.get(src)
            if of_source is None:
                of_source = matches[src] = {}
            found = of_source.get(principal)
            if found is None:
                found = of_source[principal] = corr.match(src, principal)
            m = found
            managed = by_tool.get(g.account[5:].lower()) if g.account.startswith("tool:") \
                else None
            if managed:
                # "tool:hootsuite" (an SSO app seat) reaches every account the tool manages
                for key in managed:
                    hg = HeldGrant.of(replace(g, account=key), src, m)
                    append(hg)
                    g_account[key].append(hg)
                    if m.employee_id:
                        g_person[m.employee_id].append(hg)
                    else:
                        for cand in m.candidates:
                            maybe[cand].append(hg)
                continue
            # a seat on a tool no inventory account names stays a grant on "tool:NAME":
            # dropping it would hide a leaver's seat and the unlisted accounts behind it
            if type(g) is HeldGrant:  # read from the store as one already (state.py)
                g.source, g.match = src, m
                hg = g
            else:
                hg = HeldGrant.of(g, src, m)
            append(hg)
            g_account[g.account].append(hg)
            if m.employee_id:
                g_person[m.employee_id].append(hg)
            elif m.candidates:
                for cand in m.candidates:
                    maybe[cand].append(hg)
        snap.grants_by_person, snap.grants_by_account = dict(g_person), dict(g_account)

        c_person: dict[str, list[HeldCredential]] = defaultdict(list)
        for src, c in credentials:
            named = {p.lower() for p in c.readers}
            members: dict[str, Match] = {}
            through: dict[str, str] = {}
            for grp in c.reader_groups:
                for member in groups.get(grp.lower(), ()):
                    shown = (member.account.email or member.account.login).lower()
                    if shown not in named and shown not in members:
                        # the directory already decided who this account is (by employee
                        # id first): matching its address again under the vault lost that
                        # for an account without an email, or with someone else's
                        members[shown] = member.match
                        through[shown] = grp
            readers = sorted([(p, corr.match(src, p)) for p in set(c.readers)]
                             + list(members.items()), key=lambda r: r[0])
            own = c.expanded_groups
            hc = HeldCredential(src, c, readers, tuple(
                g for g in c.reader_groups
                if g.lower() not in groups and (own is None or g not in own)), through)
            snap.credentials.append(hc)
            for eid in {m.employee_id for _, m in readers if m.employee_id}:
                c_person[eid].append(hc)
            for eid in {c for _, m in readers if not m.employee_id for c in m.candidates}:
                maybe[eid].append(hc)
        snap.credentials_by_person = dict(c_person)
        snap.ambiguous_by_person = dict(maybe)
        item_source = {h.credential.item_id: h.source for h in snap.credentials}
        reading = {h.credential.item_id: {p.lower() for p, _ in h.readers}
                   for h in snap.credentials}
        for item, former in (former_readers or {}).items():
            src, reads = item_source.get(item, "*"), reading.get(item, set())
            gone = {f if isinstance(f, FormerReader) else FormerReader(f) for f in former}
            # one who reads it now (named again, or through a group) is a current reader
            snap.former_readers[item] = [
                (f, corr.match(src, f.principal) if f.through is None else corr.match(
                    f.through.directory, f.through.login, f.through.employee_id,
                    f.through.email, f.through.aliases))
                for f in sorted(gone, key=lambda f: (f.principal, f.lost_at or _EPOCH,
                                                     f.fingerprint or ""))
                if f.principal.lower() not in reads]

        if sources is None:  # records handed in directly: every kind given counts as read
            names = {(s, SourceKind.HR) for s in person_source.values()}
            names |= {(h.source, SourceKind.DIRECTORY) for h in snap.directory}
            names |= {(h.source, SourceKind.GRANTS) for h in snap.grants}
            names |= {(h.source, SourceKind.VAULT) for h in snap.credentials}
            sources = [SourceState(n, k, True, True) for n, k in names]
            if snap.accounts:
                sources.append(SourceState("inventory", SourceKind.INVENTORY, True, True))
        snap.states = list(sources)
        snap.sources = {s.name: s for s in snap.states}
        return snap

    def settle(self) -> None:
        """Once correlation is saved, drop what only saving it needed: the per-source
        principal index and the correlator's per-principal caches. Rules and the report
        read the grants' own matches."""
        self.principals = {}
        self.correlator.forget_sources()

    # ---- time ---------------------------------------------------------------------
    def note(self, limit: datetime) -> None:
        """A time limit an answer depends on. Every comparison of data with `now` must
        go through here (or `reached`): a run that reuses the last evaluation trusts
        `horizon` to say when an answer could change without the data changing."""
        if limit > self.now and (self.horizon is None or limit < self.horizon):
            self.horizon = limit

    def reached(self, limit: datetime) -> bool:
        """Has `limit` passed (limit <= now)? Notes it when it has not."""
        if limit <= self.now:
            return True
        self.note(limit)
        return False

    def ahead(self, instant: datetime | None) -> bool:
        """Does a source's record of a past event (a last use, a password change) lie
        later than this run by more than clocks and time zones explain? Then the export
        or its clock is wrong and the instant says nothing: a rule asks this before
        trusting it, and answers unknown rather than pass. Notes when it stops being so."""
        if instant is None:
            return False
        limit = instant - CLOCK_SLACK
        return not self.reached(limit)

    def day_ahead(self, day: date) -> bool:
        """ahead() for a day someone wrote down (an attestation): after today, in the
        organisation's zone."""
        return not self.day_reached(day)

    def day_reached(self, day: date) -> bool:
        """Is `day` today or earlier in the organisation's zone? Notes the midnight that
        begins it."""
        return self.reached(day_start(day, self.zone))

    # ---- questions rules ask -------------------------------------------------------
    def has(self, kind: SourceKind) -> bool:
        """Is there any data of this kind to judge by (read now or kept from earlier)?"""
        return any(s.kind is kind and s.has_data for s in self.states)

    def person(self, ref: str | None) -> Person | None:
        return self.correlator.person(ref)

    def local_day(self, instant: datetime) -> date:
        """The organisation's calendar day an instant falls on, for messages: a login at
        03:00 UTC was the evening before in California."""
        return instant.astimezone(self.zone).date()

    def end_instant(self, day: date) -> datetime:
        """A person's last day ends at midnight after it in the organisation's zone (as
        UTC): at midnight UTC, a Californian left at 16:00 on their last working day."""
        return day_end(day, self.zone)

    def has_left(self, p: Person, grace: timedelta = timedelta(0)) -> bool:
        """HR says they left (once any end date has passed), or an employee's or intern's
        end date has passed. A contractor past their end date whom HR still lists as
        active is contractor-expired's business, not a leaver."""
        return self._left(p, lambda end: self.reached(end + grace))

    def had_left(self, p: Person, at: datetime, zone: tzinfo | None = None) -> bool:
        """has_left as of an earlier instant (`p` as HR then said), a last day ending in
        ``zone`` (the zone then; default the organisation's now): a past answer, so no
        time limit is noted."""
        if zone is None or zone == self.zone:
            return self._left(p, lambda end: end <= at)
        then: tzinfo = zone
        return self._left(p, lambda end: end <= at, lambda day: day_end(day, then))

    def _left(self, p: Person, passed: Callable[[datetime], bool],
              ends: Callable[[date], datetime] | None = None) -> bool:
        end_of = ends or self.end_instant
        if p.status is PersonStatus.LEFT:
            return p.end_date is None or passed(end_of(p.end_date))
        if p.end_date is None or p.worker_type not in (WorkerType.EMPLOYEE, WorkerType.INTERN):
            return False  # no time limit decides this answer: nothing to note
        return passed(end_of(p.end_date))

    def possible_access_of(self, employee_id: str) -> list[Access]:
        """Access through a principal that matches this person and someone else: it may
        be theirs (a leaver's mailbox handed on as an alias), so a rule that would flag
        it reports it as unknown until a link decides."""
        out: list[Access] = []
        for held in self.ambiguous_by_person.get(employee_id, ()):
            if isinstance(held, HeldGrant):
                out.append(Access(held.account, held.principal, held.role, held.via,
                                  held.via_detail, held.source, held.match))
            elif isinstance(held, HeldCredential):
                for principal, match in held.readers:
                    if employee_id in match.candidates:
                        out.extend(Access(acct, principal, Role.OWNER, AccessPath.VAULT,
                                          held.credential.item_id, held.source, match)
                                   for acct in held.credential.accounts)
                        break
        return out

    def possible_directory_of(self, employee_id: str) -> list[HeldAccount]:
        """Directory accounts that match this person and someone else."""
        return [h for h in self.ambiguous_by_person.get(employee_id, ())
                if isinstance(h, HeldAccount)]

    def access_of(self, employee_id: str) -> list[Access]:
        """Everything one person can reach: roles, seats, group-mapped roles, vault items."""
        out = [Access(h.grant.account, h.grant.principal, h.grant.role, h.grant.via,
                      h.grant.via_detail, h.source, h.match)
               for h in self.grants_by_person.get(employee_id, ())]
        for hc in self.credentials_by_person.get(employee_id, ()):
            principal, match = next((p, m) for p, m in hc.readers
                                    if m.employee_id == employee_id)
            for acct in hc.credential.accounts:
                out.append(Access(acct, principal, Role.OWNER, AccessPath.VAULT,
                                  hc.credential.item_id, hc.source, match))
        return out

