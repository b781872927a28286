"""The CRT client against real servers (moto and rclone), directly and through the fault proxy."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airflow_s3sync.errors import S3RequestError
from airflow_s3sync.hooks import crt
from airflow_s3sync.hooks.backend import ObjectRef
from airflow_s3sync.hooks.crt import CrtClient, CrtSettings, crt_bucket_ok, crt_key_ok, encode_key
from tests.conftest import new_bucket
from tests.faults import FaultProxy
from tests.support import S3Server

#: Keys that paths, signing and listings get wrong when anything normalizes or encodes twice.
ODD_KEYS = ["a//b", "./x", "../y", "/lead", "dir/", "sp ace+plus%25", "ünï©ødé", "q?x#y", "tab\tkey", "a/./b/../c"]
#: rclone serves a directory tree: it refuses (or rewrites) these keys for every client, botocore's too.
RCLONE_CANNOT_STORE = {"a//b", "./x", "../y", "/lead", "dir/", "a/./b/../c"}
#: Answer headers that differ between two requests for the same object.
VOLATILE = {"date", "x-amzn-requestid", "x-amz-request-id", "x-amz-id-2", "x-amz-date", "connection"}
PROPERTIES = {
    "Content-Type": "text/csv",
    "Cache-Control": "max-age=60",
    "Content-Disposition": 'attachment; filename="r.csv"',
    "Content-Encoding": "identity",
    "Content-Language": "fr-CH",
    "x-amz-meta-colour": "blue",
    "x-amz-meta-Mixed-Case": "Value With Spaces",
}
EXPIRES = "Tue, 01 Jan 2030 00:00:00 GMT"


def settings(server: S3Server, endpoint_url: str | None = None, **limits: int) -> CrtSettings:
    return CrtSettings(
        endpoint_url or server.endpoint_url,
        server.region,
        lambda: (server.access_key, server.secret_key, None),
        **limits,  # type: ignore[arg-type]
    )


@pytest.fixture
def client(server: S3Server) -> Iterator[CrtClient]:
    with CrtClient(settings(server)) as crt_client:
        yield crt_client


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries 20 times sooner than in production, so that fault runs take seconds."""
    monkeypatch.setattr(crt, "_BACKOFF_BASE", 0.05)


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def stable(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in VOLATILE}


# ---------------------------------------------------------------------------------- pure functions


def test_every_utf8_key_can_be_carried_and_plain_bucket_names_only():
    assert all(crt_key_ok(key) for key in [*ODD_KEYS, "nl\nkey", "ctl\x01\x7f", "%", "😀", "x" * 1024])
    assert not crt_key_ok("")
    assert not crt_key_ok("bad\udcff")  # a lone surrogate has no UTF-8 bytes
    assert crt_bucket_ok("my.bucket-1") and crt_bucket_ok("legacy_Bucket")
    for bucket in [
        "arn:aws:s3:eu-west-1:123456789012:accesspoint/ap",
        "arn:aws:s3-object-lambda:eu-west-1:123456789012:accesspoint/ol",
        "ap-abcdefghijklmnop-s3alias",
        "ol-abcdef--op-s3",
        "data--euw1-az1--x-s3",
        "",
        "a/b",
    ]:
        assert not crt_bucket_ok(bucket), bucket


def test_keys_are_encoded_as_s3_signs_them():
    assert encode_key("a b/ü+%~-_.!*'()") == "a%20b/%C3%BC%2B%25~-_.%21%2A%27%28%29"
    assert encode_key("q?x#y\t") == "q%3Fx%23y%09"


def test_addresses_the_crt_cannot_carry_are_refused_before_any_request(moto):
    with CrtClient(settings(moto)) as crt_client:
        with pytest.raises(ValueError, match="cannot be addressed"):
            crt_client.head_object(ref=ObjectRef("arn:aws:s3:us-east-1:123456789012:accesspoint/ap", "k"))
    with pytest.raises(ValueError, match="endpoint"):
        CrtClient(settings(moto, "ftp://127.0.0.1:1"))


# -------------------------------------------------------------------------------- put, get, head


def test_put_writes_body_and_properties_and_get_and_head_answer_them(server, client):
    bucket = new_bucket(server)
    ref = ObjectRef(bucket, "dir/report.csv")
    data = b"a,b\n1,2\n"
    put = client.put_object(ref=ref, body=data, headers=PROPERTIES)
    assert put.status == 200 and put.headers["etag"] == md5_etag(data) and put.body == b""

    head = server.client().head_object(Bucket=bucket, Key=ref.key)
    assert head["ETag"] == md5_etag(data)
    assert (head["ContentType"], head["CacheControl"], head["ContentDisposition"]) == (
        "text/csv",
        "max-age=60",
        'attachment; filename="r.csv"',
    )
    assert (head["ContentEncoding"], head["ContentLanguage"]) == ("identity", "fr-CH")
    assert {k.lower(): v for k, v in head["Metadata"].items()} == {"colour": "blue", "mixed-case": "Value With Spaces"}

    got = client.get_object(ref=ref)
    assert got.status == 200 and got.body == data
    assert got.headers["etag"] == md5_etag(data) and got.headers["content-length"] == str(len(data))
    assert got.headers["x-amz-meta-colour"] == "blue" and got.headers["content-language"] == "fr-CH"
    headed = client.head_object(ref=ref)
    assert headed.body == b"" and headed.headers["etag"] == md5_etag(data)
    assert headed.headers["x-amz-meta-colour"] == "blue"


def test_put_expires_and_tagging_on_moto(moto):
    """rclone keeps neither Expires nor tags (it echoes x-amz-tagging back as a header)."""
    bucket = new_bucket(moto)
    ref = ObjectRef(bucket, "k")
    with CrtClient(settings(moto)) as crt_client:
        crt_client.put_object(ref=ref, body=b"x", headers={"Expires": EXPIRES, "x-amz-tagging": "team=data&tier=hot"})
        assert crt_client.get_object(ref=ref).headers["expires"] == EXPIRES
    boto = moto.client()
    assert boto.head_object(Bucket=bucket, Key="k")["ExpiresString"] == EXPIRES
    tags = boto.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]
    assert sorted((tag["Key"], tag["Value"]) for tag in tags) == [("team", "data"), ("tier", "hot")]


def test_get_and_head_answer_every_header_botocore_sees(server, client):
    bucket = new_bucket(server)
    boto = server.client(response_checksum_validation="when_required")
    boto.put_object(
        Bucket=bucket,
        Key="k",
        Body=b"payload",
        ContentType="text/plain",
        CacheControl="no-cache",
        Expires=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
        Metadata={"origin": "tests", "n": "1"},
    )
    ref = ObjectRef(bucket, "k")
    got = client.get_object(ref=ref)
    assert got.body == b"payload"
    assert stable(got.headers) == stable(boto.get_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"])
    head = client.head_object(ref=ref)
    assert stable(head.headers) == stable(boto.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"])
    assert got.headers["x-amz-meta-origin"] == "tests" and got.headers["cache-control"] == "no-cache"
    if server.name == "moto":
        assert got.headers["expires"] == head.headers["expires"] == EXPIRES


def test_if_match_on_moto(moto):
    """rclone ignores If-Match, so only moto can show a mismatch answered 412."""
    bucket = new_bucket(moto)
    ref = ObjectRef(bucket, "k")
    with CrtClient(settings(moto)) as crt_client:
        etag = crt_client.put_object(ref=ref, body=b"v1", headers={}).headers["etag"]
        assert crt_client.get_object(ref=ref, if_match=etag).body == b"v1"
        assert crt_client.head_object(ref=ref, if_match=etag).headers["etag"] == etag
        with pytest.raises(S3RequestError) as got:
            crt_client.get_object(ref=ref, if_match=md5_etag(b"other"))
        assert (got.value.operation, got.value.status, got.value.code) == ("GetObject", 412, "PreconditionFailed")
        with pytest.raises(S3RequestError) as headed:
            crt_client.head_object(ref=ref, if_match=md5_etag(b"other"))
        assert (headed.value.status, headed.value.code) == (412, "PreconditionFailed")


def test_object_lock_headers_and_default_retention_on_moto(moto):
    """PutObject carries the lock headers, and into a bucket with default retention it succeeds:
    S3 requires an integrity header there, and Content-MD5 is one."""
    boto = moto.client()
    bucket = f"lock-{os.urandom(6).hex()}"
    boto.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    boto.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    until = "2031-01-01T00:00:00.000Z"
    lock = {
        "x-amz-object-lock-mode": "COMPLIANCE",
        "x-amz-object-lock-retain-until-date": until,
        "x-amz-object-lock-legal-hold": "ON",
    }
    with CrtClient(settings(moto)) as crt_client:
        crt_client.put_object(ref=ObjectRef(bucket, "locked"), body=b"x", headers=lock)
        crt_client.put_object(ref=ObjectRef(bucket, "default"), body=b"y", headers={})
        got = crt_client.get_object(ref=ObjectRef(bucket, "locked")).headers
    head = boto.head_object(Bucket=bucket, Key="locked")
    assert (head["ObjectLockMode"], head["ObjectLockLegalHoldStatus"]) == ("COMPLIANCE", "ON")
    assert head["ObjectLockRetainUntilDate"] == datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC)
    assert got["x-amz-object-lock-mode"] == "COMPLIANCE" and got["x-amz-object-lock-legal-hold"] == "ON"
    assert boto.get_object(Bucket=bucket, Key="default")["Body"].read() == b"y"


# ------------------------------------------------------------------------------------------ copy


def test_copy_keeps_etag_properties_metadata_and_expires(server, client):
    bucket, other = new_bucket(server), new_bucket(server)
    boto = server.client()
    data = os.urandom(1000)
    source = ObjectRef(bucket, "src/ünï code.bin")
    client.put_object(ref=source, body=data, headers={**PROPERTIES, "Expires": EXPIRES})

    answer = client.copy_object(source=source, dest=ObjectRef(other, "dst/copy.bin"), headers={})
    assert answer.status == 200 and answer.headers["etag"] == md5_etag(data) and answer.body == b""
    src = boto.head_object(Bucket=bucket, Key=source.key)
    dst = boto.head_object(Bucket=other, Key="dst/copy.bin")
    fields = ["ETag", "ContentLength", "ContentType", "CacheControl", "ContentDisposition", "ContentLanguage"]
    assert [dst[field] for field in fields] == [src[field] for field in fields]
    assert dst["Metadata"].items() >= {k: v for k, v in src["Metadata"].items() if k.lower() != "mtime"}.items()
    if server.name == "moto":
        assert dst["ExpiresString"] == EXPIRES
    assert boto.get_object(Bucket=other, Key="dst/copy.bin")["Body"].read() == data

    replaced = {"x-amz-metadata-directive": "REPLACE", "Content-Type": "text/plain", "x-amz-meta-new": "yes"}
    client.copy_object(source=source, dest=ObjectRef(other, "replaced"), headers=replaced)
    head = client.head_object(ref=ObjectRef(other, "replaced")).headers
    assert head["content-type"] == "text/plain" and head["x-amz-meta-new"] == "yes"
    if server.name == "moto":  # rclone merges the old metadata into a REPLACE, for botocore too
        assert "x-amz-meta-colour" not in head


# ------------------------------------------------------------------------------------------ keys


def test_odd_keys_round_trip_byte_exactly(server, client):
    keys = [key for key in ODD_KEYS if server.name != "rclone" or key not in RCLONE_CANNOT_STORE]
    bucket = new_bucket(server)
    for key in keys:
        client.put_object(ref=ObjectRef(bucket, key), body=f"body of {key!r}".encode(), headers={})
    boto = server.client()
    listed = [item["Key"] for item in boto.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(keys)
    for key in keys:
        body = f"body of {key!r}".encode()
        assert boto.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        assert client.get_object(ref=ObjectRef(bucket, key)).body == body
        assert client.head_object(ref=ObjectRef(bucket, key)).headers["etag"] == md5_etag(body)
        copied = client.copy_object(source=ObjectRef(bucket, key), dest=ObjectRef(bucket, f"copy/{key}"), headers={})
        assert copied.headers["etag"] == md5_etag(body)
        assert boto.get_object(Bucket=bucket, Key=f"copy/{key}")["Body"].read() == body


# ----------------------------------------------------------------------------------------- errors


def test_missing_keys_and_buckets_are_404_errors(server, client):
    bucket = new_bucket(server)
    missing = ObjectRef(bucket, "no/such key")
    with pytest.raises(S3RequestError) as got:
        client.get_object(ref=missing)
    assert (got.value.operation, got.value.status, got.value.code) == ("GetObject", 404, "NoSuchKey")
    with pytest.raises(S3RequestError) as headed:
        client.head_object(ref=missing)
    assert (headed.value.operation, headed.value.status, headed.value.code) == ("HeadObject", 404, "NotFound")
    with pytest.raises(S3RequestError) as copied:
        client.copy_object(source=missing, dest=ObjectRef(bucket, "dst"), headers={})
    assert (copied.value.operation, copied.value.status, copied.value.code) == ("CopyObject", 404, "NoSuchKey")
    nowhere = ObjectRef(f"{bucket}-missing", "k")
    for call in (lambda: client.get_object(ref=nowhere), lambda: client.put_object(ref=nowhere, body=b"x", headers={})):
        with pytest.raises(S3RequestError) as error:
            call()
        assert (error.value.status, error.value.code) == (404, "NoSuchBucket")


def test_bad_digest_is_refused(rclone):
    """The server checks the body against Content-MD5: a corrupted upload is not stored (moto does
    not check)."""
    bucket = new_bucket(rclone)
    with CrtClient(settings(rclone)) as client, pytest.raises(S3RequestError) as error:
        client.put_object(ref=ObjectRef(bucket, "k"), body=b"x", headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})
    assert error.value.status == 400 and error.value.code in ("BadDigest", "InvalidDigest")
    assert "Contents" not in rclone.client().list_objects_v2(Bucket=bucket)


def test_no_credentials_in_error_text(rclone):
    """rclone checks signatures: a wrong secret is refused, and neither it nor the key and token
    appear in what the error says."""
    bucket = new_bucket(rclone)
    secret, token = "WRONG-secret-value-123", "session-token-value-456"
    wrong = CrtSettings(rclone.endpoint_url, rclone.region, lambda: (rclone.access_key, secret, token))
    texts = []
    with CrtClient(wrong) as crt_client:
        for call in (
            lambda: crt_client.put_object(ref=ObjectRef(bucket, "k"), body=b"x", headers={}),
            lambda: crt_client.head_object(ref=ObjectRef(bucket, "k")),
        ):
            with pytest.raises(S3RequestError) as error:
                call()
            assert error.value.status == 403
            texts.append("".join(traceback.format_exception(error.value)) + repr(error.value))
    with FaultProxy(rclone.endpoint_url, rate=1.0, seed=3, max_faults_per_request=9, kinds=["drop"]) as proxy:
        with CrtClient(settings(rclone, proxy.endpoint_url, max_attempts=1)) as crt_client:
            with pytest.raises(S3RequestError) as dropped:
                crt_client.get_object(ref=ObjectRef(bucket, "k"))
    texts.append("".join(traceback.format_exception(dropped.value)) + repr(dropped.value))
    for text in texts:
        for credential in (secret, token, rclone.secret_key, rclone.access_key):
            assert credential not in text


@contextmanager
def tls_front(upstream_url: str, tmp_path: Path, accepted: list[int]) -> Iterator[str]:
    """An https endpoint (a self-signed certificate for 127.0.0.1) relaying bytes to ``upstream_url``;
    ``accepted`` grows by one per connection."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    upstream = urlsplit(upstream_url)
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            try:
                client = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            server = socket.create_connection((upstream.hostname, upstream.port))
            threading.Thread(target=pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=pipe, args=(server, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_https_endpoints_speak_tls_and_verify_the_certificate(rclone, tmp_path):
    """Through TLS to rclone: a self-signed certificate is refused, not retried (the CRT's TLS
    library takes 10-30 s to fail a handshake, on purpose), unless ``verify_tls`` is off."""
    bucket = new_bucket(rclone)
    accepted: list[int] = []
    with tls_front(rclone.endpoint_url, tmp_path, accepted) as endpoint:
        with CrtClient(settings(rclone, endpoint, max_attempts=3)) as crt_client:
            with pytest.raises(S3RequestError) as error:
                crt_client.head_object(ref=ObjectRef(bucket, "k"))
        assert (error.value.status, error.value.code, len(accepted)) == (0, "AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE", 1)
        unverified = dataclasses.replace(settings(rclone, endpoint), verify_tls=False)
        with CrtClient(unverified) as crt_client:
            crt_client.put_object(ref=ObjectRef(bucket, "k"), body=b"over tls", headers={})
            assert crt_client.get_object(ref=ObjectRef(bucket, "k")).body == b"over tls"
    assert rclone.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"over tls"


def test_closed_client_refuses_requests(moto):
    crt_client = CrtClient(settings(moto))
    crt_client.close()
    crt_client.close()
    with pytest.raises(RuntimeError, match="closed"):
        crt_client.head_object(ref=ObjectRef("bucket", "k"))


# ------------------------------------------------------------------------------- sizes, threads


def test_empty_and_five_mib_objects(server, client):
    bucket = new_bucket(server)
    big = os.urandom(5 * 1024 * 1024)
    for key, data in (("empty", b""), ("big", big)):
        ref = ObjectRef(bucket, key)
        assert client.put_object(ref=ref, body=data, headers={}).headers["etag"] == md5_etag(data)
        assert client.get_object(ref=ref).body == data
        assert client.head_object(ref=ref).headers["content-length"] == str(len(data))
        assert client.copy_object(source=ref, dest=ObjectRef(bucket, f"{key}-copy"), headers={}).headers[
            "etag"
        ] == md5_etag(data)
        assert server.client().get_object(Bucket=bucket, Key=f"{key}-copy")["Body"].read() == data


def exercise(server: S3Server, crt_client: CrtClient, count: int) -> None:
    """PUT, HEAD, GET and COPY ``count`` objects from 16 threads; check every byte with botocore."""
    bucket = new_bucket(server)
    bodies = {f"obj/{n:04d} ü": os.urandom(n % 7 * 1000) for n in range(count)}

    def one(key: str) -> None:
        data = bodies[key]
        ref = ObjectRef(bucket, key)
        assert crt_client.put_object(ref=ref, body=data, headers={"x-amz-meta-n": key[4:8]}).headers[
            "etag"
        ] == md5_etag(data)
        assert crt_client.head_object(ref=ref).headers["content-length"] == str(len(data))
        got = crt_client.get_object(ref=ref)
        assert got.body == data and got.headers["x-amz-meta-n"] == key[4:8]
        copied = crt_client.copy_object(source=ref, dest=ObjectRef(bucket, f"copy/{key}"), headers={})
        assert copied.headers["etag"] == md5_etag(data)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, bodies))
    boto = server.client(response_checksum_validation="when_required")
    listed = {
        item["Key"]: '"' + item["ETag"].strip('"') + '"'  # rclone lists some ETags unquoted
        for page in boto.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page["Contents"]
    }
    assert listed == {
        **{key: md5_etag(data) for key, data in bodies.items()},
        **{f"copy/{key}": md5_etag(data) for key, data in bodies.items()},
    }
    for key in list(bodies)[:: max(count // 20, 1)]:
        assert boto.get_object(Bucket=bucket, Key=f"copy/{key}")["Body"].read() == bodies[key]


def test_two_hundred_objects_from_sixteen_threads(server, client):
    exercise(server, client, 200)


def test_in_flight_requests_are_capped(rclone):
    """Callers beyond ``max_in_flight`` wait: the proxy never sees more requests at once."""
    seen, lock, active = [0], threading.Lock(), [0]
    with FaultProxy(rclone.endpoint_url, rate=0.0, seed=1, latency=0.05) as proxy:
        crt_client = CrtClient(settings(rclone, proxy.endpoint_url, max_in_flight=3))
        bucket = new_bucket(rclone)
        real_once = crt_client._once

        def counting_once(*args, **kwargs):
            with lock:
                active[0] += 1
                seen[0] = max(seen[0], active[0])
            try:
                return real_once(*args, **kwargs)
            finally:
                with lock:
                    active[0] -= 1

        crt_client._once = counting_once  # type: ignore[method-assign]
        with ThreadPoolExecutor(12) as pool:
            list(
                pool.map(
                    lambda n: crt_client.put_object(ref=ObjectRef(bucket, f"k{n}"), body=b"x", headers={}), range(24)
                )
            )
        crt_client.close()
    assert seen[0] == 3 and proxy.requests == 24


# ------------------------------------------------------------------------------- faults, retries


@pytest.mark.usefixtures("quick_backoff")
def test_faults_are_retried_and_everything_arrives_intact(server):
    """500s, 503s, dropped connections and truncated bodies on 30 % of requests: every object is
    still written, read and copied exactly, and every 503 was reported as throttling."""
    throttled = []
    with FaultProxy(server.endpoint_url, rate=0.3, seed=7) as proxy:
        crt_settings = settings(server, proxy.endpoint_url, max_attempts=5)
        with CrtClient(crt_settings, on_throttle=lambda: throttled.append(1)) as crt_client:
            exercise(server, crt_client, 100)
    counts = proxy.counts()
    assert all(counts[kind] > 0 for kind in ("500", "503", "drop", "truncate")), counts
    assert len(throttled) == counts["503"]


@pytest.mark.usefixtures("quick_backoff")
@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("503", 503, "SlowDown"), ("500", 500, "InternalError"), ("drop", 0, "AWS_IO_SOCKET_CLOSED")],
)
def test_a_fault_that_persists_fails_after_max_attempts_with_the_last_status(rclone, kind, status, code):
    bucket = new_bucket(rclone)
    throttled = []
    with FaultProxy(rclone.endpoint_url, rate=1.0, seed=1, max_faults_per_request=99, kinds=[kind]) as proxy:
        crt_settings = settings(rclone, proxy.endpoint_url, max_attempts=4)
        with CrtClient(crt_settings, on_throttle=lambda: throttled.append(1)) as crt_client:
            with pytest.raises(S3RequestError) as error:
                crt_client.put_object(ref=ObjectRef(bucket, "k"), body=b"x", headers={})
    assert (error.value.operation, error.value.status, error.value.code) == ("PutObject", status, code)
    assert proxy.requests == 4
    assert len(throttled) == (4 if kind == "503" else 0)


def test_client_errors_are_not_retried(rclone):
    bucket = new_bucket(rclone)
    with FaultProxy(rclone.endpoint_url, rate=0.0, seed=1) as proxy:
        with CrtClient(settings(rclone, proxy.endpoint_url)) as crt_client:
            with pytest.raises(S3RequestError):
                crt_client.get_object(ref=ObjectRef(bucket, "missing"))
    assert proxy.requests == 1


@pytest.mark.parametrize(
    "when",
    [
        datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC),
    ],
)
def test_request_headers_are_what_botocore_sends(when):
    """The CRT backend's headers of botocore's request arguments, against botocore's own serialiser."""
    from botocore.serialize import Serializer

    from airflow_s3sync.hooks.crt import request_headers

    headers = request_headers(
        {
            "ObjectLockRetainUntilDate": when,
            "Expires": when,
            "BucketKeyEnabled": True,
            "Metadata": {"owner": "data"},
            "StorageClass": "STANDARD_IA",
        }
    )
    assert headers["x-amz-object-lock-retain-until-date"] == Serializer()._timestamp_iso8601(when)
    assert headers["Expires"] == Serializer()._timestamp_rfc822(when)
    assert headers["x-amz-server-side-encryption-bucket-key-enabled"] == "true"
    assert headers["x-amz-meta-owner"] == "data" and headers["x-amz-storage-class"] == "STANDARD_IA"
