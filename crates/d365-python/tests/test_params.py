"""qmark parameters: every Python type in and out, bound as values (never spliced)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

import d365


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -42,
        2**62,
        1.5,
        "text with 'quotes' and ? marks",
        decimal.Decimal("12345.6789"),
        decimal.Decimal("-0.0001"),
        dt.datetime(2024, 2, 29, 13, 14, 15, 123456, tzinfo=dt.timezone.utc),
        dt.date(1999, 12, 31),
        dt.date(1601, 1, 1),
        dt.date(9999, 12, 31),
        dt.datetime(1960, 5, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc),
        decimal.Decimal("-12345678901234567890.123456"),
        decimal.Decimal("0.000000001"),
    ],
)
def test_round_trip(conn: d365.Connection, value: object) -> None:
    (out,) = conn.execute("SELECT ?", [value]).fetchone()
    assert out == value and type(out) is type(value)


def test_naive_and_offset_datetimes_are_utc(conn: d365.Connection) -> None:
    naive = dt.datetime(2024, 1, 1, 12, 0)
    (out,) = conn.execute("SELECT ?", [naive]).fetchone()
    assert out == naive.replace(tzinfo=dt.timezone.utc)
    plus2 = dt.datetime(2024, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    (out,) = conn.execute("SELECT ?", (plus2,)).fetchone()
    assert out == plus2 and out.tzinfo == dt.timezone.utc and out.hour == 12


def test_guids(conn: d365.Connection) -> None:
    accountid, name = conn.execute("SELECT accountid, name FROM account LIMIT 1").fetchone()
    by_uuid = conn.execute("SELECT name FROM account WHERE accountid = ?", [uuid.UUID(accountid)]).fetchall()
    by_str = conn.execute("SELECT name FROM account WHERE accountid = ?", [accountid]).fetchall()
    assert by_uuid == by_str == [(name,)]


def test_injection_looking_strings_are_values(conn: d365.Connection) -> None:
    (name,) = conn.execute("SELECT name FROM account LIMIT 1").fetchone()
    assert conn.execute("SELECT name FROM account WHERE name = ?", [name]).fetchall() == [(name,)]
    for evil in ["x' OR 1=1 --", "' OR ''='", "x'; DELETE FROM account; --", name + "' OR 'a'='a"]:
        assert conn.execute("SELECT name FROM account WHERE name = ?", [evil]).fetchall() == []
    assert conn.execute("SELECT count(*) FROM account").fetchone()[0] == 500


def test_filters_on_parameters_reach_the_service(conn: d365.Connection) -> None:
    rows = conn.execute(
        "SELECT revenue FROM account WHERE revenue > ? AND statecode = ?", [decimal.Decimal("1000000"), 0]
    ).fetchall()
    assert rows and all(r[0] > 1_000_000 for r in rows)


def test_marker_count_and_types_are_checked(conn: d365.Connection) -> None:
    with pytest.raises(d365.ProgrammingError, match=r"2 parameter markers .* but 1 parameter was given"):
        conn.execute("SELECT ?, ?", [1])
    with pytest.raises(d365.ProgrammingError, match="0 parameter markers"):
        conn.execute("SELECT '?'", [1])
    with pytest.raises(d365.ProgrammingError, match="type bytes cannot be bound"):
        conn.execute("SELECT ?", [b"raw"])
    with pytest.raises(d365.ProgrammingError, match="64 bits"):
        conn.execute("SELECT ?", [2**70])
    with pytest.raises(d365.ProgrammingError, match="sequence"):
        conn.execute("SELECT ?", "abc")
    with pytest.raises(d365.ProgrammingError, match="NaN"):
        conn.execute("SELECT ?", [decimal.Decimal("NaN")])


def test_guids_in_any_form_and_decimal_literals_match(conn: d365.Connection) -> None:
    guid, revenue = conn.execute(
        "SELECT accountid, revenue FROM account WHERE revenue IS NOT NULL ORDER BY accountid LIMIT 1"
    ).fetchone()
    for form in (guid.upper(), "{" + guid.upper() + "}", guid.replace("-", ""), uuid.UUID(guid)):
        assert conn.execute("SELECT count(*) FROM account WHERE accountid = ?", [form]).fetchone() == (1,), (
            form
        )
    # A number with a decimal point in SQL text is an exact decimal, as in T-SQL.
    sql = f"SELECT count(*) FROM account WHERE revenue = {revenue} AND accountid = ?"
    assert conn.execute(sql, [guid]).fetchone() == (1,)


def test_numpy_and_pandas_values(conn: d365.Connection) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    n = conn.execute("SELECT count(*) FROM account WHERE numberofemployees > ?", [10]).fetchone()[0]
    assert conn.execute(
        "SELECT count(*) FROM account WHERE numberofemployees > ?", [np.int64(10)]
    ).fetchone() == (n,)
    assert conn.execute("SELECT ? AS b, ? AS f", [np.bool_(True), np.float32(0.5)]).fetchone() == (True, 0.5)
    # pandas' markers of a missing value are NULL.
    assert conn.execute("SELECT ? IS NULL, ? IS NULL", [float("nan"), pd.NaT]).fetchone() == (True, True)
    when = pd.Timestamp("2024-02-29 13:14:15", tz="UTC")
    assert conn.execute("SELECT ?", [when]).fetchone() == (when.to_pydatetime(),)
    # 9999-12-31 23:00 at UTC-14 is in year 10000 in UTC: a value, but no Python datetime.
    late = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-14)))
    with pytest.raises(d365.DataError, match="10000-01-01 is outside Python's datetime range"):
        conn.execute("SELECT ?", [late]).fetchone()
    with pytest.raises(d365.ProgrammingError, match="not valid Unicode"):
        conn.execute("SELECT ?", ["\ud800"])
    with pytest.raises(d365.ProgrammingError, match="nanoseconds"):
        conn.execute("SELECT ?", [np.datetime64("2024-01-01T00:00:00.000000001")])


def test_a_whole_float_writes_to_an_integer_column(conn: d365.Connection) -> None:
    sql = "INSERT INTO account (name, numberofemployees) VALUES (?, ?)"
    one = conn.execute(sql, ["whole", 12.0], dry_run=True).last_write
    many = conn.executemany(sql, [("whole", 12.0)], dry_run=True).last_write
    for write in (one, many):
        assert write is not None and write["planned"][0]["body"]["numberofemployees"] == 12
    with pytest.raises(d365.DataError, match=r"12\.5"):
        conn.execute(sql, ["fraction", 12.5])
