"""The ``keys`` of a sync that lists nothing: relative keys, or S3 event notifications naming them.

A value may be a list of keys relative to the source location, or S3 event notification
payloads as S3 sends them: a dict with ``Records`` (keys URL-encoded, ``+`` for a space), its
JSON string, or a list of either — also wrapped as an SQS message (``Body``/``body``), an SNS
notification (``Message``), the SQS trigger's batch (``message_batch``) or the asset event an
``AssetWatcher`` makes of it (its extra's ``payload``). Records of other buckets, keys outside the source prefix and
payloads without records (``s3:TestEvent``) are left out. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote_plus

from airflow_s3sync.errors import S3SyncError

#: The keys of a message wrapped around an S3 event: SQS (as boto3 and Airflow triggers give
#: it), SNS.
_WRAPPERS = ("Body", "body", "Message")


def relative_keys(value: Any, *, bucket: str | None, prefix: str) -> list[str]:
    """The sorted, distinct keys relative to ``prefix`` that ``value`` names (see the module).

    ``bucket`` is the source bucket (``None`` for a local source: then events name nothing).
    Raises :class:`S3SyncError` for a value that is neither keys nor event payloads.
    """
    if isinstance(value, (str, dict)):
        items: Iterable[Any] = [value]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise S3SyncError(f"keys must be a list of keys or S3 event payloads, got {type(value).__name__}")
    keys: set[str] = set()
    for item in items:
        keys.update(_keys_of(item, bucket=bucket, prefix=prefix, top=value))
    return sorted(keys)


def _keys_of(item: Any, *, bucket: str | None, prefix: str, top: Any) -> Iterator[str]:
    if isinstance(item, str):
        payload = _payload(item)
        if payload is None:
            if isinstance(top, str):  # a lone string is a payload or a mistake, not a key
                raise S3SyncError(
                    f"keys is a string that is no S3 event payload: give a list of keys, got {_short(item)}"
                )
            if not item:
                raise S3SyncError("keys holds an empty key")
            yield item
            return
        item = payload
    if not isinstance(item, dict):
        raise S3SyncError(f"keys holds {_short(item)}: neither a key nor an S3 event payload")
    yield from _event_keys(item, bucket=bucket, prefix=prefix)


def _payload(text: str) -> dict[str, Any] | None:
    """The event payload a string holds as JSON, or ``None`` if it is a key."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and _is_payload(value) else None


def _is_payload(value: dict[str, Any]) -> bool:
    names = ("Records", "Event", "payload", "message_batch", *_WRAPPERS)
    return any(name in value for name in names)


def _event_keys(payload: dict[str, Any], *, bucket: str | None, prefix: str) -> Iterator[str]:
    inner_payload = payload.get("payload")
    if isinstance(inner_payload, dict):  # an asset event's extra, as a trigger's event leaves it
        yield from _event_keys(inner_payload, bucket=bucket, prefix=prefix)
        return
    batch = payload.get("message_batch")
    if isinstance(batch, list):  # the SQS trigger's event: the messages it received
        for message in batch:
            if isinstance(message, dict):
                yield from _event_keys(message, bucket=bucket, prefix=prefix)
        return
    for name in _WRAPPERS:
        inner = payload.get(name)
        if isinstance(inner, str):
            unwrapped = _payload(inner)
            if unwrapped is not None:
                yield from _event_keys(unwrapped, bucket=bucket, prefix=prefix)
            return
        if isinstance(inner, dict):
            yield from _event_keys(inner, bucket=bucket, prefix=prefix)
            return
    records = payload.get("Records")
    if records is None:
        if "Event" in payload:  # s3:TestEvent, sent when notifications are configured
            return
        raise S3SyncError(f"keys holds a dict without Records: {_short(payload)}")
    if not isinstance(records, list):
        raise S3SyncError(f"keys holds an event whose Records is no list: {_short(records)}")
    for record in records:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if not isinstance(s3, dict):
            continue  # not an S3 record
        record_bucket = (s3.get("bucket") or {}).get("name")
        key = (s3.get("object") or {}).get("key")
        if bucket is None or record_bucket != bucket or not isinstance(key, str):
            continue
        key = unquote_plus(key)
        if key.startswith(prefix) and len(key) > len(prefix):
            yield key[len(prefix) :]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
