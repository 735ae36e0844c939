"""PEP 249 surface: module globals, connection, cursor, description, fetching."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

import d365


def test_module_globals() -> None:
    assert d365.apilevel == "2.0"
    assert d365.threadsafety == 2
    assert d365.paramstyle == "qmark"
    assert d365.NUMBER == "DECIMAL(38,2)" and d365.NUMBER == "BIGINT"
    assert d365.STRING == "VARCHAR" and d365.STRING != "BIGINT"
    assert d365.DATETIME == "TIMESTAMP"
    assert d365.Timestamp(2024, 1, 2).tzinfo is dt.timezone.utc
    assert d365.DateFromTicks(0) == dt.date(1970, 1, 1)
    for cls in (d365.InterfaceError, d365.DatabaseError):
        assert issubclass(cls, d365.Error)
    for cls in (
        d365.DataError,
        d365.OperationalError,
        d365.IntegrityError,
        d365.InternalError,
        d365.ProgrammingError,
        d365.NotSupportedError,
    ):
        assert issubclass(cls, d365.DatabaseError)


def test_select_description_and_fetch(conn: d365.Connection) -> None:
    cur = conn.cursor()
    assert cur.description is None and cur.rowcount == -1 and cur.arraysize == 1
    assert (
        cur.execute(
            "SELECT accountid, name, revenue, numberofemployees, createdon, statecodename "
            "FROM account ORDER BY revenue DESC NULLS LAST LIMIT 7"
        )
        is cur
    )
    names = [d[0] for d in cur.description]
    assert names == ["accountid", "name", "revenue", "numberofemployees", "createdon", "statecodename"]
    types = {d[0]: d[1] for d in cur.description}
    assert types["revenue"].startswith("DECIMAL(38,")
    assert types["numberofemployees"] == "INTEGER"
    assert types["createdon"] == "TIMESTAMP"
    assert types["name"] == "VARCHAR"
    assert cur.description[2][5] is not None  # scale of revenue
    first = cur.fetchone()
    assert isinstance(first, tuple) and len(first) == 6
    assert isinstance(first[2], decimal.Decimal)
    assert isinstance(first[4], dt.datetime) and first[4].tzinfo == dt.timezone.utc
    assert isinstance(first[0], str) and len(first[0]) == 36
    assert len(cur.fetchmany()) == 1  # arraysize
    cur.arraysize = 2
    assert len(cur.fetchmany()) == 2
    assert len(cur.fetchmany(10)) == 3
    assert cur.fetchone() is None and cur.fetchall() == []
    assert cur.rowcount == -1


def test_rows_match_the_arrow_result(conn: d365.Connection) -> None:
    sql = "SELECT name, revenue, createdon FROM account ORDER BY name LIMIT 50"
    rows = conn.execute(sql).fetchall()
    table = conn.execute(sql).fetch_arrow_table()
    assert table.num_rows == len(rows) == 50
    assert [r[0] for r in rows] == table.column("name").to_pylist()
    assert [r[1] for r in rows] == table.column("revenue").to_pylist()
    assert [r[2] for r in rows] == table.column("createdon").to_pylist()


def test_iteration_and_connection_execute(conn: d365.Connection) -> None:
    total = conn.execute("SELECT count(*) FROM account").fetchone()[0]
    assert total == 500
    assert sum(1 for _ in conn.execute("SELECT accountid FROM account")) == 500


def test_commit_rollback_close(emulator: d365.Emulator) -> None:
    conn = d365.connect(emulator.connection_string)
    conn.commit()  # writes take effect at once: commit is a no-op
    with pytest.raises(d365.NotSupportedError, match="rollback"):
        conn.rollback()
    cur = conn.cursor()
    cur.close()
    with pytest.raises(d365.InterfaceError, match="cursor is closed"):
        cur.execute("SELECT 1")
    conn.close()
    conn.close()
    assert conn.closed
    with pytest.raises(d365.InterfaceError, match="connection is closed"):
        conn.cursor().execute("SELECT 1")
    with pytest.raises(d365.InterfaceError):
        conn.commit()


def test_fetch_without_a_query(conn: d365.Connection) -> None:
    with pytest.raises(d365.ProgrammingError, match="no result"):
        conn.cursor().fetchone()


def test_connect_keyword_properties_override(emulator: d365.Emulator) -> None:
    # A wrong URL in the string, the right one as a keyword: the keyword wins.
    text = emulator.connection_string.replace(
        f"OrganizationUrl={emulator.org_url}", "OrganizationUrl=https://wrong.invalid"
    )
    with d365.connect(text, OrganizationUrl=emulator.org_url) as conn:
        assert conn.organization_url.rstrip("/") == emulator.org_url.rstrip("/")
        assert conn.execute("SELECT count(*) FROM contact").fetchone()[0] > 0


def test_row_counts_come_from_the_snapshot_function(emulator: d365.Emulator, conn: d365.Connection) -> None:
    before = conn.stats()["requests"]
    counts = conn.row_counts(["account", "contact"])
    assert conn.stats()["requests"] - before == 1, "one request for both tables"
    assert counts == {
        "account": conn.execute("SELECT count(*) FROM account").fetchone()[0],
        "contact": conn.execute("SELECT count(*) FROM contact").fetchone()[0],
    }
    everything = conn.row_counts()
    assert set(everything) == set(conn.table_names()) and everything["account"] == counts["account"]
    # The least-privilege app may not read widgets: None for them, the others still counted.
    with d365.connect(emulator.secret_connection_string("integration")) as integration:
        limited = integration.row_counts(["account", "new_widget"])
    assert limited == {"account": counts["account"], "new_widget": None}
    with d365.connect(emulator.finops_connection_string()) as fno, pytest.raises(d365.ProgrammingError) as e:
        fno.row_counts(["CustomersV3"])
    assert "count(*)" in str(e.value)


def test_tables_and_columns(conn: d365.Connection) -> None:
    assert "account" in conn.table_names()
    cols = {c["name"]: c for c in conn.columns("account")}
    assert cols["accountid"]["primary_key"] is True
    assert cols["revenue"]["type"].startswith("DECIMAL")
    assert cols["revenue"]["dataverse_type"] == "Money"


def test_a_loop_left_early_loses_no_rows(conn: d365.Connection) -> None:
    cur = conn.execute("SELECT accountid FROM account ORDER BY accountid")
    first = []
    for row in cur:
        first.append(row[0])
        if len(first) == 3:
            break
    rest = cur.fetchmany(2) + cur.fetchall()
    ids = first + [r[0] for r in rest]
    assert len(ids) == 500 and len(set(ids)) == 500
    assert ids == sorted(ids)
    cur = conn.execute("SELECT accountid FROM account")
    assert next(cur) is not None and next(iter(cur)) is not None
    # Rows read ahead and not handed out would be lost to an Arrow read: refused, with the fix.
    with pytest.raises(d365.ProgrammingError, match="fetchall"):
        cur.fetch_arrow_table()
    assert len(cur.fetchall()) == 498


def test_arguments_are_checked(emulator: d365.Emulator, conn: d365.Connection) -> None:
    for kwargs in (
        {"page_size": 0},
        {"page_size": 5001},
        {"page_size": -1},
        {"parallel": 0},
        {"parallel": "4"},
    ):
        with pytest.raises(d365.ProgrammingError, match=r"page_size|parallel"):
            d365.connect(emulator.connection_string, **kwargs)  # type: ignore[arg-type]
    cur = conn.execute("SELECT name FROM account")
    with pytest.raises(d365.ProgrammingError, match="fetchmany size"):
        cur.fetchmany(-1)
    with pytest.raises(d365.ProgrammingError, match="whole number"):
        cur.fetchmany("2")  # type: ignore[arg-type]
    with pytest.raises(d365.ProgrammingError, match="arraysize"):
        cur.arraysize = 0
    cur.arraysize = 7
    assert len(cur.fetchmany()) == 7
    # PEP 249's optional extension, and a closed connection's cursor.
    assert conn.ProgrammingError is d365.ProgrammingError and conn.Error is d365.Error
    closed = d365.connect(emulator.connection_string)
    closed.close()
    with pytest.raises(d365.InterfaceError, match="closed"):
        closed.cursor()


def test_connection_properties_readonly_maxrows_pagesize(emulator: d365.Emulator) -> None:
    with d365.connect(emulator.connection_string + ";Readonly=true;MaxRows=5;Pagesize=100") as ro:
        with pytest.raises(d365.ProgrammingError, match=r"read-only \(Readonly=true\)") as e:
            ro.execute("UPDATE account SET name = 'x' WHERE accountnumber = ?", ["ACC-0000001"])
        assert e.value.status is None
        assert ro.execute("INSERT INTO account (name) VALUES ('dry')", dry_run=True).last_write["dry_run"]
        assert len(ro.execute("SELECT name FROM account").fetchall()) == 5
        assert ro.execute("SELECT count(*) FROM account").fetchone() == (500,)
    # Pagesize: one page chain of 500 rows at 100 a page is 5 requests.
    with d365.connect(emulator.connection_string + ";Pagesize=100", parallel=1) as c:
        c.execute("SELECT name FROM account LIMIT 1").fetchall()  # the table's metadata
        before = c.stats()["requests"]
        c.execute("SELECT name FROM account").fetchall()
        assert c.stats()["requests"] - before == 5
    with pytest.raises(d365.InterfaceError, match="Pagesize=abc is not valid"):
        d365.connect(emulator.connection_string + ";Pagesize=abc")
    with pytest.raises(d365.InterfaceError, match="UseDisplayNames=true is not supported"):
        d365.connect(emulator.connection_string + ";UseDisplayNames=true")
