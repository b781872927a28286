"""One sync run: preflight, plan, transfers, then deletes — only when everything else succeeded."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from s3transfer.manager import TransferManager

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.checks import ContentChecker
from airflow_s3sync.execute.deletes import DeleteGate, DeleteQueue
from airflow_s3sync.execute.followups import Followups
from airflow_s3sync.execute.key_probe import KeyProbe
from airflow_s3sync.execute.kinds import COPY_PROPERTIES, Download, Kind, ServerSideCopy, Stream, Upload
from airflow_s3sync.execute.prefetch import Prefetch
from airflow_s3sync.execute.repeated import RepeatedErrors
from airflow_s3sync.execute.report import SyncReport
from airflow_s3sync.execute.runner import JobRunner
from airflow_s3sync.execute.sampling import PageSampler
from airflow_s3sync.execute.sides import LocalSide, S3Side, Side, side_of
from airflow_s3sync.execute.spool import Spool
from airflow_s3sync.execute.stale_uploads import abort_stale_uploads
from airflow_s3sync.execute.transfers import Transfers
from airflow_s3sync.hooks.backend import ListingOrder, is_transient
from airflow_s3sync.hooks.s3 import S3SyncHook
from airflow_s3sync.hooks.throttle import Throttle
from airflow_s3sync.locations import LocalLocation, Location
from airflow_s3sync.plan import (
    Action,
    ActionKind,
    CompareMode,
    Direction,
    Entry,
    FilterRule,
    ListingOrderError,
    PathFilter,
    RefuseReason,
    plan,
)
from airflow_s3sync.plan.bandwidth import Bandwidth
from airflow_s3sync.plan.key_range import KeyRange
from airflow_s3sync.plan.route import MAX_COPY_OBJECT_SIZE, RouteContext, TransferKind
from airflow_s3sync.plan.shards import listing_probes, plan_key_ranges

#: Copy arguments that only mean something to a server-side copy; a streamed copy drops them.
_SERVER_SIDE_ONLY = frozenset({"MetadataDirective", "TaggingDirective"})
_ALLOWED_EXTRA_ARGS = {
    Direction.UPLOAD: frozenset(TransferManager.ALLOWED_UPLOAD_ARGS),
    Direction.COPY: frozenset(TransferManager.ALLOWED_COPY_ARGS),
    Direction.DOWNLOAD: frozenset(TransferManager.ALLOWED_DOWNLOAD_ARGS),
}


@dataclass(frozen=True)
class SyncOptions:
    """Everything that shapes a run besides the two locations.

    :param delete: delete destination-only items (``--delete``).
    :param mode: how items present on both sides are compared.
    :param rules: ordered include/exclude rules.
    :param dryrun: log what would happen, change nothing.
    :param max_delete: refuse to delete more than this many items (checked before the first).
    :param follow_symlinks: follow local symlinks (``--follow-symlinks``).
    :param extra_args: request arguments for every write (PutObject, CopyObject, multipart)
        or, for downloads, for every GetObject.
    :param progress_interval: seconds between progress lines.
    :param changed_keys_limit: how many written keys the report keeps.
    :param copy_object_lock: give each object written the source's retention and legal hold
        (S3 to S3 only).
    :param copy_tags: give each object copied the source's tags also where S3 does not copy
        them itself: multipart and streamed copies (S3 to S3 only).
    :param max_concurrency: the run's one concurrency budget: objects transferred at once. What a
        run costs for it, ``N = max_concurrency`` (as s3transfer's ``TransferConfig`` says it):

        - threads: ``N`` transfer workers; ``N`` checker workers with ``checksum=True`` (lookups
          and hashing, apart from transfer slots); two listing threads; per S3 side that writes
          or reads in parts, s3transfer's ``N`` part threads and 5 submission threads; the fast
          clients' own I/O threads (obstore's runtime, awscrt's event loop: one per core).
        - connections, per S3 side: botocore's pool holds ``2N + 2``; at most ``N`` requests of
          each fast client are in flight (one per transfer worker).
        - memory: an object up to 1 MiB streamed between endpoints is held whole, one per
          transfer worker (``N`` MiB); a file the native client uploads or downloads is held whole
          (below the multipart threshold and 16 MiB); a streamed multipart upload queues at most
          ``max_in_memory_upload_chunks`` (by default ``N``) parts plus 5 being read; the plan
          holds at most ``2N`` queued actions per worker pool and 8 batches of 500 listed entries
          per side; deletes wait in a file on disk, not in memory.
    :param copy_cutoff: same-endpoint copies up to this size are one CopyObject; larger ones
        UploadPartCopy parts.
    :param key_range: the shard of keys (relative to both prefixes) this run lists, transfers
        and deletes; ``None`` is every key.
    :param abort_incomplete_uploads_after: before transferring, abort the destination's
        multipart uploads (under its prefix, in the key range) initiated longer ago than this.
    :param keys: sync exactly these keys (relative to both locations, sorted, distinct), looked
        up on both sides (``max_concurrency`` HeadObjects at once per S3 side) instead of
        listed; ``None`` lists both sides in full.
    :param listing_threads: list each S3 side by up to this many key ranges at once (found by
        sampling the first S3 side's keyspace, as ``S3KeyRangesOperator`` does), merged back into
        one stream in S3's order; 1 lists each side in one sequence. Not within a ``key_range``.
    :param max_bandwidth: the most bytes a second the run's transfers move through the worker,
        all workers together (uploads, downloads, streams between endpoints); the lower of it
        and the connections' ``max_bandwidth`` extras applies. ``None``: no cap.
    """

    delete: bool = False
    mode: CompareMode = CompareMode.DEFAULT
    rules: Sequence[FilterRule] = ()
    dryrun: bool = False
    max_delete: int | None = None
    follow_symlinks: bool = True
    extra_args: Mapping[str, Any] = field(default_factory=dict)
    progress_interval: float = 5.0
    changed_keys_limit: int = 10_000
    copy_object_lock: bool = False
    copy_tags: bool = False
    max_concurrency: int = 10
    copy_cutoff: int = MAX_COPY_OBJECT_SIZE
    key_range: KeyRange | None = None
    abort_incomplete_uploads_after: timedelta | None = None
    keys: tuple[str, ...] | None = None
    listing_threads: int = 1
    max_bandwidth: Bandwidth | None = None


def direction_of(source: Location, dest: Location) -> Direction:
    """upload, copy or download; two local sides are an error."""
    if isinstance(source, LocalLocation):
        if isinstance(dest, LocalLocation):
            raise S3SyncError(
                f"both source {source.raw!r} and dest {dest.raw!r} are local directories: "
                "at least one side must be an s3:// location"
            )
        return Direction.UPLOAD
    return Direction.DOWNLOAD if isinstance(dest, LocalLocation) else Direction.COPY


def request_args(direction: Direction, extra_args: Mapping[str, Any]) -> dict[str, Any]:
    """The request arguments for every transfer of this direction.

    Object properties given for copies come with ``MetadataDirective=REPLACE`` and ``Tagging``
    with ``TaggingDirective=REPLACE`` (S3 would otherwise ignore them and keep the source's).
    As with AWS CLI v1, the properties given then replace all of the source's; v2's filling of
    the others from the source is not done yet.
    """
    args = dict(extra_args)
    if direction is Direction.COPY:
        if COPY_PROPERTIES & set(args):
            args.setdefault("MetadataDirective", "REPLACE")
        if "Tagging" in args:
            args.setdefault("TaggingDirective", "REPLACE")
    return args


def check_extra_args(direction: Direction, extra_args: Mapping[str, Any]) -> None:
    """Reject request arguments s3transfer would refuse for this direction, before any request."""
    unknown = sorted(set(extra_args) - _ALLOWED_EXTRA_ARGS[direction])
    if unknown:
        raise S3SyncError(
            f"extra_args {unknown} are not allowed for {direction.value}s; "
            f"allowed: {sorted(_ALLOWED_EXTRA_ARGS[direction])}"
        )


def check_copy_options(direction: Direction, copy_object_lock: bool, copy_tags: bool = False) -> None:
    """Object Lock settings and tags can only be carried from an S3 source to an S3 destination."""
    for name, value in (("copy_object_lock", copy_object_lock), ("copy_tags", copy_tags)):
        if value and direction is not Direction.COPY:
            raise S3SyncError(
                f"{name}=True needs an S3 source and an S3 destination, not a {direction.value}: "
                "local files have no Object Lock settings or tags"
            )


def streamed_upload_args(extra_args: Mapping[str, Any]) -> dict[str, Any]:
    """The request arguments of a copy between endpoints: an upload's, without what only a
    server-side copy understands."""
    args = {name: value for name, value in extra_args.items() if name not in _SERVER_SIDE_ONLY}
    unusable = sorted(set(args) - _ALLOWED_EXTRA_ARGS[Direction.UPLOAD])
    if unusable:
        raise S3SyncError(f"extra_args {unusable} only apply to server-side copies, not between two endpoints")
    return args


def transfer_kinds(
    direction: Direction,
    source: Side,
    dest: Side,
    *,
    streamed: bool,
    request_args: Mapping[str, Any],
    copy_object_lock: bool,
    followups: Followups,
) -> dict[TransferKind, Kind]:
    """The units that carry out this run's transfers with ``request_args`` (a streamed copy's
    are :func:`streamed_upload_args`), each given its sides as it needs them (the direction says
    which kind of side each is: :func:`direction_of`)."""
    if direction is Direction.UPLOAD:
        return {TransferKind.UPLOAD: Upload(cast(LocalSide, source), cast(S3Side, dest), request_args)}
    if direction is Direction.DOWNLOAD:
        return {TransferKind.DOWNLOAD: Download(cast(S3Side, source), cast(LocalSide, dest), request_args, followups)}
    s3_source, s3_dest = cast(S3Side, source), cast(S3Side, dest)
    if streamed:
        return {TransferKind.STREAM: Stream(s3_source, s3_dest, request_args, copy_object_lock, followups)}
    copy = ServerSideCopy(s3_source, s3_dest, request_args, followups)
    return {TransferKind.COPY: copy, TransferKind.PART_COPY: copy}


class SyncRun:
    """Syncs ``source`` to ``dest`` the way ``aws s3 sync`` does: wiring of the sides, the
    plan, routing, the checker and transfer workers, and the delete gate.

    :param source: where the data comes from.
    :param dest: where it goes.
    :param source_hook: the hook of an S3 source (``None`` for a local one).
    :param dest_hook: the hook of an S3 destination (``None`` for a local one).
    :param options: the run's options.
    :param log: where the action lines, warnings and progress go.
    """

    def __init__(
        self,
        *,
        source: Location,
        dest: Location,
        source_hook: S3SyncHook | None,
        dest_hook: S3SyncHook | None,
        options: SyncOptions,
        log: logging.Logger,
    ) -> None:
        self.direction = direction = direction_of(source, dest)
        check_extra_args(direction, options.extra_args)
        check_copy_options(direction, options.copy_object_lock, options.copy_tags)
        sides = {"follow_symlinks": options.follow_symlinks, "log": log, "key_range": options.key_range}
        self.hooks = {"source": source_hook, "dest": dest_hook}
        self.source = side_of(source, source_hook.backend if source_hook else None, **sides)
        self.dest = side_of(dest, dest_hook.backend if dest_hook else None, **sides)
        self.options = options
        self.log = log
        self.report = SyncReport(dryrun=options.dryrun, changed_keys_limit=options.changed_keys_limit)
        if options.key_range is not None and not options.key_range.is_full:
            self.report.key_range = options.key_range.as_list()
        # Between two endpoints (or two sets of credentials) there is no server-side copy: the
        # bytes stream through this worker.
        self.streamed = direction is Direction.COPY and not cast(S3Side, self.source).backend.same_service_as(
            cast(S3Side, self.dest).backend
        )
        args = request_args(direction, options.extra_args)
        self.request_args = streamed_upload_args(options.extra_args) if self.streamed else args
        # Reading back an object written with a customer key (SSE-C) needs the key again.
        dest_read_args = {name: value for name, value in args.items() if name.startswith("SSECustomer")}
        followups = Followups(self.report, log, request_args=args, dest_read_args=dest_read_args)
        kinds = transfer_kinds(
            direction,
            self.source,
            self.dest,
            streamed=self.streamed,
            request_args=self.request_args,
            copy_object_lock=options.copy_object_lock,
            followups=followups,
        )
        self.repeated = RepeatedErrors(on_streak=self._halt)
        self.throttle = self._throttle(options.max_bandwidth, source_hook, dest_hook)
        self.runner = JobRunner(
            workers=options.max_concurrency,
            log=log,
            progress=self.report.progress_line,
            progress_interval=options.progress_interval,
            transient=is_transient,
            name="s3sync-transfer",
            repeated=self.repeated,
        )
        # Content checks have workers of their own, so HeadObjects and hashing never hold a
        # transfer slot (none are needed unless checksum=True).
        self.checkers = JobRunner(
            workers=options.max_concurrency if options.mode is CompareMode.CHECKSUM else 0,
            log=log,
            transient=is_transient,
            name="s3sync-check",
            repeated=self.repeated,
        )
        self.transfers = Transfers(
            source=self.source,
            dest=self.dest,
            context=self._route_context(),
            kinds=kinds,
            checker=ContentChecker(self.source, self.dest, dest_read_args),
            transfer_runner=self.runner,
            dryrun=options.dryrun,
            report=self.report,
            log=log,
            key_probe=KeyProbe(
                cast(S3Side, self.dest) if self.dest.remote else None,
                log=log,
                # S3 keeps every key as written; a dry run writes nothing, not even a probe.
                active=not options.dryrun and dest_hook is not None and dest_hook.listing_order is not ListingOrder.S3,
            ),
        )
        self._stopping = threading.Event()
        self.delete_gate = DeleteGate(
            dest=self.dest,
            report=self.report,
            log=log,
            max_delete=options.max_delete,
            dryrun=options.dryrun,
            stopping=self._stopping,
        )

    def _route_context(self) -> RouteContext:
        """What routing needs to know of the run, with the capabilities of both sides' backends
        as they are now (the fast backends join them when the run starts)."""
        options = self.options
        mover = self.dest if self.direction is not Direction.DOWNLOAD else self.source
        return RouteContext(
            self.direction,
            streamed=self.streamed,
            copy_cutoff=options.copy_cutoff,
            multipart_threshold=cast(S3Side, mover).backend.multipart_threshold,
            copy_object_lock=options.copy_object_lock,
            copy_tags=options.copy_tags,
            source=self.source.capabilities,
            dest=self.dest.capabilities,
            request_args=frozenset(self.request_args),
            source_access_point=self.source.is_access_point,
            dest_access_point=self.dest.is_access_point,
        )

    def _halt(self) -> None:
        """The same server error answers object after object: start nothing more (the run
        fails naming the error, not as a kill would)."""
        self.checkers.stop()
        self.runner.stop()

    @property
    def _halted(self) -> bool:
        return self._stopping.is_set() or self.repeated.message is not None

    def stop(self) -> None:
        """Ask the run to stop: no new transfer or delete starts, and the run fails.

        Safe to call from another thread or a signal handler (``on_kill``).
        """
        self._stopping.set()
        if self.throttle is not None:
            self.throttle.stop()
        self.checkers.stop()
        self.runner.stop()

    def preflight(self) -> None:
        """Check both sides before anything changes: local sides first (no request), then the
        buckets exist and the credentials may use them, Object Lock where ``copy_object_lock``
        needs it; a local destination is created if missing (except in a dry run)."""
        checks = sorted([(self.source, True), (self.dest, False)], key=lambda check: check[0].remote)
        for side, as_source in checks:
            side.check(as_source=as_source)
        if self.options.copy_object_lock:
            dest = cast(S3Side, self.dest)  # check_copy_options: copies only
            dest.backend.check_object_lock(bucket=dest.bucket)
        if not self.options.dryrun:
            self.dest.prepare_as_dest()

    def _start_backends(self) -> None:
        """Give each S3 side its fast backends (not in a dry run: it moves nothing), route with
        their capabilities, and let every SlowDown answer slow both worker pools at once."""
        for name, side in (("source", self.source), ("dest", self.dest)):
            hook = self.hooks[name]
            if hook is None:
                continue
            s3_side = cast(S3Side, side)
            if not self.options.dryrun:
                s3_side.use_transfer_backends(hook.transfer_backends())
            for backend in s3_side.backends:
                if self.throttle is not None:
                    backend.limit_bandwidth(self.throttle)
                backend.listen_for_slowdowns(self._slow_down)
                backend.listen_for_errors(self.repeated.request_failed)
        self.transfers.context = self._route_context()

    @staticmethod
    def _throttle(
        bandwidth: Bandwidth | None, source_hook: S3SyncHook | None, dest_hook: S3SyncHook | None
    ) -> Throttle | None:
        """The run's bandwidth cap: the lowest of the option and the connections' extras."""
        for hook in (source_hook, dest_hook):
            extra = hook.max_bandwidth if hook is not None else None
            if extra is not None:
                bandwidth = extra.lower(bandwidth)
        return None if bandwidth is None else Throttle(bandwidth)

    def _plan_listing_ranges(self) -> None:
        """Key ranges for the S3 sides to list at once (:attr:`SyncOptions.listing_threads`),
        sampled on the first S3 side whose listing is not sorted; none for a prefix of one page."""
        threads, key_range = self.options.listing_threads, self.options.key_range
        sides = [side for side in (self.source, self.dest) if isinstance(side, S3Side) and not side.sorts_listing]
        if threads <= 1 or not sides or (key_range is not None and not key_range.is_full):
            return
        sampled = sides[0]
        probe = PageSampler(sampled.backend, bucket=sampled.bucket, prefix=sampled.location.prefix)
        if not probe(None)[1]:
            return  # one page: nothing to gain
        pairs = plan_key_ranges(probe, threads, max_probes=listing_probes(threads))
        if len(pairs) < 2:
            return
        ranges = tuple(KeyRange(start_after, end) for start_after, end in pairs)
        for side in sides:
            side.list_by_ranges(ranges, threads=threads)
        self.log.info(
            "listing %s by %d key ranges at once (from %d ListObjectsV2 request(s) of %s)",
            " and ".join(side.display() for side in sides),
            len(ranges),
            probe.requests,
            sampled.display(),
        )

    def _slow_down(self) -> None:
        self.runner.slow_down()
        self.checkers.slow_down(count=False)  # one SlowDown heard, counted once

    def run(self) -> SyncReport:
        """Preflight, plan and execute; raise :class:`S3SyncError` naming what failed."""
        self.preflight()
        self._start_backends()
        if self.options.key_range is not None and not self.options.key_range.is_full:
            self.log.info("key range: %s", self.options.key_range.describe())
        if self.options.abort_incomplete_uploads_after is not None and self.dest.remote:
            self.report.aborted_uploads, errors = abort_stale_uploads(
                cast(S3Side, self.dest),
                older_than=self.options.abort_incomplete_uploads_after,
                now=datetime.now(UTC),
                dryrun=self.options.dryrun,
                log=self.log,
            )
            self.report.warned(len(errors))
        if self.options.keys is not None:
            self.log.info("%d key(s) named: looked up on both sides, nothing listed", len(self.options.keys))
        else:
            self._plan_listing_ranges()
        if self.streamed:
            self.log.info(
                "source and destination are different endpoints or credentials: "
                "objects stream through this worker (GetObject -> PutObject / multipart upload)"
            )
        if self.throttle is not None:
            self.log.info(
                "bandwidth capped at %s, all workers and clients together",
                self.throttle.bandwidth.describe(),
            )
        path_filter = (
            PathFilter(
                self.options.rules, src_root=self.source.location.filter_root, dst_root=self.dest.location.filter_root
            )
            if self.options.rules
            else None
        )
        deletes: DeleteQueue | None = None
        try:
            with self.runner:
                with self.checkers:  # closed first: its checks hand transfers to the runner
                    deletes, listing_error = self._plan_in_order(path_filter)
            self.report.retries = self.runner.retries + self.checkers.retries
            self.report.slowdowns = self.runner.slowdowns + self.checkers.slowdowns
            self.delete_gate.pass_through(deletes, self._problems(listing_error))
        finally:
            if deletes is not None:
                deletes.close()
        return self.report

    def _plan_in_order(self, path_filter: PathFilter | None) -> tuple[DeleteQueue, BaseException | None]:
        """Plan and hand out transfers; the deletes planned and a listing's error, if any.

        A listing found out of S3's order is sorted from then on (said once) and the plan starts
        again from the first key, once the transfers handed out are done (they are then up to
        date, not done again). Until a pass ends, the transfers the destination's listing may
        still contradict (:attr:`Pair.unsure`) wait in a spool: a pass that ends in order hands
        them out, one that restarts drops them with its deletes.
        """
        while True:
            deletes, held = DeleteQueue(), Spool()
            skipped, warnings = self.report.counts["skipped"], self.report.warnings
            try:
                error = self._plan_pass(path_filter, deletes, held)
                if isinstance(error, ListingOrderError) and self._sort_side(error):
                    deletes.close()
                    self.checkers.wait()
                    self.runner.wait()
                    self.report.counts["skipped"], self.report.warnings = skipped, warnings
                    continue
                if error is None:
                    for action in held:
                        if self._halted:
                            break
                        self._handle(action, deletes, held=None)
                    self.checkers.wait()  # a check that finds other content plans one more transfer
                    self.report.plan_complete()
                return deletes, error
            except BaseException:
                deletes.close()
                raise
            finally:
                held.close()

    def _plan_pass(self, path_filter: PathFilter | None, deletes: DeleteQueue, held: Spool) -> BaseException | None:
        """One pass over both listings; the error that ended it early, if any."""
        listings = [Prefetch(self._entries(self.source)), Prefetch(self._entries(self.dest))]
        try:
            actions = plan(
                iter(listings[0]),
                iter(listings[1]),
                direction=self.direction,
                mode=self.options.mode,
                delete=self.options.delete,
                path_filter=path_filter,
                src_path_prefix=self.source.location.path_prefix,
                dst_path_prefix=self.dest.location.path_prefix,
            )
            while not self._halted:
                try:
                    action = next(actions)
                except StopIteration:
                    return None
                except ListingOrderError as error:
                    return error  # said by _sort_side
                except Exception as error:  # noqa: BLE001 - a failed listing stops planning
                    self.log.error("listing failed: %s", error)
                    return error
                self._handle(action, deletes, held=held)
            return None
        finally:
            for listing in listings:
                listing.close()

    def _entries(self, side: Side) -> Iterator[Entry]:
        """What the plan compares of ``side``: its listing, or the lookups of ``keys``."""
        keys = self.options.keys
        if keys is None:
            return side.listing()
        key_range = self.options.key_range
        in_range = sorted({key for key in keys if key_range is None or key in key_range})
        return side.lookup(in_range, workers=self.options.max_concurrency)

    def _sort_side(self, error: ListingOrderError) -> bool:
        """Sort the listing of the side ``error`` names from now on; whether the plan can start
        again (not when that side is sorted already: then the error ends the run)."""
        side = self.source if error.side == "source" else self.dest
        if not side.sort_from_now():
            self.log.error("listing failed: %s", error)
            return False
        self.log.warning(
            "%s lists keys out of S3's order (%r came after %r): its listing is read whole and "
            "sorted on disk from now on, and the plan starts again from the first key",
            side.display(),
            error.key,
            error.previous,
        )
        return True

    def _handle(self, action: Action, deletes: DeleteQueue, *, held: Spool | None) -> None:
        if held is not None and action.pair.unsure and action.kind is not ActionKind.SKIP:
            held.add(action)
        elif action.kind is ActionKind.SKIP:
            self.report.skipped()
            self.log.debug("skip %s: %s", action.key, action.reason)
        elif action.kind is ActionKind.REFUSE:
            self.report.skipped(warning=True)
            self.log.warning("warning: Skipping file %s. %s", *self._refusal_text(action))
        elif action.kind is ActionKind.DELETE:
            self.log.debug("delete %s: %s", action.key, action.reason)
            deletes.add(action.key)
        elif action.kind is ActionKind.TRANSFER and self.options.dryrun:
            self.report.transferred(self.direction, action.key)
            self.log.info("(dryrun) %s: %s", self.direction.value, self.transfers.line(action.key))
        elif action.kind is ActionKind.VERIFY:
            self.log.debug("compare %s: %s", action.key, action.reason)
            self.checkers.submit(self.transfers.check_job(action))
        else:
            self.log.debug("%s %s: %s", self.direction.value, action.key, action.reason)
            assert action.pair.src is not None
            self.report.planned(action.pair.src.size)
            self.runner.submit(self.transfers.job(action))

    def _refusal_text(self, action: Action) -> tuple[str, str]:
        """What the AWS CLI prints for a refused item: the file and the reason."""
        if action.refusal is RefuseReason.ARCHIVED:
            assert action.pair.src is not None
            storage_class, verb = action.pair.src.storage_class, self.direction.value
            return self.source.display(action.key), (
                f"Object is of storage class {storage_class}. Unable to perform {verb} operations on "
                f"{storage_class} objects. You must restore the object to be able to perform the operation."
            )
        return action.key, action.reason

    def _problems(self, listing_error: BaseException | None) -> list[str]:
        """What makes the run unclean besides a stop: a failed listing, local directories that
        could not be read, failed transfers."""
        sides = (self.source, self.dest)
        for side in sides:
            self.report.warned(side.warnings)
        incomplete = [side.display() for side in sides if not side.complete]
        problems: list[str] = []
        if self.repeated.message is not None:
            problems.append(self.repeated.message)
        if listing_error is not None:
            problems.append(f"a listing failed ({listing_error})")
        if incomplete:
            problems.append(f"directories below {', '.join(incomplete)} could not be read")
        if self.report.failure_count:
            problems.append(self.report.failure_message())
        elif self.runner.failures or self.checkers.failures:
            problems.append(f"{self.runner.failures + self.checkers.failures} transfer(s) failed")
        return problems
