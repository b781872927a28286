"""The sync under injected faults: 500s, 503 SlowDowns, dropped connections and cut GET bodies.

Every request between the operator and the servers goes through a ``FaultProxy`` (tests/faults.py)
that, at random, answers an error, drops the connection or cuts a GET body in half, at most twice
per request. The sync must still produce an exact copy, on every leg: upload, server-side copy,
streamed copy between endpoints, download. What the servers hold is read directly, not through
the proxies.
"""

from __future__ import annotations

import dataclasses
import io
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ResponseStreamingError

from airflow_s3sync import S3SyncOperator
from tests.conftest import new_bucket
from tests.faults import KINDS, FaultProxy
from tests.support import S3Server, connection_json_via, use_connection

KIB = 1024
MIB = 1024 * KIB
RATE = 0.2


def via(server: S3Server, proxy: FaultProxy) -> S3Server:
    """``server`` as reached through ``proxy`` (same credentials)."""
    return dataclasses.replace(server, endpoint_url=proxy.endpoint_url)


# --- reading what the servers hold, directly ------------------------------------------------------


def local_tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def bucket_tree(server: S3Server, bucket: str, prefix: str) -> dict[str, bytes]:
    # The bytes are compared whole, so botocore's checksum validation adds nothing; and moto's
    # CopyObject of a multipart object keeps the composite CRC32 without its "-N", which botocore
    # would then check against the whole body and reject.
    client = server.client(response_checksum_validation="when_required")
    tree = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            tree[item["Key"].removeprefix(prefix)] = body
    return tree


def assert_same(actual: dict[str, bytes], expected: dict[str, bytes], where: str) -> None:
    """Byte-for-byte equality, with a failure message naming keys rather than dumping bytes."""
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    different = sorted(key for key in expected.keys() & actual.keys() if actual[key] != expected[key])
    assert (missing, extra, different) == ([], [], []), f"{where}: missing, extra, different keys"


def assert_no_multipart_uploads(server: S3Server, bucket: str) -> None:
    try:
        uploads = server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    except ClientError as error:
        # rclone serve s3 answers NoSuchUpload to ListMultipartUploads on a bucket that has never had
        # a multipart upload (once it has had one, it lists them normally): nothing is in progress.
        if server.name == "rclone" and error.response["Error"]["Code"] == "NoSuchUpload":
            return
        raise
    assert uploads == [], f"multipart uploads left in {server.name} bucket {bucket}"


# --- the scenario ----------------------------------------------------------------------------------


def make_source(root: Path, rng: random.Random) -> None:
    """About 300 small files (0-64 KiB) in a few directories, an empty one, and a 20 MiB one (multipart)."""
    directories = ["", "logs/", "logs/2024/", "images/", "images/raw/", "deep/a/b/c/"]
    for number in range(300):
        path = root / f"{rng.choice(directories)}file-{number:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(0, 64 * KIB)))
    (root / "empty").write_bytes(b"")
    (root / "big.bin").write_bytes(rng.randbytes(20 * MIB))


def add_stale(server: S3Server, bucket: str, prefix: str) -> None:
    """Objects the source does not have: ``delete=True`` must remove them, under faults too."""
    client = server.client()
    for number in range(5):
        client.put_object(Bucket=bucket, Key=f"{prefix}stale/old-{number}.txt", Body=b"stale")


def sync(**kwargs) -> dict:
    return S3SyncOperator(task_id="sync", delete=True, **kwargs).execute({})


@pytest.fixture
def proxies(moto: S3Server, rclone: S3Server) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    with (
        FaultProxy(moto.endpoint_url, rate=RATE, seed=20240601) as moto_proxy,
        FaultProxy(rclone.endpoint_url, rate=RATE, seed=20240602) as rclone_proxy,
    ):
        yield moto_proxy, rclone_proxy


@pytest.mark.timeout(300)
def test_every_leg_makes_an_exact_copy_through_injected_faults(
    moto: S3Server,
    rclone: S3Server,
    proxies: tuple[FaultProxy, FaultProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_proxy, rclone_proxy = proxies
    use_connection(monkeypatch, "src", connection_json_via(moto, moto_proxy.endpoint_url))
    use_connection(monkeypatch, "dst", connection_json_via(rclone, rclone_proxy.endpoint_url))

    def report(leg: str) -> None:  # shown with a failure: what the proxies did so far
        print(f"after {leg}: {moto_proxy!r}, {rclone_proxy!r}")

    source = tmp_path / "source"
    make_source(source, random.Random(7))
    expected = local_tree(source)
    bucket_a, bucket_b, bucket_r = new_bucket(moto), new_bucket(moto), new_bucket(rclone)
    add_stale(moto, bucket_a, "data/")
    moto.client().put_object(Bucket=bucket_a, Key="outside/keep.txt", Body=b"not under the prefix")
    add_stale(moto, bucket_b, "data/")
    add_stale(rclone, bucket_r, "data/")
    target = tmp_path / "download"
    (target / "stale").mkdir(parents=True)
    (target / "stale" / "old.txt").write_bytes(b"stale")

    # 1. upload, with deletes
    report("setup")
    sync(source=str(source), dest=f"s3://{bucket_a}/data/", dest_aws_conn_id="src")
    report("upload")
    assert_same(bucket_tree(moto, bucket_a, "data/"), expected, "upload")
    assert bucket_tree(moto, bucket_a, "outside/") == {"keep.txt": b"not under the prefix"}
    assert_no_multipart_uploads(moto, bucket_a)

    # 2. server-side copy: one connection, one endpoint. The big object goes in UploadPartCopy
    # parts, so a multipart copy meets the faults too. (In one CopyObject, moto would also give the
    # copy the source's composite CRC32 without its "-3": botocore rejects every later full GET of
    # it, leg 3's included, a moto bug that has nothing to do with faults.)
    sync(
        source=f"s3://{bucket_a}/data/",
        dest=f"s3://{bucket_b}/data/",
        source_aws_conn_id="src",
        dest_aws_conn_id="src",
        copy_cutoff=8 * MIB,
    )
    report("server-side copy")
    assert_same(bucket_tree(moto, bucket_b, "data/"), expected, "server-side copy")
    assert_no_multipart_uploads(moto, bucket_b)

    # 3. streamed copy: two endpoints, the bytes go through the worker
    sync(
        source=f"s3://{bucket_b}/data/",
        dest=f"s3://{bucket_r}/data/",
        source_aws_conn_id="src",
        dest_aws_conn_id="dst",
    )
    report("streamed copy")
    assert_same(bucket_tree(rclone, bucket_r, "data/"), expected, "streamed copy")
    assert_no_multipart_uploads(rclone, bucket_r)

    # 4. download
    sync(source=f"s3://{bucket_r}/data/", dest=str(target), source_aws_conn_id="dst")
    report("download")
    assert_same(local_tree(target), expected, "download")

    for server, bucket in [(moto, bucket_a), (moto, bucket_b), (rclone, bucket_r)]:
        assert_no_multipart_uploads(server, bucket)
    # Not vacuous: each proxy injected faults, and every kind of fault was injected.
    assert moto_proxy.requests > 0 and sum(moto_proxy.counts().values()) > 0
    assert rclone_proxy.requests > 0 and sum(rclone_proxy.counts().values()) > 0
    injected = {kind: moto_proxy.counts()[kind] + rclone_proxy.counts()[kind] for kind in KINDS}
    assert all(count > 0 for count in injected.values()), injected


# --- the proxy itself ------------------------------------------------------------------------------


def test_proxy_is_transparent_at_rate_zero(server: S3Server) -> None:
    bucket = new_bucket(server)
    direct = server.client()
    data = os.urandom(3 * MIB + 5)
    with FaultProxy(server.endpoint_url, rate=0.0, seed=1) as proxy:
        # rclone sends the whole object's CRC with a ranged GET: validate checksums only when asked.
        client = via(server, proxy).client(response_checksum_validation="when_required")
        client.put_object(Bucket=bucket, Key="dir/a.bin", Body=io.BytesIO(data))  # Expect: 100-continue
        client.put_object(Bucket=bucket, Key="empty", Body=b"")
        assert direct.get_object(Bucket=bucket, Key="dir/a.bin")["Body"].read() == data
        assert client.get_object(Bucket=bucket, Key="dir/a.bin")["Body"].read() == data
        assert client.get_object(Bucket=bucket, Key="dir/a.bin", Range="bytes=10-19")["Body"].read() == data[10:20]
        assert client.head_object(Bucket=bucket, Key="dir/a.bin")["ContentLength"] == len(data)
        listed = client.list_objects_v2(Bucket=bucket)["Contents"]
        assert [item["Key"] for item in listed] == ["dir/a.bin", "empty"]
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "empty"}]})
        assert [item["Key"] for item in direct.list_objects_v2(Bucket=bucket)["Contents"]] == ["dir/a.bin"]
        assert proxy.requests == 7
        assert proxy.counts() == dict.fromkeys(KINDS, 0)


def test_proxy_relays_aws_chunked_uploads(moto: S3Server) -> None:
    """botocore's aws-chunked upload (``Transfer-Encoding: chunked``, a checksum trailer), which it
    sends only over HTTPS: forced here over HTTP. moto only: rclone refuses it even directly
    (``MissingContentLength``)."""

    def trailer(params: dict, **_: object) -> None:
        params["context"]["checksum"]["request_algorithm"]["in"] = "trailer"

    bucket = new_bucket(moto)
    data = os.urandom(MIB + 3)
    with FaultProxy(moto.endpoint_url, rate=0.0, seed=1) as proxy:
        client = via(moto, proxy).client()
        client.meta.events.register("before-call.s3.PutObject", trailer)
        sent: list[dict] = []
        client.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(request.headers))
        client.put_object(Bucket=bucket, Key="chunked.bin", Body=io.BytesIO(data))
    assert sent[0]["Transfer-Encoding"] == b"chunked" and sent[0]["Content-Encoding"] == b"aws-chunked"
    assert moto.client().get_object(Bucket=bucket, Key="chunked.bin")["Body"].read() == data


@pytest.mark.parametrize("kind", ["500", "503", "drop"])
def test_each_request_is_faulted_at_most_its_budget(moto: S3Server, kind: str) -> None:
    bucket = new_bucket(moto)
    with FaultProxy(moto.endpoint_url, rate=1.0, seed=3, max_faults_per_request=2, kinds=[kind]) as proxy:
        client = via(moto, proxy).client()
        client.head_bucket(Bucket=bucket)  # two faults, botocore retries, the third attempt passes
        client.put_object(Bucket=bucket, Key="k", Body=io.BytesIO(b"data"))
        assert proxy.requests == 6
        assert proxy.counts() == {**dict.fromkeys(KINDS, 0), kind: 4}
    assert moto.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"


def test_a_cut_body_is_an_error_for_the_client(moto: S3Server) -> None:
    bucket = new_bucket(moto)
    data = os.urandom(100 * KIB)
    moto.client().put_object(Bucket=bucket, Key="k", Body=data)
    with FaultProxy(moto.endpoint_url, rate=1.0, seed=3, max_faults_per_request=1, kinds=["truncate"]) as proxy:
        client = via(moto, proxy).client()
        client.head_object(Bucket=bucket, Key="k")  # no body to cut: forwarded
        response = client.get_object(Bucket=bucket, Key="k")
        assert response["ContentLength"] == len(data)  # the headers are whole
        with pytest.raises(ResponseStreamingError, match="IncompleteRead"):
            response["Body"].read()
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == data  # the budget is spent
        # A body read within the call (a listing) is retried by botocore itself.
        client.list_objects_v2(Bucket=bucket)
        assert proxy.counts() == {**dict.fromkeys(KINDS, 0), "truncate": 2}
