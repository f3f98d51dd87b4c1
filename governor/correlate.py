"""Correlation: which person, if any, each principal a source names belongs to.

Order (as in mature IGA tools): a declared non-human principal; the employee id (exactly,
else ignoring case, as people type "e1010" for E1010; two HR ids that differ in case
alone are then ambiguous, never merged); the
email or an alias, case-insensitively (one tier: an address several people claim, as
email or alias, is theirs jointly), then the address with its plus-tag removed; last
an explicit link made with `governor link`, which settles a principal the automatic
tiers found no one or several people for, but never overrides a unique automatic
match. Every match keeps how it was made. Two candidates are
reported as ambiguous and never guessed.

A principal standing alone (a grant's, a vault reader's) is tried as an employee id only
where its source says it names people so (``id_sources``: directories, whose logins are
often employee numbers, and exports with ``match_employee_ids``). A platform's own user
id is a number too, and "1042" on a Page is not whoever HR numbers 1042: crediting the
grant to them would hide an orphan. Such a principal stays unmatched, and says why.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from governor.lookalike import fold
from governor.records import Person


class MatchStatus(StrEnum):
    MATCHED = "matched"
    UNMATCHED = "unmatched"  # an orphan
    AMBIGUOUS = "ambiguous"
    NONHUMAN = "nonhuman"  # declared service / API account


@dataclass(frozen=True, slots=True)
class Match:
    status: MatchStatus
    employee_id: str | None = None
    method: str | None = None  # employee_id | email | alias | plus_address | link | declared
    reason: str = ""
    candidates: tuple[str, ...] = ()
    owner: str | None = None  # for non-human: the accountable person ref

    @property
    def matched(self) -> bool:
        return self.status is MatchStatus.MATCHED


UNMATCHED = Match(MatchStatus.UNMATCHED, reason="no person has this address or employee id")


@dataclass(frozen=True, slots=True)
class Declared:
    source: str  # "*" for any
    principal: str
    owner: str | None
    reason: str
    kind: str


@dataclass(frozen=True, slots=True)
class Policy:
    """What the config decides about correlation besides links: the declared non-human
    principals, and the sources whose bare principals may be employee ids (None: every
    source, for records handed in directly)."""

    declared: tuple[Declared, ...] = ()
    id_sources: frozenset[str] | None = None


EVERY_SOURCE = Policy()  # no declarations; any source's principal may be an employee id


def _claim(index: dict[str, str | list[str]], address: str, employee_id: str) -> None:
    found = index.get(address)
    if found is None:
        index[address] = employee_id
    elif isinstance(found, str):
        index[address] = [found, employee_id]
    else:
        found.append(employee_id)


def strip_plus(email: str) -> str:
    local, at, domain = email.partition("@")
    if not at or "+" not in local:
        return email
    return local.split("+", 1)[0] + "@" + domain


class Correlator:
    def __init__(self, persons: Iterable[Person],
                 links: Mapping[tuple[str, str], str] | None = None,
                 declared: Iterable[Declared] = (),
                 id_sources: Collection[str] | None = None) -> None:
        # sources whose bare principals may be employee ids; None: every source (records
        # handed in directly, as tests do); "*" (a reference people wrote) always
        self.id_sources = None if id_sources is None else frozenset(id_sources) | {"*"}
        self.by_id: dict[str, Person] = {}
        # lower-cased id -> the id as HR spells it, for ids that are not lower case
        # already (a lower-case one is its own key in by_id): "e1003" finds E1003
        self.by_folded_id: dict[str, str | list[str]] = {}
        # address -> employee id, or a list of them when several people claim it. Most
        # addresses are one person's: a list each was ~40 MB at 200,000 people.
        self.by_email: dict[str, str | list[str]] = {}
        self.by_alias: dict[str, str | list[str]] = {}
        self.by_base: dict[str, str | list[str]] = {}
        # Someone no HR export lists any more claims their addresses as everyone does:
        # an address they share with someone listed now (a new hire given it, a manager
        # given a leaver's mailbox as an alias) is ambiguous, not the listed person's,
        # since a grant to it may be the leaver's still.
        for p in persons:
            eid = p.employee_id
            self.by_id[eid] = p
            if (folded := eid.lower()) != eid:
                _claim(self.by_folded_id, folded, eid)
            if p.email:
                _claim(self.by_email, p.email, eid)
                _claim(self.by_base, strip_plus(p.email), eid)
            for alias in p.aliases:
                _claim(self.by_alias, alias, eid)
                _claim(self.by_base, strip_plus(alias), eid)
        # links and declarations are keyed by (source, lower-cased principal)
        self.links = {(s, fold(p)): eid for (s, p), eid in (links or {}).items()}
        self.declared = {(d.source, fold(d.principal)): d for d in declared}
        self._remembered: dict[tuple[str, str], Match] = {}
        self._by_principal: dict[tuple[str, bool], Match] = {}

    def person(self, ref: str | None) -> Person | None:
        """Resolve a reference written by people (owner, manager): employee id or email."""
        if not ref:
            return None
        if ref in self.by_id:
            return self.by_id[ref]
        m = self.match("*", ref)
        return self.by_id.get(m.employee_id) if m.employee_id else None

    def lookup(self, ref: str) -> Match:
        """How a reference written by people resolves, ambiguity included: what
        person() answers None for may name several people."""
        if ref in self.by_id:
            return Match(MatchStatus.MATCHED, ref, "employee_id", f"employee id {ref}")
        return self.match("*", ref)

    def ids_of(self, ref: str, folded: str | None = None) -> list[str]:
        """The HR ids `ref` is, as HR spells them: itself when HR has it exactly, else
        every id equal to it ignoring case (several: ambiguous)."""
        if ref in self.by_id:
            return [ref]
        low = ref.lower() if folded is None else folded
        found = self.by_folded_id.get(low)
        if low != ref and low in self.by_id:
            return _ids(found, low) if found is not None else [low]
        return [] if found is None else _ids(found)

    def match(self, source: str, principal: str, employee_id: str | None = None,
              email: str | None = None, aliases: tuple[str, ...] = ()) -> Match:
        if employee_id is None and email is None and not aliases:
            # a bare principal: what a directory account told us about it comes first;
            # otherwise _match is cheap, its HR part being kept per principal
            found = self._remembered.get((source, fold(principal)))
            if found is not None:
                return found
        return self._match(source, principal, employee_id, email, aliases)

    def forget_sources(self) -> None:
        """Drop what only per-source matching needs (remembered directory answers, HR
        answers kept per principal): once a snapshot is built, rules only resolve
        owners and managers. At two million grants these hold hundreds of thousands of
        entries."""
        self._remembered = {}
        self._by_principal = {}

    def remember(self, source: str, principal: str, match: Match) -> None:
        """Answer later questions about (source, principal) with a match already made
        from richer data (a directory account's employee id)."""
        self._remembered[(source, fold(principal))] = match

    def _match(self, source: str, principal: str, employee_id: str | None,
               email: str | None, aliases: tuple[str, ...] = ()) -> Match:
        low = fold(principal)
        decl = self.declared.get((source, low)) or self.declared.get(("*", low))
        if decl is not None:
            return Match(MatchStatus.NONHUMAN, None, "declared",
                         f"declared {decl.kind} account: {decl.reason}", owner=decl.owner)
        if employee_id is None and email is None and not aliases:
            # What HR says about a bare principal is the same in every source; only
            # declarations and links are per source. One person's address appears in
            # many sources, so this is worked out once per principal (and whether the
            # source may name people by employee id).
            as_id = self.id_sources is None or source in self.id_sources
            found = self._by_principal.get((principal, as_id))
            if found is None:
                found = self._by_principal[(principal, as_id)] = self._hr(
                    principal, low, None, None, (), as_id)
                if not as_id and found is UNMATCHED and self.ids_of(principal, low):
                    found = self._by_principal[(principal, as_id)] = Match(
                        MatchStatus.UNMATCHED, reason="no person has this address, and "
                        f"this source's principals are not matched by employee id: {principal} "
                        "is one in HR, but an id a platform or vault gives can equal one (set "
                        "match_employee_ids on the source if it names people so, or link "
                        "the principal)")
        else:
            found = self._hr(principal, low, employee_id, email, aliases)
        if found.matched:
            return found  # a unique automatic match comes before any link
        linked = self.links.get((source, low)) or self.links.get(("*", low))
        if linked is None:
            return found
        if found.status is MatchStatus.AMBIGUOUS:
            # a link is the decision the ambiguous-principal finding asks for; the
            # candidates stay on the match so the choice can be reviewed
            if linked in self.by_id:
                return Match(MatchStatus.MATCHED, linked, "link",
                             f"linked by hand to {linked}; {found.reason} "
                             f"({', '.join(found.candidates)})",
                             candidates=found.candidates)
            return found  # a link to someone HR no longer has decides nothing
        if linked in self.by_id:
            return Match(MatchStatus.MATCHED, linked, "link", f"linked by hand to {linked}")
        return Match(MatchStatus.UNMATCHED, None, "link",
                     f"linked to {linked}, who is not in HR")

    def _hr(self, principal: str, low: str, employee_id: str | None, email: str | None,
            aliases: tuple[str, ...], as_id: bool = True) -> Match:
        """By employee id (the principal's own only when ``as_id``), then address;
        UNMATCHED itself when HR knows neither."""
        for ref, folded in ((employee_id, None), (principal if as_id else None, low)):
            if not ref:
                continue
            ids = self.ids_of(ref, folded)
            if len(ids) == 1:
                eid = ids[0]
                if folded is not None:
                    # a login that reads as an employee id is a guess a record's own
                    # address can contradict (login "e1010", email someone else's)
                    said = self._addresses((fold(email) if email else None, *aliases))
                    if said.matched and said.employee_id != eid:
                        return Match(MatchStatus.AMBIGUOUS, None, "employee_id",
                                     f"login {principal} is employee id {eid}, but "
                                     f"{said.reason}", candidates=tuple(sorted(
                                         {eid, said.employee_id or ""})))
                return Match(MatchStatus.MATCHED, eid, "employee_id",
                             f"employee id {eid}" if eid == ref else
                             f"employee id {ref} is {eid}'s (ignoring case)")
            if ids:
                return Match(MatchStatus.AMBIGUOUS, None, "employee_id",
                             f"employee id {ref} matches {len(ids)} people ignoring case",
                             candidates=tuple(ids))
        # a directory's other addresses come after its primary one and the login
        return self._addresses((fold(email) if email else None, low, *aliases))

    def _addresses(self, addresses: Iterable[str | None]) -> Match:
        """The first of ``addresses`` HR knows (email and alias alike, then without a plus
        tag); UNMATCHED when none."""
        for addr in addresses:
            if not addr or "@" not in addr:
                continue
            # A work email and an alias are one tier: an address that is one person's
            # email and another's alias (a leaver's old address handed on) is claimed
            # by both, and picking the email's owner would be a guess.
            exact = _ids(self.by_email.get(addr), self.by_alias.get(addr))
            if exact:
                method = "email" if addr in self.by_email else "alias"
            else:
                exact, method = _ids(self.by_base.get(strip_plus(addr))), "plus_address"
            if not exact:
                continue
            if len(exact) == 1:
                return Match(MatchStatus.MATCHED, exact[0], method,
                             f"{method.replace('_', '-')} {addr} is {exact[0]}'s")
            return Match(MatchStatus.AMBIGUOUS, None, method,
                         f"{addr} matches {len(exact)} people", candidates=tuple(exact))
        return UNMATCHED


def _ids(*claims: str | list[str] | None) -> list[str]:
    """The distinct people an index's entries name, sorted; one entry is usually one."""
    if len(claims) == 1 and isinstance(claims[0], str):
        return [claims[0]]
    ids: set[str] = set()
    for found in claims:
        if isinstance(found, str):
            ids.add(found)
        elif found:
            ids.update(found)
    return sorted(ids)
