"""The provider metadata: valid for the installed Airflow, and shown by ``airflow providers``."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from airflow.sdk import BaseHook, BaseOperator

from airflow_s3sync.get_provider_info import get_provider_info
from tests.support import BIN

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = Path(importlib.import_module("airflow").__file__).parent
INFO = get_provider_info()


def schema(name: str) -> dict:
    return json.loads((AIRFLOW / name).read_text())


def test_the_dict_is_valid_against_the_installed_provider_info_schema():
    jsonschema.validate(INFO, schema("provider_info.schema.json"))
    assert INFO["package-name"] == "airflow-s3sync"


def test_the_integration_is_valid_against_the_stricter_provider_yaml_schema():
    """provider.yaml's schema (what Airflow's own providers must follow) knows the tags and wants a
    doc URL: our integration passes it too."""
    integration_schema = schema("provider.yaml.schema.json")["properties"]["integrations"]
    jsonschema.validate(INFO["integrations"], integration_schema)


def test_a_wrong_dict_would_fail_the_schema():
    broken = {**INFO, "asset-uris": [{"handler": "x"}]}  # "schemes" is required
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema("provider_info.schema.json"))


def test_the_how_to_guide_exists():
    [integration] = INFO["integrations"]
    for guide in integration["how-to-guide"]:
        assert guide.startswith("/docs/")
        assert (ROOT / guide.lstrip("/")).is_file()


def classes_in(module_name: str, base: type) -> set[str]:
    module = importlib.import_module(module_name)
    return {
        name
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, base) and value.__module__ == module_name
    }


def test_the_listed_modules_hold_the_operators_and_hooks():
    integrations = {integration["integration-name"] for integration in INFO["integrations"]}
    [operators] = INFO["operators"]
    [hooks] = INFO["hooks"]
    assert {operators["integration-name"], hooks["integration-name"]} <= integrations
    found = set().union(*(classes_in(module, BaseOperator) for module in operators["python-modules"]))
    assert found == {"S3SyncOperator", "ObjectLockRetentionOperator", "S3KeyRangesOperator"}
    assert set().union(*(classes_in(module, BaseHook) for module in hooks["python-modules"])) == {"S3SyncHook"}


def test_the_asset_uri_entries_import():
    from airflow.sdk.module_loading import import_string

    [entry] = INFO["asset-uris"]
    assert entry["schemes"] == ["s3"]
    for key in ("handler", "factory", "to_openlineage_converter"):
        assert callable(import_string(entry[key]))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow-home"))
    return env


def airflow(env: dict[str, str], *args: str) -> tuple[object, str]:
    """Run ``airflow ARGS -o json``; return the JSON it printed and its stderr."""
    result = subprocess.run(
        [str(BIN / "airflow"), *args, "-o", "json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith(("[", "{"))]
    return json.loads(line), result.stderr


def assert_no_complaint_about_us(stderr: str) -> None:
    complaints = [
        line
        for line in stderr.splitlines()
        if ("s3sync" in line.lower()) and any(word in line.lower() for word in ("warn", "error", "exception"))
    ]
    assert complaints == []


def test_airflow_providers_get_shows_the_metadata(env):
    [shown], stderr = airflow(env, "providers", "get", "airflow-s3sync", "--full")
    for key in ("package-name", "name", "integrations", "operators", "hooks", "asset-uris", "versions"):
        assert shown[key] == INFO[key], key
    assert_no_complaint_about_us(stderr)


def test_airflow_providers_list_and_hooks_run_clean(env):
    providers, stderr = airflow(env, "providers", "list")
    assert "airflow-s3sync" in {provider["package_name"] for provider in providers}
    assert_no_complaint_about_us(stderr)

    # The hook has no connection type of its own: its connections are the Amazon provider's "aws".
    hooks, stderr = airflow(env, "providers", "hooks")
    aws = [hook for hook in hooks if hook["connection_type"] == "aws"]
    assert [hook["package_name"] for hook in aws] == ["apache-airflow-providers-amazon"]
    assert not [hook for hook in hooks if hook["package_name"] == "airflow-s3sync"]
    assert_no_complaint_about_us(stderr)


def test_the_providers_manager_registers_the_s3_asset_uri_with_the_amazon_handler(env):
    code = """
import json, warnings
warnings.simplefilter("error")  # any warning while loading our provider fails
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
manager = ProvidersManagerTaskRuntime()
manager.initialize_providers_asset_uri_resources()
handler = manager.asset_uri_handlers["s3"]
print(json.dumps([handler.__module__, handler.__name__, "airflow-s3sync" in manager.providers]))
"""
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    module, name, registered = json.loads(result.stdout.splitlines()[-1])
    assert (module, name, registered) == ("airflow.providers.amazon.aws.assets.s3", "sanitize_uri", True)
