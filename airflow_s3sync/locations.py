"""Parse and validate location strings (``s3://bucket/prefix``, access point ARNs, local dirs)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from airflow_s3sync.errors import InvalidLocationError

# botocore's own rule for the Bucket parameter (botocore.handlers.VALID_BUCKET).
_VALID_BUCKET = re.compile(r"^[a-zA-Z0-9.\-_]{1,255}$")
_ACCESS_POINT_ARN = re.compile(
    r"^(?P<arn>arn:[^:/]+:s3(?:-outposts)?:[^:/]*:[^:/]*:"
    r"(?:outpost[/:][^/:]+[/:])?accesspoint[/:][^/:]+)(?:/(?P<key>.*))?$"
)
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")


@dataclass(frozen=True, slots=True)
class S3Location:
    """Objects under a prefix of a bucket or access point.

    :param raw: the string as given.
    :param bucket: the bucket name, or the access point ARN, passed to the API as ``Bucket``.
    :param key: the key part as typed (no leading bucket), possibly without a trailing ``/``.
    """

    raw: str
    bucket: str
    key: str

    @property
    def prefix(self) -> str:
        """The listing prefix: the key part with a ``/`` appended, or empty for the root."""
        if not self.key or self.key.endswith("/"):
            return self.key
        return self.key + "/"

    @property
    def is_access_point(self) -> bool:
        """Whether the bucket is an access point ARN."""
        return self.bucket.startswith("arn:")

    @property
    def filter_root(self) -> str:
        """The root filter patterns are joined to: ``bucket/prefix`` as typed."""
        return f"{self.bucket}/{self.key}"

    @property
    def path_prefix(self) -> str:
        """What turns a compare key into the full path filters match (``bucket/prefix/``)."""
        return f"{self.bucket}/{self.prefix}"

    def object_key(self, key: str) -> str:
        """The S3 key of the compare key ``key``."""
        return self.prefix + key

    def display(self, key: str = "") -> str:
        """The URL the AWS CLI prints for ``key``: ``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self.prefix}{key}"


@dataclass(frozen=True, slots=True)
class LocalLocation:
    """A local directory; a relative path is relative to the task's working directory."""

    raw: str

    @property
    def path(self) -> str:
        """The absolute directory path (symlinks not resolved)."""
        return os.path.abspath(self.raw)

    @property
    def filter_root(self) -> str:
        """The root filter patterns are joined to: the absolute directory."""
        return self.path

    @property
    def path_prefix(self) -> str:
        """What turns a compare key into the full path filters match (``/abs/dir/``)."""
        return os.path.join(self.path, "")

    def display(self, key: str = "") -> str:
        """The path printed in log lines, as ``aws s3 sync`` prints it.

        The location as given, joined with the key's directory and normalised, then its name:
        ``./test.txt`` and ``sub/x.txt`` for ``.``, ``/data/x/a/b.txt`` for ``/data/x``.
        """
        if not key:
            return self.raw
        *parents, name = key.split("/")
        return os.path.join(os.path.normpath(os.path.join(self.raw, *parents)), name)


Location = S3Location | LocalLocation


def parse_location(value: object) -> Location:
    """Parse a location string, or raise :class:`InvalidLocationError` saying why.

    ``s3://bucket[/prefix]`` and ``s3://arn:...:accesspoint/NAME[/prefix]`` are S3
    locations; any other string is a local directory, except strings that look like
    another URI (``s3:/x``, ``gs://x``) and the empty string, which are rejected.
    """
    if not isinstance(value, str):
        raise InvalidLocationError(f"a location must be a string, got {type(value).__name__}: {value!r}")
    if not value.strip():
        raise InvalidLocationError("a location must not be empty: give s3://bucket/prefix or a local directory")
    if value.startswith("s3://"):
        return _parse_s3(value)
    if value[:3].lower() == "s3:" or _URI_SCHEME.match(value):
        raise InvalidLocationError(
            f"unsupported location {value!r}: S3 locations look like s3://bucket/prefix; "
            "anything else must be a local directory path"
        )
    return LocalLocation(value)


def _parse_s3(value: str) -> S3Location:
    rest = value[len("s3://") :]
    if not rest or rest.startswith("/"):
        raise InvalidLocationError(f"no bucket in S3 location {value!r}: expected s3://bucket/prefix")
    if rest.startswith("arn:"):
        if rest.startswith("arn:aws:s3-object-lambda:") or ":s3-object-lambda:" in rest.split("/", 1)[0]:
            raise InvalidLocationError(
                f"{value!r}: s3 commands do not support S3 Object Lambda resources. Use s3api commands instead."
            )
        match = _ACCESS_POINT_ARN.match(rest)
        if match is None:
            raise InvalidLocationError(
                f"{value!r} is not an S3 access point ARN: expected "
                "s3://arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME[/prefix]"
            )
        return S3Location(raw=value, bucket=match["arn"], key=match["key"] or "")
    bucket, _, key = rest.partition("/")
    if bucket.endswith("--x-s3"):
        raise InvalidLocationError(
            f"{value!r}: cannot sync with a directory bucket (S3 Express One Zone lists keys unordered)"
        )
    if not _VALID_BUCKET.match(bucket):
        raise InvalidLocationError(
            f"invalid bucket name {bucket!r} in {value!r}: bucket names contain only letters, digits, '.', '-' and '_'"
        )
    return S3Location(raw=value, bucket=bucket, key=key)
