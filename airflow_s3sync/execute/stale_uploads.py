"""Abort multipart uploads that were left behind: rclone's ``cleanup`` rule, before a sync.

A multipart upload that is never completed (a worker killed mid-upload, a network that gave
up) keeps its parts — billed, invisible to listings — until it is aborted. Before transferring,
a sync with ``abort_incomplete_uploads_after`` aborts those under its destination prefix (and
in its key range) that were initiated longer ago than that; younger ones may belong to a run
still going and are left alone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.execute.sides import S3Side


def check_abort_after(value: object) -> timedelta | None:
    """``abort_incomplete_uploads_after`` as given: ``None`` (off) or a positive ``timedelta``."""
    if value is None:
        return None
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise S3SyncError(
            f"abort_incomplete_uploads_after must be a positive datetime.timedelta (e.g. timedelta(days=1)) "
            f"or None, got {value!r}"
        )
    return value


def abort_stale_uploads(
    dest: S3Side, *, older_than: timedelta, now: datetime, dryrun: bool, log: logging.Logger
) -> tuple[int, list[str]]:
    """Abort the incomplete multipart uploads under ``dest`` initiated before ``now - older_than``.

    Each is logged (``abort-upload: s3://b/k (upload ..., initiated ...)``, ``(dryrun) `` in front
    and nothing aborted in a dry run). Returns how many were (or would be) aborted and the
    uploads that could not be; a failure here fails no transfer.
    """
    cutoff = now - older_than
    aborted, errors = 0, []
    prefix = "(dryrun) " if dryrun else ""
    key_range = dest.key_range
    for upload in dest.backend.incomplete_uploads(bucket=dest.bucket, prefix=dest.location.prefix):
        if upload.initiated >= cutoff or (key_range is not None and upload.key not in key_range):
            continue
        shown = dest.display(upload.key)
        if not dryrun:
            try:
                dest.backend.abort_upload(ref=dest.object(upload.key), upload_id=upload.upload_id)
            except Exception as error:  # noqa: BLE001 - reported; the sync goes on
                errors.append(f"{shown} (upload {upload.upload_id}): {error}")
                log.warning("could not abort the upload %s of %s: %s", upload.upload_id, shown, error)
                continue
        aborted += 1
        log.info(
            "%sabort-upload: %s (upload %s, initiated %s)",
            prefix,
            shown,
            upload.upload_id,
            upload.initiated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    if aborted or errors:
        log.info("%s%d incomplete multipart upload(s) older than %s aborted", prefix, aborted, older_than)
    return aborted, errors
