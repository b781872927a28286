"""The quirks proxy (tests/quirks.py) itself, in front of moto's server and ``rclone serve s3``."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_plus

import pytest
from botocore.exceptions import ClientError

from airflow_s3sync.hooks.listing import fast_pages, install
from tests.conftest import new_bucket
from tests.quirks import QuirksProxy
from tests.support import S3Server

#: Keys in the order of S3 (UTF-8 bytes) and in path order.
KEYS = ["a-b", "a.txt", "a/b", "a/c/d", "b"]
PATH_ORDER = ["a/b", "a/c/d", "a-b", "a.txt", "b"]


def md5_etag(data: bytes) -> str:
    """The ETag of a single-part upload of ``data``."""
    return f'"{hashlib.md5(data).hexdigest()}"'


def keys_of(client: Any, bucket: str, **kwargs: Any) -> list[str]:
    """The keys of one ListObjectsV2 page."""
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket, **kwargs).get("Contents", [])]


def error_of(call: Any, **kwargs: Any) -> tuple[int, str]:
    """The HTTP status and error code of a call that must fail."""
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["ResponseMetadata"]["HTTPStatusCode"], raised.value.response["Error"]["Code"]


@pytest.fixture
def bucket(server: S3Server) -> str:
    """A fresh bucket on the server under test."""
    return new_bucket(server)


def test_path_order_pages_start_after_and_prefix(server: S3Server, bucket: str) -> None:
    direct = server.client()
    for key in KEYS:
        direct.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert keys_of(direct, bucket) == KEYS  # the server itself lists in S3's order
    with QuirksProxy(server, path_order=True) as proxy:
        client = proxy.server.client(retries={"total_max_attempts": 1})
        assert keys_of(client, bucket) == PATH_ORDER
        paginator = client.get_paginator("list_objects_v2")
        pages = [[item["Key"] for item in page["Contents"]] for page in paginator.paginate(Bucket=bucket, MaxKeys=2)]
        assert pages == [["a/b", "a/c/d"], ["a-b", "a.txt"], ["b"]]
        after = paginator.paginate(Bucket=bucket, StartAfter="a/b", MaxKeys=2)
        assert [[item["Key"] for item in page["Contents"]] for page in after] == [["a/c/d", "a-b"], ["a.txt", "b"]]
        assert keys_of(client, bucket, StartAfter="a/c/d") == ["a-b", "a.txt", "b"]
        assert keys_of(client, bucket, Prefix="a/") == ["a/b", "a/c/d"]
        assert keys_of(client, bucket, Prefix="a") == PATH_ORDER[:-1]
        assert error_of(client.list_objects_v2, Bucket=bucket, Delimiter="/") == (501, "NotImplemented")
        assert error_of(client.list_objects_v2, Bucket=f"{bucket}-none")[0] == 404
        assert proxy.listed_pages[0] == PATH_ORDER
        assert proxy.listed_pages[1:4] == pages


def test_path_order_fast_parser(server: S3Server, bucket: str) -> None:
    direct = server.client()
    for key in KEYS:
        direct.put_object(Bucket=bucket, Key=key, Body=key.encode())
    with QuirksProxy(server, path_order=True) as proxy:
        client = proxy.server.client()
        install(client.meta.events)
        pages = list(fast_pages(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, MaxKeys=3)))
    assert [[listed[0] for listed in page] for page in pages] == [PATH_ORDER[:3], PATH_ORDER[3:]]
    listed = {key: (size, when, etag) for page in pages for key, size, when, etag, _ in page}
    for key in KEYS:
        head = direct.head_object(Bucket=bucket, Key=key)
        size, when, etag = listed[key]
        assert size == len(key) and isinstance(when, datetime) and when.tzinfo is not None
        assert abs((when - head["LastModified"]).total_seconds()) < 1
        assert etag.strip('"') == head["ETag"].strip('"')


def test_path_order_url_encoding(server: S3Server, bucket: str) -> None:
    odd = ["d/a b", "d/a+b", "d/ünï", "d/x&y", "d/a/b", "d/a%20"]
    expected = sorted(odd, key=lambda key: key.split("/"))
    direct = server.client()
    for key in odd:
        direct.put_object(Bucket=bucket, Key=key, Body=b"x")
    with QuirksProxy(server, path_order=True) as proxy:
        client = proxy.server.client()
        bodies: list[bytes] = []
        client.meta.events.register(
            "before-parse.s3.ListObjectsV2", lambda response_dict, **_: bodies.append(response_dict["body"])
        )
        assert keys_of(client, bucket, Prefix="d/") == expected  # botocore asks for url encoding, decodes
        explicit = client.list_objects_v2(Bucket=bucket, Prefix="d/", EncodingType="url", StartAfter="d/a b")
        assert explicit["EncodingType"] == "url"
        assert [item["Key"] for item in explicit["Contents"]] == [
            quote(key, safe="/~") for key in expected[expected.index("d/a b") + 1 :]
        ]
        assert b"<Key>d/a%2Bb</Key>" in bodies[0] and b"<Key>d/%C3%BC" in bodies[0]
        assert b"<EncodingType>url</EncodingType>" in bodies[0]
        assert b"<StartAfter>d/a%20b</StartAfter>" in bodies[1]
        install(client.meta.events)
        pages = list(fast_pages(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="d/")))
        assert [listed[0] for page in pages for listed in page] == expected
        assert [unquote_plus(quote(key, safe="/~")) for key in expected] == expected


def test_rewrite_keys(server: S3Server, bucket: str) -> None:
    direct = server.client()
    with QuirksProxy(server, rewrite_keys=True) as proxy:
        client = proxy.server.client(retries={"total_max_attempts": 1})
        for key in ("./x", "a/../b", "/"):
            assert error_of(client.put_object, Bucket=bucket, Key=key, Body=b"1") == (400, "InvalidArgument")
        assert error_of(client.create_multipart_upload, Bucket=bucket, Key="c/./d") == (400, "InvalidArgument")
        assert proxy.refused_keys == ["./x", "a/../b", "/", "c/./d"]
        assert len(proxy.operations()) == 4
        assert keys_of(direct, bucket) == []  # the server never saw them
        client.put_object(Bucket=bucket, Key="plain/key", Body=b"p")
        if server.name == "rclone":
            # rclone serve s3 refuses such keys itself, so there is nothing stored to move
            assert error_of(client.put_object, Bucket=bucket, Key="x//y", Body=b"1") == (400, "InvalidArgument")
            assert proxy.rewritten == []
            assert keys_of(direct, bucket) == ["plain/key"]
            return
        answer = client.put_object(Bucket=bucket, Key="x//y", Body=b"xy", Metadata={"m": "1"}, ContentType="text/x")
        assert answer["ETag"] == md5_etag(b"xy")
        client.put_object(Bucket=bucket, Key="//lead", Body=b"lead")
        client.copy_object(Bucket=bucket, Key="c//copy", CopySource={"Bucket": bucket, "Key": "plain/key"})
    assert proxy.rewritten == [("x//y", "x/y"), ("//lead", "lead"), ("c//copy", "c/copy")]
    assert keys_of(direct, bucket) == ["c/copy", "lead", "plain/key", "x/y"]
    head = direct.head_object(Bucket=bucket, Key="x/y")
    assert (head["Metadata"], head["ContentType"], head["ContentLength"]) == ({"m": "1"}, "text/x", 2)
    assert direct.get_object(Bucket=bucket, Key="c/copy")["Body"].read() == b"p"


def test_empty_dir_bodies(server: S3Server, bucket: str) -> None:
    direct = server.client()
    with QuirksProxy(server, empty_dir_bodies=True) as proxy:
        client = proxy.server.client()
        answer = client.put_object(Bucket=bucket, Key="dir/", Body=b"abc", Metadata={"k": "v"})
        assert answer["ETag"] == md5_etag(b"abc")  # the answer lies
        client.put_object(Bucket=bucket, Key="empty/", Body=b"")
        # (not below "dir/": rclone serve s3 stores "dir/" as a file "dir", then fails writes below it)
        client.put_object(Bucket=bucket, Key="other/file", Body=b"data")
        assert client.get_object(Bucket=bucket, Key="dir/")["Body"].read() == b""
    assert proxy.emptied == ["dir/"]
    head = direct.head_object(Bucket=bucket, Key="dir/")
    assert head["ContentLength"] == 0 and head["ETag"] == md5_etag(b"")
    assert {name.lower(): value for name, value in head["Metadata"].items()}.get("k") == "v"
    assert direct.get_object(Bucket=bucket, Key="other/file")["Body"].read() == b"data"


def copied_upload(client: Any, bucket: str, key: str, source: str) -> tuple[str, dict[str, Any]]:
    """A one-part multipart upload of ``key`` whose part is an UploadPartCopy of ``source``:
    (upload id, CompleteMultipartUpload's answer)."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    copied = client.upload_part_copy(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, CopySource={"Bucket": bucket, "Key": source}
    )
    # rclone serve s3 answers UploadPartCopy with an empty CopyPartResult (and stores an empty part)
    etag = (
        copied["CopyPartResult"].get("ETag")
        or client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"][0]["ETag"]
    )
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    return upload_id, client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=parts
    )


@pytest.mark.parametrize("path_order", [False, True], ids=["forwarded-list", "path-order-list"])
def test_foreign_copy_etags(server: S3Server, bucket: str, path_order: bool) -> None:
    direct = server.client()
    direct.put_object(Bucket=bucket, Key="src", Body=b"hello")
    with QuirksProxy(server, foreign_copy_etags=True, path_order=path_order) as proxy:
        client = proxy.server.client(response_checksum_validation="when_required")
        upload_id, completed = copied_upload(client, bucket, "mp", "src")
        foreign = f'"{hashlib.md5(upload_id.encode()).hexdigest()}-1"'
        assert completed["ETag"] == foreign
        assert direct.head_object(Bucket=bucket, Key="mp")["ETag"] != foreign  # the server does not know it
        assert client.head_object(Bucket=bucket, Key="mp")["ETag"] == foreign
        assert client.get_object(Bucket=bucket, Key="mp")["ETag"] == foreign
        listed = {item["Key"]: item["ETag"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]}
        assert listed["mp"] == foreign and listed["src"].strip('"') == hashlib.md5(b"hello").hexdigest()
        install(client.meta.events)
        pages = fast_pages(client.get_paginator("list_objects_v2").paginate(Bucket=bucket))
        fast = {key: etag for page in pages for key, _, _, etag, _ in page}
        assert fast["mp"] == foreign
        assert proxy.foreign_etags == {(bucket, "mp"): foreign}
        # a multipart upload without an UploadPartCopy keeps the server's ETag
        upload_id = client.create_multipart_upload(Bucket=bucket, Key="plain")["UploadId"]
        part = client.upload_part(Bucket=bucket, Key="plain", UploadId=upload_id, PartNumber=1, Body=b"plain")
        parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
        plain = client.complete_multipart_upload(Bucket=bucket, Key="plain", UploadId=upload_id, MultipartUpload=parts)
        # S3's multipart ETag (rclone serve s3 then says the md5 of the bytes to a HeadObject)
        assert plain["ETag"] == f'"{hashlib.md5(hashlib.md5(b"plain").digest()).hexdigest()}-1"'
        assert proxy.foreign_etags == {(bucket, "mp"): foreign}
        # overwritten, the object has the server's ETag again
        client.put_object(Bucket=bucket, Key="mp", Body=b"new")
        assert client.head_object(Bucket=bucket, Key="mp")["ETag"] == md5_etag(b"new")
        assert proxy.foreign_etags == {}
    assert proxy.listed_pages if path_order else not proxy.listed_pages


def test_refuse_sse(server: S3Server, bucket: str) -> None:
    direct = server.client()
    direct.put_object(Bucket=bucket, Key="src", Body=b"s")
    with QuirksProxy(server, refuse_sse=True) as proxy:
        client = proxy.server.client(retries={"total_max_attempts": 1})
        sse = {"Bucket": bucket, "ServerSideEncryption": "AES256"}
        assert error_of(client.put_object, Key="put", Body=b"1", **sse) == (500, "InternalError")
        assert error_of(client.create_multipart_upload, Key="mpu", **sse) == (500, "InternalError")
        source = {"Bucket": bucket, "Key": "src"}
        assert error_of(client.copy_object, Key="copy", CopySource=source, **sse) == (500, "InternalError")
        with pytest.raises(ClientError, match="server-side encryption configuration"):
            client.put_object(Key="put", Body=b"1", **sse)
        assert proxy.refused_sse == 4
        assert keys_of(direct, bucket) == ["src"]  # the server never saw them
        client.put_object(Bucket=bucket, Key="put", Body=b"1")
    assert proxy.refused_sse == 4
    assert keys_of(direct, bucket) == ["put", "src"]
