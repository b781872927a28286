"""Assets and OpenLineage: default inlets/outlets, asset event extras, lineage datasets.

The pure helpers first, then the operator in-process against moto, then a real ``airflow dags
test`` run (asset events and a downstream DAG read from the metadata database, OpenLineage events
from a file transport), and the operator without the OpenLineage provider (its import blocked in a
subprocess).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from airflow.sdk import DAG, Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_s3sync import S3SyncOperator
from airflow_s3sync.lineage import asset_uri, dataset_identity, location_asset, location_dataset, summary_extra
from airflow_s3sync.locations import parse_location
from tests.conftest import new_bucket
from tests.support import S3Server, airflow_home, dag_run_states, run_airflow, use_connection

ROOT = Path(__file__).resolve().parents[1]
ARN = "arn:aws:s3:us-east-1:123456789012:accesspoint/my-ap"

# --- pure helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "uri"),
    [
        ("s3://bucket/prefix", "s3://bucket/prefix/"),
        ("s3://bucket/prefix/", "s3://bucket/prefix/"),
        ("s3://bucket/a/b", "s3://bucket/a/b/"),
        ("s3://bucket", "s3://bucket/"),
        ("s3://bucket/", "s3://bucket/"),
        ("s3://bucket/ü ber/", "s3://bucket/ü ber/"),
        # No asset at parse time:
        ("s3://bucket/{{ ds }}/", None),
        ("s3://bucket/{% if params.x %}x{% endif %}", None),
        (f"s3://{ARN}/prefix/", None),
        (f"s3://{ARN}", None),
        ("/data/export", None),
        ("relative/dir", None),
        ("s3://bucket/a?b=1/", None),
        ("s3://bucket/a#frag/", None),
        ("s3://bucket/" + "k" * 1500, None),
        ("gs://bucket/x", None),
        (42, None),
    ],
)
def test_asset_uri_of_a_location(location, uri):
    assert asset_uri(location) == uri


def test_the_default_asset_is_the_one_a_downstream_dag_names():
    """``s3://b/p`` and ``s3://b/p/`` give the asset ``Asset("s3://b/p/")``: same name, same URI."""
    for typed in ("s3://dst/events", "s3://dst/events/"):
        asset = location_asset(typed)
        assert asset == Asset("s3://dst/events/")
        assert (asset.name, asset.uri) == ("s3://dst/events/", "s3://dst/events")
    assert location_asset("s3://dst/{{ ds }}") is None


@pytest.mark.parametrize(
    ("location", "identity"),
    [
        ("s3://bucket/prefix/", ("s3://bucket", "prefix")),
        ("s3://bucket/prefix", ("s3://bucket", "prefix")),
        ("s3://bucket/a/b/", ("s3://bucket", "a/b")),
        ("s3://bucket", ("s3://bucket", "/")),
        ("s3://bucket/", ("s3://bucket", "/")),
        (f"s3://{ARN}/p/", (f"s3://{ARN}", "p")),
        ("/data/export/", ("file", "/data/export")),
    ],
)
def test_openlineage_identity_of_a_location(location, identity):
    assert dataset_identity(parse_location(location)) == identity


def test_a_relative_local_directory_is_reported_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dataset_identity(parse_location("out/sub")) == ("file", str(tmp_path / "out" / "sub"))


def test_location_dataset_skips_what_is_not_known():
    from openlineage.client.generated.base import Dataset

    assert location_dataset("s3://b/p/") == Dataset(namespace="s3://b", name="p")
    assert location_dataset("s3://b/{{ ds }}/") is None
    assert location_dataset("gs://not-a-location") is None


def test_summary_extra_keeps_json_scalars_and_lists_of_them():
    summary = {
        "uploaded": 1,
        "copied": 2,
        "bytes_transferred": 30,
        "dryrun": False,
        "key_range": ("a", None),
        "nested": {"x": 1},
        "keys": [["a"]],
    }
    assert summary_extra(summary) == {
        "uploaded": 1,
        "copied": 2,
        "bytes_transferred": 30,
        "dryrun": False,
        "key_range": ["a", None],
    }


# --- the operator's inlets and outlets -------------------------------------------------------------


def sync(**kwargs) -> S3SyncOperator:
    kwargs.setdefault("task_id", "sync")
    return S3SyncOperator(**kwargs)


def test_outlets_default_to_the_destination_and_inlets_to_the_source():
    op = sync(source="s3://src/data", dest="s3://dst/data")
    assert op.outlets == [Asset("s3://dst/data/")]
    assert op.inlets == [Asset("s3://src/data/")]


def test_the_authors_outlets_and_inlets_win():
    op = sync(source="s3://src/data/", dest="s3://dst/data/", outlets=[Asset("mine")])
    assert op.outlets == [Asset("mine")]
    assert op.inlets == [Asset("s3://src/data/")]

    op = sync(source="s3://src/data/", dest="s3://dst/data/", inlets=[Asset("theirs")])
    assert (op.inlets, op.outlets) == ([Asset("theirs")], [Asset("s3://dst/data/")])

    op = sync(source="s3://src/data/", dest="s3://dst/data/", outlets=[], inlets=[])
    assert (op.inlets, op.outlets) == ([], []), "an explicit empty list turns the default off"


def test_default_args_outlets_are_the_authors_too():
    with DAG("lineage_default_args", schedule=None, start_date=datetime(2026, 1, 1), default_args={"outlets": []}):
        op = sync(source="s3://src/data/", dest="s3://dst/data/")
    assert op.outlets == []
    assert op.inlets == [Asset("s3://src/data/")]


@pytest.mark.parametrize(
    ("source", "dest", "inlets", "outlets"),
    [
        ("/data/in", "s3://dst/up/", [], [Asset("s3://dst/up/")]),
        ("s3://src/down/", "/data/out", [Asset("s3://src/down/")], []),
        ("s3://src/data/", "s3://dst/{{ ds }}/", [Asset("s3://src/data/")], []),
        (f"s3://{ARN}/data/", "s3://dst/data/", [], [Asset("s3://dst/data/")]),
    ],
    ids=["upload", "download", "templated-dest", "access-point-source"],
)
def test_sides_without_a_parse_time_asset_get_none(source, dest, inlets, outlets):
    op = sync(source=source, dest=dest)
    assert (op.inlets, op.outlets) == (inlets, outlets)


def test_a_mapped_sync_gets_no_default_outlets():
    """Airflow builds mapped tasks from ``partial()`` without the constructor (documented)."""
    with DAG("lineage_mapped", schedule=None, start_date=datetime(2026, 1, 1)):
        mapped = S3SyncOperator.partial(task_id="m", source="s3://src/d/", dest="s3://dst/d/").expand(
            exclude=[["a*"], ["b*"]]
        )
        declared = S3SyncOperator.partial(
            task_id="n", source="s3://src/d/", dest="s3://dst/d/", outlets=[Asset("s3://dst/d/")]
        ).expand(exclude=[["a*"]])
    assert mapped.outlets == []
    assert declared.outlets == [Asset("s3://dst/d/")]


# --- asset event extras, in-process against moto ---------------------------------------------------


@pytest.fixture
def replica(moto_default: S3Server) -> tuple[S3Server, str, str]:
    src, dst = new_bucket(moto_default), new_bucket(moto_default)
    client = moto_default.client()
    for key in ("data/a.csv", "data/sub/b.csv", "other/c.csv"):
        client.put_object(Bucket=src, Key=key, Body=b"12345")
    client.put_object(Bucket=dst, Key="data/stale.csv", Body=b"old")
    return moto_default, src, dst


def test_the_asset_event_extra_carries_the_runs_counts(replica):
    _, src, dst = replica
    op = sync(source=f"s3://{src}/data", dest=f"s3://{dst}/data", delete=True)
    events = OutletEventAccessors()

    summary = op.execute({"outlet_events": events})

    extra = events[Asset(f"s3://{dst}/data/")].extra
    assert {"copied": 2, "deleted": 1, "failed": 0, "bytes_transferred": 10, "dryrun": False}.items() <= extra.items()
    assert extra == summary_extra(summary)
    assert list(events) == [Asset(f"s3://{dst}/data/")], "no event is recorded for the source (an inlet)"


def test_the_authors_assets_get_the_counts_and_aliases_are_left_alone(replica):
    _, src, dst = replica
    mine, alias = Asset("replica-ready"), AssetAlias("replicas")
    op = sync(source=f"s3://{src}/data/", dest=f"s3://{dst}/data/", dryrun=True, outlets=[mine, alias])
    events = OutletEventAccessors()
    events[mine].extra["owner"] = "data-platform"  # something set before the run is kept

    op.execute({"outlet_events": events})

    assert {"owner": "data-platform", "copied": 2, "dryrun": True}.items() <= events[mine].extra.items()
    assert events[alias].extra == {}
    assert Asset(f"s3://{dst}/data/") not in list(events)


def test_an_empty_context_records_no_events(replica):
    server, src, dst = replica
    summary = sync(source=f"s3://{src}/data/", dest=f"s3://{dst}/data/").execute({})
    assert summary["copied"] == 2
    assert sorted(o["Key"] for o in server.client().list_objects_v2(Bucket=dst)["Contents"]) == [
        "data/a.csv",
        "data/stale.csv",
        "data/sub/b.csv",
    ]


# --- OpenLineage facets, provider installed --------------------------------------------------------


def test_openlineage_facets_report_source_and_destination(tmp_path, monkeypatch):
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.generated.base import Dataset

    monkeypatch.chdir(tmp_path)
    copy = sync(source="s3://src/events/", dest="s3://dst/events")
    expected = OperatorLineage(
        inputs=[Dataset(namespace="s3://src", name="events")],
        outputs=[Dataset(namespace="s3://dst", name="events")],
    )
    assert copy.get_openlineage_facets_on_start() == expected
    assert copy.get_openlineage_facets_on_complete(None) == expected

    upload = sync(source="export", dest="s3://dst")
    assert upload.get_openlineage_facets_on_start() == OperatorLineage(
        inputs=[Dataset(namespace="file", name=str(tmp_path / "export"))],
        outputs=[Dataset(namespace="s3://dst", name="/")],
    )
    download = sync(source=f"s3://{ARN}/in/", dest="/srv/in")
    assert download.get_openlineage_facets_on_complete(None) == OperatorLineage(
        inputs=[Dataset(namespace=f"s3://{ARN}", name="in")],
        outputs=[Dataset(namespace="file", name="/srv/in")],
    )


def test_openlineage_reports_templated_locations_as_rendered():
    from openlineage.client.generated.base import Dataset

    op = sync(source="s3://src/{{ ds }}/", dest="s3://dst/{{ ds }}/")
    assert op.get_openlineage_facets_on_start().inputs == []  # not rendered yet: not guessed
    op.render_template_fields({"ds": "2026-01-01"})
    lineage = op.get_openlineage_facets_on_start()
    assert lineage.inputs == [Dataset(namespace="s3://src", name="2026-01-01")]
    assert lineage.outputs == [Dataset(namespace="s3://dst", name="2026-01-01")]


# --- without the OpenLineage provider ---------------------------------------------------------------

WITHOUT_OPENLINEAGE = """
import importlib.abc
import sys

import importlib_metadata  # installs its finder in sys.meta_path, wrapped below

HIDDEN = ("openlineage", "airflow.providers.openlineage")


def hidden(name):
    return any(name == prefix or name.startswith(prefix + ".") for prefix in HIDDEN)


class BlockImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if hidden(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


class HideDistributions:
    # Wraps a finder so that importlib.metadata does not see the OpenLineage distributions either:
    # no provider entry point, no plugin, as when they are not installed.
    def __init__(self, inner):
        self.inner = inner

    def find_distributions(self, *args, **kwargs):
        for dist in self.inner.find_distributions(*args, **kwargs):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if not (name.startswith("openlineage-") or name == "apache-airflow-providers-openlineage"):
                yield dist

    def __getattr__(self, name):
        return getattr(self.inner, name)


sys.meta_path[:] = [BlockImports()] + [
    HideDistributions(finder) if hasattr(finder, "find_distributions") else finder for finder in sys.meta_path
]

for dist in ("apache-airflow-providers-openlineage", "openlineage-python"):
    try:
        importlib_metadata.distribution(dist)
    except importlib_metadata.PackageNotFoundError:
        pass
    else:
        raise AssertionError(f"{dist} was not hidden")

from datetime import datetime

from airflow.sdk import DAG, Asset
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.serialization.serialized_objects import DagSerialization

from airflow_s3sync import S3SyncOperator

from airflow.providers_manager import ProvidersManager

try:
    import airflow.providers.openlineage.extractors
except ImportError:
    pass
else:
    raise AssertionError("the OpenLineage provider was not blocked")
assert "apache-airflow-providers-openlineage" not in ProvidersManager().providers
assert "airflow-s3sync" in ProvidersManager().providers

src, dst = sys.argv[1:3]
with DAG("no_openlineage", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    op = S3SyncOperator(task_id="sync", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/")
assert op.outlets == [Asset(f"s3://{dst}/data/")]
DagSerialization.to_dict(dag)
assert op.get_openlineage_facets_on_start() is None
events = OutletEventAccessors()
summary = op.execute({"outlet_events": events})
assert events[Asset(f"s3://{dst}/data/")].extra["copied"] == summary["copied"] == 2
assert op.get_openlineage_facets_on_complete(None) is None
assert not [m for m in sys.modules if m.startswith(("openlineage", "airflow.providers.openlineage"))]
print("ok")
"""


@pytest.mark.slow  # a subprocess
def test_nothing_breaks_without_the_openlineage_provider(replica, tmp_path):
    server, src, dst = replica
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update(AIRFLOW_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    use_connection(env, "aws_default", server.connection_json())
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENLINEAGE, src, dst],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "ok"


# --- a real run: asset events, a downstream DAG, OpenLineage events ---------------------------------

LINEAGE_DAGS = """
from datetime import datetime

from airflow.sdk import DAG, Asset, task

from airflow_s3sync import S3SyncOperator

with DAG(dag_id="lineage_producer", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    S3SyncOperator(task_id="replicate", source="s3://lineage-src/data/", dest="s3://lineage-dst/data", delete=True)

with DAG(
    dag_id="lineage_consumer",
    schedule=[Asset("s3://lineage-dst/data/")],
    start_date=datetime(2026, 1, 1),
    catchup=False,
):

    @task(inlets=[Asset("s3://lineage-dst/data/")])
    def report(*, inlet_events):
        event = inlet_events[Asset("s3://lineage-dst/data/")][-1]
        return {"copied": event.extra["copied"], "deleted": event.extra["deleted"]}

    report()
"""


def test_a_dag_run_emits_the_asset_event_and_openlineage_datasets(moto: S3Server):
    client = moto.client()
    for bucket in ("lineage-src", "lineage-dst"):
        client.create_bucket(Bucket=bucket)
    for key in ("data/a.csv", "data/b.csv", "data/sub/c.csv"):
        client.put_object(Bucket="lineage-src", Key=key, Body=b"abcd")
    client.put_object(Bucket="lineage-dst", Key="data/stale.csv", Body=b"old")

    with airflow_home() as (dags, env):
        home = Path(env["AIRFLOW_HOME"])
        (dags / "lineage_dags.py").write_text(textwrap.dedent(LINEAGE_DAGS))
        use_connection(env, "aws_default", moto.connection_json())
        events_file = home / "openlineage.jsonl"
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        )
        run_airflow(env, "dags", "reserialize")
        run_airflow(env, "dags", "unpause", "lineage_consumer")

        result = run_airflow(env, "dags", "test", "lineage_producer", "2026-01-01T00:00:00+00:00", check=False)

        assert dag_run_states(env, "lineage_producer") == ["success"], result.stdout[-5000:] + result.stderr[-5000:]
        with sqlite3.connect(home / "airflow.db") as db:
            events = db.execute(
                "select a.name, a.uri, e.extra, e.source_task_id from asset_event e join asset a on a.id = e.asset_id"
            ).fetchall()
            queued = db.execute("select target_dag_id from asset_dag_run_queue").fetchall()
        [(name, uri, extra, task_id)] = events
        assert (name, uri, task_id) == ("s3://lineage-dst/data/", "s3://lineage-dst/data", "replicate")
        extra = json.loads(extra)
        counts = {"copied": 3, "deleted": 1, "failed": 0, "bytes_transferred": 12, "dryrun": False}
        assert counts.items() <= extra.items()
        assert queued == [("lineage_consumer",)], "the downstream DAG is queued on the replica's asset"

        # The downstream DAG reads the counts from the event, as docs/howto.md shows.
        result = run_airflow(env, "dags", "test", "lineage_consumer", "2026-01-01T01:00:00+00:00", check=False)
        assert dag_run_states(env, "lineage_consumer") == ["success"], result.stdout[-5000:] + result.stderr[-5000:]
        with sqlite3.connect(home / "airflow.db") as db:
            [(value,)] = db.execute(
                "select value from xcom where dag_id = 'lineage_consumer' and key = 'return_value'"
            ).fetchall()
        assert json.loads(value) == {"copied": 3, "deleted": 1}

        lineage = [json.loads(line) for line in events_file.read_text().splitlines()]
        task_events = {
            event["eventType"]: event for event in lineage if event["job"]["name"] == "lineage_producer.replicate"
        }
        assert set(task_events) >= {"START", "COMPLETE"}
        for event in (task_events["START"], task_events["COMPLETE"]):
            assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("s3://lineage-src", "data")]
            assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [("s3://lineage-dst", "data")]
