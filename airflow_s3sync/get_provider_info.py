"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point.

Validated against the installed Airflow's ``provider_info.schema.json`` by the tests; shown by
``airflow providers get airflow-s3sync --full``.
"""

from __future__ import annotations

from typing import Any

INTEGRATION = "S3 Sync"

# The operators and hooks of this provider, by module.
OPERATOR_MODULES = [
    "airflow_s3sync.operators.sync",
    "airflow_s3sync.operators.retention",
    "airflow_s3sync.operators.key_ranges",
]
HOOK_MODULES = ["airflow_s3sync.hooks.s3"]

# The sync's default inlets and outlets are s3:// assets. Their URIs are the Amazon provider's
# scheme: it normalises them, builds them and converts them to OpenLineage datasets, so this
# provider names the Amazon provider's functions rather than registering rival ones.
_AMAZON_S3_ASSETS = "airflow.providers.amazon.aws.assets.s3"
ASSET_URIS = [
    {
        "schemes": ["s3"],
        "handler": f"{_AMAZON_S3_ASSETS}.sanitize_uri",
        "factory": f"{_AMAZON_S3_ASSETS}.create_asset",
        "to_openlineage_converter": f"{_AMAZON_S3_ASSETS}.convert_asset_to_openlineage",
    }
]


def get_provider_info() -> dict[str, Any]:
    """The provider dict Airflow's ProvidersManager reads."""
    from airflow_s3sync import __version__

    return {
        "package-name": "airflow-s3sync",
        "name": INTEGRATION,
        "description": "`aws s3 sync` semantics as Airflow operators, for S3 and S3-compatible storage.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://pypi.org/project/airflow-s3sync/",
                "how-to-guide": ["/docs/howto.md"],
                "tags": ["aws"],
            }
        ],
        "operators": [{"integration-name": INTEGRATION, "python-modules": list(OPERATOR_MODULES)}],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": list(HOOK_MODULES)}],
        "asset-uris": [dict(entry) for entry in ASSET_URIS],
    }
