"""Exceptions raised by airflow-s3sync; every one says what to fix."""

from __future__ import annotations


class S3SyncError(Exception):
    """A sync cannot start or did not finish cleanly."""


class InvalidLocationError(S3SyncError, ValueError):
    """A location string is malformed; raised before any request is made."""


class S3RequestError(S3SyncError):
    """An S3 request answered with an error, from a client that is not botocore.

    :param operation: the S3 operation (``CopyObject``, ``GetObject``, ...).
    :param status: the HTTP status of the answer (0 when no answer came).
    :param code: the S3 error code (``SlowDown``, ``NoSuchKey``, ...), when the body had one.
    :param message: the S3 error message, or what went wrong on the way.
    """

    def __init__(self, operation: str, status: int, code: str = "", message: str = "") -> None:
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{operation} failed: {status} {code or 'error'}: {message}".rstrip(": "))
