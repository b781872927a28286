"""The two sides of a sync: an S3 prefix behind its backends, or a local directory."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.local import LocalTree
from airflow_s3sync.locations import LocalLocation, Location, S3Location
from airflow_s3sync.plan import Entry
from airflow_s3sync.plan.key_range import KeyRange


@dataclass
class S3Side:
    """Objects under an S3 prefix.

    :param location: the bucket (or access point) and prefix.
    :param backend: the full backend (botocore and s3transfer): every call.
    :param native: the fast backend for single-request uploads and downloads, if enabled.
    :param key_range: the shard of keys this run lists (``None``: every key).
    """

    location: S3Location
    backend: Any
    native: Any = None
    key_range: KeyRange | None = None
    is_local = False

    @property
    def bucket(self) -> str:
        """The bucket (or access point ARN)."""
        return self.location.bucket

    def object_key(self, key: str) -> str:
        """The S3 key of the compare key ``key``."""
        return self.location.object_key(key)

    def display(self, key: str = "") -> str:
        """``s3://bucket/prefix/key``, as ``aws s3 sync`` prints it."""
        return self.location.display(key)

    def listing(self) -> Iterator[Entry]:
        """The objects under the prefix (in the key range), in key order (a streaming listing)."""
        return self.backend.iter_entries(self.bucket, self.location.prefix, key_range=self.key_range)

    def check(self) -> None:
        """The bucket exists and the credentials may list the prefix."""
        self.backend.check_access(self.bucket, self.location.prefix)

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
        object_keys = (self.object_key(key) for key in keys)
        for object_key, error in self.backend.delete_keys(self.bucket, object_keys):
            yield f"s3://{self.bucket}/{object_key}", error


@dataclass
class LocalSide:
    """Files below a local directory."""

    location: LocalLocation
    tree: LocalTree
    key_range: KeyRange | None = None
    is_local = True

    @classmethod
    def of(
        cls, location: LocalLocation, *, follow_symlinks: bool, log: logging.Logger, key_range: KeyRange | None = None
    ) -> LocalSide:
        """The side of ``location``, walking it as ``aws s3 sync`` does."""
        return cls(location, LocalTree(location.path, follow_symlinks=follow_symlinks, log=log), key_range)

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

    def check_source(self) -> None:
        """The directory exists."""
        path = self.location.path
        if not os.path.exists(path):
            raise S3SyncError(f"The user-provided path {self.location.raw} does not exist.")
        if not os.path.isdir(path):
            raise S3SyncError(f"the source {self.location.raw!r} is a file, not a directory: sync copies directories")

    def check_dest(self, *, create: bool) -> None:
        """The destination is a directory or missing (then created when ``create``)."""
        path = self.location.path
        if os.path.exists(path) and not os.path.isdir(path):
            raise S3SyncError(f"the destination {self.location.raw!r} exists and is not a directory")
        if create:
            os.makedirs(path, exist_ok=True)

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


Side = S3Side | LocalSide


def side_of(
    location: Location, hook: Any, *, follow_symlinks: bool, log: logging.Logger, key_range: KeyRange | None = None
) -> Side:
    """The side of ``location`` (limited to ``key_range``): an S3 prefix needs ``hook``, its backend."""
    if isinstance(location, S3Location):
        if hook is None:
            raise S3SyncError(f"the S3 location {location.raw!r} needs a hook")
        return S3Side(location, hook, key_range=key_range)
    return LocalSide.of(location, follow_symlinks=follow_symlinks, log=log, key_range=key_range)
