"""Exceptions raised by airflow-s3sync; every one says what to fix."""

from __future__ import annotations


class S3SyncError(Exception):
    """A sync cannot start or did not finish cleanly."""


class InvalidLocationError(S3SyncError, ValueError):
    """A location string is malformed; raised before any request is made."""
