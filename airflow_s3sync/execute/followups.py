"""What follows a write, shared by every transfer kind: verify, lock, tags, local file time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.locks import write_lock_change
from airflow_s3sync.execute.report import SyncReport
from airflow_s3sync.execute.sides import LocalSide, S3Side
from airflow_s3sync.hooks.backend import ObjectRef, Written
from airflow_s3sync.hooks.digest import ContentHasher, stream_digests
from airflow_s3sync.plan.capabilities import key_is_plain
from airflow_s3sync.plan.checksum import Digests, parse_etag
from airflow_s3sync.plan.lock import LockState, decide_lock


@dataclass
class Followups:
    """The steps around a backend call that every kind may need.

    :param report: the run's tally (warnings are counted there).
    :param log: where warnings go.
    :param request_args: the run's request arguments (``Tagging`` given there wins over the source's).
    :param dest_read_args: what reading back a written object needs (SSE-C keys).
    """

    report: SyncReport
    log: logging.Logger
    request_args: Mapping[str, Any] = field(default_factory=dict)
    dest_read_args: Mapping[str, Any] = field(default_factory=dict)

    def source_tags(self, source: S3Side, ref: ObjectRef) -> list[dict[str, str]] | None:
        """The source object's tags, unless the request arguments give tags of their own."""
        if "Tagging" in self.request_args:
            return None
        return source.backend.object_tags(ref=ref)

    def verify_written(
        self, dest: S3Side, ref: ObjectRef, *, sent: Digests, source_md5: str | None, written: Written
    ) -> None:
        """Check a streamed object: the bytes read match the source's MD5 (when its ETag is
        one), and the destination holds what was sent — by the write's own answer when its ETag
        can be compared, else by a HeadObject: size, and MD5 or multipart ETag. An answer that
        does not say whether its ETag can be an MD5 and disagrees, and the answer for a key that
        is not plain (:func:`key_is_plain`: a trailing '/', '//', ...), are checked with a HeadObject.
        Raise naming the mismatch."""
        if source_md5 is not None and sent.md5 != source_md5:
            raise S3SyncError(f"verification failed: the bytes read (MD5 {sent.md5}) are not the source's {source_md5}")
        # An odd key (a trailing '/', '//', ...) may be stored as something else than what was
        # sent while the answer names what was sent: only a HeadObject tells.
        if written.etag is not None and key_is_plain(ref.key):
            final = written.md5_etag_possible is not None
            md5, composite = parse_etag(written.etag, md5_etag_possible=written.md5_etag_possible is not False)
            answered = Digests(sent.size, md5=md5, multipart_etag=composite, part_size=sent.part_size)
            comparable = md5 is not None or (composite is not None and sent.multipart_etag is not None)
            if comparable and (final or answered.md5 == sent.md5):
                check_written(str(ref), answered, sent)  # no further request
                return
        check_written(str(ref), dest.backend.digests(ref=ref, read_args=self.dest_read_args), sent)

    def verify_parts_written(self, dest: S3Side, ref: ObjectRef, *, sent: Digests, written: Written) -> bool:
        """Check a streamed multipart write by the MD5s of its parts alone (``sent`` has no MD5
        of the whole): against the answer's multipart ETag, else a HeadObject's, else, where the
        server tells only an MD5 of the whole content (as ``rclone serve s3`` does on a
        HeadObject), by reading the object back. Return whether the answer or the HeadObject
        sufficed: when not, hashing the whole content as well spares the next read-back.
        Raise naming the mismatch."""
        if written.etag is not None and written.md5_etag_possible is not None and key_is_plain(ref.key):
            _, composite = parse_etag(written.etag, md5_etag_possible=written.md5_etag_possible)
            if composite is not None:
                check_written(str(ref), Digests(sent.size, multipart_etag=composite), sent)
                return True
        held = dest.backend.digests(ref=ref, read_args=self.dest_read_args)
        if held.md5 is None:  # a multipart ETag, or no ETag that can be an MD5 (SSE-KMS, SSE-C)
            check_written(str(ref), held, sent)
            return True
        assert sent.part_size is not None
        _, body = dest.backend.open_object(source=ref, etag=None)
        try:
            check_written(str(ref), stream_digests(body, ContentHasher(md5=False, part_size=sent.part_size)), sent)
        finally:
            body.close()
        return False

    def apply_lock(self, dest: S3Side, ref: ObjectRef, state: LockState) -> None:
        """Give the object just written at ``ref`` the lock ``state`` where it lacks it."""
        written = dest.backend.lock_state(ref=ref, read_args=self.dest_read_args)
        if written is None:
            raise S3SyncError(f"{ref} is missing after it was written")
        decision = decide_lock(state, written, now=datetime.now(UTC))
        for refusal in decision.refusals:  # e.g. a stronger default retention of the bucket
            self.report.warned()
            self.log.warning("warning: skip %s: %s: %s", refusal.kind.value, ref, refusal.reason)
        for change in decision.changes:
            self.log.debug("%s: %s %s (after a multipart write)", change.kind.value, ref, change.describe())
            write_lock_change(dest.backend, ref, change, version_id=written.version_id)

    def set_mtime(self, dest: LocalSide, path: str, when: datetime, line: str) -> None:
        """Give a downloaded file the object's time; a failure is a warning, as with the AWS CLI."""
        try:
            dest.tree.set_mtime(path, when)
        except OSError as error:  # the file is there: only a warning
            self.report.warned()
            self.log.warning(
                "warning: Successfully downloaded %s but was unable to update the last modified time. %s",
                line,
                error,
            )


def check_written(where: str, written: Digests, sent: Digests) -> None:
    """Raise unless ``written`` (what the destination holds) is what was ``sent``."""
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
