"""The role ladder every platform's raw role is normalised onto (DESIGN.md, 'grant')."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    ANALYST = 10  # read-only, insights
    CONTRIBUTOR = 20  # drafts; needs approval to publish
    MODERATOR = 30  # approver / community moderation
    PUBLISHER = 40  # can publish without approval
    ADMIN = 50  # manages roles
    OWNER = 60  # can remove every admin

    @classmethod
    def parse(cls, text: str) -> Role:
        key = text.strip().lower().replace("-", "_").replace(" ", "_")
        key = _ALIASES.get(key, key)
        try:
            return cls[key.upper()]
        except KeyError:
            raise ValueError(
                f"unknown role {text!r}; expected one of "
                + ", ".join(r.name.lower() for r in cls)
            ) from None

    @property
    def label(self) -> str:
        return _LABELS[self]  # rules and reports ask millions of times


_LABELS = {r: r.name.lower() for r in Role}


_ALIASES = {"approver": "moderator", "read_only": "analyst", "readonly": "analyst",
            "editor": "publisher", "contributor_needs_approval": "contributor"}

# Defaults per platform; a grants source's role_map overrides or extends these.
PLATFORM_ROLE_MAPS: dict[str, dict[str, Role]] = {
    "facebook": {"admin": Role.ADMIN, "full control": Role.ADMIN, "editor": Role.PUBLISHER,
                 "moderator": Role.MODERATOR, "advertiser": Role.CONTRIBUTOR,
                 "analyst": Role.ANALYST, "partial access": Role.PUBLISHER},
    "instagram": {"admin": Role.ADMIN, "full control": Role.ADMIN, "editor": Role.PUBLISHER,
                  "moderator": Role.MODERATOR, "advertiser": Role.CONTRIBUTOR,
                  "analyst": Role.ANALYST},
    "linkedin": {"super admin": Role.ADMIN, "content admin": Role.PUBLISHER,
                 "curator": Role.CONTRIBUTOR, "analyst": Role.ANALYST,
                 "sponsored content poster": Role.CONTRIBUTOR},
    "youtube": {"owner": Role.OWNER, "primary owner": Role.OWNER, "manager": Role.ADMIN,
                "editor": Role.PUBLISHER, "editor (limited)": Role.CONTRIBUTOR,
                "subtitle editor": Role.CONTRIBUTOR, "viewer": Role.ANALYST,
                "viewer (limited)": Role.ANALYST},
    "x": {"owner": Role.OWNER, "admin": Role.ADMIN, "contributor": Role.PUBLISHER,
          "delegate": Role.PUBLISHER, "analyst": Role.ANALYST},
    "tiktok": {"owner": Role.OWNER, "admin": Role.ADMIN, "operator": Role.PUBLISHER,
               "analyst": Role.ANALYST},
    "hootsuite": {"super admin": Role.ADMIN, "admin": Role.ADMIN, "editor": Role.PUBLISHER,
                  "can publish": Role.PUBLISHER, "needs approval": Role.CONTRIBUTOR,
                  "approver": Role.MODERATOR, "limited": Role.CONTRIBUTOR,
                  "read only": Role.ANALYST},
    "sproutsocial": {"owner": Role.OWNER, "admin": Role.ADMIN, "publisher": Role.PUBLISHER,
                     "approver": Role.MODERATOR, "contributor": Role.CONTRIBUTOR,
                     "viewer": Role.ANALYST},
}


def check_labels(mapping: dict[str, str], key: str) -> None:
    """Config check: every value of ``mapping`` names a rung of the ladder."""
    from governor.options import OptionError, one_spelling

    one_spelling(mapping, key)
    for name, label in mapping.items():
        try:
            Role.parse(label)
        except ValueError as exc:
            raise OptionError(f"{key}.{name}", str(exc)) from None


def has_preset(name: str) -> bool:
    """Does governor know ``name``'s roles (a platform's, or a management tool's)?"""
    return name.strip().lower() in PLATFORM_ROLE_MAPS


def normalise(platform: str, raw: str, overrides: dict[str, Role] | None = None) -> Role:
    """Map ``raw`` onto the ladder: source overrides first, then the platform preset,
    then the ladder's own names. Raises ValueError naming the unmapped role."""
    key = raw.strip().lower()
    if overrides and key in overrides:
        return overrides[key]
    preset = PLATFORM_ROLE_MAPS.get(platform.lower(), {})
    if key in preset:
        return preset[key]
    return Role.parse(raw)
