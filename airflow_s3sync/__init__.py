"""airflow-s3sync: ``aws s3 sync`` as Airflow operators, and what it cannot do."""

from __future__ import annotations

__version__ = "0.1.0"

from airflow_s3sync.hooks.s3 import S3SyncHook
from airflow_s3sync.operators.sync import S3SyncOperator

__all__ = ["S3SyncHook", "S3SyncOperator", "__version__"]
