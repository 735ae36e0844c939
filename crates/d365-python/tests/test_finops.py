"""Finance & Operations and Human Resources from Python: the same DB-API on the F&O editions of
the emulator (Entra ID online, AD FS on premises, the HR legacy URL)."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest

import d365


def test_finops_online_reads_typed_rows_of_every_company(emulator: d365.Emulator) -> None:
    with d365.connect(emulator.finops_connection_string()) as conn:
        rows = conn.execute(
            "SELECT dataAreaId, count(*) AS n FROM CustomersV3 GROUP BY dataAreaId ORDER BY dataAreaId"
        ).fetchall()
        assert [r[0] for r in rows] == ["demf", "gbsi", "usmf", "usrt"]
        assert sum(r[1] for r in rows) == 500
        cur = conn.execute(
            "SELECT CustomerAccount, CreditLimit, CreatedDateTime, OnHoldStatus FROM CustomersV3 "
            "WHERE OnHoldStatus = ? AND dataAreaId = ? ORDER BY CustomerAccount LIMIT 3",
            ["All", "usmf"],
        )
        assert [d[1] for d in cur.description] == ["VARCHAR", "DECIMAL(38,16)", "TIMESTAMP", "VARCHAR"]
        account, limit, created, status = cur.fetchone()
        assert account.startswith("US-") and status == "All"
        assert isinstance(limit, decimal.Decimal)
        assert isinstance(created, datetime.datetime) and created.tzinfo is not None
        dates = conn.execute("SELECT RequestedShippingDate FROM SalesOrderHeadersV2 LIMIT 1").fetchone()
        assert isinstance(dates[0], datetime.date)


def test_finops_default_company_without_cross_company(emulator: d365.Emulator) -> None:
    with d365.connect(emulator.finops_connection_string(cross_company=False)) as conn:
        assert conn.execute("SELECT DISTINCT dataAreaId FROM CustomersV3").fetchall() == [("usmf",)]


def test_finops_writes_by_composite_key(emulator: d365.Emulator) -> None:
    tag = f"PY-{uuid.uuid4().hex[:6].upper()}"
    with d365.connect(emulator.finops_connection_string()) as conn:
        cur = conn.cursor()
        cur.executemany(
            "INSERT INTO CustomersV3 (dataAreaId, CustomerAccount, OrganizationName, CustomerGroupId, "
            "CreditLimit) VALUES (?, ?, ?, ?, ?)",
            [
                ["usrt", f"{tag}-1", "Python one", "10", decimal.Decimal("10.25")],
                ["demf", f"{tag}-2", "Python two", "20", decimal.Decimal("20.50")],
            ],
        )
        assert cur.rowcount == 2
        cur.execute(
            "UPDATE CustomersV3 SET OnHoldStatus = ? WHERE CustomerAccount LIKE ?", ["Invoice", f"{tag}%"]
        )
        assert cur.rowcount == 2
        got = conn.execute(
            "SELECT dataAreaId, OnHoldStatus, CreditLimit FROM CustomersV3 "
            "WHERE CustomerAccount LIKE ? ORDER BY 1",
            [f"{tag}%"],
        ).fetchall()
        assert got == [
            ("demf", "Invoice", decimal.Decimal("20.5")),
            ("usrt", "Invoice", decimal.Decimal("10.25")),
        ]
        # F&O's business validation (HTTP 500 with an infolog) is a per-row error.
        with pytest.raises(d365.DatabaseError, match="Customer group"):
            cur.execute(
                "INSERT INTO CustomersV3 (dataAreaId, CustomerAccount, OrganizationName, CustomerGroupId) "
                "VALUES ('usmf', ?, 'bad', 'ZZ')",
                [f"{tag}-3"],
            )
        cur.execute("DELETE FROM CustomersV3 WHERE CustomerAccount LIKE ?", [f"{tag}%"])
        assert cur.rowcount == 2


def test_finops_on_premises_through_adfs_and_hr_legacy(emulator: d365.Emulator) -> None:
    with d365.connect(emulator.finops_connection_string("finops-onprem")) as conn:
        assert conn.execute("SELECT count(*) FROM CustomersV3").fetchone() == (500,)
    with d365.connect(emulator.finops_connection_string("hr")) as conn:
        (n,) = conn.execute("SELECT count(*) FROM Workers WHERE Gender IN ('Male', 'Female')").fetchone()
        assert n > 0
    with pytest.raises(ValueError, match="edition"):
        emulator.finops_connection_string("dynamics")
