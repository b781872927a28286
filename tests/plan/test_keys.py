"""The keys of a sync that lists nothing: plain keys, and S3 event notification payloads in every
wrapping they arrive in (pure: no server)."""

from __future__ import annotations

import json

import pytest

from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.plan.keys import relative_keys


def event(*records: tuple[str, str, str]) -> dict:
    """An S3 event notification: (event name, bucket, URL-encoded key) per record, as S3 sends it."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": name,
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
            }
            for name, bucket, key in records
        ]
    }


PAYLOAD = event(
    ("ObjectCreated:Put", "src", "data/a+b.txt"),  # a space is a "+"
    ("ObjectCreated:Put", "src", "data/caf%C3%A9/%2Bplus"),
    ("ObjectRemoved:Delete", "src", "data/gone"),
    ("ObjectCreated:Put", "other", "data/elsewhere"),  # another bucket
    ("ObjectCreated:Put", "src", "logs/outside"),  # outside the prefix
    ("ObjectCreated:Put", "src", "data/"),  # the prefix itself
)
EXPECTED = ["a b.txt", "café/+plus", "gone"]


@pytest.mark.parametrize(
    "value",
    [
        PAYLOAD,
        json.dumps(PAYLOAD),
        [PAYLOAD],
        [json.dumps(PAYLOAD)],
        {"Body": json.dumps(PAYLOAD), "MessageId": "m1"},  # an SQS message, as boto3 gives it
        {"body": json.dumps(PAYLOAD)},  # ... as Airflow's SQS trigger gives it
        {"Body": json.dumps({"Type": "Notification", "Message": json.dumps(PAYLOAD)})},  # SNS through SQS
        # the extra of the asset event an AssetWatcher makes of the SQS trigger's event
        [{"from_trigger": True, "payload": {"status": "success", "message_batch": [{"Body": json.dumps(PAYLOAD)}]}}],
    ],
)
def test_event_payloads_name_the_url_decoded_keys_of_the_source_location(value: object) -> None:
    assert relative_keys(value, bucket="src", prefix="data/") == EXPECTED


def test_keys_are_sorted_and_distinct_and_mix_with_payloads() -> None:
    value = ["z", "a", "z", event(("ObjectCreated:Put", "src", "data/m"))]
    assert relative_keys(value, bucket="src", prefix="data/") == ["a", "m", "z"]


def test_a_test_event_and_an_empty_list_name_nothing() -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "src"}
    assert relative_keys([test_event, json.dumps(test_event)], bucket="src", prefix="") == []
    assert relative_keys([], bucket="src", prefix="") == []


def test_a_local_source_takes_keys_but_no_events() -> None:
    assert relative_keys(["a/b", PAYLOAD], bucket=None, prefix="") == ["a/b"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a/b.txt", "keys is a string that is no S3 event payload"),
        (42, "keys must be a list of keys or S3 event payloads, got int"),
        ([42], "keys holds 42: neither a key nor an S3 event payload"),
        ([""], "keys holds an empty key"),
        ([{"no": "records"}], "keys holds a dict without Records"),
    ],
)
def test_what_is_neither_keys_nor_payloads_is_a_clear_error(value: object, message: str) -> None:
    with pytest.raises(S3SyncError, match=message):
        relative_keys(value, bucket="src", prefix="")
