"""ObjectLockRetentionOperator: Object Lock retention and legal holds follow the data."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_s3sync import metrics
from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.heap import frozen_heap
from airflow_s3sync.execute.retention import RetentionOptions, RetentionRun
from airflow_s3sync.hooks.s3 import S3SyncHook
from airflow_s3sync.locations import S3Location, parse_location
from airflow_s3sync.operators.key_ranges import NamedByKeyRange
from airflow_s3sync.plan.key_range import parse_key_range
from airflow_s3sync.plan.keys import relative_keys


class ObjectLockRetentionOperator(NamedByKeyRange, BaseOperator):
    """Copy each source object's Object Lock retention and legal hold to the same relative key
    at the destination — what ``aws s3 sync`` cannot do.

    For each key it reads both sides' lock state with HeadObject and writes what the rules
    allow with PutObjectRetention / PutObjectLegalHold on the destination's current version.
    It never shortens or weakens COMPLIANCE, never removes a retention, shortens GOVERNANCE
    (or switches it to COMPLIANCE) only with ``bypass_governance_retention=True`` and releases holds only with
    ``release_legal_holds=True`` — whatever the server would accept. Each change is one log
    line (``retention: s3://dst/k GOVERNANCE until 2027-01-01T00:00:00Z``,
    ``legal-hold: s3://dst/k ON``); each refusal is one warning with its reason and does not
    fail the task. Idempotent: a destination that already matches is left alone.

    :param source: ``s3://bucket/prefix`` (or an access point ARN location). (templated)
    :param dest: the destination prefix; its bucket must have Object Lock. (templated)
    :param source_aws_conn_id: the Airflow AWS connection of the source side.
    :param dest_aws_conn_id: the Airflow AWS connection of the destination side.
    :param source_region_name: overrides the source connection's region.
    :param dest_region_name: overrides the destination connection's region.
    :param keys: relative keys to process, e.g. ``sync.output["changed_keys"]`` (cheap, for
        every run), or S3 event notification payloads naming them (as
        :class:`~airflow_s3sync.operators.sync.S3SyncOperator`'s ``keys`` takes them); ``None``
        scans every object under the source prefix (keeps replicas in step when a retention was
        extended or a hold placed later; for a daily run). (templated)
    :param copy_legal_hold: set legal holds ON at the destination where the source's are ON.
    :param release_legal_holds: also turn destination holds OFF where the source's are OFF.
    :param bypass_governance_retention: allow shortening GOVERNANCE retention at the destination
        (sends ``x-amz-bypass-governance-retention``; needs that permission).
    :param dryrun: log what would change, change nothing.
    :param max_concurrency: objects examined in parallel.
    :param key_range: ``(start_after, end)``: only keys k with ``start_after < k <= end``
        (UTF-8 byte order, ``None`` open) — one shard, as on
        :class:`~airflow_s3sync.operators.sync.S3SyncOperator`; given ``keys`` are limited to
        it too. (templated)

    Returns ``applied`` (writes: ``retention_set`` + ``legal_hold_set``), ``skipped`` (refusals
    and objects missing on a side), ``unchanged`` (objects that needed nothing), ``failed``
    (objects), ``objects`` (examined) and ``dryrun``.
    """

    template_fields: Sequence[str] = ("source", "dest", "keys", "key_range")
    ui_color = "#f4cccc"

    def __init__(
        self,
        *,
        source: str,
        dest: str,
        source_aws_conn_id: str | None = S3SyncHook.default_conn_name,
        dest_aws_conn_id: str | None = S3SyncHook.default_conn_name,
        source_region_name: str | None = None,
        dest_region_name: str | None = None,
        keys: Sequence[str] | None = None,
        copy_legal_hold: bool = True,
        release_legal_holds: bool = False,
        bypass_governance_retention: bool = False,
        dryrun: bool = False,
        max_concurrency: int = 10,
        key_range: Sequence[str | None] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.dest = dest
        self.source_aws_conn_id = source_aws_conn_id
        self.dest_aws_conn_id = dest_aws_conn_id
        self.source_region_name = source_region_name
        self.dest_region_name = dest_region_name
        self.keys = keys
        self.copy_legal_hold = copy_legal_hold
        self.release_legal_holds = release_legal_holds
        self.bypass_governance_retention = bypass_governance_retention
        self.dryrun = dryrun
        self.max_concurrency = max_concurrency
        self.key_range = key_range
        self._killed = False
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        if not any("{{" in str(value) for value in (source, dest)):
            self._locations()
        if "{{" not in str(key_range):
            parse_key_range(key_range)

    def _locations(self) -> tuple[S3Location, S3Location]:
        source, dest = parse_location(self.source), parse_location(self.dest)
        for location, side in ((source, "source"), (dest, "dest")):
            if not isinstance(location, S3Location):
                raise S3SyncError(f"the {side} {location.raw!r} is not an s3:// location: Object Lock lives in S3")
        assert isinstance(source, S3Location) and isinstance(dest, S3Location)
        return source, dest

    def _keys(self, source: S3Location) -> list[str] | None:
        if self.keys is None:
            return None
        return relative_keys(self.keys, bucket=source.bucket, prefix=source.prefix)

    @cached_property
    def source_hook(self) -> S3SyncHook:
        """The source side's hook (reads only)."""
        return S3SyncHook(
            self.source_aws_conn_id, region_name=self.source_region_name, max_concurrency=self.max_concurrency
        )

    @cached_property
    def dest_hook(self) -> S3SyncHook:
        """The destination side's hook."""
        return S3SyncHook(
            self.dest_aws_conn_id, region_name=self.dest_region_name, max_concurrency=self.max_concurrency
        )

    def on_kill(self) -> None:
        """Stop examining new objects; the task fails."""
        self._killed = True
        run = self.__dict__.get("_run")
        if run is not None:
            run.stop()

    @frozen_heap()
    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Copy retention and legal holds; return the summary."""
        source, dest = self._locations()
        key_range = parse_key_range(self.key_range)
        keys = self._keys(source)
        options = RetentionOptions(
            copy_legal_hold=self.copy_legal_hold,
            release_legal_holds=self.release_legal_holds,
            bypass_governance_retention=self.bypass_governance_retention,
            dryrun=self.dryrun,
            max_concurrency=self.max_concurrency,
        )
        self.log.info(
            "copying Object Lock settings from %s to %s for %s%s",
            source.display(),
            dest.display(),
            "every object (full scan)" if keys is None else f"{len(keys)} key(s)",
            "" if key_range.is_full else f", {key_range.describe()}",
        )
        run = self._run = RetentionRun(
            source=source,
            dest=dest,
            source_backend=self.source_hook.backend,
            dest_backend=self.dest_hook.backend,
            keys=keys,
            key_range=key_range,
            options=options,
            log=self.log,
        )
        if self._killed:
            run.stop()
        started = time.monotonic()
        try:
            report = run.run()
        finally:
            seconds = time.monotonic() - started
            metrics.emit(
                run.report.summary(), metrics.RETENTION_COUNTERS, seconds=seconds, tags=metrics.task_tags(self)
            )
        summary = report.summary()
        self.log.info("summary: %s", summary)
        return summary
