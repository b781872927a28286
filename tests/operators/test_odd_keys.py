"""Keys a native object_store client would rewrite or reject, and keys that need escaping, against ``aws s3 sync``.

obstore (Rust object_store) turns ``dir/`` into ``dir`` and ``/x`` into ``x``, and rejects keys with
``//``, ``.`` or ``..`` segments or control characters. Such keys must go through botocore and give
exactly what ``aws s3 sync`` gives. Each test builds one scenario of such keys, plus legal keys that
need URL, XML or shell escaping, runs the real CLI and the operator on identical copies of it, and
compares the action lines, the destination's keys (or files) and their bytes; then the operator runs
again and must transfer nothing.

rclone serve s3 stores none of ``a//b``, ``./x``, ``x/./y``, ``x/../y``, ``/x`` (InvalidArgument:
"Object name contains unsupported characters") and stores ``dir/`` as ``dir``: against rclone the
scenarios keep to the keys it stores as given (:data:`ESCAPED`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import LogLines, new_bucket, write
from tests.operators.test_parity import (
    assert_same_actions,
    bucket_state,
    last_modified,
    put_all,
    run_operator,
    tree_state,
)
from tests.support import BIN, S3Server, use_connection

#: Keys (below the synced prefix) that are not canonical paths: obstore rewrites or rejects them.
NON_CANONICAL = [
    "a//b.txt",
    "dir/",  # with data: an object, not a directory marker
    "./x.txt",
    "x/./y.txt",
    "x/../y.txt",
    "/lead.txt",  # below ``data/``: the key ``data//lead.txt``; at the bucket root: ``/lead.txt``
    "../up.txt",
]
#: Legal, canonical keys that are odd or need escaping somewhere (URLs, CopySource, XML, logs);
#: obstore rejects the control characters, and must carry the others exactly.
ESCAPED = [
    "ctl\x01.txt",
    "tab\there.txt",
    "sp ace.txt",
    "pct%20.txt",
    "hash#.txt",
    "q?.txt",
    "plus+.txt",
    "tilde~.txt",
    "\u00fcn\u00ef/\u00e7\u00f8d\u00e9.txt",
    "star*.txt",
    "amp&lt;.txt",
    "back\\slash.txt",
    "..foo/bar.txt",  # ``..foo`` is no ``..`` segment
    ".hidden",
    "plain.txt",
]
#: A zero-size key ending in ``/``: a directory marker, which every sync ignores on both sides.
MARKER = "marker/"
#: Destination-only objects that ``delete=True`` removes (and a marker it leaves alone).
DEST_ONLY_ODD = ["gone//x.txt", "gone/./y.txt", "gone/", "gone/../z.txt"]
DEST_ONLY_ESCAPED = ["gone\x02.txt", "gone q?.txt", "gone%2F.txt", "gone/\u00e9#.txt"]
DEST_MARKER = "gone-marker/"

#: Download: what the operator says instead of writing keys that are not canonical paths, where
#: ``aws s3 sync`` writes them onto another key's file (README, "Compared with aws s3 sync": a
#: deliberate difference, also in test_safety.py). ``../up.txt`` is the one the CLI refuses too,
#: with the same line.
NOT_CANONICAL = "Its key is not a canonical path"
DOWNLOAD_REFUSALS = {
    "a//b.txt": NOT_CANONICAL,
    "dir/": NOT_CANONICAL,
    "./x.txt": NOT_CANONICAL,
    "x/./y.txt": NOT_CANONICAL,
    "x/../y.txt": NOT_CANONICAL,
    "/lead.txt": "File references an absolute path.",
    "../up.txt": "File references a parent directory.",
}
#: Where ``aws s3 sync`` writes the keys the operator refuses (``dir/`` fails: it is a directory).
CLI_DOWNLOAD_ALIASES = {
    "a//b.txt": "a/b.txt",
    "./x.txt": "x.txt",
    "x/./y.txt": "x/y.txt",
    "x/../y.txt": "y.txt",
    "/lead.txt": "lead.txt",
}

#: Upload: local names that are legal on Linux but odd; ``d x.txt``, ``d#.txt``, ``d.txt`` and
#: ``d\x01.txt`` sort between ``d`` and ``d/`` in S3 key order, the order the merge needs.
LOCAL_NAMES = [
    "ctl\x01.txt",
    "tab\there.txt",
    "pct%41.txt",
    "hash#.txt",
    "q?.txt",
    "sp ace.txt",
    "star*.txt",
    "back\\slash.txt",
    "\u00fcn\u00ef/\u00e7\u00f8d\u00e9.txt",
    ".hidden",
    "..foo/bar.txt",
    "..foo/.x",
    "d/f.txt",
    "d x.txt",
    "d#.txt",
    "d.txt",
    "d\x01.txt",
]


def body(key: str) -> bytes:
    """Distinct bytes (and sizes) for every key."""
    return f"body of {key!r}".encode()


def aws_sync(server: S3Server, source: str, dest: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``aws s3 sync --delete`` against ``server``; the caller checks the exit code."""
    command = [str(BIN / "aws"), "s3", "sync", source, dest, "--delete", "--endpoint-url", server.endpoint_url]
    return subprocess.run(
        [*command, "--no-progress"], cwd=cwd, env=server.cli_env(), capture_output=True, text=True, timeout=300
    )


def lines(text: str) -> list[str]:
    """The non-blank lines of CLI output."""
    return [line for line in text.splitlines() if line.strip()]


def warnings_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The CLI's ``warning: ...`` lines (it prints them on stderr)."""
    return [line for line in lines(result.stdout + "\n" + result.stderr) if line.startswith("warning: ")]


def sync_warnings(logs: LogLines) -> list[str]:
    """The operator's ``warning: ...`` lines, as the CLI prints them. Other warnings are not
    compared: Airflow's about running outside a task runner, and the operator's own when a
    DeleteObjects body with a control character is refused as malformed XML (moto, rclone) and the
    keys are then deleted one by one (README: "a DeleteObjects request refused as a whole")."""
    return [line for line in logs.at("warning") if line.startswith("warning: ")]


def local_display(path: str) -> str:
    """How ``aws s3 sync`` prints a path below ``.``: ``./a.txt`` but ``sub/a.txt``."""
    return path if "/" in path else f"./{path}"


def assert_nothing_transferred(summary: dict, actions: list[str]) -> None:
    counts = {name: summary[name] for name in ("uploaded", "copied", "downloaded", "deleted", "failed")}
    assert counts == dict.fromkeys(counts, 0), actions
    assert actions == []


def source_keys(server_name: str) -> dict[str, bytes]:
    """The source objects below the synced prefix, for a server of that name."""
    keys = ESCAPED if server_name == "rclone" else [*NON_CANONICAL, *ESCAPED]
    return {**{key: body(key) for key in keys}, **({} if server_name == "rclone" else {MARKER: b""})}


def dest_objects(server_name: str, prefix: str, source: dict[str, bytes]) -> dict[str, bytes]:
    """The destination's starting objects: some source keys up to date, some changed, some dest-only."""
    keys = DEST_ONLY_ESCAPED if server_name == "rclone" else [*DEST_ONLY_ODD, *DEST_ONLY_ESCAPED]
    state = {prefix + key: b"old " + body(key) for key in keys}
    if server_name != "rclone":
        state[prefix + DEST_MARKER] = b""
    for n, key in enumerate(k for k in source if k != MARKER):
        if n % 3 == 0:
            state[prefix + key] = source[key]  # written after the source: up to date
        elif n % 3 == 1:
            state[prefix + key] = b"changed " + source[key]  # another size: transferred
    return state


@pytest.fixture
def connections(moto: S3Server, rclone: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, S3Server]:
    """``moto``, ``rclone``, and ``moto_other``: moto under other credentials (so copies stream)."""
    use_connection(monkeypatch, "moto", moto.connection_json())
    use_connection(monkeypatch, "rclone", rclone.connection_json())
    other = json.loads(moto.connection_json())
    other["login"] = "another-account-key"
    use_connection(monkeypatch, "moto_other", json.dumps(other))
    return {"moto": moto, "rclone": rclone, "moto_other": moto}


@pytest.mark.parametrize(
    ("source_name", "dest_name", "prefix"),
    [
        ("moto", "moto", "data/"),  # one connection: server-side CopyObject
        ("moto", "moto", ""),  # the bucket root: ``/lead.txt`` is the key itself
        ("rclone", "rclone", "data/"),
        ("moto", "moto_other", "data/"),  # other credentials: streamed through the worker
        ("moto", "rclone", "data/"),  # two endpoints: streamed
        ("rclone", "moto", "data/"),
    ],
    ids=["moto", "moto-root", "rclone", "moto-other-credentials", "moto-to-rclone", "rclone-to-moto"],
)
def test_copy(connections, source_name, dest_name, prefix, tmp_path, logs, monkeypatch):
    """S3 to S3. The reference is ``aws s3 sync`` between two buckets of the source's server (the CLI
    cannot sync between endpoints): the operator's destination must end up with the same keys and
    bytes, and it must log the same lines (bucket names aside)."""
    source_server, dest_server = connections[source_name], connections[dest_name]
    # What both endpoints store: the keys rclone stores as given when either side is rclone.
    stored_by = "rclone" if "rclone" in (source_name, dest_name) else "moto"
    source = source_keys(stored_by)
    src = new_bucket(source_server)
    put_all(source_server, src, {prefix + key: data for key, data in source.items()})
    if source_name == "rclone":
        time.sleep(1.1)  # rclone keeps sub-second times, moto whole seconds: destinations written later are newer
    cli_dest, our_dest = new_bucket(source_server), new_bucket(dest_server)
    put_all(source_server, cli_dest, dest_objects(stored_by, prefix, source))
    put_all(dest_server, our_dest, dest_objects(stored_by, prefix, source))

    cli = aws_sync(source_server, f"s3://{src}/{prefix}", f"s3://{cli_dest}/{prefix}", tmp_path)
    assert cli.returncode == 0, cli.stderr
    options = {"delete": True, "source_aws_conn_id": source_name, "dest_aws_conn_id": dest_name}
    ours, summary = run_operator(
        f"s3://{src}/{prefix}", f"s3://{our_dest}/{prefix}", options, tmp_path, logs, monkeypatch
    )

    assert lines(cli.stdout)
    assert_same_actions(lines(cli.stdout), ours, summary, {cli_dest: "DEST", our_dest: "DEST"})
    assert warnings_of(cli) == sync_warnings(logs) == []
    expected = bucket_state(source_server, cli_dest)
    assert bucket_state(dest_server, our_dest) == expected
    # Each key as it is, with its bytes. Markers are neither copied nor deleted; the non-empty
    # ``dir/`` and ``gone/`` are objects like any other.
    markers = {prefix + DEST_MARKER: b""} if stored_by == "moto" else {}
    assert expected == {**{prefix + k: v for k, v in source.items() if k != MARKER}, **markers}

    again, summary = run_operator(
        f"s3://{src}/{prefix}", f"s3://{our_dest}/{prefix}", options, tmp_path, logs, monkeypatch
    )
    assert_nothing_transferred(summary, again)


@pytest.mark.parametrize(("server_name", "prefix"), [("moto", "data/"), ("moto", ""), ("rclone", "data/")])
def test_download(connections, server_name, prefix, tmp_path, logs, monkeypatch):
    """S3 to a local directory. Canonical keys: the same lines, files, bytes and times as ``aws s3
    sync``. Keys that are not canonical paths: the operator's documented refusal (a warning each,
    nothing written), where the CLI writes them onto other names or fails (``dir/``)."""
    server = connections[server_name]
    source = source_keys(server_name)
    bucket = new_bucket(server)
    put_all(server, bucket, {prefix + key: data for key, data in source.items()})
    # One unrelated object outside the prefix, which a prefix sync must not see.
    if prefix:
        put_all(server, bucket, {"data.txt": b"outside the prefix"})
    stamps = last_modified(server, bucket)
    roots = {}
    for side in ("cli", "ours"):
        roots[side] = tmp_path / side
        for n, key in enumerate(k for k in ESCAPED if k in source):
            if n % 3 == 0:  # the object's bytes and time: up to date
                path = write(roots[side] / key, source[key].decode())
                os.utime(path, (stamps[prefix + key], stamps[prefix + key]))
            elif n % 3 == 1:  # another size: downloaded
                write(roots[side] / key, "changed " + source[key].decode())
        for name in ("gone\x02.txt", "gone q?.txt", ".gone", "gone dir/x#.txt"):
            write(roots[side] / name, "dest only")

    cli = aws_sync(server, f"s3://{bucket}/{prefix}", ".", roots["cli"])
    options = {"delete": True, "source_aws_conn_id": server_name}
    ours, summary = run_operator(f"s3://{bucket}/{prefix}", ".", options, roots["ours"], logs, monkeypatch)

    refused = {key: reason for key, reason in DOWNLOAD_REFUSALS.items() if key in source}
    aliases = {key: path for key, path in CLI_DOWNLOAD_ALIASES.items() if key in source}
    src_url = f"s3://{bucket}/{prefix}"
    cli_lines = lines(cli.stdout)
    # The CLI writes the aliased keys elsewhere and fails on ``dir/`` (exit code 1); everything else
    # it does must be exactly what the operator does.
    cli_refused_lines = [
        line for line in cli_lines if any(line.startswith(f"download: {src_url}{key} to ") for key in refused)
    ]
    assert sorted(cli_refused_lines) == sorted(
        f"download: {src_url}{key} to {local_display(path)}" for key, path in aliases.items()
    )
    if "dir/" in source:
        failures = [line for line in lines(cli.stderr) if "failed" in line]
        assert cli.returncode == 1 and len(failures) == 1, cli.stderr
        assert failures[0].startswith(f"download failed: {src_url}dir/ to "), failures
    else:
        assert cli.returncode == 0, cli.stderr
    common = [line for line in cli_lines if line not in cli_refused_lines]
    assert common
    assert_same_actions(common, ours, summary, {})

    warnings = sync_warnings(logs)
    assert len(warnings) == len(refused) == summary["warnings"]
    for key, reason in refused.items():
        assert sum(line.startswith(f"warning: Skipping file {key}. {reason}") for line in warnings) == 1, key
    # ``../up.txt`` is the one refusal the CLI makes too, with the same line.
    parent = "warning: Skipping file ../up.txt. File references a parent directory."
    assert warnings_of(cli) == ([parent] if "../up.txt" in refused else [])

    expected = {path: state for path, state in tree_state(roots["cli"]).items() if path not in aliases.values()}
    assert tree_state(roots["ours"]) == expected
    # Every canonical key, nothing else: not the marker, not the refused keys, not the deleted files.
    assert {path: data for path, (data, _) in expected.items()} == {k: v for k, v in source.items() if k in ESCAPED}
    assert not (roots["ours"] / "dir").exists()

    again, summary = run_operator(f"s3://{bucket}/{prefix}", ".", options, roots["ours"], logs, monkeypatch)
    assert_nothing_transferred(summary, again)
    assert summary["warnings"] == len(refused)


@pytest.mark.parametrize("server_name", ["moto", "rclone"])
def test_upload(connections, server_name, tmp_path, logs, monkeypatch):
    """A local directory to S3: odd but legal Linux names become the same keys, with the same
    bytes and lines, as with ``aws s3 sync``; odd destination-only keys are deleted alike."""
    server = connections[server_name]
    runs = {}
    for side in ("cli", "ours"):
        bucket = new_bucket(server)
        local = {name: body(name) for name in LOCAL_NAMES}
        put_all(server, bucket, dest_objects(server_name, "data/", local))
        root = tmp_path / side
        for name, data in local.items():
            write(root / name, data.decode())  # an hour old: older than the objects above
        runs[side] = (bucket, root)

    (cli_bucket, cli_root), (our_bucket, our_root) = runs["cli"], runs["ours"]
    cli = aws_sync(server, ".", f"s3://{cli_bucket}/data/", cli_root)
    assert cli.returncode == 0, cli.stderr
    options = {"delete": True, "dest_aws_conn_id": server_name}
    ours, summary = run_operator(".", f"s3://{our_bucket}/data/", options, our_root, logs, monkeypatch)

    assert lines(cli.stdout)
    assert_same_actions(lines(cli.stdout), ours, summary, {cli_bucket: "BUCKET", our_bucket: "BUCKET"})
    assert warnings_of(cli) == sync_warnings(logs) == []
    expected = bucket_state(server, cli_bucket)
    assert bucket_state(server, our_bucket) == expected
    markers = {"data/" + DEST_MARKER: b""} if server_name == "moto" else {}
    assert expected == {**{"data/" + name: body(name) for name in LOCAL_NAMES}, **markers}

    again, summary = run_operator(".", f"s3://{our_bucket}/data/", options, our_root, logs, monkeypatch)
    assert_nothing_transferred(summary, again)
