"""S3KeyRangesOperator: split a prefix into key ranges, one mapped sync task each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.heap import frozen_heap
from airflow_s3sync.execute.sampling import PageSampler
from airflow_s3sync.hooks.s3 import S3SyncHook
from airflow_s3sync.locations import S3Location, parse_location
from airflow_s3sync.plan.key_range import KEY_RANGE_MAP_INDEX_TEMPLATE, parse_key_range
from airflow_s3sync.plan.shards import default_max_probes, plan_key_ranges


class NamedByKeyRange:
    """For operators with a ``key_range``: task instances mapped over ranges are named by their
    range (``keys after 'a' up to 'm'``) unless the author gives a ``map_index_template``."""

    key_range: Any

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial``, with the key range as the default ``map_index_template``."""
        kwargs.setdefault("map_index_template", KEY_RANGE_MAP_INDEX_TEMPLATE)
        return super().partial(**kwargs)  # type: ignore[misc]

    @property
    def key_range_label(self) -> str:
        """The key range, readable; empty when the task has none (mapped over something else)."""
        if self.key_range is None:
            return ""
        try:
            return parse_key_range(self.key_range).describe()
        except S3SyncError:
            return str(self.key_range)


class S3KeyRangesOperator(BaseOperator):
    """Split the keys under an S3 prefix into at most ``shards`` ranges of roughly equal size,
    for a sync mapped over Airflow workers:

    .. code-block:: python

        ranges = S3KeyRangesOperator(task_id="ranges", location="s3://src/data/", shards=8)
        S3SyncOperator.partial(task_id="sync", source="s3://src/data/", dest="s3://dst/data/", delete=True).expand(
            key_range=ranges.output
        )

    Returns a JSON list of ``[start_after, end]`` pairs (keys relative to the prefix): the first
    ``start_after`` and the last ``end`` are ``None``, each ``end`` is the next ``start_after``, so
    the ranges cover every key — also keys written after the split — exactly once. It does not
    list every key: it samples the keyspace with at most ``max_probes`` ListObjectsV2 pages
    (``StartAfter`` probes, each up to 1,000 keys); a prefix of one page is split exactly,
    larger ones by estimate (within a factor of about two of even, for most key layouts).

    :param location: ``s3://bucket/prefix`` to split (the sync's source, or its destination for
        an upload). (templated)
    :param aws_conn_id: the Airflow AWS connection.
    :param region_name: overrides the connection's region.
    :param shards: the most ranges wanted (fewer when there are fewer keys). (templated)
    :param max_probes: the most ListObjectsV2 requests; default ``min(8 + 4 * shards, 400)``.
    """

    template_fields: Sequence[str] = ("location", "shards")
    ui_color = "#cfe2f3"

    def __init__(
        self,
        *,
        location: str,
        aws_conn_id: str | None = S3SyncHook.default_conn_name,
        region_name: str | None = None,
        shards: int | str = 4,
        max_probes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.location = location
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.shards = shards
        self.max_probes = max_probes
        if max_probes is not None and (not isinstance(max_probes, int) or max_probes < 1):
            raise ValueError(f"max_probes must be a positive integer or None, got {max_probes!r}")
        if "{{" not in str(shards):
            self._shards()
        if "{{" not in str(location):
            self._location()

    def _location(self) -> S3Location:
        location = parse_location(self.location)
        if not isinstance(location, S3Location):
            raise S3SyncError(f"location {self.location!r} is not an s3:// location: key ranges split S3 listings")
        return location

    def _shards(self) -> int:
        shards = self.shards
        if isinstance(shards, str) and shards.strip().isdigit():
            shards = int(shards)  # a rendered template
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
            raise ValueError(f"shards must be a positive integer, got {self.shards!r}")
        return shards

    @cached_property
    def hook(self) -> S3SyncHook:
        """The hook that lists the location."""
        return S3SyncHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    @frozen_heap()
    def execute(self, context: Mapping[str, Any]) -> list[list[str | None]]:
        """Sample the keyspace; return the ranges (the ``return_value`` XCom)."""
        location, shards = self._location(), self._shards()
        backend = self.hook.backend
        backend.check_access(bucket=location.bucket, prefix=location.prefix)
        probe = PageSampler(backend, bucket=location.bucket, prefix=location.prefix)
        max_probes = self.max_probes or default_max_probes(shards)
        ranges = plan_key_ranges(probe, shards, max_probes=max_probes)
        if probe.out_of_order:
            self.log.warning(
                "%s lists keys out of S3's order: the ranges still cover every key once (each sync "
                "of a range reads and sorts the listing), but their sizes may be uneven",
                location.display(),
            )
        self.log.info(
            "%d key range(s) of %s from %d ListObjectsV2 request(s):", len(ranges), location.display(), probe.requests
        )
        for start_after, end in ranges:
            self.log.info("  (%r, %r]", start_after, end)
        return ranges
