"""The two sides of a sync behind one protocol: an S3 prefix behind its backends, or a local directory.

The pipeline asks a side what it needs (its listing, its checks, how it shows a key, its deletes,
the capabilities of its backends); it never asks which kind of side it holds. Only the transfer
kinds (:mod:`airflow_s3sync.execute.kinds`) take a kind of side, by type, for what only that
kind has (a file path, an object).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.listing_order import sorted_entries
from airflow_s3sync.execute.parallel_listing import ParallelListing
from airflow_s3sync.hooks.backend import Backend, ListingOrder, ObjectBackend, ObjectRef
from airflow_s3sync.hooks.digest import COMPUTABLE_CHECKSUMS, file_digests
from airflow_s3sync.hooks.local import LocalTree
from airflow_s3sync.locations import LocalLocation, Location, S3Location
from airflow_s3sync.plan import Entry
from airflow_s3sync.plan.capabilities import Capabilities, bucket_is_plain
from airflow_s3sync.plan.checksum import Digests, local_digest_plan
from airflow_s3sync.plan.key_range import KeyRange

#: Lookups handed to the pool at once (the rest wait as keys, not as futures).
_LOOKUP_BATCH = 256


class Side(Protocol):
    """Where objects live, as the sync pipeline sees it."""

    key_range: KeyRange | None

    @property
    def remote(self) -> bool:
        """Whether reaching this side costs requests (checks of local sides come first)."""
        ...

    @property
    def location(self) -> Location:
        """The parsed location string."""
        ...

    @property
    def capabilities(self) -> tuple[Capabilities, ...]:
        """What this side's backends carry, in order of preference (empty for a local side)."""
        ...

    @property
    def is_access_point(self) -> bool:
        """Whether the bucket is no plain bucket name (an access point ARN or alias, ...)."""
        ...

    def route_key(self, key: str) -> str:
        """The key a client sends for the compare key ``key`` (the S3 key; the key itself locally)."""
        ...

    def display(self, key: str = "") -> str:
        """``key`` as ``aws s3 sync`` prints it."""
        ...

    def listing(self) -> Iterator[Entry]:
        """The entries (in the key range), in S3 key order, streamed."""
        ...

    def lookup(self, keys: Sequence[str], *, workers: int) -> Iterator[Entry]:
        """The entries of ``keys`` (sorted) that exist, in their order, as a listing would
        give them, by ``workers`` lookups at once; nothing is listed."""
        ...

    def sort_from_now(self) -> bool:
        """Put the listing into S3's order from now on (it came out of order); whether that
        changes anything."""
        ...

    def check(self, *, as_source: bool) -> None:
        """Raise a clear error unless the side can serve as the source (or the destination)."""
        ...

    def prepare_as_dest(self) -> None:
        """Make the destination ready to be written (a missing local directory is created)."""
        ...

    @property
    def complete(self) -> bool:
        """Whether the listing read everything (nothing may be deleted otherwise)."""
        ...

    @property
    def warnings(self) -> int:
        """Items the listing skipped with a warning."""
        ...

    def delete(self, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """Delete ``keys``; yield ``(shown, error or None)`` for each."""
        ...

    @property
    def reads_digests(self) -> bool:
        """Whether this side reads what its store knows of a content (S3: one HeadObject);
        otherwise it computes what the other side offers (a local file is hashed)."""
        ...

    def content_digests(
        self, key: str, *, other: Digests | None = None, read_args: Mapping[str, Any] | None = None
    ) -> Digests | None:
        """What is known of ``key``'s content, or computed to match ``other``; ``None`` when
        nothing comparable can be computed."""
        ...

    def with_part_size(self, key: str, digests: Digests) -> Digests:
        """``digests`` with the part size of a multipart ETag, where the side can tell."""
        ...


@dataclass
class S3Side:
    """Objects under an S3 prefix.

    :param location: the bucket (or access point) and prefix.
    :param backend: the full backend: every call.
    :param key_range: the shard of keys this run lists (``None``: every key).
    :param backends: the backends that may move data, in order of preference, the full one
        last (only ``backend`` until :meth:`use_transfer_backends`).
    :param sort_listing: sort the listing (its server was found listing out of S3's order).
    :param ranges: key ranges to list at once (:meth:`list_by_ranges`); empty: one sequence.
    :param listing_threads: how many of ``ranges`` are listed at once.
    """

    location: S3Location
    backend: Backend
    key_range: KeyRange | None = None
    backends: tuple[ObjectBackend, ...] = field(default=())
    sort_listing: bool = False
    ranges: tuple[KeyRange, ...] = ()
    listing_threads: int = 1
    remote = True

    def __post_init__(self) -> None:
        if not self.backends:
            self.backends = (self.backend,)

    def use_transfer_backends(self, backends: tuple[ObjectBackend, ...]) -> None:
        """Move data through ``backends`` (the full backend last)."""
        self.backends = backends

    @property
    def capabilities(self) -> tuple[Capabilities, ...]:
        """What the backends carry, in order of preference."""
        return tuple(backend.capabilities for backend in self.backends)

    @property
    def bucket(self) -> str:
        """The bucket (or access point ARN)."""
        return self.location.bucket

    @property
    def is_access_point(self) -> bool:
        """Whether the bucket is no plain bucket name (an access point ARN or alias, a directory
        bucket, ...): only the full backend addresses those."""
        return self.location.is_access_point or not bucket_is_plain(self.location.bucket)

    def route_key(self, key: str) -> str:
        """The S3 key of the compare key ``key``."""
        return self.location.object_key(key)

    def object(self, key: str) -> ObjectRef:
        """The object of the compare key ``key``."""
        return ObjectRef(self.location.bucket, self.location.object_key(key))

    def display(self, key: str = "") -> str:
        """``s3://bucket/prefix/key``, as ``aws s3 sync`` prints it."""
        return self.location.display(key)

    @property
    def sorts_listing(self) -> bool:
        """Whether :meth:`listing` reads the listing whole and sorts it (the server lists in
        an order of its own)."""
        return self.sort_listing or self.backend.listing_order is ListingOrder.OWN

    def list_by_ranges(self, ranges: tuple[KeyRange, ...], *, threads: int) -> None:
        """List ``ranges`` (a partition of the keyspace, in order) ``threads`` at once from now on
        (until the listing has to be sorted)."""
        self.ranges, self.listing_threads = ranges, threads

    def listing(self) -> Iterator[Entry]:
        """The objects under the prefix (in the key range), in key order: streamed as the
        server lists them (by key ranges at once, after :meth:`list_by_ranges`) or, where it
        lists in an order of its own, sorted on disk."""
        prefix = self.location.prefix
        if not self.sorts_listing and len(self.ranges) > 1:
            return self._ranged_listing()
        if not self.sorts_listing:
            return self.backend.list_entries(bucket=self.bucket, prefix=prefix, key_range=self.key_range)
        listed = self.backend.list_entries(bucket=self.bucket, prefix=prefix)
        return sorted_entries(self.key_range.select(listed) if self.key_range is not None else listed)

    def _ranged_listing(self) -> Iterator[Entry]:
        def list_after(start_after: str | None) -> Iterator[Entry]:
            return self.backend.list_after(bucket=self.bucket, prefix=self.location.prefix, start_after=start_after)

        listing = ParallelListing(list_after, self.ranges, threads=self.listing_threads)
        try:
            yield from listing
        finally:
            listing.close()

    def lookup(self, keys: Sequence[str], *, workers: int) -> Iterator[Entry]:
        """One HeadObject per key, ``workers`` at once, in order; missing keys are left out."""
        backend = self.backend

        def look(key: str) -> Entry | None:
            return backend.lookup(ref=self.object(key), key=key)

        with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="s3sync-lookup") as pool:
            for start in range(0, len(keys), _LOOKUP_BATCH):
                for entry in pool.map(look, keys[start : start + _LOOKUP_BATCH]):
                    if entry is not None:
                        yield entry

    def sort_from_now(self) -> bool:
        """Sort the listing from now on; whether that is new."""
        if self.sorts_listing:
            return False
        self.sort_listing = True
        return True

    def check(self, *, as_source: bool) -> None:
        """The bucket exists and the credentials may list the prefix."""
        self.backend.check_access(bucket=self.bucket, prefix=self.location.prefix)

    def prepare_as_dest(self) -> None:
        """Nothing to prepare: a bucket is there or not (:meth:`check`)."""

    @property
    def complete(self) -> bool:
        """An S3 listing that ended without an error is complete."""
        return True

    @property
    def warnings(self) -> int:
        """Listing warnings (none for S3)."""
        return 0

    def delete(self, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """Delete ``keys`` (DeleteObjects in batches); yield ``(shown, error or None)``."""
        object_keys = (self.location.object_key(key) for key in keys)
        for object_key, error in self.backend.delete_keys(bucket=self.bucket, keys=object_keys):
            yield f"s3://{self.bucket}/{object_key}", error

    reads_digests = True

    def content_digests(
        self, key: str, *, other: Digests | None = None, read_args: Mapping[str, Any] | None = None
    ) -> Digests | None:
        """One HeadObject: MD5 or multipart ETag, full-object checksums."""
        return self.backend.digests(ref=self.object(key), read_args=read_args)

    def with_part_size(self, key: str, digests: Digests) -> Digests:
        """A HeadObject of part 1, when the ETag is multipart."""
        return self.backend.with_part_size(ref=self.object(key), digests=digests)


@dataclass
class LocalSide:
    """Files below a local directory."""

    location: LocalLocation
    tree: LocalTree
    key_range: KeyRange | None = None
    capabilities: tuple[Capabilities, ...] = ()
    is_access_point = False
    remote = False

    @classmethod
    def of(
        cls, location: LocalLocation, *, follow_symlinks: bool, log: logging.Logger, key_range: KeyRange | None = None
    ) -> LocalSide:
        """The side of ``location``, walking it as ``aws s3 sync`` does."""
        return cls(location, LocalTree(location.path, follow_symlinks=follow_symlinks, log=log), key_range)

    def route_key(self, key: str) -> str:
        """Local keys are routed as they are."""
        return key

    def display(self, key: str = "") -> str:
        """The path as ``aws s3 sync`` prints it."""
        return self.location.display(key)

    def source_path(self, key: str) -> str:
        """The path of the local file listed as ``key``."""
        return os.path.join(self.location.path, *key.split("/"))

    def target_path(self, key: str) -> str:
        """Where ``key`` is written; refuses paths outside the directory."""
        return self.tree.path_for(key)

    def listing(self) -> Iterator[Entry]:
        """The files below the directory (in the key range), in S3 key order (a lazy walk)."""
        return self.tree.iter_entries(key_range=self.key_range)

    def lookup(self, keys: Sequence[str], *, workers: int) -> Iterator[Entry]:
        """A ``stat`` per key, in order (fast enough alone); missing files are left out."""
        for key in keys:
            entry = self.tree.lookup(key)
            if entry is not None:
                yield entry

    def sort_from_now(self) -> bool:
        """Nothing to change: the walk itself sorts (a listing out of order is a bug)."""
        return False

    def check(self, *, as_source: bool) -> None:
        """A source must be an existing directory; a destination a directory or missing."""
        path = self.location.path
        if as_source:
            if not os.path.exists(path):
                raise S3SyncError(f"The user-provided path {self.location.raw} does not exist.")
            if not os.path.isdir(path):
                raise S3SyncError(
                    f"the source {self.location.raw!r} is a file, not a directory: sync copies directories"
                )
            return
        if os.path.exists(path) and not os.path.isdir(path):
            raise S3SyncError(f"the destination {self.location.raw!r} exists and is not a directory")

    def prepare_as_dest(self) -> None:
        """Create the directory if it is missing; from now on its walk removes what an
        interrupted download left (:func:`~airflow_s3sync.hooks.local.remove_if_stale`)."""
        os.makedirs(self.location.path, exist_ok=True)
        self.tree.remove_stale_temp_files = True

    @property
    def complete(self) -> bool:
        """False once a directory could not be read: nothing may be deleted then."""
        return self.tree.complete

    @property
    def warnings(self) -> int:
        """Files the walk skipped with a warning."""
        return self.tree.warnings

    def delete(self, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """Remove the files of ``keys``; yield ``(shown, error or None)``."""
        for key in keys:
            try:
                self.tree.delete(key)
            except OSError as error:
                yield self.display(key), str(error)
            else:
                yield self.display(key), None

    reads_digests = False

    def content_digests(
        self, key: str, *, other: Digests | None = None, read_args: Mapping[str, Any] | None = None
    ) -> Digests | None:
        """Hash the file for the strongest digest ``other`` offers that this machine computes."""
        if other is None:
            raise ValueError("a local file is hashed for what the other side offers")
        digest_plan = local_digest_plan(other, computable=COMPUTABLE_CHECKSUMS)
        return None if digest_plan.empty else file_digests(self.source_path(key), digest_plan)

    def with_part_size(self, key: str, digests: Digests) -> Digests:
        """A file has no parts: ``digests`` as they are."""
        return digests


def side_of(
    location: Location,
    backend: Backend | None,
    *,
    follow_symlinks: bool,
    log: logging.Logger,
    key_range: KeyRange | None = None,
) -> S3Side | LocalSide:
    """The side of ``location`` (limited to ``key_range``): an S3 prefix needs its full ``backend``."""
    if isinstance(location, S3Location):
        if backend is None:
            raise S3SyncError(f"the S3 location {location.raw!r} needs a backend")
        return S3Side(location, backend, key_range=key_range)
    assert isinstance(location, LocalLocation)
    return LocalSide.of(location, follow_symlinks=follow_symlinks, log=log, key_range=key_range)
