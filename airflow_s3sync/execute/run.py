"""One sync run: preflight, plan, transfers, then deletes — only when everything else succeeded."""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from s3transfer.futures import TransferFuture
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.deletes import DeleteQueue
from airflow_s3sync.execute.executor import Prepared, StartTransfer, TransferExecutor, TransferJob
from airflow_s3sync.execute.report import SyncReport
from airflow_s3sync.hooks.digest import COMPUTABLE_CHECKSUMS, ContentHasher, HashingReader, file_digests
from airflow_s3sync.hooks.local import LocalTree
from airflow_s3sync.hooks.s3 import OBJECT_PROPERTIES, S3SyncHook, etag_may_be_md5
from airflow_s3sync.locations import LocalLocation, Location, S3Location
from airflow_s3sync.plan import (
    Action,
    ActionKind,
    CompareMode,
    Direction,
    Entry,
    FilterRule,
    PathFilter,
    RefuseReason,
    plan,
)
from airflow_s3sync.plan.checksum import Digests, Verdict, compare_digests, local_digest_plan, parse_etag
from airflow_s3sync.plan.lock import LockState, decide_lock, write_time_lock

#: Object properties that, given for a copy, replace the source's instead of being ignored.
_COPY_PROPERTIES = frozenset(OBJECT_PROPERTIES)
#: Streamed objects up to this size are read whole by one GetObject (at most 2 x max_concurrency
#: of them are held at once); larger ones are read as the upload consumes them.
_READ_WHOLE_BELOW = 1024 * 1024
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
    :param max_concurrency: parallel transfers per side (and worker threads for what a
        transfer must look up first).
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
        if _COPY_PROPERTIES & set(args):
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


def _raise(error: BaseException) -> StartTransfer:
    """A start function that fails with ``error``: the job is then reported as failed."""

    def start(subscribers: Sequence[BaseSubscriber]) -> TransferFuture:
        raise error

    return start


class SyncRun:
    """Syncs ``source`` to ``dest`` the way ``aws s3 sync`` does.

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
        self.direction = direction_of(source, dest)
        check_extra_args(self.direction, options.extra_args)
        check_copy_options(self.direction, options.copy_object_lock, options.copy_tags)
        for location, hook, side in ((source, source_hook, "source"), (dest, dest_hook, "dest")):
            if isinstance(location, S3Location) and hook is None:
                raise S3SyncError(f"the S3 {side} {location.raw!r} needs a hook")
        self.source = source
        self.dest = dest
        self.source_hook = source_hook
        self.dest_hook = dest_hook
        self.options = options
        self.log = log
        self.report = SyncReport(dryrun=options.dryrun, changed_keys_limit=options.changed_keys_limit)
        self._request_args = request_args(self.direction, options.extra_args)
        # Copies at or above it let s3transfer head the source, so its properties come along.
        self._copy_threshold = dest_hook.multipart_threshold if dest_hook is not None else 0
        # Between two endpoints (or two sets of credentials) there is no server-side copy: the
        # bytes stream through this worker.
        self._stream = source_hook is not None and dest_hook is not None and not source_hook.same_service_as(dest_hook)
        self._stream_args = self._streamed_upload_args(options.extra_args) if self._stream else {}
        # Reading back an object written with a customer key (SSE-C) needs the key again.
        self._dest_read_args = {
            name: value for name, value in options.extra_args.items() if name.startswith("SSECustomer")
        }
        if self._stream:
            assert dest_hook is not None
            dest_hook.record_written()
        self._trees: list[LocalTree] = []
        self._stopping = threading.Event()

    @staticmethod
    def _streamed_upload_args(extra_args: Mapping[str, Any]) -> dict[str, Any]:
        args = {name: value for name, value in extra_args.items() if name not in _SERVER_SIDE_ONLY}
        unusable = sorted(set(args) - _ALLOWED_EXTRA_ARGS[Direction.UPLOAD])
        if unusable:
            raise S3SyncError(f"extra_args {unusable} only apply to server-side copies, not between two endpoints")
        return args

    def stop(self) -> None:
        """Ask the run to stop: no new transfer or delete starts, and the run fails.

        Safe to call from another thread or a signal handler (``on_kill``).
        """
        self._stopping.set()

    # ----------------------------------------------------------------- preflight
    def preflight(self) -> None:
        """Check both sides before anything changes: local source exists, buckets exist and
        the credentials may use them, a local destination is a directory (created if missing,
        except in a dry run)."""
        if isinstance(self.source, LocalLocation):
            path = self.source.path
            if not os.path.exists(path):
                raise S3SyncError(f"The user-provided path {self.source.raw} does not exist.")
            if not os.path.isdir(path):
                raise S3SyncError(f"the source {self.source.raw!r} is a file, not a directory: sync copies directories")
        if isinstance(self.dest, LocalLocation):
            path = self.dest.path
            if os.path.exists(path) and not os.path.isdir(path):
                raise S3SyncError(f"the destination {self.dest.raw!r} exists and is not a directory")
        for location, hook in ((self.source, self.source_hook), (self.dest, self.dest_hook)):
            if isinstance(location, S3Location) and hook is not None:
                hook.check_access(location.bucket, location.prefix)
        if self.options.copy_object_lock:
            assert isinstance(self.dest, S3Location) and self.dest_hook is not None
            self.dest_hook.check_object_lock(self.dest.bucket)
        if isinstance(self.dest, LocalLocation) and not self.options.dryrun:
            os.makedirs(self.dest.path, exist_ok=True)

    # ----------------------------------------------------------------- listings
    def _listing(self, location: Location, hook: S3SyncHook | None) -> Iterator[Entry]:
        if isinstance(location, S3Location):
            assert hook is not None
            return hook.iter_entries(location.bucket, location.prefix)
        tree = LocalTree(location.path, follow_symlinks=self.options.follow_symlinks, log=self.log)
        self._trees.append(tree)
        return tree.iter_entries()

    def _tree_of(self, location: LocalLocation) -> LocalTree:
        return next(tree for tree in self._trees if tree.root == location.path)

    # ----------------------------------------------------------------- run
    def run(self) -> SyncReport:
        """Preflight, plan and execute; raise :class:`S3SyncError` naming what failed."""
        self.preflight()
        if not self.options.dryrun:
            # Created here, once: worker threads use it, and cached_property takes no lock.
            writer = self.source_hook if self.direction is Direction.DOWNLOAD else self.dest_hook
            assert writer is not None
            writer.transfer_manager  # noqa: B018 - created for its side effect
        if self._stream:
            self.log.info(
                "source and destination are different endpoints or credentials: "
                "objects stream through this worker (GetObject -> PutObject / multipart upload)"
            )
        path_filter = (
            PathFilter(self.options.rules, src_root=self.source.filter_root, dst_root=self.dest.filter_root)
            if self.options.rules
            else None
        )
        actions = plan(
            self._listing(self.source, self.source_hook),
            self._listing(self.dest, self.dest_hook),
            direction=self.direction,
            mode=self.options.mode,
            delete=self.options.delete,
            path_filter=path_filter,
            src_path_prefix=self.source.path_prefix,
            dst_path_prefix=self.dest.path_prefix,
        )
        listing_error: BaseException | None = None
        with DeleteQueue() as deletes:
            with TransferExecutor(
                self.report,
                self.log,
                progress_interval=self.options.progress_interval,
                workers=self.options.max_concurrency,
            ) as ex:
                while not self._stopping.is_set():
                    try:
                        action = next(actions)
                    except StopIteration:
                        break
                    except Exception as error:  # noqa: BLE001 - a failed listing stops planning
                        listing_error = error
                        self.log.error("listing failed: %s", error)
                        break
                    self._handle(action, ex, deletes)
                ex.wait()
            self._finish(listing_error, deletes)
        return self.report

    def _handle(self, action: Action, executor: TransferExecutor, deletes: DeleteQueue) -> None:
        if action.kind is ActionKind.SKIP:
            self.report.skipped()
            self.log.debug("skip %s: %s", action.key, action.reason)
        elif action.kind is ActionKind.REFUSE:
            self.report.skipped(warning=True)
            self.log.warning("warning: Skipping file %s. %s", *self._refusal_text(action))
        elif action.kind is ActionKind.DELETE:
            self.log.debug("delete %s: %s", action.key, action.reason)
            deletes.add(action.key)
        else:
            self._transfer(action, executor)

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

    def _transfer(self, action: Action, executor: TransferExecutor) -> None:
        src, dst = action.pair.src, action.pair.dst
        assert src is not None
        key = action.key
        line = f"{self.source.display(key)} to {self.dest.display(key)}"
        self.log.debug("%s %s: %s", self.direction.value, key, action.reason)
        if self.direction is Direction.COPY and src.size >= self._copy_threshold and not self._stream:
            job = TransferJob(self.direction, key, None, None, line)
        else:
            job = TransferJob(self.direction, key, src.size, src.etag, line)
        if action.kind is ActionKind.VERIFY:
            assert dst is not None
            executor.submit_prepared(job, lambda: self._if_content_differs(src, dst, line))
            return
        if self.options.dryrun:
            self.report.transferred(self.direction, key)
            self.log.info("(dryrun) %s: %s", self.direction.value, line)
            return
        if (
            self._stream
            or self.options.copy_object_lock
            or (self.options.copy_tags and src.size >= self._copy_threshold)
        ):
            executor.submit_prepared(job, lambda: self._prepare(src, line))
            return
        try:
            start, after_success = self._starter(src, line)
        except (OSError, S3SyncError) as error:
            executor.submit(job, _raise(error))
            return
        executor.submit(replace(job, after_success=after_success), start)

    def _prepare(self, src: Entry, line: str) -> Prepared:
        """In a worker: what the transfer of ``src`` needs to look up first, then its start."""
        if self._stream:
            return self._streamed_copy(src)
        if self.direction is Direction.COPY:
            return self._server_side_copy(src)
        return Prepared(*self._starter(src, line))

    def _if_content_differs(self, src: Entry, dst: Entry, line: str) -> Prepared | None:
        """In a worker (``checksum=True``): compare the contents of a same-size pair; transfer
        only if they differ. When no checksum allows a comparison, the sizes decide, with a
        warning."""
        verdict, reason = self._compare_content(src, dst)
        if verdict is Verdict.SAME:
            self.log.debug("skip %s: same content (%s)", src.key, reason)
            return None
        if verdict is Verdict.UNKNOWN:
            self.report.warned()
            self.log.warning("warning: compared %s by size only (weak): %s", line, reason)
            return None
        self.log.debug("%s %s: content differs (%s)", self.direction.value, src.key, reason)
        if self.options.dryrun:
            return Prepared(None)
        return self._prepare(src, line)

    def _compare_content(self, src: Entry, dst: Entry) -> tuple[Verdict, str]:
        """HeadObject each S3 side (plus part 1 only when a multipart ETag is all there is to go
        on) and hash a local side for what the object offers."""
        source, dest = self.source, self.dest
        if isinstance(source, S3Location) and isinstance(dest, S3Location):
            assert self.source_hook is not None and self.dest_hook is not None
            a_at, b_at = (source.bucket, source.object_key(src.key)), (dest.bucket, dest.object_key(dst.key))
            a, b = self.source_hook.digests(*a_at), self.dest_hook.digests(*b_at)
            verdict = compare_digests(a, b)
            if verdict[0] is Verdict.UNKNOWN and a.multipart_etag and b.multipart_etag and a.parts == b.parts:
                verdict = compare_digests(
                    self.source_hook.with_part_size(*a_at, a), self.dest_hook.with_part_size(*b_at, b)
                )
            return verdict
        if isinstance(source, LocalLocation):
            assert isinstance(dest, S3Location) and self.dest_hook is not None
            path = os.path.join(source.path, *src.key.split("/"))
            hook, at = self.dest_hook, (dest.bucket, dest.object_key(dst.key))
        else:
            assert isinstance(dest, LocalLocation) and self.source_hook is not None
            path = self._tree_of(dest).path_for(dst.key)
            hook, at = self.source_hook, (source.bucket, source.object_key(src.key))
        remote = hook.digests(*at)
        digest_plan = local_digest_plan(remote, computable=COMPUTABLE_CHECKSUMS)
        if not digest_plan.strong and remote.multipart_etag is not None:
            remote = hook.with_part_size(*at, remote)
            digest_plan = local_digest_plan(remote, computable=COMPUTABLE_CHECKSUMS)
        if digest_plan.empty:
            return Verdict.UNKNOWN, "the object has neither an MD5 ETag nor a checksum this machine can compute"
        return compare_digests(file_digests(path, digest_plan), remote)

    def _server_side_copy(self, src: Entry) -> Prepared:
        """In a worker: read what the copy must carry besides the data, then copy server-side.

        With ``copy_object_lock`` the source's lock goes with the write (CopyObject headers),
        so the new version is never unlocked; a multipart copy gets it again once complete,
        because some servers (moto among them) drop lock headers given to
        CreateMultipartUpload. With ``copy_tags``, a multipart copy (which S3 does not tag)
        gets the source's tags once complete; CopyObject copies them itself.
        """
        source, dest = self.source, self.dest
        assert isinstance(source, S3Location) and isinstance(dest, S3Location)
        assert self.source_hook is not None and self.dest_hook is not None
        source_key, dest_key = source.object_key(src.key), dest.object_key(src.key)
        multipart = src.size >= self._copy_threshold
        state, lock_args = None, {}
        if self.options.copy_object_lock:
            state = self.source_hook.lock_state(source.bucket, source_key)
            if state is None:
                raise S3SyncError(f"{source.display(src.key)} disappeared before it could be copied")
            lock_args = write_time_lock(state, now=datetime.now(UTC))
        tags = self._source_tags(source_key) if multipart else None
        args = {**self._request_args, **lock_args}
        copy, source_hook, dest_hook = self.dest_hook.copy, self.source_hook, self.dest_hook

        def start(subs: Sequence[BaseSubscriber]) -> TransferFuture:
            return copy(
                (source.bucket, source_key),
                dest.bucket,
                dest_key,
                source_hook=source_hook,
                extra_args=args,
                subscribers=subs,
            )

        def after_success() -> None:
            if tags:
                dest_hook.put_tags(dest.bucket, dest_key, tags)
            if state is not None and lock_args and multipart:
                self._apply_lock(state, dest_key)

        return Prepared(start, after_success=after_success)

    def _source_tags(self, source_key: str) -> list[dict[str, str]] | None:
        """The source object's tags, when ``copy_tags`` asks for them and ``extra_args`` gives none."""
        if not self.options.copy_tags or "Tagging" in self.options.extra_args:
            return None
        assert isinstance(self.source, S3Location) and self.source_hook is not None
        return self.source_hook.object_tags(self.source.bucket, source_key)

    def _apply_lock(self, state: LockState, dest_key: str) -> None:
        """Give the object just written at ``dest_key`` the lock ``state`` where it lacks it."""
        dest, hook = self.dest, self.dest_hook
        assert isinstance(dest, S3Location) and hook is not None
        written = hook.lock_state(dest.bucket, dest_key, **self._dest_read_args)
        if written is None:
            raise S3SyncError(f"s3://{dest.bucket}/{dest_key} is missing after it was written")
        decision = decide_lock(state, written, now=datetime.now(UTC))
        for refusal in decision.refusals:  # e.g. a stronger default retention of the bucket
            self.report.warned()
            self.log.warning(
                "warning: skip %s: s3://%s/%s: %s", refusal.kind.value, dest.bucket, dest_key, refusal.reason
            )
        for change in decision.changes:
            self.log.debug(
                "%s: s3://%s/%s %s (after a multipart write)",
                change.kind.value,
                dest.bucket,
                dest_key,
                change.describe(),
            )
            if change.retention is not None:
                hook.put_retention(dest.bucket, dest_key, change.retention, version_id=written.version_id)
            else:
                hook.put_legal_hold(dest.bucket, dest_key, change.legal_hold, version_id=written.version_id)

    def _streamed_copy(self, src: Entry) -> Prepared:
        """In a worker: read the source's properties (HeadObject, conditional on the listed
        ETag), then start uploading its bytes to the destination endpoint as they arrive — in
        parts above the multipart threshold, never on disk. The source's properties
        (Content-Type, Cache-Control, Content-Encoding, ..., user metadata) and, with
        ``copy_object_lock``, its lock go with the upload; what was written is verified
        afterwards. Above ``_READ_WHOLE_BELOW`` bytes the GetObject opens only when the upload
        starts reading, so no more connections are open than uploads running; below it, one
        GetObject serves for properties and data."""
        source, dest = self.source, self.dest
        assert isinstance(source, S3Location) and isinstance(dest, S3Location)
        assert self.source_hook is not None and self.dest_hook is not None
        source_key, dest_key, dest_hook = source.object_key(src.key), dest.object_key(src.key), self.dest_hook
        if src.size <= _READ_WHOLE_BELOW:
            # Small: one GetObject gives properties and data; held in memory until written.
            head = self.source_hook.open_object(source.bucket, source_key, etag=src.etag)
            body: Any = io.BytesIO(head["Body"].read())
        else:
            head = self.source_hook.head_object(source.bucket, source_key, etag=src.etag)
            body = self.source_hook.lazy_body(source.bucket, source_key, etag=head.get("ETag"))
        args = dict(self._stream_args)
        if not _COPY_PROPERTIES & set(args):
            args.update({name: head[name] for name in OBJECT_PROPERTIES if head.get(name) is not None})
        state = LockState.from_head(head)
        lock_args = write_time_lock(state, now=datetime.now(UTC)) if self.options.copy_object_lock else {}
        args.update(lock_args)
        tags = self._source_tags(source_key)
        if tags:
            args["Tagging"] = urlencode([(tag["Key"], tag["Value"]) for tag in tags])
        part_size = dest_hook.part_size_for(int(head["ContentLength"]))
        reader = HashingReader(body, ContentHasher(part_size=part_size))
        source_md5, _ = parse_etag(head.get("ETag"), md5_etag_possible=etag_may_be_md5(head))

        def start(subs: Sequence[BaseSubscriber]) -> TransferFuture:
            return dest_hook.upload_stream(reader, dest.bucket, dest_key, extra_args=args, subscribers=subs)

        def after_success() -> None:
            reader.close()
            self._verify_written(reader.hasher.digests(), source_md5, dest_key)
            if lock_args and part_size is not None:
                self._apply_lock(state, dest_key)

        return Prepared(start, after_success=after_success, cleanup=reader.close)

    def _verify_written(self, sent: Digests, source_md5: str | None, dest_key: str) -> None:
        """Check a streamed object: the bytes read match the source's MD5 (when its ETag is
        one), and the destination holds what was sent — by the write's own answer when its ETag
        can be compared, else by a HeadObject: size, and MD5 or multipart ETag. Raise naming
        the mismatch."""
        dest, hook = self.dest, self.dest_hook
        assert isinstance(dest, S3Location) and hook is not None
        where = f"s3://{dest.bucket}/{dest_key}"
        answer = hook.written(dest.bucket, dest_key)
        if source_md5 is not None and sent.md5 != source_md5:
            raise S3SyncError(f"verification failed: the bytes read (MD5 {sent.md5}) are not the source's {source_md5}")
        if answer is not None:
            md5, composite = parse_etag(answer.get("ETag"), md5_etag_possible=etag_may_be_md5(answer))
            written = Digests(sent.size, md5=md5, multipart_etag=composite, part_size=sent.part_size)
            if md5 is not None or (composite is not None and sent.multipart_etag is not None):
                self._check_written(where, written, sent)  # comparable: no further request
                return
        self._check_written(where, hook.digests(dest.bucket, dest_key, **self._dest_read_args), sent)

    @staticmethod
    def _check_written(where: str, written: Digests, sent: Digests) -> None:
        if written.size != sent.size:
            raise S3SyncError(f"verification failed: {where} has {written.size} bytes, {sent.size} were sent")
        if written.md5 is not None and written.md5 != sent.md5:
            raise S3SyncError(f"verification failed: {where} has MD5 {written.md5}, the data sent {sent.md5}")
        if written.multipart_etag is not None and sent.multipart_etag is not None:
            if written.multipart_etag != sent.multipart_etag:
                raise S3SyncError(
                    f"verification failed: {where} has ETag {written.multipart_etag}, "
                    f"the parts sent make {sent.multipart_etag}"
                )

    def _starter(self, src: Entry, line: str) -> tuple[StartTransfer, Callable[[], None] | None]:
        """The call that starts transferring ``src`` (``line`` in the log), and what to do once
        it succeeded."""
        key, source, dest = src.key, self.source, self.dest
        extra_args = self._request_args
        if isinstance(source, LocalLocation):
            assert isinstance(dest, S3Location) and self.dest_hook is not None
            upload, path = self.dest_hook.upload, os.path.join(source.path, *key.split("/"))
            return lambda subs: upload(
                path, dest.bucket, dest.object_key(key), extra_args=extra_args, subscribers=subs
            ), None
        assert self.source_hook is not None
        if isinstance(dest, S3Location):
            assert self.dest_hook is not None
            copy, source_hook = self.dest_hook.copy, self.source_hook
            return lambda subs: copy(
                (source.bucket, source.object_key(key)),
                dest.bucket,
                dest.object_key(key),
                source_hook=source_hook,
                extra_args=extra_args,
                subscribers=subs,
            ), None
        tree, download = self._tree_of(dest), self.source_hook.download
        path = tree.path_for(key)  # decide() refused keys that would leave the directory

        def start(subs: Sequence[BaseSubscriber]) -> TransferFuture:
            tree.prepare_parent(path)
            return download(source.bucket, source.object_key(key), path, extra_args=extra_args, subscribers=subs)

        def set_mtime() -> None:
            try:
                tree.set_mtime(path, src.mtime)
            except OSError as error:  # the file is there: only a warning, as the AWS CLI does
                self.report.warned()
                self.log.warning(
                    "warning: Successfully downloaded %s but was unable to update the last modified time. %s",
                    line,
                    error,
                )

        return start, set_mtime

    # ----------------------------------------------------------------- deletes
    def _finish(self, listing_error: BaseException | None, deletes: DeleteQueue) -> None:
        for tree in self._trees:
            self.report.warned(tree.warnings)
        incomplete = [tree.root for tree in self._trees if not tree.complete]
        problems: list[str] = []
        if self._stopping.is_set():
            problems.append("the run was stopped (the task was killed)")
        if listing_error is not None:
            problems.append(f"a listing failed ({listing_error})")
        if incomplete:
            problems.append(f"directories below {', '.join(incomplete)} could not be read")
        if self.report.failure_count:
            problems.append(self.report.failure_message())
        if problems:
            if deletes.count:
                self.log.warning("not deleting %d item(s) because the run was not clean", deletes.count)
            raise S3SyncError("sync failed, nothing was deleted: " + "; ".join(problems))
        if not deletes.count:
            return
        limit = self.options.max_delete
        if limit is not None and deletes.count > limit:
            message = f"refusing to delete {deletes.count} item(s): more than max_delete={limit}; nothing was deleted"
            if not self.options.dryrun:
                raise S3SyncError(message)
            self.log.warning("a real run would fail: %s", message)
        self._delete(deletes)
        if self._stopping.is_set():
            raise S3SyncError("sync stopped while deleting (the task was killed)")
        if self.report.failure_count:
            raise S3SyncError("sync failed: " + self.report.failure_message())

    def _delete(self, deletes: DeleteQueue) -> None:
        dest = self.dest
        if self.options.dryrun:
            for key in deletes:
                self.report.deleted()
                self.log.info("(dryrun) delete: %s", dest.display(key))
            return
        if isinstance(dest, S3Location):
            assert self.dest_hook is not None
            object_keys = (dest.object_key(key) for key in self._until_stopped(deletes))
            for object_key, error in self.dest_hook.delete_keys(dest.bucket, object_keys):
                self._deleted(f"s3://{dest.bucket}/{object_key}", error)
            return
        tree = self._tree_of(dest)
        for key in self._until_stopped(deletes):
            try:
                tree.delete(key)
            except OSError as error:
                self._deleted(dest.display(key), str(error))
            else:
                self._deleted(dest.display(key), None)

    def _until_stopped(self, keys: Iterable[str]) -> Iterator[str]:
        for key in keys:
            if self._stopping.is_set():
                return
            yield key

    def _deleted(self, shown: str, error: str | None) -> None:
        if error is None:
            self.report.deleted()
            self.log.info("delete: %s", shown)
        else:
            self.report.failed(f"delete {shown}: {error}")
            self.log.error("delete failed: %s %s", shown, error)
