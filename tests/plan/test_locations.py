import os

import pytest

from airflow_s3sync.errors import InvalidLocationError
from airflow_s3sync.locations import LocalLocation, S3Location, parse_location


@pytest.mark.parametrize(
    ("value", "bucket", "prefix"),
    [
        ("s3://b", "b", ""),
        ("s3://b/", "b", ""),
        ("s3://b/pre", "b", "pre/"),
        ("s3://b/pre/", "b", "pre/"),
        ("s3://b/a/b/c", "b", "a/b/c/"),
        ("s3://b/pre//", "b", "pre//"),
        ("s3://b/key.txt", "b", "key.txt/"),
        (
            "s3://arn:aws:s3:us-west-2:123456789012:accesspoint/myap",
            "arn:aws:s3:us-west-2:123456789012:accesspoint/myap",
            "",
        ),
        (
            "s3://arn:aws:s3:us-west-2:123456789012:accesspoint/myap/data",
            "arn:aws:s3:us-west-2:123456789012:accesspoint/myap",
            "data/",
        ),
        (
            "s3://arn:aws:s3:us-west-2:123456789012:accesspoint:myap/data/",
            "arn:aws:s3:us-west-2:123456789012:accesspoint:myap",
            "data/",
        ),
        (
            "s3://arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01ac5d28a6a232904/accesspoint/ap/x",
            "arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01ac5d28a6a232904/accesspoint/ap",
            "x/",
        ),
    ],
)
def test_s3_locations(value, bucket, prefix):
    location = parse_location(value)
    assert isinstance(location, S3Location)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.display("k") == f"s3://{bucket}/{prefix}k"


def test_access_point_arn_is_printed_verbatim():
    location = parse_location("s3://arn:aws:s3:us-west-2:123456789012:accesspoint/myaccesspoint/")
    assert location.is_access_point
    assert location.display("test.txt") == "s3://arn:aws:s3:us-west-2:123456789012:accesspoint/myaccesspoint/test.txt"


@pytest.mark.parametrize(
    "value",
    [
        "s3://",
        "s3:/x",
        "s3:x",
        "S3://bucket",
        "gs://x",
        "file:///tmp/x",
        "",
        "   ",
        "s3:///key",
        "s3://bad bucket/x",
        "s3://arn:aws:s3-object-lambda:us-west-2:123456789012:accesspoint/olap",
        "s3://arn:aws:s3:::mybucket",
        "s3://mybucket--usw2-az1--x-s3/x",
        None,
        5,
    ],
)
def test_malformed_locations_are_rejected(value):
    with pytest.raises(InvalidLocationError):
        parse_location(value)


@pytest.mark.parametrize(
    ("raw", "key", "shown"),
    [
        (".", "test.txt", "./test.txt"),
        (".", "a/b.txt", "a/b.txt"),
        ("./dir", "a/b/c", "dir/a/b/c"),
        ("/data/x", "a/b.txt", "/data/x/a/b.txt"),
        ("dir/", "a", "dir/a"),
    ],
)
def test_local_locations_print_as_given(raw, key, shown):
    location = parse_location(raw)
    assert isinstance(location, LocalLocation)
    assert location.display(key) == shown
    assert location.path == os.path.abspath(raw)
