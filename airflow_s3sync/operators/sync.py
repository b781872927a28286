"""S3SyncOperator: ``aws s3 sync`` as an Airflow task."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_s3sync import metrics
from airflow_s3sync.errors import InvalidLocationError, S3SyncError
from airflow_s3sync.execute.heap import frozen_heap
from airflow_s3sync.execute.report import check_changed_keys_limit
from airflow_s3sync.execute.run import SyncOptions, SyncRun, check_copy_options, check_extra_args, direction_of
from airflow_s3sync.execute.stale_uploads import check_abort_after
from airflow_s3sync.hooks.s3 import S3SyncHook
from airflow_s3sync.lineage import LineageMixin
from airflow_s3sync.locations import Location, S3Location, parse_location
from airflow_s3sync.operators.key_ranges import NamedByKeyRange
from airflow_s3sync.plan import CompareMode, build_rules
from airflow_s3sync.plan.bandwidth import parse_bandwidth
from airflow_s3sync.plan.key_range import parse_key_range
from airflow_s3sync.plan.keys import relative_keys
from airflow_s3sync.plan.route import MAX_COPY_OBJECT_SIZE


class S3SyncOperator(NamedByKeyRange, LineageMixin, BaseOperator):
    """Sync a local directory or S3 prefix to another, with the semantics of ``aws s3 sync``.

    local dir -> S3 (upload), S3 -> S3 (copy), S3 -> local dir (download). S3 -> S3 copies run
    server-side when both connections reach the same endpoint with the same credentials
    (one CopyObject up to ``copy_cutoff``, UploadPartCopy parts above it); otherwise the bytes
    stream through the worker (GetObject -> PutObject or parts, memory bounded by the parts in
    flight, nothing on disk), carrying the source's properties and verified once written.
    Every action is logged as the line ``aws s3 sync`` prints (``upload: ./a.txt to
    s3://b/a.txt``, ``(dryrun) `` in front in a dry run). Failed transfers fail the task after
    the others finished, naming them; deletes run last and only when every listing and
    transfer succeeded.

    :param source: ``s3://bucket/prefix``, an access point ARN location, or a local
        directory. (templated)
    :param dest: the same forms; at least one side is S3. (templated)
    :param source_aws_conn_id: the Airflow AWS connection of the source side.
    :param dest_aws_conn_id: the Airflow AWS connection of the destination side.
    :param source_region_name: overrides the source connection's region (``--source-region``).
    :param dest_region_name: overrides the destination connection's region (``--region``).
    :param delete: delete destination items the source does not have (``--delete``).
    :param exclude: patterns to exclude; applied before ``include``. (templated)
    :param include: patterns to include again. (templated)
    :param filters: ordered ``[("exclude", "*"), ("include", "*.csv")]`` pairs, applied after
        ``exclude`` and ``include``: the exact ``--exclude``/``--include`` order. (templated)
    :param size_only: compare sizes only (``--size-only``).
    :param exact_timestamps: for downloads, transfer same-size items whose times differ at all
        (``--exact-timestamps``).
    :param checksum: decide same-size items by content instead of time: full-object checksums
        (CRC64NVME, SHA256, SHA1, CRC32C, CRC32) when both sides have one, MD5 ETags against
        each other or a local file's MD5, multipart ETags when the part size can be known;
        otherwise by size, with a warning that the comparison was weak.
    :param dryrun: log what would be done and change nothing (``--dryrun``).
    :param max_delete: refuse to delete more than this many items; checked before the first.
    :param max_concurrency: objects transferred at once: the run's one concurrency budget
        (transfer workers; as many checker workers with ``checksum=True``; a multipart object's
        parts also go this many at a time). What it costs in threads, connections and memory is
        in :class:`~airflow_s3sync.execute.run.SyncOptions`.
    :param follow_symlinks: follow local symlinks (``--follow-symlinks``).
    :param extra_args: request arguments for every write (``StorageClass``,
        ``ServerSideEncryption``, ``SSEKMSKeyId``, ``ACL``, ``Metadata``, ...) or, for
        downloads, for every GetObject.
    :param progress_interval: seconds between progress lines in the task log.
    :param changed_keys_limit: the most keys the ``changed_keys`` XCom lists.
    :param copy_object_lock: give every object written the source's retention and legal hold
        (S3 to S3; the destination bucket must have Object Lock, checked before any copy). Set at
        write time with the copy; multipart copies get it again once complete.
    :param copy_tags: S3 to S3: also give multipart and streamed copies the source's tags
        (CopyObject copies them by itself; one GetObjectTagging per such object).
    :param copy_cutoff: same-endpoint copies up to this many bytes are one CopyObject (at most
        5 GiB, S3's limit; rclone's ``--s3-copy-cutoff``); larger ones are copied in
        UploadPartCopy parts, which some S3-compatible servers do not support.
    :param key_range: ``(start_after, end)``: only keys k, relative to both prefixes, with
        ``start_after < k <= end`` in UTF-8 byte order (``None`` is open) are listed,
        transferred and deleted — one shard of the sync; the listings start after
        ``start_after`` and stop after ``end``. Shards that cover the keyspace (from
        :class:`~airflow_s3sync.operators.key_ranges.S3KeyRangesOperator`) together do exactly
        what one full run does: ``.partial(...).expand(key_range=ranges.output)``.
        ``max_delete`` then counts this shard's deletes only. (templated)
    :param allow_bucket_root: with ``delete=True``, a destination whose prefix is templated and
        renders empty (``s3://bucket/{{ params.day }}/`` without a day) is refused — it would
        delete across the whole bucket — unless this is true.
    :param keys: sync exactly these keys and list neither side: a list of keys relative to
        the source location, or S3 event notification payloads as S3 sends them (a dict with
        ``Records``, its JSON string, or a list of either; also inside an SQS message's ``Body``
        or an SNS ``Message``), whose keys are URL-decoded and, outside the source location,
        left out. Each key is looked up on both sides (one HeadObject per S3 side, or the local
        file) and decided by the same rules as in a full sync (filters, ``size_only``,
        ``checksum``, ``exact_timestamps``, ``key_range``); a key missing at the source is
        deleted at the destination when ``delete=True``, through the same gate. The log lines,
        summary and ``changed_keys`` are a full sync's; only the one-key preflight listing of
        each side is sent. ``None`` (the default) lists both sides. (templated)
    :param listing_threads: list each S3 side by up to this many key ranges at once, merged back
        into one listing in S3's order (memory stays flat: what is listed ahead waits on disk past
        10,000 entries a range). For endpoints whose page latency, not CPU, bounds a listing (a
        remote provider, many keys); on a server sharing the worker's cores it gains nothing. The
        ranges are found by sampling the first S3 side's keyspace with up to
        ``2 + listing_threads`` ListObjectsV2 pages, as ``S3KeyRangesOperator`` does; a prefix of
        one page is listed in one sequence. Each range is checked to join the next, so a server
        whose order or ``StartAfter`` is not S3's is found out, never trusted. ``1`` (the default)
        lists each side in one sequence; not within a ``key_range``.
    :param max_bandwidth: cap the bytes a second the sync's transfers move through the worker,
        all its workers together (uploads, downloads, streams between endpoints; a server-side
        copy moves none): bytes as an integer, or a string such as ``"50MiB"`` (``B``, ``KiB``,
        ``MiB``, ``GiB``; ``K``/``KB``, ``M``/``MB``, ``G``/``GB`` are the same powers of 1024,
        as in ``aws s3``'s ``max_bandwidth`` and rclone's ``--bwlimit``), or an rclone-style
        timetable of rates by the worker's local time, ``"08:00,10MiB 19:00,off"``. A connection
        may set one too (extra ``max_bandwidth``); the lower applies. Every client draws from the
        run's one token bucket: botocore's s3transfer for each part, the fast clients for each
        whole object before its request.
    :param abort_incomplete_uploads_after: a ``timedelta``: before transferring, abort the
        multipart uploads under the destination prefix (in the key range) initiated longer ago
        than this, as rclone's ``cleanup`` does — parts of uploads a killed worker left behind
        are billed and invisible. Logged (``abort-upload: s3://b/k ...``) and counted
        (``aborted_uploads``); a dry run only reports them. ``None`` (the default) leaves them.

    Small uploads and downloads go through a native S3 client (obstore) unless the connection's
    extra says ``"native_client": false``; everything else, and keys it cannot carry unchanged,
    through botocore. Requests are retried (the connection's ``config_kwargs.retries``, by
    default standard mode with 10 attempts), and a job that still fails transiently (a dropped
    connection, a body cut short) is retried whole, up to 3 times.

    Unless ``outlets`` is given, the task's outlet is ``Asset("s3://bucket/prefix/")`` of an S3
    destination (and an S3 source its inlet), its asset events carrying the run's counts; with the
    OpenLineage provider installed it reports both locations as datasets. See
    :mod:`airflow_s3sync.lineage`.

    Returns a summary (``uploaded``, ``copied``, ``downloaded``, ``deleted``, ``skipped``,
    ``failed``, ``bytes_transferred``, ``warnings``, ``retries``, ``slowdowns``, ``dryrun``,
    ``changed_keys_count``, ``changed_keys_truncated``, ``aborted_uploads``, ``key_range``).
    With a task instance in the context it also pushes the XCom ``changed_keys``: the keys
    relative to the destination that the run wrote (or, in a dry run, would write). When there
    are more than ``changed_keys_limit``, it is ``None`` instead, which downstream means "every
    object" — a truncated list would silently leave keys out — and ``changed_keys_truncated`` in
    the summary is true.

    .. seealso:: :class:`airflow_s3sync.hooks.s3.S3SyncHook`
    """

    template_fields: Sequence[str] = ("source", "dest", "exclude", "include", "filters", "key_range", "keys")
    ui_color = "#d9ead3"

    def __init__(
        self,
        *,
        source: str,
        dest: str,
        source_aws_conn_id: str | None = S3SyncHook.default_conn_name,
        dest_aws_conn_id: str | None = S3SyncHook.default_conn_name,
        source_region_name: str | None = None,
        dest_region_name: str | None = None,
        delete: bool = False,
        exclude: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        filters: Sequence[Sequence[str]] | None = None,
        size_only: bool = False,
        exact_timestamps: bool = False,
        checksum: bool = False,
        dryrun: bool = False,
        max_delete: int | None = None,
        max_concurrency: int = 10,
        follow_symlinks: bool = True,
        extra_args: Mapping[str, Any] | None = None,
        progress_interval: float = 5.0,
        changed_keys_limit: int = 10_000,
        copy_object_lock: bool = False,
        copy_tags: bool = False,
        copy_cutoff: int = MAX_COPY_OBJECT_SIZE,
        key_range: Sequence[str | None] | str | None = None,
        allow_bucket_root: bool = False,
        abort_incomplete_uploads_after: timedelta | None = None,
        keys: Any = None,
        listing_threads: int = 1,
        max_bandwidth: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.dest = dest
        self.source_aws_conn_id = source_aws_conn_id
        self.dest_aws_conn_id = dest_aws_conn_id
        self.source_region_name = source_region_name
        self.dest_region_name = dest_region_name
        self.delete = delete
        self.exclude = exclude
        self.include = include
        self.filters = filters
        self.size_only = size_only
        self.exact_timestamps = exact_timestamps
        self.checksum = checksum
        self.dryrun = dryrun
        self.max_delete = max_delete
        self.max_concurrency = max_concurrency
        self.follow_symlinks = follow_symlinks
        self.extra_args = dict(extra_args or {})
        self.progress_interval = progress_interval
        self.changed_keys_limit = changed_keys_limit
        self.copy_object_lock = copy_object_lock
        self.copy_tags = copy_tags
        self.copy_cutoff = copy_cutoff
        self.key_range = key_range
        self.allow_bucket_root = allow_bucket_root
        self.abort_incomplete_uploads_after = check_abort_after(abort_incomplete_uploads_after)
        self.keys = keys
        self.listing_threads = listing_threads
        self.max_bandwidth = max_bandwidth
        self._bandwidth = parse_bandwidth(max_bandwidth)
        #: Which locations are templates: one whose prefix renders empty is checked in execute().
        self._templated = {name: "{{" in str(getattr(self, name)) for name in ("source", "dest")}
        self._killed = False
        check_changed_keys_limit(changed_keys_limit)
        if size_only and checksum:
            raise ValueError(
                "size_only=True and checksum=True contradict each other: size_only skips every same-size "
                "object, checksum compares their content; choose one"
            )
        if max_delete is not None and (not isinstance(max_delete, int) or max_delete < 0):
            raise ValueError(f"max_delete must be a non-negative integer or None, got {max_delete!r}")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        if not isinstance(listing_threads, int) or isinstance(listing_threads, bool) or listing_threads < 1:
            raise ValueError(f"listing_threads must be a positive integer, got {listing_threads!r}")
        if not isinstance(copy_cutoff, int) or not 0 <= copy_cutoff <= MAX_COPY_OBJECT_SIZE:
            raise ValueError(
                f"copy_cutoff must be an integer from 0 to {MAX_COPY_OBJECT_SIZE} (5 GiB, the most one CopyObject "
                f"copies), got {copy_cutoff!r}"
            )
        # What is static is checked now; templated values are checked again in execute().
        self._locations(allow_templates=True)
        if "{{" not in str(key_range):
            parse_key_range(key_range)
        if keys is not None and "{{" not in str(keys) and not isinstance(keys, (str, dict, list, tuple)):
            raise S3SyncError(f"keys must be a list of keys or S3 event payloads, got {type(keys).__name__}")
        self.apply_default_assets(kwargs)

    def _locations(self, *, allow_templates: bool = False) -> tuple[Location, Location] | None:
        if allow_templates and any(self._templated.values()):
            return None
        source, dest = (self._location(name) for name in ("source", "dest"))
        direction = direction_of(source, dest)
        check_extra_args(direction, self.extra_args)
        check_copy_options(direction, self.copy_object_lock, self.copy_tags)
        if self.abort_incomplete_uploads_after is not None and not isinstance(dest, S3Location):
            raise S3SyncError(
                "abort_incomplete_uploads_after needs an S3 destination: a local directory has no uploads"
            )
        if (
            self.delete
            and self._templated["dest"]
            and isinstance(dest, S3Location)
            and not dest.key.strip("/")  # "s3://b/{{ day }}/" without a day is "s3://b//"
            and not self.allow_bucket_root
        ):
            raise S3SyncError(
                f"dest {dest.raw!r} was rendered from a template with an empty prefix: with delete=True this "
                "run would delete across the whole bucket. Fix the template (a missing param?) or, if the whole "
                "bucket is meant, pass allow_bucket_root=True"
            )
        return source, dest

    def _location(self, name: str) -> Location:
        value = getattr(self, name)
        if self._templated[name] and isinstance(value, str) and not value.strip():
            raise InvalidLocationError(
                f"{name} was rendered from a template to an empty string: a missing param or variable? "
                "Give s3://bucket/prefix or a local directory"
            )
        return parse_location(value)

    @cached_property
    def source_hook(self) -> S3SyncHook | None:
        """The hook of an S3 source (``None`` for a local directory)."""
        return self._hook(self.source, self.source_aws_conn_id, self.source_region_name)

    @cached_property
    def dest_hook(self) -> S3SyncHook | None:
        """The hook of an S3 destination (``None`` for a local directory)."""
        return self._hook(self.dest, self.dest_aws_conn_id, self.dest_region_name)

    def _hook(self, location: str, conn_id: str | None, region_name: str | None) -> S3SyncHook | None:
        if not isinstance(parse_location(location), S3Location):
            return None
        return S3SyncHook(aws_conn_id=conn_id, region_name=region_name, max_concurrency=self.max_concurrency)

    def _close_hooks(self, *, cancel: bool) -> None:
        for name in ("source_hook", "dest_hook"):
            hook = self.__dict__.get(name)
            if hook is not None:
                hook.close_backends(cancel=cancel)

    def on_kill(self) -> None:
        """Stop the run when the task is killed: nothing new starts, in-flight transfers are
        cancelled, no delete runs, and the task fails.

        Airflow calls this from its SIGTERM handler, on the thread that runs ``execute``, which
        may hold locks the cancelling needs: so it only sets flags and cancels on another thread.
        """
        self._killed = True
        run = self.__dict__.get("_run")
        if run is not None:
            run.stop()
        threading.Thread(target=self._close_hooks, kwargs={"cancel": True}, name="s3sync-cancel", daemon=True).start()

    @frozen_heap()
    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Run the sync; return the summary and push ``changed_keys`` (see the class docstring)."""
        locations = self._locations()
        assert locations is not None
        source, dest = locations
        key_range = parse_key_range(self.key_range)
        keys = None
        if self.keys is not None:
            bucket, prefix = (source.bucket, source.prefix) if isinstance(source, S3Location) else (None, "")
            keys = tuple(relative_keys(self.keys, bucket=bucket, prefix=prefix))
        rules = build_rules(exclude=self.exclude, include=self.include, filters=self.filters)
        source_hook, dest_hook = self.source_hook, self.dest_hook
        options = SyncOptions(
            delete=self.delete,
            mode=CompareMode.from_flags(
                size_only=self.size_only, exact_timestamps=self.exact_timestamps, checksum=self.checksum
            ),
            rules=tuple(rules),
            dryrun=self.dryrun,
            max_delete=self.max_delete,
            follow_symlinks=self.follow_symlinks,
            extra_args=self.extra_args,
            progress_interval=self.progress_interval,
            changed_keys_limit=self.changed_keys_limit,
            copy_object_lock=self.copy_object_lock,
            copy_tags=self.copy_tags,
            max_concurrency=self.max_concurrency,
            copy_cutoff=self.copy_cutoff,
            key_range=key_range,
            abort_incomplete_uploads_after=self.abort_incomplete_uploads_after,
            keys=keys,
            listing_threads=self.listing_threads,
            max_bandwidth=self._bandwidth,
        )
        run = self._run = SyncRun(
            source=source, dest=dest, source_hook=source_hook, dest_hook=dest_hook, options=options, log=self.log
        )
        if self._killed:  # killed while the run was being prepared
            run.stop()
        started = time.monotonic()
        try:
            report = run.run()
        except BaseException:
            self._close_hooks(cancel=True)
            metrics.emit(run.report.summary(), metrics.SYNC_COUNTERS, seconds=time.monotonic() - started,
                         tags=metrics.task_tags(self))  # fmt: skip
            raise
        self._close_hooks(cancel=False)
        summary = report.summary()
        metrics.emit(summary, metrics.SYNC_COUNTERS, seconds=time.monotonic() - started, tags=metrics.task_tags(self))
        self.log.info("summary: %s", summary)
        changed_keys: list[str] | None = report.changed_keys
        if report.changed_keys_truncated:
            changed_keys = None
            self.log.warning(
                "%d keys were written, more than changed_keys_limit=%d: changed_keys is None (every object)",
                report.changed_keys_total,
                self.changed_keys_limit,
            )
        ti = context.get("ti") or context.get("task_instance")
        if ti is not None:
            ti.xcom_push(key="changed_keys", value=changed_keys)
        self.record_asset_events(context, summary)
        return summary
