"""The pure planning core: listing entries -> merged sorted stream -> decisions.

Nothing in this package performs I/O, logs, sleeps or reads configuration; it imports
no boto3, Airflow, ``os`` or threading, so unit tests drive it directly.
"""

from airflow_s3sync.plan.compare import CompareMode, Direction, needs_transfer
from airflow_s3sync.plan.decide import Action, ActionKind, RefuseReason, plan
from airflow_s3sync.plan.entries import Entry, Pair
from airflow_s3sync.plan.filters import FilterKind, FilterRule, PathFilter, build_rules
from airflow_s3sync.plan.merge import ListingOrderError, merge

__all__ = [
    "Action",
    "ActionKind",
    "CompareMode",
    "Direction",
    "Entry",
    "FilterKind",
    "FilterRule",
    "ListingOrderError",
    "Pair",
    "PathFilter",
    "RefuseReason",
    "build_rules",
    "merge",
    "needs_transfer",
    "plan",
]
