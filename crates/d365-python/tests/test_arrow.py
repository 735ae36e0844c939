"""Arrow: the PyCapsule stream into pyarrow, polars and DuckDB; pandas and polars helpers."""

from __future__ import annotations

import decimal

import pytest

import d365

SQL = "SELECT accountid, name, revenue, createdon, statecodename FROM account ORDER BY name"


def test_pyarrow_reads_the_cursor(conn: d365.Connection) -> None:
    pa = pytest.importorskip("pyarrow")
    table = pa.table(conn.execute(SQL))
    assert table.num_rows == 500
    assert table.schema.field("revenue").type == pa.decimal128(38, 4)
    assert str(table.schema.field("createdon").type) == "timestamp[us, tz=UTC]"
    reader = conn.execute(SQL).fetch_record_batch()
    assert isinstance(reader, pa.RecordBatchReader)
    assert sum(b.num_rows for b in reader) == 500


def test_arrow_after_some_rows_were_fetched(conn: d365.Connection) -> None:
    cur = conn.execute(SQL)
    first = cur.fetchmany(3)
    rest = cur.fetch_arrow_table()
    assert rest.num_rows == 497
    assert rest.column("name")[0].as_py() != first[0][1] or len(first) == 3


def test_zero_copy_buffers_are_shared(conn: d365.Connection) -> None:
    pa = pytest.importorskip("pyarrow")
    reader = conn.execute("SELECT name FROM account").fetch_record_batch()
    batch = reader.read_next_batch()
    # pyarrow imported the batch from the C stream: the buffer address is the Rust one, and
    # importing the same batch again through the C data interface keeps it (no copy).
    buf = batch.column(0).buffers()[2]
    again = pa.RecordBatch._import_from_c_capsule(*batch.__arrow_c_array__())
    assert again.column(0).buffers()[2].address == buf.address


def test_polars_and_duckdb(conn: d365.Connection) -> None:
    pl = pytest.importorskip("polars")
    df = pl.DataFrame(conn.execute(SQL))
    assert df.height == 500 and df.schema["revenue"] == pl.Decimal(38, 4)
    assert conn.execute(SQL).fetch_polars().height == 500
    duckdb = pytest.importorskip("duckdb")
    cur = conn.execute("SELECT statecodename, revenue FROM account")
    rel = duckdb.from_arrow(cur)
    counts = dict(rel.aggregate("statecodename, count(*)").fetchall())
    assert sum(counts.values()) == 500


def test_pandas(conn: d365.Connection) -> None:
    pytest.importorskip("pandas")
    df = conn.execute(SQL).fetch_df()
    assert len(df) == 500
    assert isinstance(df["revenue"].dropna().iloc[0], decimal.Decimal)
    assert str(df["createdon"].dtype).startswith("datetime64")
