"""Scaled-out exports: one export cut into work units, run by many workers, each signed in as
its own application user (Dataverse counts its service-protection limits per user), then
committed to Delta Lake in one transaction per table. The same steps as the CLI's
``d365 plan``, ``d365 export --manifest`` and ``d365 commit``::

    import d365
    from d365 import scaleout

    with d365.connect(planner_connection_string) as conn:
        plan = scaleout.plan(conn, ["account", "contact"], to="delta+s3://lake/crm",
                             manifest="s3://lake/plans/crm.jsonl", credentials=3)

    # on worker i of 3, with the connection string of application user i:
    with d365.connect(worker_connection_string) as conn:
        scaleout.run_units(conn, "s3://lake/plans/crm.jsonl", shard=(i, 3))

    scaleout.commit("s3://lake/plans/crm.jsonl")     # no connection needed

Distributed engines read single units: :func:`read_unit` gives one unit's rows as a
``pyarrow.RecordBatchReader`` (a Ray or Dask task per unit), and :mod:`d365.spark` is a Spark
data source built on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from d365 import _internal

if TYPE_CHECKING:
    import pyarrow

    from d365.dbapi import Connection

__all__ = ["Plan", "Unit", "commit", "load", "plan", "read_unit", "run_units"]


@dataclass(frozen=True)
class Unit:
    """One work unit: the rows of a table one task reads in one go."""

    id: str
    """``table-NNNNN``, unique in the plan."""
    table: str
    """The table's logical name."""
    index: int
    """Position in the plan (shard ``i/N`` runs the units with ``index % N == i``)."""
    slot: int
    """Credential slot (``index % credentials``): run it as application user ``slot``."""
    estimated_rows: int
    """Rows estimated when planning (for scheduling; not a check)."""
    bounds: dict[str, Any]
    """The ``createdon`` range: ``{"kind": "range", "lo": secs | None, "hi": secs | None}``,
    ``{"kind": "null"}`` or ``{"kind": "all"}``."""
    keys: dict[str, Any] | None = None
    """For a Finance & Operations entity, the range of its entity key the unit covers:
    ``{"id": n, "lo": [values] | None, "hi": [values] | None}`` (half-open); else ``None``."""


@dataclass(frozen=True)
class Plan:
    """A plan (the manifest's contents). ``text`` is the manifest itself (JSON lines): hand it
    to tasks instead of a path when they share no file system."""

    text: str
    id: str
    organization: str
    to: str
    tables: list[str]
    units: list[Unit]
    schemas: dict[str, dict[str, Any]]
    """The Delta (= Spark) schema of each table's units, as JSON: ``{"type": "struct",
    "fields": [...]}``."""

    @classmethod
    def parse(cls, text: str) -> Plan:
        """A plan from manifest text (as ``d365 plan`` writes it)."""
        header: dict[str, Any] = {}
        tables: list[str] = []
        schemas: dict[str, dict[str, Any]] = {}
        units: list[Unit] = []
        for line in text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            kind = item.get("kind")
            if kind == "manifest":
                header = item
            elif kind == "table":
                tables.append(item["table"])
                schemas[item["table"]] = item["schema"]
            elif kind == "unit":
                units.append(
                    Unit(
                        id=item["id"],
                        table=item["table"],
                        index=item["index"],
                        slot=item["slot"],
                        estimated_rows=item.get("estimatedRows", 0),
                        bounds=item["bounds"],
                        keys=item.get("keys"),
                    )
                )
        return cls(
            text=text,
            id=str(header.get("id", "")),
            organization=str(header.get("organization", "")),
            to=str(header.get("to", "")),
            tables=tables,
            units=units,
            schemas=schemas,
        )

    def table_schema(self, table: str) -> dict[str, Any]:
        """The Delta (= Spark) schema of ``table``'s units, as JSON."""
        if table not in self.schemas:
            raise KeyError(f"the plan has no table '{table}' (it has {', '.join(self.tables)})")
        return self.schemas[table]

    def shard(self, index: int, count: int) -> list[Unit]:
        """The units shard ``index`` of ``count`` runs (0-based)."""
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"shard {index}/{count}: the index must be 0 to {count - 1}")
        return [u for u in self.units if u.index % count == index]


def _text(manifest: str | os.PathLike[str] | Plan) -> str:
    if isinstance(manifest, Plan):
        return manifest.text
    return _internal.load_manifest(os.fspath(manifest))


def load(manifest: str | os.PathLike[str]) -> Plan:
    """The plan at ``manifest``: a local path or an object URL (``s3://…``, ``abfss://…``,
    ``gs://…``; credentials from the ``AWS_*``, ``AZURE_STORAGE_*``, ``GOOGLE_*`` variables)."""
    return Plan.parse(_text(manifest))


def plan(
    conn: Connection,
    tables: str | Sequence[str],
    *,
    to: str | None = None,
    manifest: str | os.PathLike[str] | None = None,
    unit_rows: int = 200_000,
    credentials: int = 1,
    change_tracking: bool = True,
) -> Plan:
    """Plan an export of ``tables``; the same as ``d365 plan``.

    Each table is cut into units of about ``unit_rows`` rows (ranges of ``createdon``, sized by
    cheap probes), and its change-tracking token is taken before any unit is read, so
    ``d365 sync`` continues from there after the commit.

    Args:
        conn: a connection to the organisation.
        tables: logical names (``"account"``) or entity set names.
        to: the Delta location the tables land in (``"delta+s3://lake/crm"``,
            ``"delta:lake"``); ``None`` for a plan only read from (:func:`read_unit`, Spark).
        manifest: where to write the manifest (a local path or object URL), if anywhere.
        unit_rows: rows per unit.
        credentials: application users the units are assigned to, round-robin
            (:attr:`Unit.slot`).
        change_tracking: record change-tracking tokens (else ``modifiedon`` watermarks).
    """
    names = [tables] if isinstance(tables, str) else list(tables)
    out = None if manifest is None else os.fspath(manifest)
    text = _internal.plan(conn.session, names, to or "", out, unit_rows, credentials, change_tracking)
    return Plan.parse(text)


def run_units(
    conn: Connection,
    manifest: str | os.PathLike[str] | Plan,
    *,
    shard: tuple[int, int] | None = None,
    units: Sequence[str] | None = None,
    parallel: int | None = None,
    page_size: int | None = None,
) -> dict[str, Any]:
    """Run a worker's units; the same as ``d365 export --manifest``.

    Each unit's rows are written as Parquet files under its Delta table, then a completion
    marker; complete units are skipped, so a worker that died is simply run again. Units named
    in ``units`` run even when complete (their output is replaced, never added to).

    Args:
        conn: a connection, ideally as this worker's own application user.
        manifest: the plan (a path, an object URL or a :class:`Plan`).
        shard: ``(index, count)``, 0-based: the units with ``index % count == index``.
        units: unit ids to run instead of a shard.
        parallel: concurrent requests per unit (default: adaptive).
        page_size: rows per page (1-5000).

    Returns:
        ``manifest``, ``rows`` (read by this run), ``requests``, ``throttled``, ``seconds`` and
        ``units`` (``unit``, ``rows``, ``files``, ``skipped``, ``seconds`` each).
    """
    text = None if shard is None else f"{shard[0]}/{shard[1]}"
    return _internal.run_units(
        conn.session,
        _text(manifest),
        text,
        list(units) if units is not None else None,
        parallel,
        page_size,
    )


def commit(manifest: str | os.PathLike[str] | Plan, *, to: str | None = None) -> list[dict[str, Any]]:
    """Commit a plan whose units are all complete; the same as ``d365 commit``.

    Every table gets all its units' files in one Delta commit, with the plan's sync position.
    When a unit is missing nothing is committed and :class:`d365.ProgrammingError` names the
    units to run. Committing again does nothing. Needs no connection.

    Returns:
        One dict per table: ``table``, ``location``, ``rows``, ``files``, ``version``,
        ``already``, ``orphans_deleted``.
    """
    return _internal.commit(_text(manifest), to)


def read_unit(
    conn: Connection,
    manifest: str | os.PathLike[str] | Plan,
    unit: str,
    *,
    parallel: int | None = None,
) -> pyarrow.RecordBatchReader:
    """One unit's rows as a ``pyarrow.RecordBatchReader``, read as it is consumed: a task of a
    distributed engine (Ray, Dask) reads one unit. Columns are typed as in SQL.

    ::

        plan = scaleout.plan(conn, "account", unit_rows=100_000)
        tables = [scaleout.read_unit(conn, plan, u.id).read_all() for u in plan.units]
    """
    import pyarrow

    stream = _internal.read_unit(conn.session, _text(manifest), unit, parallel)
    return pyarrow.RecordBatchReader.from_stream(stream)
