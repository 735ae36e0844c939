"""Delta Lake from Python: ``Connection.sync`` into Delta tables and ``Connection.export`` as a
Delta table, read back by an independent reader (the ``deltalake`` package, delta-rs's Python
binding, which shares no code path with ours) and compared with the emulator's rows."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

import d365


@pytest.fixture
def own_emulator() -> Iterator[d365.Emulator]:
    """An emulator of its own: this test changes rows."""
    with d365.Emulator(rows=300) as emu:
        yield emu


def _delta(path: Path) -> list[tuple[str, str]]:
    table = DeltaTable(str(path)).to_pyarrow_table(columns=["contactid", "lastname"])
    return sorted(
        (str(i).lower(), n or "") for i, n in zip(*(table.column(c).to_pylist() for c in table.column_names))
    )


def _source(conn: d365.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT contactid, lastname FROM contact").fetchall()
    return sorted((str(i).lower(), n or "") for i, n in rows)


def test_sync_into_delta_is_read_back_by_the_deltalake_package(
    own_emulator: d365.Emulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    with d365.connect(own_emulator.connection_string) as conn:
        first = conn.sync("contact,account", f"delta:{lake}", page_size=40)
        assert [(t["table"], t["kind"]) for t in first] == [("contact", "full"), ("account", "full")]
        assert first[0]["destination"].startswith("delta+file://")
        assert _delta(lake / "contact") == _source(conn)

        # Types a reader can rely on: exact decimals, UTC instants, labels beside codes.
        accounts = DeltaTable(str(lake / "account"))
        revenue = accounts.to_pyarrow_table(columns=["revenue"]).column("revenue")
        assert revenue.type == pa.decimal128(38, 4)
        total = sum((v for v in revenue.to_pylist() if v is not None), decimal.Decimal(0))
        sql_total = conn.execute("SELECT sum(revenue) FROM account").fetchone()[0] or decimal.Decimal(0)
        assert total == sql_total
        created = accounts.to_pyarrow_table(columns=["createdon"]).column("createdon")
        assert created.type == pa.timestamp("us", tz="UTC")

        conn.execute("INSERT INTO contact (lastname) VALUES (?), (?)", ["delta-a", "delta-b"])
        conn.execute("UPDATE contact SET lastname = ? WHERE lastname = ?", ["delta-renamed", "delta-a"])
        victim = conn.execute("SELECT contactid FROM contact WHERE lastname <> 'delta-b' LIMIT 1").fetchone()[
            0
        ]
        conn.execute("DELETE FROM contact WHERE contactid = ?", [victim])

        second = conn.sync(["contact"], f"delta:{lake}")
        t = second[0]
        assert (t["kind"], t["upserted"], t["deleted"], t["rows"]) == ("delta", 2, 1, 151)
        assert _delta(lake / "contact") == _source(conn)
        # Each sync is one commit whose commitInfo carries the sync position.
        history = DeltaTable(str(lake / "contact")).history()
        assert len(history) == 2
        assert history[0]["d365.sync"]["mode"] == "delta"


def test_export_as_a_delta_table(conn: d365.Connection, tmp_path: Path) -> None:
    total = conn.execute("SELECT count(*) FROM account").fetchone()[0]
    out = conn.export(
        "account", f"delta:{tmp_path / 'accounts'}", select="accountid,name,revenue,statecodename"
    )
    assert (out["rows"], out["format"]) == (total, "delta")
    table = DeltaTable(str(tmp_path / "accounts")).to_pyarrow_table()
    assert table.column_names == ["accountid", "name", "revenue", "statecodename"]
    assert table.num_rows == total
    ids = sorted(str(r[0]).lower() for r in conn.execute("SELECT accountid FROM account").fetchall())
    assert sorted(table.column("accountid").to_pylist()) == ids

    again = conn.export("account", tmp_path / "accounts", format="delta", select=["accountid"])
    assert again["rows"] == total
    assert DeltaTable(str(tmp_path / "accounts")).version() == 1
    with pytest.raises(d365.ProgrammingError, match="Delta location"):
        conn.export("account", "delta+ftp://host/x")
