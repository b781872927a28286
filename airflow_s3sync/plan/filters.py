"""Ordered ``--exclude`` / ``--include`` filters with the rules of ``aws s3 sync``.

Every item starts included; each matching rule sets its state and the last match wins.
A pattern is matched (``fnmatch``, case-sensitive, ``*`` crossing ``/``) against the
item's full path, with the pattern joined to the root of the side the item comes from
*and* to the other side's root, exactly as the AWS CLI does. Full paths are
``/abs/local/dir/rel/path`` for local items and ``bucket/prefix/rel/key`` for S3 items.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from fnmatch import translate


class FilterKind(Enum):
    """What a matching rule does to an item."""

    EXCLUDE = "exclude"
    INCLUDE = "include"


@dataclass(frozen=True, slots=True)
class FilterRule:
    """One ``--exclude`` or ``--include`` pattern."""

    kind: FilterKind
    pattern: str


def build_rules(
    *,
    exclude: Iterable[str] | None = None,
    include: Iterable[str] | None = None,
    filters: Iterable[Sequence[str]] | None = None,
) -> list[FilterRule]:
    """Turn the operator's filter parameters into an ordered rule list.

    ``exclude`` and ``include`` give all excludes, then all includes; ``filters`` gives
    ``(kind, pattern)`` pairs in command-line order and follows them. Raises
    ``ValueError`` for anything that is not a string pattern or an unknown kind.
    """
    rules: list[FilterRule] = []
    for kind, patterns in ((FilterKind.EXCLUDE, exclude), (FilterKind.INCLUDE, include)):
        if patterns is None:
            continue
        if isinstance(patterns, str):
            raise ValueError(f"{kind.value} must be a list of patterns, not the string {patterns!r}")
        for pattern in patterns:
            rules.append(FilterRule(kind, _pattern(pattern)))
    for item in filters or ():
        if isinstance(item, str) or len(item) != 2:
            raise ValueError(f"each filter must be a (kind, pattern) pair, got {item!r}")
        kind_name, pattern = item
        try:
            kind = FilterKind(str(kind_name).lstrip("-").lower())
        except ValueError:
            raise ValueError(f"filter kind must be 'exclude' or 'include', got {kind_name!r}") from None
        rules.append(FilterRule(kind, _pattern(pattern)))
    return rules


def _pattern(pattern: object) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"a filter pattern must be a non-empty string, got {pattern!r}")
    return pattern


class PathFilter:
    """Decides whether a full path is included, given the two sides' filter roots."""

    def __init__(self, rules: Sequence[FilterRule], *, src_root: str, dst_root: str) -> None:
        self._compiled = [
            (
                rule.kind,
                re.compile(translate(posixpath.join(src_root, rule.pattern))),
                re.compile(translate(posixpath.join(dst_root, rule.pattern))),
            )
            for rule in rules
        ]

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def includes(self, path: str) -> bool:
        """Whether the item at ``path`` (its full path string) takes part in the sync."""
        included = True
        for kind, src_pattern, dst_pattern in self._compiled:
            if src_pattern.match(path) or dst_pattern.match(path):
                included = kind is FilterKind.INCLUDE
        return included
