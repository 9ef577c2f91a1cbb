"""Adapter identifiers: ``<task>/<subtask>[@<org>]`` (CONTRACTS.md section 1).

Torch-free and Django-free: the hub reuses this module to check identifiers it receives.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidIdentifier
from .rules import IDENTIFIER_GRAMMAR as GRAMMAR
from .rules import SLUG_MAX, is_slug  # noqa: F401 - the grammar is defined once, in rules


def check_slug(value: str, what: str = "part") -> str:
    if not is_slug(value):
        raise InvalidIdentifier(f"invalid {what} {value!r}: {GRAMMAR}", value=value)
    return value


@dataclass(frozen=True, order=True)
class AdapterId:
    """A parsed identifier; ``str()`` gives back its canonical text."""

    task: str
    subtask: str
    org: str | None = None

    def __post_init__(self):
        check_slug(self.task, "task")
        check_slug(self.subtask, "subtask")
        if self.org is not None:
            check_slug(self.org, "organisation")

    @classmethod
    def parse(cls, text: str) -> "AdapterId":
        if isinstance(text, AdapterId):
            return text
        if not isinstance(text, str):
            raise InvalidIdentifier(f"identifier must be a string, got {type(text).__name__}: {GRAMMAR}")
        name, at, org = text.partition("@")
        if at and not org:
            raise InvalidIdentifier(f"invalid identifier {text!r} (empty organisation): {GRAMMAR}", value=text)
        parts = name.split("/")
        if len(parts) != 2:
            raise InvalidIdentifier(f"invalid identifier {text!r}: {GRAMMAR}", value=text)
        try:
            return cls(parts[0], parts[1], org if at else None)
        except InvalidIdentifier as exc:
            raise InvalidIdentifier(f"invalid identifier {text!r}: {exc.detail}", value=text) from None

    @property
    def path(self) -> str:
        """``task/subtask`` without the organisation."""
        return f"{self.task}/{self.subtask}"

    def __str__(self) -> str:
        return f"{self.path}@{self.org}" if self.org else self.path


def parse_identifier(text: str) -> AdapterId:
    """Parse ``text`` strictly; raises :class:`InvalidIdentifier` showing the grammar."""
    return AdapterId.parse(text)


def looks_like_identifier(text: str) -> bool:
    """True when ``text`` parses as an identifier (used to tell identifiers from paths)."""
    try:
        AdapterId.parse(text)
    except InvalidIdentifier:
        return False
    return True
