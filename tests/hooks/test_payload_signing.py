"""Over plain HTTP, a body that carries a checksum header is signed as botocore signs it over
HTTPS (``UNSIGNED-PAYLOAD``); other bodies, and every body when the connection asks, keep the
SHA-256 signature. Real moto server, behind a recording proxy."""

from __future__ import annotations

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
