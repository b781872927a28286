"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """The provider dict Airflow's ProvidersManager reads."""
    from airflow_s3sync import __version__

    return {
        "package-name": "airflow-s3sync",
        "name": "S3 Sync",
        "description": "`aws s3 sync` semantics as Airflow operators, for S3 and S3-compatible storage.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "S3 Sync",
                "external-doc-url": "https://pypi.org/project/airflow-s3sync/",
                "tags": ["aws"],
            }
        ],
        "operators": [
            {
                "integration-name": "S3 Sync",
                "python-modules": ["airflow_s3sync.operators.sync", "airflow_s3sync.operators.retention"],
            }
        ],
        "hooks": [{"integration-name": "S3 Sync", "python-modules": ["airflow_s3sync.hooks.s3"]}],
    }
