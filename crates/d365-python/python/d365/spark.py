"""A Spark data source (Spark 4's ``pyspark.sql.datasource`` API) reading Dataverse tables in
parallel: every work unit of a plan is one Spark partition, read by an executor straight into
Arrow record batches by the d365 Rust reader.

::

    from d365.spark import D365DataSource

    spark.dataSource.register(D365DataSource)
    df = (spark.read.format("d365")
          .option("connection", connection_string)      # or connectionEnv: a variable's name
          .option("table", "account")
          .option("unitRows", 100_000)
          .load())

Options (case-insensitive):

- ``table``: the table to read (logical or entity set name); with ``manifest``, one of its
  tables (optional when it has one).
- ``connection``: the connection string (CData property names) every executor connects with;
  ``connection.N`` the one of credential slot ``N`` (``credentials`` > 1: each application user
  gets its share of units, as Dataverse limits requests per user). ``connectionEnv`` (and
  ``connectionEnv.N``) name environment variables holding them instead, so secrets stay out of
  the query plan.
- ``manifest``: read the units of a plan made by ``d365 plan`` (a path or object URL) instead
  of planning here.
- ``unitRows`` (default 200000) and ``credentials`` (default 1): how the plan made here is cut.

The plan is made once, on the driver, when the schema is asked for; executors receive it with
their partitions, so they need no shared file system.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import StructType

from d365 import scaleout

__all__ = ["D365DataSource"]


class _UnitPartition(InputPartition):
    def __init__(self, unit: str, slot: int) -> None:
        super().__init__(unit)
        self.unit = unit
        self.slot = slot


def _option(options: dict[str, str], name: str) -> str | None:
    for key, value in options.items():
        if key.lower() == name.lower():
            return value
    return None


def _connection(options: dict[str, str], slot: int | None) -> str:
    """The connection string of credential ``slot`` (or the common one)."""
    names = ([f"connection.{slot}", f"connectionEnv.{slot}"] if slot is not None else []) + [
        "connection",
        "connectionEnv",
    ]
    for name in names:
        value = _option(options, name)
        if value is None:
            continue
        if name.lower().startswith("connectionenv"):
            text = os.environ.get(value)
            if not text:
                raise ValueError(f"option {name}={value}: the environment variable {value} is not set")
            return text
        return value
    raise ValueError(
        "the d365 data source needs a connection: .option('connection', '<connection string>') "
        "or .option('connectionEnv', '<name of a variable holding it>')"
    )


class D365DataSource(DataSource):
    """``spark.read.format("d365")``: see the module documentation."""

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        self._plan: scaleout.Plan | None = None

    @classmethod
    def name(cls) -> str:
        return "d365"

    def _table(self, plan: scaleout.Plan) -> str:
        table = _option(self.options, "table")
        if table is None:
            if len(plan.tables) == 1:
                return plan.tables[0]
            raise ValueError(f"option table is required: the plan has tables {', '.join(plan.tables)}")
        for name in plan.tables:
            if name.lower() == table.lower():
                return name
        raise ValueError(f"the plan has no table '{table}' (it has {', '.join(plan.tables)})")

    def plan(self) -> scaleout.Plan:
        """The plan read (option ``manifest``) or made here, once."""
        if self._plan is None:
            manifest = _option(self.options, "manifest")
            if manifest is not None:
                self._plan = scaleout.load(manifest)
            else:
                import d365

                table = _option(self.options, "table")
                if table is None:
                    raise ValueError("option table is required: .option('table', 'account')")
                unit_rows = int(_option(self.options, "unitRows") or 200_000)
                credentials = int(_option(self.options, "credentials") or 1)
                with d365.connect(_connection(self.options, None)) as conn:
                    # Read only: no destination, no change-tracking token (Spark may plan in
                    # more than one process; a watermark costs one request).
                    self._plan = scaleout.plan(
                        conn, table, unit_rows=unit_rows, credentials=credentials, change_tracking=False
                    )
        return self._plan

    def schema(self) -> StructType:
        plan = self.plan()
        return StructType.fromJson(plan.table_schema(self._table(plan)))

    def reader(self, schema: StructType) -> DataSourceReader:
        plan = self.plan()
        return _Reader(plan, self._table(plan), dict(self.options))


class _Reader(DataSourceReader):
    def __init__(self, plan: scaleout.Plan, table: str, options: dict[str, str]) -> None:
        self.plan = plan
        self.table = table
        self.options = options

    def partitions(self) -> list[InputPartition]:
        return [_UnitPartition(u.id, u.slot) for u in self.plan.units if u.table == self.table]

    def read(self, partition: InputPartition) -> Iterator[Any]:
        import d365

        unit = getattr(partition, "unit", None) or partition.value
        slot = getattr(partition, "slot", None)
        with d365.connect(_connection(self.options, slot)) as conn:
            yield from scaleout.read_unit(conn, self.plan, unit)
