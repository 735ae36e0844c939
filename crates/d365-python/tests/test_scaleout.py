"""Scaled-out exports from Python: a plan, two workers signed in as two application users of
their own, one commit read back by the ``deltalake`` package, and single units read as Arrow
(what Ray or Dask tasks do), each compared with the emulator's rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

import d365
from d365 import scaleout


@pytest.fixture
def workers_emulator() -> Iterator[d365.Emulator]:
    """An emulator with two more application users, worker-1 and worker-2."""
    with d365.Emulator(rows=600, app_users=2) as emu:
        yield emu


def _source(conn: d365.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT contactid, lastname FROM contact").fetchall()
    return sorted((str(i).lower(), n or "") for i, n in rows)


def test_plan_two_workers_commit(workers_emulator: d365.Emulator, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    manifest = tmp_path / "plan.jsonl"
    with d365.connect(workers_emulator.secret_connection_string()) as conn:
        plan = scaleout.plan(
            conn, "contact", to=f"delta:{lake}", manifest=manifest, unit_rows=60, credentials=2
        )
        want = _source(conn)
    assert plan.tables == ["contact"]
    assert len(plan.units) >= 4
    assert {u.slot for u in plan.units} == {0, 1}
    assert sum(u.estimated_rows for u in plan.units) == len(want)
    assert scaleout.load(manifest) == plan

    # Nothing is committed while units are missing, and the error says which.
    with pytest.raises(d365.ProgrammingError, match="not complete"):
        scaleout.commit(manifest)

    seen = 0
    for i in range(2):
        with d365.connect(workers_emulator.secret_connection_string(f"worker-{i + 1}")) as worker:
            report = scaleout.run_units(worker, manifest, shard=(i, 2))
        assert [u["unit"] for u in report["units"]] == [u.id for u in plan.shard(i, 2)]
        seen += report["rows"]
    assert seen == len(want)

    [table] = scaleout.commit(plan)
    assert (table["table"], table["rows"], table["already"]) == ("contact", len(want), False)
    got = DeltaTable(str(lake / "contact")).to_pyarrow_table(columns=["contactid", "lastname"])
    rows = sorted(
        (str(i).lower(), n or "") for i, n in zip(*(got.column(c).to_pylist() for c in got.column_names))
    )
    assert rows == want
    assert scaleout.commit(manifest)[0]["already"] is True


def test_single_units_read_as_arrow(emulator: d365.Emulator) -> None:
    with d365.connect(emulator.connection_string) as conn:
        plan = scaleout.plan(conn, "account", unit_rows=120)
        assert plan.to == ""
        parts = [scaleout.read_unit(conn, plan, u.id).read_all() for u in plan.units]
        want = sorted(str(r[0]).lower() for r in conn.execute("SELECT accountid FROM account").fetchall())
        # A plan for reading only has no destination: workers are refused, with what to do.
        with pytest.raises(d365.ProgrammingError, match="reading only"):
            scaleout.run_units(conn, plan)
    assert len(parts) == len(plan.units) >= 3
    got = sorted(str(v).lower() for p in parts for v in p.column("accountid").to_pylist())
    assert got == want
    assert parts[0].schema.field("revenue").type.scale == 4
    with pytest.raises(ValueError, match="0 to 2"):
        plan.shard(3, 3)
