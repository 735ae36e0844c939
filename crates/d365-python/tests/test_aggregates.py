"""Aggregate pushdown from Python: the same rows with and without it, far fewer bytes with it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import d365

SQL = (
    "SELECT statecodename, count(*), sum(revenue), avg(revenue), max(numberofemployees) "
    "FROM account GROUP BY statecodename ORDER BY statecodename"
)


@contextmanager
def pushed_and_local(emulator: d365.Emulator) -> Iterator[tuple[d365.Connection, d365.Connection]]:
    """Two connections, with pushdown and without, the tables' metadata already read (so only
    the queries themselves are counted)."""
    with (
        d365.connect(emulator.connection_string) as pushed,
        d365.connect(emulator.connection_string, aggregate_pushdown=False) as local,
    ):
        for conn in (pushed, local):
            conn.execute("SELECT name FROM account LIMIT 1").fetchall()
            conn.execute("SELECT fullname FROM contact LIMIT 1").fetchall()
        yield pushed, local


def test_pushed_and_local_aggregates_agree(emulator: d365.Emulator) -> None:
    with pushed_and_local(emulator) as (pushed, local):
        before = (pushed.stats()["bytes_received"], local.stats()["bytes_received"])
        a = pushed.execute(SQL).fetchall()
        b = local.execute(SQL).fetchall()
        used = (
            pushed.stats()["bytes_received"] - before[0],
            local.stats()["bytes_received"] - before[1],
        )
        total = local.execute("SELECT count(*) FROM account").fetchone()[0]
    assert a == b
    assert a and all(isinstance(row[2], Decimal) for row in a if row[2] is not None)
    assert sum(row[1] for row in a) == total
    # The service returns one row per group instead of every account.
    assert used[0] * 20 < used[1], used


JOIN = (
    "SELECT c.fullname, c.parentcustomeridname, a.name, a.revenue FROM contact c "
    "LEFT JOIN account a ON c.parentcustomerid = a.accountid WHERE c.statecode = 1"
)


def test_a_filtered_join_along_a_lookup_is_one_fetchxml_query(emulator: d365.Emulator) -> None:
    with pushed_and_local(emulator) as (pushed, local):
        before = pushed.stats()["requests"]
        a = sorted(pushed.execute(JOIN).fetchall(), key=repr)
        requests = pushed.stats()["requests"] - before
        b = sorted(local.execute(JOIN).fetchall(), key=repr)
    assert a == b and a
    # Contacts whose customer is a contact keep NULL account columns (LEFT join).
    assert any(row[2] is None for row in a) and any(row[2] is not None for row in a)
    assert all(isinstance(row[3], Decimal) for row in a if row[3] is not None)
    # One FetchXML page chain (5,000 rows a page) instead of two table reads.
    assert requests <= 1 + len(a) // 5000, requests


ONE_TO_MANY = (
    "SELECT a.name, a.numberofemployees, c.fullname FROM account a "
    "LEFT JOIN contact c ON c.parentcustomerid = a.accountid WHERE a.numberofemployees > 40000"
)
THREE_TABLES = (
    "SELECT c.fullname, a.name, p.fullname FROM contact c "
    "JOIN account a ON c.parentcustomerid = a.accountid "
    "LEFT JOIN contact p ON a.primarycontactid = p.contactid WHERE a.numberofemployees > 35000"
)


def test_one_to_many_and_three_table_joins_are_fetchxml_and_agree(emulator: d365.Emulator) -> None:
    with pushed_and_local(emulator) as (pushed, local):
        for sql, most in ((ONE_TO_MANY, 2), (THREE_TABLES, 1)):
            before = (pushed.stats(), local.stats())
            a = sorted(pushed.execute(sql).fetchall(), key=repr)
            b = sorted(local.execute(sql).fetchall(), key=repr)
            after = (pushed.stats(), local.stats())
            requests = after[0]["requests"] - before[0]["requests"]
            used = [after[i]["bytes_received"] - before[i]["bytes_received"] for i in (0, 1)]
            assert a == b and a, sql
            # One FetchXML chain per part (5,000 rows a page): the joined rows, and for the
            # one-to-many LEFT join the accounts without contacts; locally, whole tables.
            assert requests <= most + len(a) // 5000, (sql, requests)
            assert used[0] * 2 < used[1], (sql, used)
        kept = pushed.execute(ONE_TO_MANY).fetchall()
    assert any(row[2] is None for row in kept) and any(row[2] is not None for row in kept)


def test_a_repeated_aggregate_knows_the_table_fits(emulator: d365.Emulator) -> None:
    with pushed_and_local(emulator) as (pushed, local):
        sent = []
        for _ in range(2):
            before = pushed.stats()["requests"]
            n = pushed.execute("SELECT count(*) FROM account").fetchone()[0]
            sent.append(pushed.stats()["requests"] - before)
        assert n == local.execute("SELECT count(*) FROM account").fetchone()[0]
    # The first run probes the table's createdon span along with the aggregate (in case it is
    # past the 50,000-row limit); the connection then knows the table fits in one request.
    assert sent == [3, 1], sent
