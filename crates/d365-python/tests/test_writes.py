"""Writes: INSERT/UPSERT/UPDATE/DELETE with parameters, executemany as bulk requests."""

from __future__ import annotations

import decimal
import uuid

import pytest

import d365


def test_insert_update_delete_with_parameters(conn: d365.Connection) -> None:
    tag = f"py-{uuid.uuid4().hex[:8]}"
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO contact (firstname, lastname, jobtitle) VALUES (?, ?, ?)", ["Ada", "O'Neil; --", tag]
    )
    assert cur.rowcount == 1 and cur.description is None
    assert cur.last_write is not None and cur.last_write["written"] == 1
    (contactid, lastname) = conn.execute(
        "SELECT contactid, lastname FROM contact WHERE jobtitle = ?", [tag]
    ).fetchone()
    assert lastname == "O'Neil; --"
    cur.execute("UPDATE contact SET firstname = ? WHERE contactid = ?", ["Grace", uuid.UUID(contactid)])
    assert cur.rowcount == 1
    assert conn.execute("SELECT firstname FROM contact WHERE jobtitle = ?", [tag]).fetchall() == [("Grace",)]
    cur.execute("DELETE FROM contact WHERE jobtitle = ?", [tag])
    assert cur.rowcount == 1
    assert conn.execute("SELECT count(*) FROM contact WHERE jobtitle = ?", [tag]).fetchone() == (0,)


def test_dry_run_sends_nothing(conn: d365.Connection) -> None:
    tag = f"dry-{uuid.uuid4().hex[:8]}"
    cur = conn.execute("SELECT 1")
    cur.execute("INSERT INTO contact (lastname, jobtitle) VALUES (?, ?)", ["X", tag], dry_run=True)
    assert cur.last_write["dry_run"] and cur.last_write["planned"][0]["body"]["jobtitle"] == tag
    assert cur.rowcount == 0
    assert conn.execute("SELECT count(*) FROM contact WHERE jobtitle = ?", [tag]).fetchone() == (0,)


def test_bad_write_options_are_programming_errors(conn: d365.Connection) -> None:
    cur = conn.cursor()
    sql = "UPDATE contact SET firstname = 'x' WHERE jobtitle = 'no such title'"
    with pytest.raises(d365.ProgrammingError, match="caller id 'bob' is not a GUID"):
        cur.execute(sql, caller_id="bob")
    with pytest.raises(d365.ProgrammingError, match="unknown write option 'atomik'"):
        cur.execute(sql, atomik=True)
    cur.execute(sql, caller_id=uuid.UUID(int=1), dry_run=True)
    assert cur.last_write is not None and cur.last_write["dry_run"]


def test_executemany_is_bulk(conn: d365.Connection) -> None:
    tag = f"bulk-{uuid.uuid4().hex[:8]}"
    rows = [(f"First{i}", f"Last{i}", tag, decimal.Decimal(i) / 100) for i in range(10_000)]
    cur = conn.cursor()
    cur.executemany(
        "INSERT INTO contact (firstname, lastname, jobtitle, annualincome) VALUES (?, ?, ?, ?)", rows
    )
    assert cur.rowcount == 10_000
    requests = cur.last_write["requests"]
    assert requests < 100, f"{requests} requests for 10,000 rows (must be under 1%)"
    back = conn.execute(
        "SELECT lastname, annualincome FROM contact WHERE jobtitle = ? AND lastname = ?", [tag, "Last1234"]
    ).fetchall()
    assert back == [("Last1234", decimal.Decimal("12.34"))]
    assert conn.execute("SELECT count(*) FROM contact WHERE jobtitle = ?", [tag]).fetchone() == (10_000,)
    cur.execute("DELETE FROM contact WHERE jobtitle = ?", [tag])
    assert cur.rowcount == 10_000


def test_executemany_other_statements_run_per_set(conn: d365.Connection) -> None:
    tag = f"many-{uuid.uuid4().hex[:8]}"
    conn.executemany("INSERT INTO contact (lastname, jobtitle) VALUES (?, ?)", [("A", tag), ("B", tag)])
    cur = conn.executemany(
        "UPDATE contact SET firstname = ? WHERE lastname = ? AND jobtitle = ?",
        [("fa", "A", tag), ("fb", "B", tag)],
    )
    assert cur.rowcount == 2
    got = conn.execute("SELECT lastname, firstname FROM contact WHERE jobtitle = ? ORDER BY lastname", [tag])
    assert got.fetchall() == [("A", "fa"), ("B", "fb")]
    with pytest.raises(d365.ProgrammingError, match="executemany runs INSERT"):
        conn.executemany("SELECT ?", [(1,)])
    assert conn.executemany("INSERT INTO contact (lastname) VALUES (?)", []).rowcount == 0


def test_executemany_mixed_types_in_a_column(conn: d365.Connection) -> None:
    with pytest.raises(d365.ProgrammingError, match="parameter 1 is Int64 in earlier rows but Utf8 in row 2"):
        conn.executemany("INSERT INTO contact (lastname) VALUES (?)", [(1,), ("x",)])


def test_executemany_update_and_delete_by_key_are_bulk(conn: d365.Connection) -> None:
    tag = f"upd-{uuid.uuid4().hex[:8]}"
    ids = [uuid.uuid4() for _ in range(1000)]
    conn.executemany(
        "INSERT INTO contact (contactid, lastname, jobtitle) VALUES (?, ?, ?)",
        [(i, f"L{n}", tag) for n, i in enumerate(ids)],
    )
    missing = uuid.uuid4()
    cur = conn.executemany(
        "UPDATE contact SET firstname = ?, lastname = upper(?) WHERE contactid = ?",
        [(f"F{n}", f"l{n}", i) for n, i in enumerate(ids)] + [("x", "y", missing)],
    )
    assert cur.rowcount == 1000
    assert cur.last_write["skipped"] == 1  # no record: the UPDATE matched nothing
    assert cur.last_write["requests"] < 20, cur.last_write
    got = conn.execute("SELECT firstname, lastname FROM contact WHERE contactid = ?", [ids[7]]).fetchall()
    assert got == [("F7", "L7")]
    cur = conn.executemany("DELETE FROM contact WHERE contactid = ?", [(i,) for i in ids])
    assert cur.rowcount == 1000
    assert cur.last_write["requests"] <= 2 * (1000 // 200) + 2, cur.last_write
    assert conn.execute("SELECT count(*) FROM contact WHERE jobtitle = ?", [tag]).fetchone() == (0,)
