"""``Connection.sync`` from Python: a full load into the SQLite copy, then exactly the changes
made through the DB-API; destinations this build cannot write to are refused by name."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import d365


@pytest.fixture
def own_emulator() -> Iterator[d365.Emulator]:
    """An emulator of its own: this test changes rows."""
    with d365.Emulator(rows=300) as emu:
        yield emu


def _copy(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path / "d365.sqlite") as db:
        rows = db.execute("SELECT contactid, coalesce(lastname, '') FROM contact").fetchall()
    return sorted((str(i).lower(), n) for i, n in rows)


def _source(conn: d365.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT contactid, lastname FROM contact").fetchall()
    return sorted((str(i).lower(), n or "") for i, n in rows)


def test_sync_loads_then_applies_exactly_the_changes(own_emulator: d365.Emulator, tmp_path: Path) -> None:
    with d365.connect(own_emulator.connection_string) as conn:
        first = conn.sync("contact", tmp_path, page_size=40)
        assert [(t["table"], t["kind"], t["rows"]) for t in first] == [("contact", "full", 150)]
        assert first[0]["destination"].endswith("d365.sqlite")
        assert _copy(tmp_path) == _source(conn)

        conn.execute("INSERT INTO contact (lastname) VALUES (?), (?)", ["py-a", "py-b"])
        conn.execute("UPDATE contact SET lastname = ? WHERE lastname = ?", ["py-renamed", "py-a"])
        victim = conn.execute("SELECT contactid FROM contact WHERE lastname <> 'py-b' LIMIT 1").fetchone()[0]
        conn.execute("DELETE FROM contact WHERE contactid = ?", [victim])

        second = conn.sync(["contact"], str(tmp_path))
        t = second[0]
        assert (t["kind"], t["upserted"], t["deleted"], t["rows"]) == ("delta", 2, 1, 151)
        assert t["warnings"] == [] and t["seconds"] >= 0
        assert _copy(tmp_path) == _source(conn)


def test_unsupported_destinations_and_tables_are_clear_errors(conn: d365.Connection, tmp_path: Path) -> None:
    with pytest.raises(
        d365.NotSupportedError, match=r"writes Delta Lake tables: give delta\+s3://bucket/crm"
    ):
        conn.sync("contact", "s3://bucket/crm")
    with pytest.raises(d365.NotSupportedError, match="PostgreSQL and Delta Lake targets only"):
        conn.sync("contact", tmp_path, soft_delete=True)
    with pytest.raises(d365.ProgrammingError, match="no table named 'nosuchtable'"):
        conn.sync("nosuchtable", tmp_path)
    with pytest.raises(d365.ProgrammingError, match="PostgreSQL destination"):
        conn.sync("contact", "postgresql:///nohost")


def test_export_is_typed_in_every_format(conn: d365.Connection, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    total = conn.execute("SELECT count(*) FROM account").fetchone()[0]
    out = conn.export("account", tmp_path / "a.parquet", select="accountid,revenue,statecodename")
    assert (out["rows"], out["format"], out["resumed_rows"]) == (total, "parquet", 0)
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.column_names == ["accountid", "revenue", "statecodename"]
    assert str(table.schema.field("revenue").type) == "decimal128(38, 4)"
    assert set(table.column("statecodename").to_pylist()) <= {"Active", "Inactive"}
    assert not (tmp_path / "a.parquet.parts").exists()

    csv = conn.export("account", tmp_path / "a.csv", select=["name"], filter="statecode eq 0")
    active = conn.execute("SELECT count(*) FROM account WHERE statecode = 0").fetchone()[0]
    assert csv["rows"] == active
    assert (tmp_path / "a.csv").read_bytes().startswith(b"name\r\n")
    with pytest.raises(d365.ProgrammingError, match="did you mean 'revenue'"):
        conn.export("account", tmp_path / "b.ndjson", select="revenu")
    with pytest.raises(d365.NotSupportedError, match="SQL Server"):
        conn.export("account", "mssql://server/crm")
    with pytest.raises(d365.ProgrammingError, match="name the object"):
        conn.export("account", "s3://bucket/folder/")
