"""The rule contract. One rule per module; the module's name is the rule's id.

A rule reads the snapshot and yields Results: FAIL for a violation, UNKNOWN where the
data it needs is missing (never a silent pass, never a guessed violation). It does not
know about findings, exceptions or history; findings.py turns results into those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from governor.options import Option
from governor.records import SourceKind
from governor.snapshot import Snapshot


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def at_least(cls, floor: Severity) -> list[Severity]:
        return [s for s in cls if s.rank >= floor.rank]


_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1,
         Severity.INFO: 0}


class Outcome(StrEnum):
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Result:
    subject: str  # stable: the same problem tomorrow yields the same subject
    outcome: Outcome
    message: str  # one line a person can act on
    evidence: dict[str, Any] = field(default_factory=dict)  # JSON-able, no secrets
    severity: Severity | None = None  # overrides the rule's (weak MFA is medium)
    person: str | None = None  # employee id concerned
    account: str | None = None  # social account key concerned
    # For an unknown standing in for many items (one per account and feed): the subjects
    # of this rule's findings it covers. One of them the run no longer reports was not
    # seen fixed: it stays open. Iterated once, lazily (a feed without activity data
    # covers every grant it lists).
    covers: Iterable[str] = field(default=(), compare=False, repr=False)


class Rule:
    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    rationale: ClassVar[str]
    remediation: ClassVar[str]
    controls: ClassVar[tuple[str, ...]]
    # Kinds of source whose data decides this rule: a finding resolves only when every
    # configured source of these kinds was read successfully in the run.
    needs: ClassVar[frozenset[SourceKind]]
    # Kinds without which the rule can judge nothing (of `needs`): with no data of one
    # of them (no such source configured, or none ever read successfully), the rule says
    # so with one UNKNOWN result instead of silently finding nothing.
    requires: ClassVar[frozenset[SourceKind]] = frozenset()
    # Kinds of which it needs one at least (of `needs`): who holds access comes from
    # grants or a vault. With neither, a leaver rule finding nothing is no pass, and says
    # so as `requires` does.
    requires_any: ClassVar[frozenset[SourceKind]] = frozenset()
    params: ClassVar[dict[str, Option]] = {}
    # Where a subject names the source a result came from: what comes before the name,
    # in terms of the result's account and person ("grant|{account}|"). A source rename
    # re-keys the findings by it (governor.rename); empty: no subject names a source.
    source_in_subject: ClassVar[tuple[str, ...]] = ()
    # Judges only people who have not left (leaver-holds-access takes leavers on): a
    # finding of it about someone who then left resolves as "person left", not "fixed".
    skips_leavers: ClassVar[bool] = False
    # Judges leavers only (their access, their login): a finding of it about someone who
    # no longer counts as left (rehired, a leaving date withdrawn) resolves as "person
    # back", not "fixed": nothing they held was taken away.
    judges_leavers: ClassVar[bool] = False

    def results(self, snap: Snapshot, params: dict[str, Any]) -> Iterable[Result]:
        """What the run records: `evaluate`'s results, or why it could not be run."""
        missing = [k.value for k in self.requires if not snap.has(k)]
        if self.requires_any and not any(snap.has(k) for k in self.requires_any):
            missing += [k.value for k in self.requires_any if k.value not in missing]
        missing.sort()
        if not missing:
            return self.evaluate(snap, params)
        named = " or ".join(_NAMES[m] for m in missing)
        return [Result(
            subject="no-data|" + "+".join(missing), outcome=Outcome.UNKNOWN,
            message=(f"cannot be decided: there is no {named} data to judge by (no such "
                     f"source is configured, or none has been read successfully yet)"),
            evidence={"missing": missing})]

    def evaluate(self, snap: Snapshot, params: dict[str, Any]) -> Iterable[Result]:
        """The rule's own judgement; `results` calls it only with every required kind
        of data present."""
        raise NotImplementedError

    @classmethod
    def validate(cls, params: dict[str, Any], key: str) -> None:
        """Checks beyond each param's own declaration; raise OptionError(key path)."""
        return None  # noqa: B027 - optional hook

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {k: o.default for k, o in cls.params.items()}


_NAMES = {SourceKind.HR.value: "HR", SourceKind.DIRECTORY.value: "directory",
          SourceKind.INVENTORY.value: "account inventory", SourceKind.GRANTS.value: "grants",
          SourceKind.VAULT.value: "vault"}

RULES: dict[str, Rule] = {}


def register(cls: type[Rule]) -> type[Rule]:
    if cls.id in RULES:
        raise RuntimeError(f"rule {cls.id!r} registered twice")
    if not (cls.requires | cls.requires_any) <= cls.needs:
        raise RuntimeError(f"rule {cls.id!r} requires kinds it does not list in needs")
    RULES[cls.id] = cls()
    return cls
