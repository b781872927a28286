"""Assets and OpenLineage for the sync operators.

Two views of the same locations:

- **Airflow Assets** (decided when the DAG is parsed): an S3 location ``s3://bucket/prefix`` is
  ``Asset("s3://bucket/prefix/")`` — always with the trailing ``/`` of a prefix, and
  ``s3://bucket/`` for a whole bucket — so ``s3://b/p`` and ``s3://b/p/`` are one asset. A location
  that cannot name one asset when the DAG is parsed gets none: a templated value (``{{ ... }}``), an
  access point ARN (its bucket is unknown, and an ARN is not a bucket URI), a key with ``?`` or ``#``
  (Airflow's URI normalisation would change it) and a local directory (it lives on one worker; a
  relative path is relative to the task's working directory, unknown at parse time). Mapped tasks
  (``.partial(...).expand(...)``) get no default either: Airflow builds them without calling the
  operator's constructor — and one shard finishing is not the replica updated, so declare the
  asset on a task that runs after every shard.
- **OpenLineage datasets** (computed on the worker, after templates are rendered), as the Amazon
  provider's S3 operators report them: ``Dataset(namespace="s3://bucket", name="prefix")`` with the
  prefix without its trailing ``/`` and ``"/"`` for a whole bucket (as the Amazon provider's asset
  converter does); an access point is ``namespace="s3://<access point ARN>"``; a local directory is
  ``Dataset(namespace="file", name=<absolute path>)``.

:class:`LineageMixin` gives an operator with ``source`` and ``dest`` attributes both. The
OpenLineage provider (``airflow-s3sync[openlineage]``) is optional: nothing here imports it until
its listener asks for facets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_s3sync.errors import InvalidLocationError
from airflow_s3sync.locations import LocalLocation, Location, S3Location, parse_location

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Asset

# Airflow's asset URI normalisation sorts a query and drops a fragment, and an asset URI is at most
# 1500 characters: a key that would not survive unchanged gets no default asset.
_URI_ALTERING = ("?", "#")
_MAX_ASSET_URI = 1500
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def is_templated(value: object) -> bool:
    """Whether ``value`` is a string Airflow would still render as a Jinja template."""
    return isinstance(value, str) and any(marker in value for marker in _TEMPLATE_MARKERS)


def _static_location(value: object) -> Location | None:
    """The parsed location, or ``None`` when it is not known yet (templated, not a string) or invalid."""
    if not isinstance(value, str) or is_templated(value):
        return None
    try:
        return parse_location(value)
    except InvalidLocationError:
        return None


def asset_uri(value: object) -> str | None:
    """The asset URI of a location string: ``s3://bucket/prefix/`` (or ``s3://bucket/``).

    ``None`` when the location names no asset at parse time: a templated value, a local directory,
    an access point ARN, an invalid location, or a key Airflow's URI normalisation would alter
    (``?``, ``#``, longer than 1500 characters).
    """
    location = _static_location(value)
    if not isinstance(location, S3Location) or location.is_access_point:
        return None
    uri = location.display()  # s3://bucket/prefix/ — the listing prefix, "/" appended
    if any(char in location.prefix for char in _URI_ALTERING) or len(uri) > _MAX_ASSET_URI:
        return None
    return uri


def location_asset(value: object) -> Asset | None:
    """The default :class:`~airflow.sdk.Asset` of a location string, or ``None`` (see :func:`asset_uri`).

    Its name and URI are both ``s3://bucket/prefix/``: schedule a downstream DAG on exactly
    ``Asset("s3://bucket/prefix/")`` (Airflow identifies an asset by its name as well as its URI).
    """
    uri = asset_uri(value)
    if uri is None:
        return None
    from airflow.sdk import Asset

    return Asset(uri)


def dataset_identity(location: Location) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a parsed location.

    ``("s3://bucket", "prefix")`` — the prefix without its trailing ``/``, ``"/"`` for a whole
    bucket, as the Amazon provider reports S3 datasets; an access point's namespace is
    ``s3://<its ARN>``; a local directory is ``("file", "/absolute/path")``.
    """
    if isinstance(location, LocalLocation):
        return "file", location.path
    prefix = location.prefix
    return f"s3://{location.bucket}", prefix[:-1] if prefix else "/"


def location_dataset(value: object) -> Dataset | None:
    """The OpenLineage dataset of a location string, or ``None`` when it is templated or invalid.

    Needs the OpenLineage provider (``airflow-s3sync[openlineage]``): raises ``ImportError``
    without it.
    """
    location = _static_location(value)
    if location is None:
        return None
    from airflow.providers.common.compat.openlineage.facet import Dataset

    namespace, name = dataset_identity(location)
    return Dataset(namespace=namespace, name=name)


_SCALAR = (type(None), bool, int, float, str)


def summary_extra(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The asset event ``extra`` of a run: the summary's JSON scalar fields (counts,
    ``bytes_transferred``, ``dryrun``, ...) and lists of scalars (``key_range``)."""
    extra: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, _SCALAR):
            extra[str(key)] = value
        elif isinstance(value, list | tuple) and all(isinstance(item, _SCALAR) for item in value):
            extra[str(key)] = list(value)
    return extra


class LineageMixin:
    """Default Asset inlets and outlets, asset event extras and OpenLineage facets for an
    operator with ``source`` and ``dest`` location attributes.

    Put it before :class:`~airflow.sdk.BaseOperator` in the bases; call
    :meth:`apply_default_assets` at the end of ``__init__`` and :meth:`record_asset_events` at the
    end of ``execute``.
    """

    if TYPE_CHECKING:
        source: Any
        dest: Any
        inlets: list[Any]
        outlets: list[Any]

    def default_assets(self) -> tuple[list[Asset], list[Asset]]:
        """The default ``(inlets, outlets)``: the asset of an S3 source and of an S3 destination,
        each side only when it names one at parse time (see :func:`asset_uri`)."""
        source, dest = location_asset(self.source), location_asset(self.dest)
        return ([source] if source is not None else []), ([dest] if dest is not None else [])

    def apply_default_assets(self, given: Mapping[str, Any] | None = None) -> None:
        """Set the default inlets and outlets where the DAG author gave none.

        :param given: the keyword arguments the operator's ``__init__`` received: ``outlets`` (or
            ``inlets``) among them or among their ``default_args`` (the DAG's and the task's), even
            empty, is the author's choice and is kept. Without ``given``, empty ``outlets``
            (``inlets``) are filled.
        """
        inlets, outlets = self.default_assets()

        def author_gave(name: str) -> bool:
            if given is None:
                return bool(getattr(self, name))
            return name in given or name in (given.get("default_args") or {})

        if not author_gave("outlets"):
            self.outlets = outlets
        if not author_gave("inlets"):
            self.inlets = inlets

    def record_asset_events(self, context: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
        """Give the asset events of this run the summary's counts as ``extra``.

        Every :class:`~airflow.sdk.Asset` among the task's outlets (the defaults or the
        author's) gets :func:`summary_extra` merged into its event's ``extra``. A context
        without ``outlet_events`` (``execute({})`` in a test) records nothing.
        """
        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            return
        from airflow.sdk import Asset

        extra = summary_extra(summary)
        for outlet in self.outlets or ():
            if isinstance(outlet, Asset):
                outlet_events[outlet].extra.update(extra)

    def _operator_lineage(self) -> OperatorLineage | None:
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:  # the OpenLineage provider is not installed
            return None
        inputs = [dataset for dataset in (location_dataset(self.source),) if dataset is not None]
        outputs = [dataset for dataset in (location_dataset(self.dest),) if dataset is not None]
        return OperatorLineage(inputs=inputs, outputs=outputs)

    def get_openlineage_facets_on_start(self) -> OperatorLineage | None:
        """OpenLineage inputs (the source) and outputs (the destination) of the task.

        Called by the OpenLineage provider's listener once templates are rendered. ``None``
        when the provider is not installed.
        """
        return self._operator_lineage()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The same datasets as :meth:`get_openlineage_facets_on_start`, when the task completes."""
        return self._operator_lineage()
