"""The native client carries small uploads and downloads, from the connection's settings."""

from __future__ import annotations

import json
import os

import pytest

from airflow_s3sync import S3SyncHook, S3SyncOperator
from airflow_s3sync.hooks.backend import ObjectRef
from airflow_s3sync.hooks.native import NativeBackend
from tests.conftest import new_bucket, write
from tests.support import use_connection

KEYS = ["a.txt", "sub/b.csv", "sp ace.txt", "pct%20.txt", "hash#.txt", "ünï/çødé.txt", "star*.txt", "q?.txt"]


def native(hook: S3SyncHook) -> NativeBackend:
    """The hook's native (obstore) backend."""
    (backend,) = [backend for backend in hook.transfer_backends() if isinstance(backend, NativeBackend)]
    return backend


def botocore_calls(hook, operation: str) -> list[dict]:
    seen: list[dict] = []
    hook.conn.meta.events.register(f"before-call.s3.{operation}", lambda params, **_: seen.append(params))
    return seen


@pytest.mark.parametrize("native", [True, False], ids=["native", "botocore"])
def test_small_uploads_and_downloads_take_the_native_client_unless_the_connection_says_no(
    server, monkeypatch, tmp_path, native
):
    extra = {} if native else {"native_client": False}
    use_connection(monkeypatch, "aws_default", server.connection_json(**extra))
    bucket = new_bucket(server)
    for n, key in enumerate(KEYS):
        write(tmp_path / "up" / key, f"data {n}")

    up = S3SyncOperator(task_id="up", source=str(tmp_path / "up"), dest=f"s3://{bucket}/p/")
    puts = botocore_calls(up.dest_hook, "PutObject")
    assert up.execute({})["uploaded"] == len(KEYS)
    listed = server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(obj["Key"] for obj in listed) == sorted(f"p/{key}" for key in KEYS)  # keys round-trip
    head = server.client().head_object(Bucket=bucket, Key="p/sub/b.csv")
    assert head["ContentType"] == "text/csv"  # guessed from the name, as aws s3 sync does

    down = S3SyncOperator(task_id="down", source=f"s3://{bucket}/p/", dest=str(tmp_path / "down"))
    gets = botocore_calls(down.source_hook, "GetObject")
    assert down.execute({})["downloaded"] == len(KEYS)
    for n, key in enumerate(KEYS):
        assert (tmp_path / "down" / key).read_text() == f"data {n}"
    assert not [p for p in (tmp_path / "down").rglob("*") if p.name.endswith(".s3sync")]  # no temp files left

    assert (len(puts), len(gets)) == ((0, 0) if native else (len(KEYS), len(KEYS)))


def test_the_native_client_signs_with_the_connections_credentials(rclone, monkeypatch, tmp_path):
    """rclone checks signatures: the right secret writes, a wrong one is refused."""
    use_connection(monkeypatch, "aws_default", rclone.connection_json())
    use_connection(monkeypatch, "wrong", rclone.connection_json(secret_key="wrong"))
    bucket = new_bucket(rclone)
    write(tmp_path / "a.txt", "x")

    def upload(conn_id: str, key: str) -> None:
        native(S3SyncHook(conn_id)).upload_file(
            path=str(tmp_path / "a.txt"), dest=ObjectRef(bucket, key), size=1, extra_args={}, progress=lambda n: None
        )

    upload("aws_default", "a.txt")
    with pytest.raises(Exception, match=r"(?i)forbidden|denied|signature|403"):
        upload("wrong", "b.txt")
    keys = [obj["Key"] for obj in rclone.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["a.txt"]


def test_native_downloads_get_the_permissions_of_any_new_file(moto_default, tmp_path):
    bucket = new_bucket(moto_default)
    moto_default.client().put_object(Bucket=bucket, Key="k", Body=b"x")
    S3SyncOperator(task_id="down", source=f"s3://{bucket}", dest=str(tmp_path)).execute({})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("extra", "enabled"),
    [
        ({}, True),
        ({"config_kwargs": {"s3": {"addressing_style": "path"}}}, True),
        ({"native_client": False}, False),
        ({"config_kwargs": {"proxies": {"https": "http://127.0.0.1:3128"}}}, False),
        ({"config_kwargs": {"s3": {"use_dualstack_endpoint": True}}}, False),
        ({"verify": "/etc/ssl/private-ca.pem"}, False),
        ({"verify": False}, False),
        ({"config_kwargs": {"s3": {"addressing_style": "virtual"}}}, False),
        ({"config_kwargs": {"signature_version": "unsigned"}}, False),
    ],
    ids=["default", "path-style", "off", "proxies", "dual-stack", "ca-bundle", "no-verify", "virtual", "unsigned"],
)
def test_the_native_client_is_left_out_where_the_connection_asks_for_what_only_botocore_does(
    moto, monkeypatch, extra, enabled
):
    use_connection(monkeypatch, "aws_default", moto.connection_json(**extra))
    assert S3SyncHook().fast_clients_enabled is enabled
    names = [backend.capabilities.name for backend in S3SyncHook().transfer_backends()]
    assert names[-1] == "botocore" and ("obstore" in names) is enabled


def test_the_native_client_is_left_out_when_the_environment_sets_what_only_it_reads(moto, monkeypatch):
    use_connection(monkeypatch, "aws_default", moto.connection_json())
    monkeypatch.setenv("AWS_SERVER_SIDE_ENCRYPTION", "aws:kms")  # obstore would encrypt, botocore not
    assert S3SyncHook().fast_clients_enabled is False


def test_the_native_client_goes_where_botocore_goes_whatever_aws_endpoint_says(moto, monkeypatch, tmp_path):
    """obstore reads AWS_ENDPOINT from the environment, botocore does not: a connection without an
    endpoint means AWS for both (unreachable here), never the server AWS_ENDPOINT names."""
    conn = json.loads(moto.connection_json(config_kwargs={"retries": {"max_attempts": 1}}))
    del conn["extra"]["endpoint_url"]
    use_connection(monkeypatch, "aws_default", json.dumps(conn))
    monkeypatch.setenv("AWS_ENDPOINT", moto.endpoint_url)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    bucket = new_bucket(moto)
    write(tmp_path / "a.txt", "x")
    hook = S3SyncHook()
    assert hook.fast_clients_enabled and "amazonaws.com" in hook.conn.meta.endpoint_url

    with pytest.raises(Exception, match=r"amazonaws\.com"):
        native(hook).upload_file(
            path=str(tmp_path / "a.txt"),
            dest=ObjectRef(bucket, "a.txt"),
            size=1,
            extra_args={},
            progress=lambda n: None,
        )
    assert moto.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_native_download_of_a_long_file_name_lands(moto_default, tmp_path):
    """The temporary name is cut to leave room for its suffix (a name may have 255 bytes)."""
    bucket = new_bucket(moto_default)
    key = "n" * 250
    moto_default.client().put_object(Bucket=bucket, Key=key, Body=b"long")
    op = S3SyncOperator(task_id="down", source=f"s3://{bucket}", dest=str(tmp_path))
    gets = botocore_calls(op.source_hook, "GetObject")
    assert op.execute({})["downloaded"] == 1
    assert (tmp_path / key).read_bytes() == b"long" and gets == []  # the native client carried it
