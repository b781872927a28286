"""Each transfer kind in its own small unit: the backend call routing chose, what it reads
first, and the shared follow-ups (:class:`~airflow_s3sync.execute.followups.Followups`).

A unit is built once per run with the two sides it moves data between, typed as that kind
needs them, so nothing here asks which kind of side it holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.followups import Followups
from airflow_s3sync.execute.sides import LocalSide, S3Side
from airflow_s3sync.hooks.backend import ObjectHead, ObjectRef, Progress
from airflow_s3sync.hooks.botocore_backend import OBJECT_PROPERTIES
from airflow_s3sync.hooks.digest import ContentHasher, HashingReader, file_digests
from airflow_s3sync.plan import Entry
from airflow_s3sync.plan.capabilities import key_is_plain, sends_arg, writes_properties
from airflow_s3sync.plan.checksum import (
    Digests,
    LocalDigestPlan,
    base64_md5,
    parse_etag,
    recorded_md5,
    with_recorded_md5,
)
from airflow_s3sync.plan.lock import write_time_lock
from airflow_s3sync.plan.route import TransferKind, TransferSpec

#: Object properties that, given for a copy, replace the source's instead of being ignored.
COPY_PROPERTIES = frozenset(OBJECT_PROPERTIES)


class Kind(Protocol):
    """One kind of transfer."""

    def run(self, spec: TransferSpec, src: Entry, line: str, progress: Progress) -> None:
        """Transfer ``src`` as ``spec`` says; raise on failure."""
        ...


@dataclass
class Upload:
    """A local file to S3: one call of the backend routing chose."""

    source: LocalSide
    dest: S3Side
    request_args: Mapping[str, Any]

    def run(self, spec: TransferSpec, src: Entry, line: str, progress: Progress) -> None:
        """Upload ``src``; a file written in parts gets its MD5 recorded in the metadata (its
        ETag will be no MD5), from a read of the file before the upload, as rclone does."""
        path, args = self.source.source_path(src.key), self.request_args
        if src.size >= self.dest.backend.multipart_threshold:
            md5 = file_digests(path, LocalDigestPlan(md5=True)).md5
            assert md5 is not None
            args = {**args, "Metadata": with_recorded_md5(args.get("Metadata"), md5)}
        self.dest.backends[spec.backend].upload_file(
            path=path, dest=self.dest.object(src.key), size=src.size, extra_args=args, progress=progress
        )


@dataclass
class Download:
    """An S3 object to a local file (atomically), then the file gets the object's time."""

    source: S3Side
    dest: LocalSide
    request_args: Mapping[str, Any]
    followups: Followups

    def run(self, spec: TransferSpec, src: Entry, line: str, progress: Progress) -> None:
        """Download ``src``."""
        path = self.dest.target_path(src.key)  # decide() refused keys that would leave the directory
        self.dest.tree.prepare_parent(path)
        self.source.backends[spec.backend].download_file(
            source=self.source.object(src.key),
            path=path,
            size=src.size,
            etag=src.etag,
            extra_args=self.request_args,
            progress=progress,
        )
        if spec.set_mtime:
            self.followups.set_mtime(self.dest, path, src.mtime, line)


@dataclass
class ServerSideCopy:
    """A copy on one endpoint: CopyObject, or UploadPartCopy parts above ``copy_cutoff``.

    With ``copy_object_lock`` the source's lock goes with the write (CopyObject headers), so
    the new version is never unlocked; a multipart copy gets it again once complete, because
    some servers (moto among them) drop lock headers given to CreateMultipartUpload. A multipart
    copy (which S3 does not tag) gets the source's tags once complete when ``copy_tags`` asks;
    CopyObject copies them itself.
    """

    source: S3Side
    dest: S3Side
    request_args: Mapping[str, Any]
    followups: Followups

    def run(self, spec: TransferSpec, src: Entry, line: str, progress: Progress) -> None:
        """Copy ``src`` server-side."""
        source_ref, dest_ref = self.source.object(src.key), self.dest.object(src.key)
        state, lock_args = None, {}
        if spec.read_lock:
            state = self.source.backend.lock_state(ref=source_ref)
            if state is None:
                raise S3SyncError(f"{self.source.display(src.key)} disappeared before it could be copied")
            lock_args = write_time_lock(state, now=datetime.now(UTC))
        tags = self.followups.source_tags(self.source, source_ref) if spec.read_tags else None
        args = {**self.request_args, **lock_args}
        if spec.kind is TransferKind.PART_COPY:
            args = self._with_recorded_md5(source_ref, src, args)
            self.dest.backend.copy_in_parts(
                source=source_ref,
                dest=dest_ref,
                size=src.size,
                source_backend=self.source.backend,
                extra_args=args,
                progress=progress,
            )
        else:
            self.dest.backends[spec.backend].copy_object(
                source=source_ref, dest=dest_ref, size=src.size, extra_args=args, progress=progress
            )
        if spec.tags_after and tags:
            self.dest.backend.put_tags(ref=dest_ref, tags=tags)
        if spec.lock_after and state is not None and lock_args:
            self.followups.apply_lock(self.dest, dest_ref, state)

    def _with_recorded_md5(self, source_ref: ObjectRef, src: Entry, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments of a copy in parts, so that the copy records the content's MD5 in its
        metadata (its ETag will be no MD5, and some servers' no MD5 of part MD5s either) when the
        source's ETag or metadata tells it and the source does not record it already."""
        if "Metadata" in args and args.get("MetadataDirective") == "REPLACE":
            return args  # the run's own metadata replaces the source's
        head = self.source.backend.head_object(ref=source_ref, etag=src.etag)
        metadata = head.properties.get("Metadata") or {}
        md5, _ = parse_etag(head.etag, md5_etag_possible=head.md5_etag_possible)
        if md5 is None or recorded_md5(metadata) is not None:
            return args
        properties = {**head.properties, **{name: value for name, value in args.items() if name in COPY_PROPERTIES}}
        return {
            **args,
            **properties,
            "Metadata": with_recorded_md5(metadata, md5),
            "MetadataDirective": "REPLACE",
        }


@dataclass
class Stream:
    """A copy between endpoints, through this worker, never on disk.

    Up to :data:`~airflow_s3sync.plan.route.READ_WHOLE_MAX` bytes the object is read whole by
    one GetObject (properties and data) and written by one PutObject, each by the backend
    routing chose (the writer gives way to the next backend routing allowed that writes every
    property the source turns out to have, the full one last). A larger object whose MD5 the
    source tells (its ETag, or the MD5 recorded in its metadata), up to the destination
    backend's ``one_put_max``, goes by one PutObject as it is read, with that MD5 as its
    Content-MD5 (a server that checks it refuses other bytes, and the answer's ETag must be it;
    nothing is hashed here), and in parts if that PutObject failed once; other objects are read
    as their multipart upload consumes them. The source's properties (Content-Type,
    Cache-Control, ..., user metadata), tags and, with ``copy_object_lock``, its lock go with the
    write; what was written is verified.
    """

    source: S3Side
    dest: S3Side
    stream_args: Mapping[str, Any]
    copy_object_lock: bool
    followups: Followups
    #: Whether the destination's answers to multipart writes were found not to tell a multipart
    #: ETag (then the whole content's MD5 is computed for the rest of the run).
    _whole_md5: bool = field(default=False, init=False)
    #: The keys whose one streamed PutObject failed in this run (written in parts from then on).
    _one_put_failed: set[str] = field(default_factory=set, init=False)

    def run(self, spec: TransferSpec, src: Entry, line: str, progress: Progress) -> None:
        """Stream ``src`` to the destination endpoint."""
        source_ref, dest_ref = self.source.object(src.key), self.dest.object(src.key)
        if spec.whole:
            read = self.source.backends[spec.reader].read_object(source=source_ref, etag=src.etag)
            head, body = read.head, read.data
        else:
            head, stream = self.source.backend.open_object(source=source_ref, etag=src.etag)
        tags = self.followups.source_tags(self.source, source_ref) if spec.read_tags else None
        args = self._write_args(head, tags)
        source_md5, _ = parse_etag(head.etag, md5_etag_possible=head.md5_etag_possible)
        if spec.whole:
            names = [name for name in args if name in COPY_PROPERTIES and name != "Metadata"]
            writer = next(
                (
                    self.dest.backends[index]
                    for index in (spec.backend, *spec.alternates)
                    if writes_properties(self.dest.backends[index].capabilities, names, args.get("Metadata", {}))
                ),
                self.dest.backend,  # carries every property
            )
            # The bytes read are hashed only when the write's answer does not show them to be
            # the source's (its ETag is the source's MD5). The MD5 goes as Content-MD5 where the
            # writer sends it, so a server that checks it refuses other bytes at once.
            md5 = source_md5
            if sends_arg(writer.capabilities, "ContentMD5"):
                md5 = md5 or hashlib.md5(body, usedforsecurity=False).hexdigest()
                args["ContentMD5"] = base64_md5(md5)
            written = writer.write_object(dest=dest_ref, data=body, extra_args=args, progress=progress)
            if md5 is None or (md5 == source_md5 and parse_etag(written.etag)[0] != md5):
                md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
            sent = Digests(len(body), md5=md5)
            self.followups.verify_written(self.dest, dest_ref, sent=sent, source_md5=source_md5, written=written)
            return
        recorded = source_md5 or recorded_md5(args.get("Metadata"))
        if (
            recorded is not None
            and head.size <= self.dest.backend.one_put_max
            and key_is_plain(dest_ref.key)
            and src.key not in self._one_put_failed
        ):
            # The source's MD5 is known: one PutObject with it as Content-MD5 lets the server
            # check every byte end to end, and its answer's ETag must be that MD5; nothing to
            # hash here. Its body cannot be sent twice, so after a failure the object goes in
            # parts, each retried alone.
            try:
                written = self.dest.backend.put_stream(
                    dest=dest_ref, stream=stream, size=head.size, md5=recorded, extra_args=args, progress=progress
                )
            except Exception:
                self._one_put_failed.add(src.key)
                raise
            finally:
                stream.close()
            sent = Digests(head.size, md5=recorded)
            self.followups.verify_written(self.dest, dest_ref, sent=sent, source_md5=recorded, written=written)
            return
        # Written in parts, its ETag will be no MD5: the source's MD5, where known, is recorded
        # in the metadata (and checked against the bytes read).
        in_parts = head.size >= self.dest.backend.multipart_threshold
        if recorded is not None and in_parts and "Metadata" not in self.stream_args:
            args["Metadata"] = with_recorded_md5(args.get("Metadata"), recorded)
        part_size = self.dest.backend.part_size_for(head.size)
        # The reading thread is a stream's bottleneck, and the MD5 of the whole content a second
        # pass over every byte: it is computed only where something is checked against it (the
        # source's MD5, a single-part ETag, a HeadObject of an odd key, a server whose multipart
        # answers tell no multipart ETag); otherwise the part MD5s verify the write.
        whole = recorded is not None or part_size is None or not key_is_plain(dest_ref.key) or self._whole_md5
        reader = HashingReader(stream, ContentHasher(md5=whole, part_size=part_size))
        try:
            written = self.dest.backend.write_stream(
                dest=dest_ref, stream=reader, size=head.size, extra_args=args, progress=progress
            )
        finally:
            reader.close()
        sent = reader.hasher.digests()
        if whole:
            self.followups.verify_written(
                self.dest, dest_ref, sent=sent, source_md5=source_md5 or recorded, written=written
            )
        elif not self.followups.verify_parts_written(self.dest, dest_ref, sent=sent, written=written):
            self._whole_md5 = True
        if spec.lock_after and self.copy_object_lock and write_time_lock(head.lock, now=datetime.now(UTC)):
            self.followups.apply_lock(self.dest, dest_ref, head.lock)

    def _write_args(self, head: ObjectHead, tags: list[dict[str, str]] | None) -> dict[str, Any]:
        """The write's arguments: the run's, the source's properties (unless the run gives its
        own), its lock (``copy_object_lock``) and its ``tags``."""
        args = dict(self.stream_args)
        if not COPY_PROPERTIES & set(args):
            args.update(head.properties)
        if self.copy_object_lock:
            args.update(write_time_lock(head.lock, now=datetime.now(UTC)))
        if tags:
            args["Tagging"] = urlencode([(tag["Key"], tag["Value"]) for tag in tags])
        return args
