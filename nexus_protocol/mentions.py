"""Finding mentions in message content: ``<@id>``, ``<@!id>``, ``<@&id>``, ``@everyone``,
``@here``. Pure parsing; who may actually be pinged is the relay's decision."""

from __future__ import annotations

import re
from dataclasses import dataclass

_USER = re.compile(r"<@!?(\d{1,20})>")
_ROLE = re.compile(r"<@&(\d{1,20})>")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Mentions:
    user_ids: tuple[int, ...]
    role_ids: tuple[int, ...]
    everyone: bool


def _unique(values: list[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(values))


def find_mentions(content: str) -> Mentions:
    """Mentions in order of first appearance; text inside code spans does not ping."""
    text = _CODE.sub(" ", content)
    return Mentions(
        user_ids=_unique([int(m) for m in _USER.findall(text)]),
        role_ids=_unique([int(m) for m in _ROLE.findall(text)]),
        everyone="@everyone" in text or "@here" in text,
    )
