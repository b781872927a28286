"""One object's transfer as a job: what is read first, the backend call, the follow-ups.

:func:`airflow_s3sync.plan.route.route` decides the kind of each transfer; this module carries
each kind out with the sides' backends, in a job runner's worker thread.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.locks import write_lock_change
from airflow_s3sync.execute.report import SyncReport
from airflow_s3sync.execute.runner import Job, JobRunner, current_runner
from airflow_s3sync.execute.sides import LocalSide, S3Side, Side
from airflow_s3sync.hooks.backend import is_throttle_answer
from airflow_s3sync.hooks.digest import COMPUTABLE_CHECKSUMS, ContentHasher, HashingReader, file_digests
from airflow_s3sync.hooks.s3 import OBJECT_PROPERTIES, etag_may_be_md5
from airflow_s3sync.plan import Action, ActionKind, Entry
from airflow_s3sync.plan.checksum import Digests, Verdict, compare_digests, local_digest_plan, parse_etag
from airflow_s3sync.plan.lock import LockState, decide_lock, write_time_lock
from airflow_s3sync.plan.route import READ_WHOLE_MAX, RouteContext, TransferKind, TransferSpec, route

#: Object properties that, given for a copy, replace the source's instead of being ignored.
COPY_PROPERTIES = frozenset(OBJECT_PROPERTIES)
#: Object properties the native client writes as attributes (Expires it cannot write).
_NATIVE_ATTRIBUTES = {
    "CacheControl": "Cache-Control",
    "ContentDisposition": "Content-Disposition",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
    "ContentType": "Content-Type",
}
#: Metadata names obstore would take for one of those attributes (it ignores case and hyphens).
_RESERVED_METADATA = frozenset(name.lower().replace("-", "") for name in _NATIVE_ATTRIBUTES.values())
#: Names of the SlowDown listeners registered on botocore clients (one per run and client).
_LISTENER_IDS = itertools.count()


class _Bytes:
    """Counts one attempt's bytes into the report, and takes them back if the attempt fails."""

    def __init__(self, report: SyncReport) -> None:
        self._report = report
        self._count = 0
        self._lock = threading.Lock()

    def __call__(self, count: int) -> None:
        with self._lock:
            self._count += count
        self._report.add_bytes(count)

    def undo(self) -> None:
        with self._lock:
            count, self._count = self._count, 0
        self._report.add_bytes(-count)


class Transfers:
    """Makes the job of each transfer (or content check) of one sync run.

    :param source: where the data comes from.
    :param dest: where it goes.
    :param context: what routing needs to know of the run.
    :param request_args: request arguments for every write (or every GetObject of a download).
    :param stream_args: the same for streamed copies (without server-side-only arguments).
    :param dryrun: only report what a content check finds to transfer.
    """

    def __init__(
        self,
        *,
        source: Side,
        dest: Side,
        context: RouteContext,
        request_args: Mapping[str, Any],
        stream_args: Mapping[str, Any],
        dryrun: bool,
        report: SyncReport,
        log: logging.Logger,
    ) -> None:
        self.source = source
        self.dest = dest
        self.context = context
        self.direction = context.direction
        self.request_args = dict(request_args)
        self.stream_args = dict(stream_args)
        self.dryrun = dryrun
        self.report = report
        self.log = log
        # Reading back an object written with a customer key (SSE-C) needs the key again.
        self.dest_read_args = {name: value for name, value in request_args.items() if name.startswith("SSECustomer")}
        if isinstance(dest, LocalSide) and not dryrun:
            # The walk of a download's destination removes what an interrupted download left.
            dest.tree.remove_stale_temp_files = True
        self._runner: JobRunner | None = None
        self._runner_lock = threading.Lock()

    def _listen_for_slowdowns(self) -> None:
        """Tell the runner of this run's jobs about every SlowDown answer to a botocore request
        (retried by botocore itself, in this thread or s3transfer's), so it lowers its
        concurrency at once, not only when a job finally fails. Done on the first job."""
        runner = current_runner()
        with self._runner_lock:
            if runner is None or self._runner is runner:
                return
            self._runner = runner

        def listener(response: Any = None, **kwargs: Any) -> None:
            if is_throttle_answer(response):
                runner.slow_down()
            # None: botocore's own retry handler decides whether to retry

        clients = [getattr(side.backend, "conn", None) for side in (self.source, self.dest) if isinstance(side, S3Side)]
        for client in {id(client): client for client in clients if client is not None}.values():
            client.meta.events.register("needs-retry.s3", listener, unique_id=f"s3sync-slowdown-{next(_LISTENER_IDS)}")

    def line(self, key: str) -> str:
        """The ``aws s3 sync`` line without its verb: ``./a.txt to s3://b/a.txt``."""
        return f"{self.source.display(key)} to {self.dest.display(key)}"

    def spec(self, src: Entry) -> TransferSpec:
        """How ``src`` is transferred."""
        s3 = self.dest if isinstance(self.dest, S3Side) else self.source
        assert isinstance(s3, S3Side)
        return route(
            self.context,
            size=src.size,
            object_key=s3.object_key(src.key),
            bucket_is_plain=not s3.location.is_access_point,
        )

    def job(self, action: Action) -> Job:
        """The job of a TRANSFER or VERIFY action."""
        src, dst = action.pair.src, action.pair.dst
        assert src is not None
        verb, line = self.direction.value, self.line(src.key)

        def run() -> None:
            self._listen_for_slowdowns()
            progress = _Bytes(self.report)
            try:
                if action.kind is ActionKind.VERIFY:
                    assert dst is not None
                    if not self._content_differs(src, dst, line):
                        self.report.skipped()
                        return
                    if self.dryrun:
                        self._done(src.key, f"(dryrun) {verb}", line)
                        return
                self.transfer(self.spec(src), src, line, progress)
            except BaseException:
                progress.undo()
                raise
            self._done(src.key, verb, line)

        def failed(error: BaseException) -> None:
            self.report.failed(f"{verb} {line}: {error}")
            self.log.error("%s failed: %s %s", verb, line, error)

        return Job(f"{verb} {line}", run, failed)

    def _done(self, key: str, verb: str, line: str) -> None:
        self.report.transferred(self.direction, key)
        self.log.info("%s: %s", verb, line)

    # ----------------------------------------------------------------- the kinds
    def transfer(self, spec: TransferSpec, src: Entry, line: str, progress: _Bytes) -> None:
        """Carry out ``spec`` for ``src``; raise on failure."""
        if spec.kind is TransferKind.UPLOAD:
            self._upload(spec, src, progress)
        elif spec.kind is TransferKind.DOWNLOAD:
            self._download(spec, src, line, progress)
        elif spec.kind is TransferKind.STREAM:
            self._stream(spec, src, progress)
        else:
            self._copy(spec, src, progress)

    def _upload(self, spec: TransferSpec, src: Entry, progress: _Bytes) -> None:
        source, dest = self.source, self.dest
        assert isinstance(source, LocalSide) and isinstance(dest, S3Side)
        backend = dest.native if spec.native else dest.backend
        backend.upload_file(
            source.source_path(src.key),
            dest.bucket,
            dest.object_key(src.key),
            size=src.size,
            extra_args=self.request_args,
            progress=progress,
        )

    def _download(self, spec: TransferSpec, src: Entry, line: str, progress: _Bytes) -> None:
        source, dest = self.source, self.dest
        assert isinstance(source, S3Side) and isinstance(dest, LocalSide)
        path = dest.target_path(src.key)  # decide() refused keys that would leave the directory
        dest.tree.prepare_parent(path)
        backend = source.native if spec.native else source.backend
        backend.download_file(
            source.bucket,
            source.object_key(src.key),
            path,
            size=src.size,
            etag=src.etag,
            extra_args=self.request_args,
            progress=progress,
        )
        try:
            dest.tree.set_mtime(path, src.mtime)
        except OSError as error:  # the file is there: only a warning, as the AWS CLI does
            self.report.warned()
            self.log.warning(
                "warning: Successfully downloaded %s but was unable to update the last modified time. %s",
                line,
                error,
            )

    def _copy(self, spec: TransferSpec, src: Entry, progress: _Bytes) -> None:
        """A server-side copy. With ``copy_object_lock`` the source's lock goes with the write
        (CopyObject headers), so the new version is never unlocked; a multipart copy gets it
        again once complete, because some servers (moto among them) drop lock headers given to
        CreateMultipartUpload. A multipart copy (which S3 does not tag) gets the source's tags
        once complete when ``copy_tags`` asks; CopyObject copies them itself."""
        source, dest = self.source, self.dest
        assert isinstance(source, S3Side) and isinstance(dest, S3Side)
        source_key, dest_key = source.object_key(src.key), dest.object_key(src.key)
        state, lock_args = None, {}
        if spec.read_lock:
            state = source.backend.lock_state(source.bucket, source_key)
            if state is None:
                raise S3SyncError(f"{source.display(src.key)} disappeared before it could be copied")
            lock_args = write_time_lock(state, now=datetime.now(UTC))
        tags = self._source_tags(source_key) if spec.read_tags else None
        dest.backend.copy_object(
            (source.bucket, source_key),
            dest.bucket,
            dest_key,
            size=src.size,
            in_parts=spec.kind is TransferKind.PART_COPY,
            source_backend=source.backend,
            extra_args={**self.request_args, **lock_args},
            progress=progress,
        )
        if spec.tags_after and tags:
            dest.backend.put_tags(dest.bucket, dest_key, tags)
        if spec.lock_after and state is not None and lock_args:
            self._apply_lock(state, dest_key)

    def _source_tags(self, source_key: str) -> list[dict[str, str]] | None:
        """The source object's tags, unless ``extra_args`` gives tags of its own."""
        if "Tagging" in self.request_args:
            return None
        assert isinstance(self.source, S3Side)
        return self.source.backend.object_tags(self.source.bucket, source_key)

    def _apply_lock(self, state: LockState, dest_key: str) -> None:
        """Give the object just written at ``dest_key`` the lock ``state`` where it lacks it."""
        dest = self.dest
        assert isinstance(dest, S3Side)
        written = dest.backend.lock_state(dest.bucket, dest_key, **self.dest_read_args)
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
            write_lock_change(dest.backend, dest.bucket, dest_key, change, version_id=written.version_id)

    def _stream(self, spec: TransferSpec, src: Entry, progress: _Bytes) -> None:
        """Read the source's properties (HeadObject, conditional on the listed ETag), then
        upload its bytes to the destination endpoint as they arrive — in parts above the
        multipart threshold, never on disk. The source's properties (Content-Type,
        Cache-Control, ..., user metadata) and, with ``copy_object_lock``, its lock go with the
        upload; what was written is verified afterwards. Above :data:`READ_WHOLE_MAX` bytes
        the GetObject opens only when the upload starts reading; up to it, one GetObject serves
        for properties and data, and the native client writes them when routing allows and the
        source has nothing it cannot carry (``Expires``)."""
        source, dest = self.source, self.dest
        assert isinstance(source, S3Side) and isinstance(dest, S3Side)
        source_key, dest_key = source.object_key(src.key), dest.object_key(src.key)
        if src.size <= READ_WHOLE_MAX:
            head = source.backend.open_object(source.bucket, source_key, etag=src.etag)
            with head["Body"] as stream:
                body: Any = io.BytesIO(stream.read())
        else:
            head = source.backend.head_object(source.bucket, source_key, etag=src.etag)
            body = source.backend.lazy_body(source.bucket, source_key, etag=head.get("ETag"))
        args = dict(self.stream_args)
        if not COPY_PROPERTIES & set(args):
            args.update({name: head[name] for name in OBJECT_PROPERTIES if head.get(name) is not None})
        state = LockState.from_head(head)
        lock_args = write_time_lock(state, now=datetime.now(UTC)) if self.context.copy_object_lock else {}
        args.update(lock_args)
        tags = self._source_tags(source_key) if spec.read_tags else None
        if tags:
            args["Tagging"] = urlencode([(tag["Key"], tag["Value"]) for tag in tags])
        size = int(head["ContentLength"])
        source_md5, _ = parse_etag(head.get("ETag"), md5_etag_possible=etag_may_be_md5(head))
        if spec.native and isinstance(body, io.BytesIO) and _native_can_write(args):
            self._stream_native(body.getvalue(), args, source_md5, dest_key, progress)
            return
        part_size = dest.backend.part_size_for(size)
        reader = HashingReader(body, ContentHasher(part_size=part_size))
        try:
            dest.backend.upload_stream(reader, dest.bucket, dest_key, size=size, extra_args=args, progress=progress)
        finally:
            reader.close()
        self._verify_written(reader.hasher.digests(), source_md5, dest_key, dest.backend.written(dest.bucket, dest_key))
        if spec.lock_after and lock_args:
            self._apply_lock(state, dest_key)

    def _stream_native(
        self, data: bytes, args: Mapping[str, Any], source_md5: str | None, dest_key: str, progress: _Bytes
    ) -> None:
        """Write a small streamed object with the native client, its properties as attributes."""
        dest = self.dest
        assert isinstance(dest, S3Side)
        attributes = {_NATIVE_ATTRIBUTES[name]: value for name, value in args.items() if name in _NATIVE_ATTRIBUTES}
        attributes.update(args.get("Metadata", {}))
        written = dest.native.upload_bytes(data, dest.bucket, dest_key, attributes=attributes, progress=progress)
        hasher = ContentHasher(part_size=None)
        hasher.update(data)
        # The native client's answer does not say whether the object is encrypted with KMS (whose
        # ETag is no MD5): an ETag that is not the MD5 sent is checked again with a HeadObject.
        answer = {"ETag": written.etag} if written.etag else None
        self._verify_written(hasher.digests(), source_md5, dest_key, answer, answer_is_final=False)

    def _verify_written(
        self,
        sent: Digests,
        source_md5: str | None,
        dest_key: str,
        answer: Mapping[str, Any] | None,
        *,
        answer_is_final: bool = True,
    ) -> None:
        """Check a streamed object: the bytes read match the source's MD5 (when its ETag is
        one), and the destination holds what was sent — by the write's own ``answer`` when its
        ETag can be compared, else by a HeadObject: size, and MD5 or multipart ETag. Raise naming
        the mismatch. Unless ``answer_is_final``, an answer that disagrees is checked again
        with a HeadObject."""
        dest = self.dest
        assert isinstance(dest, S3Side)
        where = f"s3://{dest.bucket}/{dest_key}"
        if source_md5 is not None and sent.md5 != source_md5:
            raise S3SyncError(f"verification failed: the bytes read (MD5 {sent.md5}) are not the source's {source_md5}")
        if answer is not None:
            md5, composite = parse_etag(answer.get("ETag"), md5_etag_possible=etag_may_be_md5(answer))
            written = Digests(sent.size, md5=md5, multipart_etag=composite, part_size=sent.part_size)
            comparable = md5 is not None or (composite is not None and sent.multipart_etag is not None)
            if comparable and (answer_is_final or written.md5 == sent.md5):
                _check_written(where, written, sent)  # no further request
                return
        _check_written(where, dest.backend.digests(dest.bucket, dest_key, **self.dest_read_args), sent)

    # ----------------------------------------------------------------- checksum=True
    def _content_differs(self, src: Entry, dst: Entry, line: str) -> bool:
        """Compare the contents of a same-size pair. When no checksum allows a comparison, the
        sizes decide, with a warning."""
        verdict, reason = self._compare_content(src, dst)
        if verdict is Verdict.SAME:
            self.log.debug("skip %s: same content (%s)", src.key, reason)
            return False
        if verdict is Verdict.UNKNOWN:
            self.report.warned()
            self.log.warning("warning: compared %s by size only (weak): %s", line, reason)
            return False
        self.log.debug("%s %s: content differs (%s)", self.direction.value, src.key, reason)
        return True

    def _compare_content(self, src: Entry, dst: Entry) -> tuple[Verdict, str]:
        """HeadObject each S3 side (plus part 1 only when a multipart ETag is all there is to go
        on) and hash a local side for what the object offers."""
        source, dest = self.source, self.dest
        if isinstance(source, S3Side) and isinstance(dest, S3Side):
            a_at, b_at = (source.bucket, source.object_key(src.key)), (dest.bucket, dest.object_key(dst.key))
            a, b = source.backend.digests(*a_at), dest.backend.digests(*b_at)
            verdict = compare_digests(a, b)
            if verdict[0] is Verdict.UNKNOWN and a.multipart_etag and b.multipart_etag and a.parts == b.parts:
                verdict = compare_digests(
                    source.backend.with_part_size(*a_at, a), dest.backend.with_part_size(*b_at, b)
                )
            return verdict
        if isinstance(source, LocalSide):
            assert isinstance(dest, S3Side)
            path, remote_side, remote_key = source.source_path(src.key), dest, dest.object_key(dst.key)
        else:
            assert isinstance(dest, LocalSide)
            path, remote_side, remote_key = dest.target_path(dst.key), source, source.object_key(src.key)
        hook, at = remote_side.backend, (remote_side.bucket, remote_key)
        remote = hook.digests(*at)
        digest_plan = local_digest_plan(remote, computable=COMPUTABLE_CHECKSUMS)
        if not digest_plan.strong and remote.multipart_etag is not None:
            remote = hook.with_part_size(*at, remote)
            digest_plan = local_digest_plan(remote, computable=COMPUTABLE_CHECKSUMS)
        if digest_plan.empty:
            return Verdict.UNKNOWN, "the object has neither an MD5 ETag nor a checksum this machine can compute"
        return compare_digests(file_digests(path, digest_plan), remote)


def _native_can_write(args: Mapping[str, Any]) -> bool:
    """Whether the native client writes these properties exactly: no ``Expires`` or other
    argument it has no attribute for, and no user metadata named like one of its attributes
    (it would take ``content-type`` metadata for the Content-Type header)."""
    if not set(args) <= set(_NATIVE_ATTRIBUTES) | {"Metadata"}:
        return False
    return not any(key.lower().replace("-", "") in _RESERVED_METADATA for key in args.get("Metadata", {}))


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
