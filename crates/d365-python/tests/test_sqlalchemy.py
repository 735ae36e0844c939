"""The SQLAlchemy dialect: URL, reflection, pandas read_sql / to_sql (bulk)."""

from __future__ import annotations

import decimal
import urllib.parse
import uuid

import pytest

import d365

sqlalchemy = pytest.importorskip("sqlalchemy")
pd = pytest.importorskip("pandas")


@pytest.fixture
def engine(emulator: d365.Emulator):  # type: ignore[no-untyped-def]
    # The CData habit: the connection string after `?` (percent-encoded where it has '+').
    url = "d365:///?" + urllib.parse.quote(emulator.connection_string, safe="=;:/")
    eng = sqlalchemy.create_engine(url)
    yield eng
    eng.dispose()


def test_dialect_is_registered_as_an_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="sqlalchemy.dialects")}
    assert names.get("d365") == "d365.sqlalchemy:D365Dialect"


def test_connect_args_form(emulator: d365.Emulator) -> None:
    eng = sqlalchemy.create_engine("d365://", connect_args={"connection_string": emulator.connection_string})
    with eng.connect() as c:
        assert c.execute(sqlalchemy.text("SELECT count(*) FROM account")).scalar() == 500
    eng.dispose()


def test_reflection(engine) -> None:  # type: ignore[no-untyped-def]
    insp = sqlalchemy.inspect(engine)
    assert "account" in insp.get_table_names()
    assert insp.has_table("contact")
    cols = {c["name"]: c for c in insp.get_columns("account")}
    assert isinstance(cols["revenue"]["type"], sqlalchemy.Numeric)
    assert cols["revenue"]["type"].scale == 4
    assert isinstance(cols["createdon"]["type"], sqlalchemy.DateTime)
    assert isinstance(cols["name"]["type"], sqlalchemy.String)
    assert insp.get_pk_constraint("account")["constrained_columns"] == ["accountid"]
    fks = insp.get_foreign_keys("contact")
    assert any(
        fk["constrained_columns"] == ["parentcustomerid"]
        and fk["referred_table"] == "account"
        and fk["referred_columns"] == ["accountid"]
        for fk in fks
    ), fks
    table = sqlalchemy.Table("account", sqlalchemy.MetaData(), autoload_with=engine)
    assert "revenue" in table.c


def test_pandas_read_sql_and_to_sql(engine, conn: d365.Connection) -> None:  # type: ignore[no-untyped-def]
    df = pd.read_sql("SELECT name, revenue FROM account ORDER BY revenue DESC LIMIT 5", engine)
    assert list(df.columns) == ["name", "revenue"] and len(df) == 5
    assert isinstance(df["revenue"].iloc[0], (decimal.Decimal, float))
    tag = f"pd-{uuid.uuid4().hex[:8]}"
    out = pd.DataFrame({"firstname": [f"F{i}" for i in range(2000)], "lastname": "L", "jobtitle": tag})
    written = out.to_sql("contact", engine, if_exists="append", index=False)
    assert written == 2000
    assert conn.execute("SELECT count(*) FROM contact WHERE jobtitle = ?", [tag]).fetchone() == (2000,)
    conn.execute("DELETE FROM contact WHERE jobtitle = ?", [tag])


def test_secrets_stay_out_of_the_url_query(emulator: d365.Emulator) -> None:
    text = emulator.secret_connection_string()
    secret = dict(p.split("=", 1) for p in text.split(";") if p)["OAuthClientSecret"]
    with pytest.raises(d365.InterfaceError, match="OAuthClientSecret is in the SQLAlchemy URL's query") as e:
        sqlalchemy.create_engine("d365:///?" + urllib.parse.quote(text, safe="=;:/"))
    assert secret not in str(e.value)
    # The URL's password is the client secret, which SQLAlchemy masks.
    rest = ";".join(p for p in text.split(";") if p and not p.startswith("OAuthClientSecret="))
    url = "d365://:" + urllib.parse.quote(secret, safe="") + "@/?" + urllib.parse.quote(rest, safe="=;:/")
    eng = sqlalchemy.create_engine(url)
    assert secret not in repr(eng) and secret not in str(eng.url)
    with eng.connect() as c:
        assert c.execute(sqlalchemy.text("SELECT count(*) FROM contact")).scalar() > 0
    eng.dispose()


def test_uuid_values_compare_with_reflected_guid_columns(engine) -> None:  # type: ignore[no-untyped-def]
    account = sqlalchemy.Table("account", sqlalchemy.MetaData(), autoload_with=engine)
    with engine.connect() as c:
        guid = c.execute(sqlalchemy.text("SELECT accountid FROM account LIMIT 1")).scalar()
        q = (
            sqlalchemy.select(sqlalchemy.func.count())
            .select_from(account)
            .where(account.c.accountid == uuid.UUID(guid))
        )
        assert c.execute(q).scalar() == 1
