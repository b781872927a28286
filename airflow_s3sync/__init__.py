"""airflow-s3sync: ``aws s3 sync`` as Airflow operators, and what it cannot do.

The public names are imported lazily: Airflow loads this package through its provider entry
point while it is still initialising its own configuration, so importing Airflow from here at
import time would be circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ObjectLockRetentionOperator", "S3KeyRangesOperator", "S3SyncHook", "S3SyncOperator", "__version__"]

if TYPE_CHECKING:
    from airflow_s3sync.hooks.s3 import S3SyncHook
    from airflow_s3sync.operators.key_ranges import S3KeyRangesOperator
    from airflow_s3sync.operators.retention import ObjectLockRetentionOperator
    from airflow_s3sync.operators.sync import S3SyncOperator

_LAZY = {
    "ObjectLockRetentionOperator": "airflow_s3sync.operators.retention",
    "S3KeyRangesOperator": "airflow_s3sync.operators.key_ranges",
    "S3SyncHook": "airflow_s3sync.hooks.s3",
    "S3SyncOperator": "airflow_s3sync.operators.sync",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'airflow_s3sync' has no attribute {name!r}")
