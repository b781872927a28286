"""Turn merged pairs into explicit actions."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from airflow_s3sync.plan.compare import CompareMode, Direction, Outcome, compare
from airflow_s3sync.plan.entries import Entry, Pair
from airflow_s3sync.plan.filters import PathFilter
from airflow_s3sync.plan.merge import merge

#: Storage classes whose objects cannot be read without a restore (the AWS CLI skips them).
ARCHIVED_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


class ActionKind(Enum):
    """What the sync does with one compare key."""

    TRANSFER = "transfer"  # write the source item to the destination
    DELETE = "delete"  # remove the destination-only item (``delete=True``)
    SKIP = "skip"  # present on both sides and up to date
    REFUSE = "refuse"  # would be transferred, but a safety check refuses it (a warning)
    VERIFY = "verify"  # same size (``CHECKSUM`` mode): transfer only if the contents differ


class RefuseReason(Enum):
    """Why a transfer was refused; the value is the end of the warning line."""

    PARENT_DIRECTORY = "File references a parent directory."
    ABSOLUTE_PATH = "File references an absolute path."
    NOT_CANONICAL = (
        "Its key is not a canonical path ('//', '.' or '..' segments, or a trailing '/'), "
        "so it would be written under another file's name."
    )
    ARCHIVED = "Object is in an archive storage class and must be restored first."


@dataclass(frozen=True, slots=True)
class Action:
    """One decision of the plan, with the reason it was taken (for the debug log)."""

    kind: ActionKind
    pair: Pair
    reason: str
    refusal: RefuseReason | None = None

    @property
    def key(self) -> str:
        """The compare key this action is about."""
        return self.pair.key


def _filtered(entries: Iterable[Entry], path_filter: PathFilter | None, path_prefix: str) -> Iterator[Entry]:
    if not path_filter:
        yield from entries
        return
    for entry in entries:
        if path_filter.includes(path_prefix + entry.key):
            yield entry


def local_key_refusal(key: str) -> RefuseReason | None:
    """Why ``key`` must not be written below a local directory, or ``None`` if it is safe.

    Besides keys that would leave the directory, keys that are not canonical paths are refused:
    ``a//b``, ``a/./b`` or ``a/x/../b`` would land on the file of another key (``a/b``), which a
    delete of that other key — run after the transfers — would then remove.
    """
    if key.startswith("/"):
        return RefuseReason.ABSOLUTE_PATH
    normalised = posixpath.normpath("./" + key)
    if normalised == ".." or normalised.startswith("../"):
        return RefuseReason.PARENT_DIRECTORY
    if normalised != key or normalised == "." or "\x00" in key:
        return RefuseReason.NOT_CANONICAL
    return None


def _refusal(src: Entry, direction: Direction) -> RefuseReason | None:
    if direction is Direction.UPLOAD:
        return None
    if src.storage_class in ARCHIVED_STORAGE_CLASSES:
        return RefuseReason.ARCHIVED
    if direction is Direction.DOWNLOAD:
        return local_key_refusal(src.key)
    return None


def plan(
    src: Iterable[Entry],
    dst: Iterable[Entry],
    *,
    direction: Direction,
    mode: CompareMode = CompareMode.DEFAULT,
    delete: bool = False,
    path_filter: PathFilter | None = None,
    src_path_prefix: str = "",
    dst_path_prefix: str = "",
) -> Iterator[Action]:
    """Decide, lazily and in key order, what the sync does for every compare key.

    :param src: the source listing, ascending by key.
    :param dst: the destination listing, ascending by key.
    :param direction: upload, copy or download.
    :param mode: the comparison for items on both sides.
    :param delete: whether destination-only items are deleted.
    :param path_filter: the include/exclude rules, applied to both listings.
    :param src_path_prefix: what turns a source key into the full path filters match
        (``/abs/dir/`` or ``bucket/prefix/``).
    :param dst_path_prefix: the same for the destination.

    Destination-only items without ``delete`` produce no action.
    """
    pairs = merge(
        _filtered(src, path_filter, src_path_prefix),
        _filtered(dst, path_filter, dst_path_prefix),
    )
    for pair in pairs:
        if pair.src is None:
            if delete:
                yield Action(ActionKind.DELETE, pair, "only at the destination")
            continue
        kind = ActionKind.TRANSFER
        if pair.dst is None:
            transfer, reason = True, "only at the source"
        else:
            outcome, reason = compare(pair.src, pair.dst, direction=direction, mode=mode)
            transfer = outcome is not Outcome.SKIP
            if outcome is Outcome.CHECK_CONTENT:
                kind = ActionKind.VERIFY
        if not transfer:
            yield Action(ActionKind.SKIP, pair, reason)
            continue
        refusal = _refusal(pair.src, direction)
        if refusal is not None:
            yield Action(ActionKind.REFUSE, pair, refusal.value, refusal)
        else:
            yield Action(kind, pair, reason)
