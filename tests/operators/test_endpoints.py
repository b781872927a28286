"""Between endpoints, across regions, through access points, and big objects (real servers over HTTP)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import tempfile
import time
from datetime import UTC, datetime

import pytest

from airflow_s3sync import S3SyncOperator
from airflow_s3sync.errors import S3SyncError
from tests.conftest import new_bucket
from tests.support import S3Server, recorded, use_connection

MIB = 1024 * 1024
PROPERTIES = {
    "ContentType": "text/csv",
    "CacheControl": "max-age=60",
    "ContentEncoding": "identity",
    "ContentDisposition": "inline",
    "ContentLanguage": "en",
    "Metadata": {"owner": "data-platform"},
}


def sync(**kwargs) -> dict:
    return S3SyncOperator(task_id="sync", **kwargs).execute({})


def bucket_sync(src: str, dst: str, source_conn: str, dest_conn: str) -> S3SyncOperator:
    """A sync of bucket ``src`` (connection ``source_conn``) to bucket ``dst``, not yet run."""
    return S3SyncOperator(
        task_id="sync",
        source=f"s3://{src}",
        dest=f"s3://{dst}",
        source_aws_conn_id=source_conn,
        dest_aws_conn_id=dest_conn,
    )


def requests_of(hook, operation: str) -> list[dict]:
    """Record the parameters of every ``operation`` request the hook's client makes."""
    seen: list[dict] = []
    hook.conn.meta.events.register(f"provide-client-params.s3.{operation}", lambda params, **_: seen.append(params))
    return seen


@pytest.fixture
def endpoints(moto: S3Server, rclone: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, S3Server]:
    use_connection(monkeypatch, "s3_moto", moto.connection_json())
    use_connection(monkeypatch, "s3_rclone", rclone.connection_json())
    return {"moto": moto, "rclone": rclone}


@pytest.mark.parametrize(("source_name", "dest_name"), [("moto", "rclone"), ("rclone", "moto")])
def test_streams_between_two_s3_implementations_without_temporary_files(
    endpoints, source_name, dest_name, tmp_path, monkeypatch, logs
):
    source, dest = endpoints[source_name], endpoints[dest_name]
    src, dst = new_bucket(source), new_bucket(dest)
    big = os.urandom(40 * MIB)
    source.client().put_object(Bucket=src, Key="data/big.bin", Body=big)
    source.client().put_object(Bucket=src, Key="data/small.csv", Body=b"a,b\n1,2\n", **PROPERTIES)
    # rclone keeps sub-second times and moto whole seconds: a copy made within the same second
    # as the source could look older than it to the time rule (and be copied once more).
    time.sleep(1.1)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    operator = S3SyncOperator(
        task_id="sync",
        source=f"s3://{src}/data/",
        dest=f"s3://{dst}/data/",
        source_aws_conn_id=f"s3_{source_name}",
        dest_aws_conn_id=f"s3_{dest_name}",
    )
    copies = requests_of(operator.dest_hook, "CopyObject")
    part_copies = requests_of(operator.dest_hook, "UploadPartCopy")
    parts = requests_of(operator.dest_hook, "UploadPart")
    puts = requests_of(operator.dest_hook, "PutObject")
    summary = operator.execute({})

    assert (summary["copied"], summary["failed"], summary["bytes_transferred"]) == (2, 0, len(big) + 8)
    assert copies == [] and part_copies == []
    # The source's MD5 is known: 40 MiB in one PutObject, the server checking it as Content-MD5.
    assert parts == []
    [big_put] = [put for put in puts if put["Key"] == "data/big.bin"]
    assert base64.b64decode(big_put["ContentMD5"]) == hashlib.md5(big).digest()
    assert list(scratch.iterdir()) == []
    client = dest.client()
    body = client.get_object(Bucket=dst, Key="data/big.bin")["Body"].read()
    assert hashlib.md5(body).digest() == hashlib.md5(big).digest()
    small = client.get_object(Bucket=dst, Key="data/small.csv")
    assert small["Body"].read() == b"a,b\n1,2\n"
    for name, value in PROPERTIES.items():
        if name == "Metadata":
            assert {k.lower(): v for k, v in small["Metadata"].items()} == value
        else:
            assert small[name] == value, name
    assert sorted(logs.actions()) == [
        f"copy: s3://{src}/data/big.bin to s3://{dst}/data/big.bin",
        f"copy: s3://{src}/data/small.csv to s3://{dst}/data/small.csv",
    ]

    again = sync(
        source=f"s3://{src}/data/",
        dest=f"s3://{dst}/data/",
        source_aws_conn_id=f"s3_{source_name}",
        dest_aws_conn_id=f"s3_{dest_name}",
    )
    assert (again["copied"], again["skipped"]) == (0, 2)


@pytest.mark.parametrize("native_client", [True, False], ids=["obstore", "botocore"])
def test_bytes_read_that_do_not_match_the_source_fail_the_object(endpoints, monkeypatch, native_client):
    """A proxy flips one byte of every GetObject body from the source. botocore sends the
    source's MD5 as Content-MD5, which moto does not check (it stores the bytes); obstore cannot
    send it. Either way the write's ETag is not the source's MD5, so the bytes read are hashed
    and found not to be the source's."""
    from tests.faults import FaultProxy, with_body
    from tests.support import connection_json_via

    class Corrupting(FaultProxy):
        def edit_mode(self, request):
            return "whole" if request.start.startswith(b"GET ") and b"list-type" not in request.start else None

        def edit_response(self, request, response, body):
            return with_body(response, bytes([body[0] ^ 1]) + body[1:] if body else body)

    moto, rclone = endpoints["moto"], endpoints["rclone"]
    src, dst = new_bucket(rclone), new_bucket(moto)
    # Stored without a checksum: botocore's reads would otherwise catch the flipped byte first.
    rclone.client(request_checksum_calculation="when_required").put_object(Bucket=src, Key="k", Body=b"payload")
    extra = {} if native_client else {"native_client": False}
    use_connection(monkeypatch, "s3_moto", moto.connection_json(**extra))
    with Corrupting(rclone.endpoint_url, rate=0.0, seed=1) as proxy:
        use_connection(monkeypatch, "s3_rclone", connection_json_via(rclone, proxy.endpoint_url, **extra))
        operator = bucket_sync(src, dst, "s3_rclone", "s3_moto")
        puts = requests_of(operator.dest_hook, "PutObject")
        with pytest.raises(S3SyncError, match=rf"copy s3://{src}/k to s3://{dst}/k: verification failed: the bytes"):
            operator.execute({})
    source_md5 = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    assert [put.get("ContentMD5") for put in puts] == ([] if native_client else [source_md5])


@pytest.mark.parametrize(
    ("size", "field", "message", "signed"),
    [
        (100, "ContentLength", "has 101 bytes, 100 were sent", False),
        (100, "ETag", "has MD5 0000", False),
        (6 * MIB, "ETag", "has MD5 0000", False),
        (6 * MIB, "ETag", "has ETag 0000", True),
    ],
    ids=["size", "md5", "one-put", "multipart-etag"],
)
def test_a_destination_that_does_not_hold_what_was_sent_fails_the_object(
    endpoints, monkeypatch, size, field, message, signed
):
    """The write's answer and the destination's HeadObject are what verification trusts: here
    they report another size or ETag than the bytes sent (as they would after corruption). A
    connection that asks for payload signatures cannot stream in one PutObject: parts."""
    moto = endpoints["moto"]
    # botocore writes (the native client's answers are checked in tests/execute).
    conn = {
        "service_config": {"s3": {"transfer_config_args": {"multipart_threshold": 5 * MIB}}},
        "native_client": False,
        "config_kwargs": {"s3": {"payload_signing_enabled": signed}} if signed else {},
    }
    use_connection(monkeypatch, "s3_moto", moto.connection_json(**conn))
    src, dst = new_bucket(endpoints["rclone"]), new_bucket(moto)
    endpoints["rclone"].client().put_object(Bucket=src, Key="k", Body=os.urandom(size))
    operator = bucket_sync(src, dst, "s3_rclone", "s3_moto")

    def corrupt(parsed, **_):
        if field == "ContentLength":
            if "ContentLength" in parsed:  # the HeadObject
                parsed["ContentLength"] += 1
            else:  # a write's answer without an ETag: the HeadObject decides
                parsed.pop("ETag", None)
        elif "ETag" in parsed:
            parts = parsed["ETag"].strip('"').partition("-")
            parsed["ETag"] = '"' + "0" * 32 + parts[1] + parts[2] + '"'

    events = operator.dest_hook.conn.meta.events
    for operation in ("PutObject", "CompleteMultipartUpload", "HeadObject"):
        events.register_first(f"after-call.s3.{operation}", corrupt)
    with pytest.raises(S3SyncError, match=rf"copy s3://{src}/k to s3://{dst}/k: verification failed: .*{message}"):
        operator.execute({})


def test_same_endpoint_multipart_copy_runs_server_side_in_parts(moto, monkeypatch):
    conn = {
        "service_config": {
            "s3": {"transfer_config_args": {"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}}
        }
    }
    src, dst = new_bucket(moto), new_bucket(moto)
    data = os.urandom(12 * MIB)
    moto.client().put_object(Bucket=src, Key="big", Body=data, ContentType="application/x-parquet")
    with recorded(moto, monkeypatch, "aws_default", **conn) as proxy:
        operator = S3SyncOperator(task_id="sync", source=f"s3://{src}", dest=f"s3://{dst}", copy_cutoff=10 * MIB)
        assert operator.execute({})["copied"] == 1
    assert proxy.operations("UploadPartCopy", "UploadPart", "GetObject", "PutObject") == ["UploadPartCopy"] * 3
    written = moto.client().get_object(Bucket=dst, Key="big")
    assert written["ETag"].strip('"').endswith("-3")
    assert written["ContentType"] == "application/x-parquet"
    assert written["Body"].read() == data


def test_an_access_point_arn_reaches_botocore_as_the_bucket(moto_default, tmp_path):
    arn = "arn:aws:s3:us-east-1:123456789012:accesspoint/my-access-point"
    operator = S3SyncOperator(task_id="sync", source=f"s3://{arn}/data/", dest=str(tmp_path))
    listings = requests_of(operator.source_hook, "ListObjectsV2")
    with pytest.raises(S3SyncError):  # the local server is no access point endpoint
        operator.execute({})
    assert listings and listings[0]["Bucket"] == arn and listings[0]["Prefix"] == "data/"


@pytest.mark.parametrize("copy_tags", [False, True])
def test_tags_are_an_opt_in_for_streamed_and_multipart_copies(moto, monkeypatch, copy_tags):
    """rclone serve s3 keeps no tags, so the other side here is moto under another account's
    credentials: not the same credentials, so the copy streams."""
    conn = {"service_config": {"s3": {"transfer_config_args": {"multipart_threshold": 5 * MIB}}}}
    use_connection(monkeypatch, "aws_default", moto.connection_json(**conn))
    other = json.loads(moto.connection_json(**conn))
    other["login"] = "another-account-key"
    use_connection(monkeypatch, "other_account", json.dumps(other))
    src, dst = new_bucket(moto), new_bucket(moto)
    client = moto.client()
    client.put_object(Bucket=src, Key="big", Body=os.urandom(6 * MIB), Tagging="team=data&class=gold")
    tagged = [{"Key": "class", "Value": "gold"}, {"Key": "team", "Value": "data"}]
    for dest_conn, streamed in (("aws_default", False), ("other_account", True)):
        operator = S3SyncOperator(
            task_id="sync",
            source=f"s3://{src}",
            dest=f"s3://{dst}",
            dest_aws_conn_id=dest_conn,
            copy_tags=copy_tags,
            copy_cutoff=5 * MIB,  # the same-endpoint copy goes in parts, which S3 does not tag
        )
        part_copies = requests_of(operator.dest_hook, "UploadPartCopy")
        puts = requests_of(operator.dest_hook, "PutObject")
        client.delete_object(Bucket=dst, Key="big")
        assert operator.execute({})["copied"] == 1
        # Server-side: copied parts; streamed: one PutObject (the bytes went through the worker).
        assert (bool(part_copies), bool(puts)) == (not streamed, streamed)
        tags = sorted(client.get_object_tagging(Bucket=dst, Key="big")["TagSet"], key=lambda tag: tag["Key"])
        assert tags == (tagged if copy_tags else []), dest_conn


def test_a_streamed_write_verifies_from_its_own_answer_without_another_request(moto, rclone, monkeypatch):
    """Counted on the wire (every client's requests): a small object is one GetObject at the
    source and one PutObject at the destination, verified from the PutObject's answer."""
    src, dst = new_bucket(rclone), new_bucket(moto)
    rclone.client().put_object(Bucket=src, Key="k", Body=b"small")
    with recorded(rclone, monkeypatch, "s3_rclone") as source, recorded(moto, monkeypatch, "s3_moto") as dest:
        copied = sync(
            source=f"s3://{src}", dest=f"s3://{dst}", source_aws_conn_id="s3_rclone", dest_aws_conn_id="s3_moto"
        )
        assert copied["copied"] == 1
    assert source.operations("GetObject", "HeadObject") == ["GetObject"]
    assert dest.operations("PutObject", "HeadObject", "GetObject") == ["PutObject"]
    assert moto.client().get_object(Bucket=dst, Key="k")["Body"].read() == b"small"


def test_a_streamed_multipart_object_is_verified_by_its_parts_without_another_request(moto, rclone, monkeypatch):
    """A source uploaded in parts tells no MD5 of its content: the stream hashes the parts it
    sends and checks them against the CompleteMultipartUpload's ETag (no HeadObject, no
    read-back), though rclone's HeadObject would tell the whole content's MD5."""
    from boto3.s3.transfer import TransferConfig

    parts = {
        "service_config": {
            "s3": {"transfer_config_args": {"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}}
        }
    }
    src, dst = new_bucket(moto), new_bucket(rclone)
    data = os.urandom(12 * MIB)
    moto.client().upload_fileobj(
        io.BytesIO(data), src, "big", Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    )
    assert moto.client().head_object(Bucket=src, Key="big")["ETag"].endswith('-3"')
    with recorded(moto, monkeypatch, "s3_moto") as source, recorded(rclone, monkeypatch, "s3_rclone", **parts) as dest:
        copied = sync(
            source=f"s3://{src}", dest=f"s3://{dst}", source_aws_conn_id="s3_moto", dest_aws_conn_id="s3_rclone"
        )
        assert copied["copied"] == 1
    assert source.operations("GetObject") == ["GetObject"]
    assert dest.operations("UploadPart", "CompleteMultipartUpload", "HeadObject", "GetObject") == [
        "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"
    ]  # fmt: skip
    assert rclone.client().get_object(Bucket=dst, Key="big")["Body"].read() == data


def test_a_streamed_put_that_fails_reads_the_source_again_into_parts(moto, rclone, monkeypatch, logs):
    """One PutObject's body is the source's stream and cannot be sent twice: a 500 answer to it
    makes the job start again from the source (botocore cannot retry it itself), and that
    attempt writes the object in parts, which botocore retries one by one."""
    from tests.faults import FaultProxy
    from tests.support import connection_json_via

    src, dst = new_bucket(rclone), new_bucket(moto)
    data = os.urandom(12 * MIB)
    rclone.client().put_object(Bucket=src, Key="big", Body=data)
    use_connection(monkeypatch, "s3_rclone", rclone.connection_json())
    with FaultProxy(moto.endpoint_url, rate=1.0, seed=1, kinds=("500",), max_faults_per_request=1) as proxy:
        use_connection(monkeypatch, "s3_moto", connection_json_via(moto, proxy.endpoint_url))
        summary = sync(
            source=f"s3://{src}", dest=f"s3://{dst}", source_aws_conn_id="s3_rclone", dest_aws_conn_id="s3_moto"
        )
    assert (summary["copied"], summary["failed"]) == (1, 0) and summary["retries"] == 1
    # Each request met one 500: the PutObject once (its retry cannot resend), each part twice.
    writes = proxy.operations("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
    assert writes == [
        "PutObject",
        *["CreateMultipartUpload"] * 2,
        *["UploadPart"] * 4,
        *["CompleteMultipartUpload"] * 2,
    ]
    [retry] = [line for line in logs.at("warning") if line.startswith("retrying copy")]
    assert "PutObject failed: 500 InternalError" in retry and "a streamed body is not sent again" in retry
    assert moto.client().get_object(Bucket=dst, Key="big")["Body"].read() == data


def test_a_source_cut_short_under_a_streamed_put_writes_nothing_and_is_read_again(moto, rclone, monkeypatch):
    """The source's body cut mid-object while one PutObject sends it: the PutObject is abandoned
    short of its Content-Length, and the job reads the source again, into parts."""
    from tests.faults import FaultProxy
    from tests.support import connection_json_via

    src, dst = new_bucket(moto), new_bucket(rclone)
    data = os.urandom(12 * MIB)
    moto.client().put_object(Bucket=src, Key="big", Body=data)
    with (
        FaultProxy(moto.endpoint_url, rate=1.0, seed=1, kinds=("truncate",), max_faults_per_request=1) as cut,
        recorded(rclone, monkeypatch, "s3_rclone") as dest,
    ):
        use_connection(monkeypatch, "s3_moto", connection_json_via(moto, cut.endpoint_url))
        summary = sync(
            source=f"s3://{src}", dest=f"s3://{dst}", source_aws_conn_id="s3_moto", dest_aws_conn_id="s3_rclone"
        )
        assert cut.counts()["truncate"] >= 1 and cut.operations("GetObject") == ["GetObject", "GetObject"]
    assert (summary["copied"], summary["failed"], summary["retries"]) == (1, 0, 1)
    assert dest.operations("PutObject", "CreateMultipartUpload")[:2] == ["PutObject", "CreateMultipartUpload"]
    assert rclone.client().get_object(Bucket=dst, Key="big")["Body"].read() == data


def test_objects_written_with_a_customer_key_are_read_back_with_it(endpoints):
    """SSE-C: the write's ETag is no MD5, so verification reads the object back, which needs the key."""
    src, dst = new_bucket(endpoints["rclone"]), new_bucket(endpoints["moto"])
    endpoints["rclone"].client().put_object(Bucket=src, Key="k", Body=b"secret")
    key = b"k" * 32
    operator = S3SyncOperator(
        task_id="sync",
        source=f"s3://{src}",
        dest=f"s3://{dst}",
        source_aws_conn_id="s3_rclone",
        dest_aws_conn_id="s3_moto",
        extra_args={"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key.decode()},
    )
    # moto ignores SSE-C; S3 answers an SSE-C PutObject with its algorithm, as here.
    operator.dest_hook.conn.meta.events.register_first(
        "after-call.s3.PutObject", lambda parsed, **_: parsed.update(SSECustomerAlgorithm="AES256")
    )
    heads = requests_of(operator.dest_hook, "HeadObject")
    assert operator.execute({})["copied"] == 1
    # (botocore base64-encodes the key in the recorded parameters before sending)
    assert [(head["SSECustomerAlgorithm"], base64.b64decode(head["SSECustomerKey"])) for head in heads] == [
        ("AES256", key)
    ]


def test_same_endpoint_copies_are_one_copy_object_up_to_the_cutoff_even_on_rclone(rclone, monkeypatch):
    """rclone serve s3 answers UploadPartCopy without an ETag; a 20 MiB object (above the 8 MiB
    multipart threshold) is still copied, with one CopyObject, as rclone and s5cmd do."""
    use_connection(monkeypatch, "aws_default", rclone.connection_json())
    src, dst = new_bucket(rclone), new_bucket(rclone)
    client = rclone.client()
    objects = {"big.bin": os.urandom(20 * MIB), **{f"small/{n}.txt": os.urandom(100 * n + 1) for n in range(5)}}
    for key, data in objects.items():
        client.put_object(Bucket=src, Key=key, Body=data)
    with recorded(rclone, monkeypatch, "aws_default") as proxy:
        summary = S3SyncOperator(task_id="sync", source=f"s3://{src}/", dest=f"s3://{dst}/").execute({})

    assert (summary["copied"], summary["failed"]) == (len(objects), 0)
    assert proxy.operations("CopyObject", "UploadPartCopy", "GetObject") == ["CopyObject"] * len(objects)
    for key, data in objects.items():
        assert client.get_object(Bucket=dst, Key=key)["Body"].read() == data, key


def test_a_part_copy_answered_without_an_etag_is_a_clear_error(rclone, monkeypatch, logs):
    use_connection(monkeypatch, "aws_default", rclone.connection_json())
    src, dst = new_bucket(rclone), new_bucket(rclone)
    rclone.client().put_object(Bucket=src, Key="big.bin", Body=os.urandom(20 * MIB))

    with pytest.raises(S3SyncError) as failure:
        sync(source=f"s3://{src}/", dest=f"s3://{dst}/", copy_cutoff=MIB)

    message = str(failure.value)
    assert "copy s3://" in message and "big.bin" in message
    assert "answered a multipart request without the part's ETag" in message
    assert "raise copy_cutoff" in message
    assert "'ETag'" not in message
    assert rclone.client().list_objects_v2(Bucket=dst).get("KeyCount", 0) == 0


def client_of(headers: dict[str, str]) -> str:
    """Which client sent a request, by its User-Agent."""
    agent = headers.get("user-agent", "")
    return "awscrt" if agent.startswith("CRTS3NativeClient") else "botocore" if "Botocore/" in agent else agent


@pytest.mark.parametrize("fast", [True, False], ids=["fast-clients", "native_client-false"])
def test_same_endpoint_copies_go_through_the_crt_client_unless_the_connection_says_no(moto, monkeypatch, fast):
    src, dst = new_bucket(moto), new_bucket(moto)
    client = moto.client()
    client.put_object(Bucket=src, Key="a//odd key", Body=b"1", ContentType="text/x-odd", Metadata={"team": "data"})
    client.put_object(Bucket=src, Key="plain", Body=b"22", Tagging="class=gold")
    extra = {} if fast else {"native_client": False}
    with recorded(moto, monkeypatch, "aws_default", **extra) as proxy:
        summary = S3SyncOperator(task_id="sync", source=f"s3://{src}", dest=f"s3://{dst}").execute({})
    assert (summary["copied"], summary["failed"]) == (2, 0)
    copies = [client_of(headers) for headers in proxy.headers_of("CopyObject")]
    assert copies == ["awscrt" if fast else "botocore"] * 2
    odd = client.head_object(Bucket=dst, Key="a//odd key")
    assert (odd["ContentType"], odd["Metadata"]) == ("text/x-odd", {"team": "data"})
    assert client.get_object_tagging(Bucket=dst, Key="plain")["TagSet"] == [{"Key": "class", "Value": "gold"}]


def test_a_small_streamed_object_with_expires_is_read_and_written_by_the_crt_client(moto, monkeypatch):
    """obstore cannot write Expires: the CRT client carries it, with every other property."""
    src, dst = new_bucket(moto), new_bucket(moto)
    expires = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    moto.client().put_object(
        Bucket=src, Key="k", Body=b"data", Expires=expires, CacheControl="max-age=60", Metadata={"owner": "x"}
    )
    other = dataclasses.replace(moto, access_key="another-account-key")
    with recorded(moto, monkeypatch, "src") as source, recorded(other, monkeypatch, "dst") as dest:
        operator = S3SyncOperator(
            task_id="sync", source=f"s3://{src}", dest=f"s3://{dst}", source_aws_conn_id="src", dest_aws_conn_id="dst"
        )
        assert operator.execute({})["copied"] == 1
    assert [client_of(headers) for headers in source.headers_of("GetObject", "HeadObject")] == ["awscrt"]
    assert [client_of(headers) for headers in dest.headers_of("PutObject", "HeadObject")] == ["awscrt"]
    written = moto.client().get_object(Bucket=dst, Key="k")
    assert (written["Expires"], written["CacheControl"], written["Metadata"]) == (expires, "max-age=60", {"owner": "x"})
    assert written["Body"].read() == b"data"


def test_a_download_with_exact_timestamps_from_a_server_with_milliseconds_settles(endpoints, tmp_path) -> None:
    """rclone's LastModified has milliseconds: the file gets them, so the next run finds the
    same time and downloads nothing (with whole seconds it would download every file every run)."""
    bucket = new_bucket(endpoints["rclone"])
    endpoints["rclone"].client().put_object(Bucket=bucket, Key="a.txt", Body=b"hello")
    runs = [
        sync(source=f"s3://{bucket}/", dest=str(tmp_path), source_aws_conn_id="s3_rclone", exact_timestamps=True)
        for _ in range(2)
    ]
    assert [run["downloaded"] for run in runs] == [1, 0]
    [listed] = endpoints["rclone"].client().list_objects_v2(Bucket=bucket)["Contents"]
    when = listed["LastModified"]
    assert (tmp_path / "a.txt").stat().st_mtime_ns == int(when.timestamp()) * 10**9 + when.microsecond * 1000
