import hashlib
import io

import pytest

from airflow_s3sync import S3SyncHook
from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.backend import ObjectRef
from tests.conftest import new_bucket
from tests.support import use_connection


def test_listing_is_paged_relative_and_skips_directory_markers(moto_default):
    bucket = new_bucket(moto_default)
    client = moto_default.client()
    for key in ["pre/a", "pre/b/", "pre/c/d", "pre/e", "pre/f/", "pre.txt", "prefix/x", "pre/g"]:
        client.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") and key != "pre/f/" else b"data")
    calls = []
    hook = S3SyncHook(page_size=2)
    hook.conn.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(1))

    entries = list(hook.backend.list_entries(bucket=bucket, prefix="pre/"))

    assert [e.key for e in entries] == ["a", "c/d", "e", "f/", "g"]  # the zero-byte "b/" marker is dropped
    assert len(calls) == 3  # six objects under the prefix, two a page
    assert all(e.size == 4 and e.etag and e.mtime.tzinfo for e in entries)


def test_listing_is_a_generator(moto_default):
    bucket = new_bucket(moto_default)
    client = moto_default.client()
    for n in range(5):
        client.put_object(Bucket=bucket, Key=f"k{n}", Body=b"x")
    calls = []
    hook = S3SyncHook(page_size=1)
    hook.conn.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(1))
    listing = hook.backend.list_entries(bucket=bucket, prefix="")
    assert next(listing).key == "k0"
    assert len(calls) == 1  # only the first page was fetched


def test_delete_keys_batches_a_thousand_per_request(moto_default):
    bucket = new_bucket(moto_default)
    client = moto_default.client()
    keys = [f"k{n:04d}" for n in range(1001)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    calls = []
    hook = S3SyncHook()
    hook.conn.meta.events.register(
        "before-parameter-build.s3.DeleteObjects", lambda params, **kw: calls.append(len(params["Delete"]["Objects"]))
    )

    results = list(hook.backend.delete_keys(bucket=bucket, keys=iter(keys)))

    assert calls == [1000, 1]
    assert sorted(k for k, error in results if error is None) == keys
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_connection_pool_fits_the_concurrency(moto_default):
    assert S3SyncHook(max_concurrency=32).conn.meta.config.max_pool_connections >= 32


def test_missing_bucket_is_a_clear_error(aws_default):
    with pytest.raises(S3SyncError, match=r"bucket 'no-such-bucket-here' does not exist at http://127\.0\.0\.1"):
        S3SyncHook().backend.check_access(bucket="no-such-bucket-here", prefix="")


def test_wrong_credentials_are_a_clear_error(rclone, monkeypatch):
    bucket = new_bucket(rclone)
    use_connection(monkeypatch, "aws_default", rclone.connection_json(secret_key="not-the-secret"))
    with pytest.raises(S3SyncError, match=r"denied.*check the connection's credentials") as raised:
        S3SyncHook().backend.check_access(bucket=bucket, prefix="some/prefix/")
    assert "not-the-secret" not in str(raised.value)


def test_large_objects_go_multipart_in_every_direction(moto, monkeypatch, tmp_path):
    """The connection's transfer_config_args reach s3transfer: upload, copy and download in parts."""
    import json
    import os

    from airflow_s3sync import S3SyncOperator

    conn = json.loads(moto.connection_json())
    part = 5 * 1024 * 1024
    conn["extra"]["service_config"] = {
        "s3": {"transfer_config_args": {"multipart_threshold": part, "multipart_chunksize": part}}
    }
    use_connection(monkeypatch, "aws_default", json.dumps(conn))
    src, dst = new_bucket(moto), new_bucket(moto)
    data = os.urandom(2 * part + 1234)
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "big.bin").write_bytes(data)
    client = moto.client()

    S3SyncOperator(task_id="up", source=str(tmp_path / "up"), dest=f"s3://{src}").execute({})
    assert client.head_object(Bucket=src, Key="big.bin")["ETag"].endswith('-3"')

    parts_copied = []
    hook_events = ("before-call.s3.UploadPartCopy", lambda **kw: parts_copied.append(1))
    op = S3SyncOperator(task_id="copy", source=f"s3://{src}", dest=f"s3://{dst}", copy_cutoff=part)
    op.dest_hook.conn.meta.events.register(*hook_events)
    op.execute({})
    assert len(parts_copied) == 3
    assert client.get_object(Bucket=dst, Key="big.bin")["Body"].read() == data

    ranged = []
    op = S3SyncOperator(task_id="down", source=f"s3://{dst}", dest=str(tmp_path / "down"))
    op.source_hook.conn.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **kw: ranged.append(params.get("Range"))
    )
    op.execute({})
    assert len(ranged) == 3 and all(ranged)
    assert (tmp_path / "down" / "big.bin").read_bytes() == data


def test_a_key_that_breaks_a_delete_batch_is_deleted_on_its_own(moto_default):
    bucket = new_bucket(moto_default)
    client = moto_default.client()
    keys = ["a", "bad\x01key", "c"]  # U+0001 cannot appear in the XML body of DeleteObjects
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    hook = S3SyncHook()
    single, batches = [], []
    hook.conn.meta.events.register(
        "provide-client-params.s3.DeleteObject", lambda params, **kw: single.append(params["Key"])
    )
    hook.conn.meta.events.register(
        "provide-client-params.s3.DeleteObjects", lambda params, **kw: batches.append(len(params["Delete"]["Objects"]))
    )

    results = dict(hook.backend.delete_keys(bucket=bucket, keys=keys))

    assert results == dict.fromkeys(keys)  # every key deleted, none failed
    assert single == ["bad\x01key"] and batches == [2]  # only that key alone, from the start
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_only_the_answers_a_streamed_write_waits_for_are_kept(moto_default, tmp_path):
    """s3transfer does not return a write's answer, so the backend records it for write_stream;
    other writes answer directly and leave nothing behind (millions of uploads, flat memory)."""
    bucket = new_bucket(moto_default)
    backend = S3SyncHook().backend
    (tmp_path / "f").write_bytes(b"file")
    args = {"extra_args": {}, "progress": lambda n: None}
    backend.upload_file(path=str(tmp_path / "f"), dest=ObjectRef(bucket, "f"), size=4, **args)
    backend.write_object(dest=ObjectRef(bucket, "w"), data=b"data", **args)
    written = backend.write_stream(dest=ObjectRef(bucket, "s"), stream=io.BytesIO(b"abc"), size=3, **args)
    assert written.etag == f'"{hashlib.md5(b"abc").hexdigest()}"' and written.md5_etag_possible
    assert backend._written == {}
    backend.close()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "check"),  # an endpoint of one's own: not known to list in S3's order
        ({"listing_order": "s3"}, "s3"),
        ({"listing_order": "own"}, "own"),
    ],
)
def test_listing_order_comes_from_the_connection_extra(moto, monkeypatch, extra, expected):
    use_connection(monkeypatch, "aws_default", moto.connection_json(**extra))
    assert S3SyncHook().listing_order == expected
    assert S3SyncHook().backend.listing_order == expected


def test_listing_order_of_aws_is_s3_and_a_bad_value_is_a_clear_error(monkeypatch):
    use_connection(monkeypatch, "aws_default", '{"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}')
    assert S3SyncHook().listing_order == "s3"
    use_connection(monkeypatch, "aws_default", '{"conn_type": "aws", "extra": {"listing_order": "sorted"}}')
    with pytest.raises(S3SyncError, match="extra 'listing_order' must be one of 's3', 'check', 'own', not 'sorted'"):
        S3SyncHook().backend  # noqa: B018
