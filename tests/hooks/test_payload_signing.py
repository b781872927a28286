"""Over plain HTTP, a body that carries a checksum header is signed as botocore signs it over
HTTPS (``UNSIGNED-PAYLOAD``); other bodies, and every body when the connection asks, keep the
SHA-256 signature. Real moto server, behind a recording proxy."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re

import pytest

from airflow_s3sync.hooks.s3 import S3SyncHook
from tests.conftest import new_bucket
from tests.support import recorded

MIB = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def content_sha256(headers: dict[str, str]) -> str:
    return next(value for name, value in headers.items() if name.lower() == "x-amz-content-sha256")


@pytest.mark.parametrize(
    ("extra", "checksummed_unsigned"),
    [
        ({}, True),
        ({"config_kwargs": {"s3": {"payload_signing_enabled": True}}}, False),
        ({"config_kwargs": {"request_checksum_calculation": "when_required"}}, False),
    ],
    ids=["default", "signing-asked", "no-checksums"],
)
def test_checksummed_bodies_go_unsigned_over_plain_http(moto, monkeypatch, tmp_path, extra, checksummed_unsigned):
    bucket = new_bucket(moto)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * MIB))
    with recorded(moto, monkeypatch, "aws_default", **extra) as proxy:
        hook = S3SyncHook(transfer_config_args={"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB})
        hook.load_bytes(b"payload", key="small", bucket_name=bucket)
        hook.load_file(str(big), key="big", bucket_name=bucket)
    sent = {operation: [] for operation in ("PutObject", "UploadPart", "CompleteMultipartUpload")}
    for operation, headers in proxy.sent:
        if operation in sent:
            sent[operation].append(content_sha256(headers))
    assert len(sent["PutObject"]) == 1 and len(sent["UploadPart"]) == 2 and len(sent["CompleteMultipartUpload"]) == 1
    for value in sent["PutObject"] + sent["UploadPart"]:
        assert (value == "UNSIGNED-PAYLOAD") if checksummed_unsigned else _SHA256.match(value), value
    assert _SHA256.match(sent["CompleteMultipartUpload"][0])  # its XML body carries no checksum header
    client = moto.client()
    assert client.get_object(Bucket=bucket, Key="small")["Body"].read() == b"payload"
    assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == big.read_bytes()


class CountedReads(io.BytesIO):
    """A source stream that counts the reads made of it."""

    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def test_a_streamed_put_is_unsigned_without_a_crc_and_reads_its_source_a_mib_at_a_time(moto, monkeypatch):
    """``put_stream``: Content-MD5 is its integrity header (no CRC32 that botocore would have to
    read the body for, no SHA-256 payload signature), and its source is read in 1 MiB pieces
    however little the HTTP connection asks for (16 KiB)."""
    from airflow_s3sync.hooks.backend import ObjectRef
    from airflow_s3sync.hooks.botocore_backend import ONE_PUT_READ

    bucket = new_bucket(moto)
    data = os.urandom(3 * MIB + 5)
    source = CountedReads(data)
    with recorded(moto, monkeypatch, "aws_default") as proxy:
        backend = S3SyncHook().backend
        written = backend.put_stream(
            dest=ObjectRef(bucket, "k"),
            stream=source,
            size=len(data),
            md5=hashlib.md5(data).hexdigest(),
            extra_args={},
            progress=lambda count: None,
        )
    [headers] = [headers for operation, headers in proxy.sent if operation == "PutObject"]
    assert content_sha256(headers) == "UNSIGNED-PAYLOAD"
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert not any(name.startswith("x-amz-checksum") for name in headers)
    assert ONE_PUT_READ == MIB and source.reads <= 5  # 3 MiB + 5 bytes: 4 pieces and the empty read
    assert written.etag == f'"{hashlib.md5(data).hexdigest()}"'
    assert moto.client().get_object(Bucket=bucket, Key="k")["Body"].read() == data
