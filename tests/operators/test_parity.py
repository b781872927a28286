"""Parity with the real ``aws s3 sync`` (PyPI awscli), measured on identical scenarios.

Uploads and downloads run on both moto's server and ``rclone serve s3``; S3 to S3 on moto.

Each case builds the same starting state twice — one copy for the AWS CLI, one for the
operator — on the same moto server, runs both, and asserts the same final state and the
same action lines (bucket and directory names aside). The scenarios mix names whose order
differs between a naive directory walk and S3 key order, same-size files with newer, older
and equal times, resized files, new files and destination-only objects.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_s3sync import S3SyncOperator
from tests.conftest import new_bucket
from tests.support import BIN, S3Server

NAMES = [
    "a!",
    "a-b.txt",
    "a.txt",
    "a/b.txt",
    "a/c/d.txt",
    "a0",
    "ab",
    "A.txt",
    "b c.txt",
    "sub/x.jpg",
    "sub/deep/y.txt",
    "sub-file.jpg",
    "z.jpg",
    "é.txt",
    "logs/1.log",
    "logs/2.jpg",
]
# Content relation and which side is newer.
STATES = ["new", "dest_only", "same_older", "same_newer", "diff_newer", "diff_older", "diff_equal", "resized"]
HOUR = 3600


@dataclass(frozen=True)
class Item:
    name: str
    state: str

    @property
    def src_content(self) -> bytes | None:
        return None if self.state == "dest_only" else f"src:{self.name}".encode()

    @property
    def dst_content(self) -> bytes | None:
        if self.state == "new":
            return None
        if self.state in ("same_older", "same_newer"):
            return f"src:{self.name}".encode()
        if self.state == "resized":
            return f"src:{self.name}-longer".encode()
        return f"dst:{self.name}".encode()

    @property
    def src_newer(self) -> int:
        """+1 when the source is newer, -1 when older, 0 when equal."""
        return {"same_newer": 1, "diff_newer": 1, "diff_equal": 0}.get(self.state, -1)


def scenario(seed: int) -> list[Item]:
    names = NAMES[:]
    random.Random(seed).shuffle(names)
    return [Item(name, STATES[i % len(STATES)]) for i, name in enumerate(names)]


def write_tree(root: Path, items: list[Item], content, mtime) -> Path:
    """Write ``content(item)`` for every item that has one, with the mtime ``mtime(item)``."""
    root.mkdir()
    for item in items:
        body = content(item)
        if body is None:
            continue
        path = root / item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        os.utime(path, (mtime(item), mtime(item)))
    return root


def last_modified(server: S3Server, bucket: str) -> dict[str, float]:
    contents = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {obj["Key"]: obj["LastModified"].timestamp() for obj in contents}


def bucket_state(server: S3Server, bucket: str) -> dict[str, bytes]:
    client = server.client()
    contents = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {obj["Key"]: client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read() for obj in contents}


def tree_state(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        path.relative_to(root).as_posix(): (path.read_bytes(), int(path.stat().st_mtime))
        for path in root.rglob("*")
        if path.is_file()
    }


def put_all(server: S3Server, bucket: str, contents: dict[str, bytes]) -> None:
    client = server.client()
    for key, body in contents.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def cli_flags(options: dict) -> list[str]:
    flags = ["--delete"] if options.get("delete") else []
    for kind, pattern in options.get("filters", ()):
        flags += [f"--{kind}", pattern]
    flags += ["--size-only"] if options.get("size_only") else []
    flags += ["--exact-timestamps"] if options.get("exact_timestamps") else []
    flags += ["--dryrun"] if options.get("dryrun") else []
    return flags


def run_cli(server: S3Server, source: str, dest: str, options: dict, cwd: Path) -> list[str]:
    command = [str(BIN / "aws"), "s3", "sync", source, dest, "--endpoint-url", server.endpoint_url, "--no-progress"]
    result = subprocess.run(
        [*command, *cli_flags(options)],
        cwd=cwd,
        env=server.cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.strip()]


def run_operator(source: str, dest: str, options: dict, cwd: Path, logs, monkeypatch) -> tuple[list[str], dict]:
    monkeypatch.chdir(cwd)
    logs.clear()
    summary = S3SyncOperator(task_id="sync", source=source, dest=dest, **options).execute({})
    return logs.actions(), summary


def verbs(lines: list[str]) -> Counter:
    return Counter(line.removeprefix("(dryrun) ").split(":", 1)[0] for line in lines)


def assert_same_actions(cli: list[str], ours: list[str], summary: dict, replacements: dict[str, str]) -> None:
    def normal(lines: list[str]) -> Counter:
        out = []
        for line in lines:
            for old, new in replacements.items():
                line = line.replace(old, new)
            out.append(line)
        return Counter(out)

    assert normal(ours) == normal(cli)
    counts = verbs(cli)
    assert summary["uploaded"] == counts["upload"]
    assert summary["copied"] == counts["copy"]
    assert summary["downloaded"] == counts["download"]
    assert summary["deleted"] == counts["delete"]
    assert summary["failed"] == 0


FILTERS = [("exclude", "*.jpg"), ("include", "sub/*"), ("exclude", "logs/*")]
OPTIONS = {
    "default": {},
    "delete": {"delete": True},
    "filters_delete": {"delete": True, "filters": FILTERS},
    "size_only": {"size_only": True},
    "exact_timestamps": {"exact_timestamps": True},
    "dryrun_delete": {"dryrun": True, "delete": True},
}


@pytest.mark.parametrize("case", list(OPTIONS), ids=list(OPTIONS))
def test_upload_parity(case, aws_default, tmp_path, logs, monkeypatch):
    options = OPTIONS[case]
    items = scenario(seed=len(case))
    long_ago = int(time.time()) - 2 * HOUR  # one value for both copies: they must start identical
    runs = {}
    for side in ("cli", "ours"):
        bucket = new_bucket(aws_default)
        put_all(aws_default, bucket, {i.name: i.dst_content for i in items if i.dst_content is not None})
        stamps = last_modified(aws_default, bucket)
        root = write_tree(
            tmp_path / side,
            items,
            lambda i: i.src_content,
            lambda i, stamps=stamps: stamps.get(i.name, long_ago) + i.src_newer * HOUR,
        )
        runs[side] = (bucket, root)

    cli_bucket, cli_root = runs["cli"]
    our_bucket, our_root = runs["ours"]
    cli_lines = run_cli(aws_default, ".", f"s3://{cli_bucket}", options, cli_root)
    our_lines, summary = run_operator(".", f"s3://{our_bucket}", options, our_root, logs, monkeypatch)

    assert cli_lines, "the scenario must make the CLI do something"
    assert_same_actions(cli_lines, our_lines, summary, {cli_bucket: "BUCKET", our_bucket: "BUCKET"})
    assert bucket_state(aws_default, our_bucket) == bucket_state(aws_default, cli_bucket)


@pytest.mark.parametrize("case", list(OPTIONS), ids=list(OPTIONS))
def test_download_parity(case, aws_default, tmp_path, logs, monkeypatch):
    options = OPTIONS[case]
    items = scenario(seed=100 + len(case))
    long_ago = int(time.time()) - 2 * HOUR  # one value for both copies: they must start identical
    bucket = new_bucket(aws_default)
    put_all(aws_default, bucket, {i.name: i.src_content for i in items if i.src_content is not None})
    stamps = last_modified(aws_default, bucket)
    roots = {
        side: write_tree(
            tmp_path / side,
            items,
            lambda i: i.dst_content,
            lambda i: int(stamps.get(i.name, long_ago)) - i.src_newer * HOUR,
        )
        for side in ("cli", "ours")
    }

    cli_lines = run_cli(aws_default, f"s3://{bucket}", ".", options, roots["cli"])
    our_lines, summary = run_operator(f"s3://{bucket}", ".", options, roots["ours"], logs, monkeypatch)

    assert cli_lines
    assert_same_actions(cli_lines, our_lines, summary, {})
    assert tree_state(roots["ours"]) == tree_state(roots["cli"])


COPY_OPTIONS = {k: OPTIONS[k] for k in ("default", "filters_delete", "size_only", "dryrun_delete")}


@pytest.mark.parametrize("case", list(COPY_OPTIONS), ids=list(COPY_OPTIONS))
def test_copy_parity(case, moto_default, tmp_path, logs, monkeypatch):
    options = COPY_OPTIONS[case]
    # Equal times cannot be arranged between two buckets; those items become "source older".
    items = [Item(i.name, "diff_older" if i.state == "diff_equal" else i.state) for i in scenario(seed=200 + len(case))]
    source = new_bucket(moto_default)
    dests = [new_bucket(moto_default), new_bucket(moto_default)]

    def put_dest(wanted) -> None:
        for dest in dests:
            put_all(moto_default, dest, {i.name: i.dst_content for i in items if i.dst_content and wanted(i)})

    # S3 times have whole seconds: write in three phases a second apart.
    put_dest(lambda i: i.src_newer > 0)
    time.sleep(1.1)
    put_all(moto_default, source, {i.name: i.src_content for i in items if i.src_content is not None})
    time.sleep(1.1)
    put_dest(lambda i: i.src_newer <= 0)

    cli_lines = run_cli(moto_default, f"s3://{source}", f"s3://{dests[0]}", options, tmp_path)
    our_lines, summary = run_operator(f"s3://{source}", f"s3://{dests[1]}", options, tmp_path, logs, monkeypatch)

    assert cli_lines
    assert_same_actions(cli_lines, our_lines, summary, {dests[0]: "DEST", dests[1]: "DEST"})
    assert bucket_state(moto_default, dests[1]) == bucket_state(moto_default, dests[0])
