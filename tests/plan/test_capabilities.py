"""The capabilities table: what each real backend declares it carries, and the test routing makes."""

import pytest

from airflow_s3sync.hooks.botocore_backend import CAPABILITIES as BOTOCORE
from airflow_s3sync.hooks.native import CAPABILITIES as OBSTORE
from airflow_s3sync.plan.capabilities import Operation, bucket_is_plain, carries, key_is_plain, writes_properties

MIB = 1024 * 1024
ALL = set(Operation)


@pytest.mark.parametrize(
    ("capabilities", "operations", "lock", "tags", "access_points", "multipart", "max_size"),
    [
        (BOTOCORE, ALL, True, True, True, True, None),
        (
            OBSTORE,
            {Operation.UPLOAD_FILE, Operation.DOWNLOAD_FILE, Operation.WRITE_WHOLE},
            False,
            False,
            False,
            False,
            16 * MIB - 1,
        ),
    ],
    ids=["botocore", "obstore"],
)
def test_the_table(capabilities, operations, lock, tags, access_points, multipart, max_size):
    assert set(capabilities.operations) == operations
    assert (capabilities.lock_headers, capabilities.tags) == (lock, tags)
    assert (capabilities.access_points, capabilities.multipart, capabilities.max_size) == (
        access_points,
        multipart,
        max_size,
    )


def test_botocore_carries_everything_routing_can_ask():
    for operation in Operation:
        assert carries(
            BOTOCORE,
            operation,
            keys=("a//b", "/lead", "ctl\x01"),
            size=6 * 1024**4,
            access_point=True,
            in_parts=True,
            request_args=("ACL", "SSECustomerKey", "Whatever"),
            lock=True,
            tags=True,
        )
    assert writes_properties(BOTOCORE, ["ContentType", "Expires"], ["content-type"])


@pytest.mark.parametrize(
    ("needs", "carried"),
    [
        ({}, True),
        ({"keys": ("a//b",)}, False),
        ({"keys": ("dir/",)}, False),
        ({"size": 16 * MIB}, False),
        ({"in_parts": True}, False),
        ({"access_point": True}, False),
        ({"request_args": ("ContentType",)}, True),
        ({"request_args": ("StorageClass",)}, False),
        ({"lock": True}, False),
        ({"tags": True}, False),
    ],
)
def test_what_obstore_carries(needs, carried):
    args = {"keys": ("a/b",), "size": 10, **needs}
    assert carries(OBSTORE, Operation.UPLOAD_FILE, **args) is carried
    assert not carries(OBSTORE, Operation.COPY, keys=("a",), size=1)  # it copies within one bucket only


def test_obstore_writes_no_expires_nor_metadata_named_like_a_header():
    assert writes_properties(OBSTORE, ["ContentType", "CacheControl"], ["owner"])
    assert not writes_properties(OBSTORE, ["Expires"])
    assert not writes_properties(OBSTORE, ["ContentType"], ["Content-Type"])


@pytest.mark.parametrize(
    "key",
    ["a", "a/b", "sp ace", "pct%20", "hash#", "q?", "plus+", "tilde~", "ünï/çødé", "star*", ".hidden", "..foo/bar"],
)
def test_plain_keys(key):
    assert key_is_plain(key)


@pytest.mark.parametrize(
    "key", ["", "dir/", "/lead", "a//b", "./x", "x/./y", "x/../y", "..", "ctl\x01", "tab\there", "del\x7f", "nl\n"]
)
def test_keys_a_path_normalising_client_would_rewrite_or_reject(key):
    assert not key_is_plain(key)


@pytest.mark.parametrize("bucket", ["data", "my.bucket-1", "legacy_Bucket", "a" * 63])
def test_plain_buckets(bucket):
    assert bucket_is_plain(bucket)


@pytest.mark.parametrize(
    "bucket",
    [
        "arn:aws:s3:us-east-1:123456789012:accesspoint/my-access-point",
        "my-ap-abcdefghijklmnopqrstuvwxyz012-s3alias",
        "my-olap-abcdefghijklmnopqrstuvwxyz--ol-s3",
        "my-olap-abcdefghijklmnopqrstuvwxyz--op-s3",
        "express--use1-az4--x-s3",
        "",
    ],
)
def test_buckets_only_botocore_addresses(bucket):
    assert not bucket_is_plain(bucket)
