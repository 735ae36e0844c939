"""A SQLAlchemy 2.x dialect for d365, registered as ``d365``.

The URL takes the connection string after ``?``, as CData's dialects do::

    engine = sqlalchemy.create_engine(
        "d365:///?OrganizationUrl=https://contoso.crm.dynamics.com;AuthScheme=AzureAD;InitiateOAuth=GETANDREFRESH"
    )
    df = pandas.read_sql("SELECT name, revenue FROM account", engine)
    df.to_sql("contact", engine, if_exists="append", index=False)   # one bulk write

The text after ``?`` is URL-decoded by SQLAlchemy, so a ``+`` in a value must be written
``%2B``; or pass the string unencoded with
``create_engine("d365://", connect_args={"connection_string": "..."})``.

Secrets never go in the query: SQLAlchemy shows it in ``repr(engine)``, ``str(engine.url)`` and
its logs. A client secret goes in the URL's password, which SQLAlchemy masks
(``d365://:<secret>@/?OrganizationUrl=…;AuthScheme=AzureServicePrincipal;…``; URL-encode it), or
in ``connect_args``; a secret property in the query (``OAuthClientSecret``, ``Password``, …) is
refused with :class:`d365.InterfaceError` when the engine connects.

Reflection comes from the organisation's metadata: tables, columns with their SQL types,
primary keys, and foreign keys from lookup relationships. Dataverse has no client transactions:
``commit`` does nothing and a ``rollback`` (which SQLAlchemy issues when a connection returns to
its pool) is ignored; writes take effect at once.
"""

from __future__ import annotations

import re
from typing import Any, cast

from sqlalchemy import types as sqltypes
from sqlalchemy.engine import default, reflection
from sqlalchemy.engine.interfaces import (
    IsolationLevel,
    ReflectedColumn,
    ReflectedForeignKeyConstraint,
    ReflectedIndex,
    ReflectedPrimaryKeyConstraint,
)
from sqlalchemy.engine.url import URL

import d365
from d365 import _internal

_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(-?\d+)\)")


def _sql_type(name: str) -> sqltypes.TypeEngine[Any]:
    m = _DECIMAL.fullmatch(name)
    if m:
        return sqltypes.Numeric(int(m.group(1)), int(m.group(2)))
    types: dict[str, sqltypes.TypeEngine[Any]] = {
        "VARCHAR": sqltypes.String(),
        "BOOLEAN": sqltypes.Boolean(),
        "TINYINT": sqltypes.SmallInteger(),
        "SMALLINT": sqltypes.SmallInteger(),
        "INTEGER": sqltypes.Integer(),
        "BIGINT": sqltypes.BigInteger(),
        "REAL": sqltypes.Float(),
        "DOUBLE": sqltypes.Float(),
        "TIMESTAMP": sqltypes.DateTime(timezone=True),
        "DATE": sqltypes.Date(),
    }
    return types.get(name, sqltypes.NullType())


class D365Dialect(default.DefaultDialect):
    """Dynamics 365 / Dataverse through d365."""

    name = "d365"
    driver = "d365"
    default_paramstyle = "qmark"
    supports_statement_cache = True
    supports_native_decimal = True
    supports_native_boolean = True
    # uuid.UUID values are bound as GUIDs (SQLAlchemy would otherwise send 32 hex digits).
    supports_native_uuid = True
    supports_sane_rowcount = True
    supports_sane_multi_rowcount = True
    supports_multivalues_insert = False
    use_insertmanyvalues = False
    supports_alter = False
    supports_sequences = False
    postfetch_lastrowid = False
    default_schema_name = "dbo"

    @classmethod
    def import_dbapi(cls) -> Any:
        return d365

    def create_connect_args(self, url: URL) -> tuple[list[Any], dict[str, Any]]:
        # `d365:///?A=1;B=2` arrives as query {"A": "1;B=2"}: join the pairs back.
        parts: list[str] = []
        for key, value in url.query.items():
            values = value if isinstance(value, tuple) else (value,)
            parts.extend(f"{key}={v}" for v in values)
        text = ";".join(parts)
        for pair in text.split(";"):
            key = pair.split("=", 1)[0].strip()
            if key and _internal.is_secret_property(key):
                raise d365.InterfaceError(
                    f"{key} is in the SQLAlchemy URL's query, which repr(engine), str(engine.url) and "
                    "SQLAlchemy's logs show: put a client secret in the URL's password "
                    "(d365://:<secret>@/?OrganizationUrl=...), or pass the connection string as "
                    'connect_args={"connection_string": ...}'
                )
        if url.password is not None:
            text = f"{text};OAuthClientSecret={url.password}" if text else f"OAuthClientSecret={url.password}"
        return [text] if text else [], {}

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        text = cparams.pop("connection_string", None)
        if text is not None:
            cargs = (text,)
        return d365.connect(*cargs, **cparams)

    # No client transactions (see the module docs).
    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def get_isolation_level(self, dbapi_connection: Any) -> IsolationLevel:
        return "AUTOCOMMIT"

    def get_default_isolation_level(self, dbapi_conn: Any) -> IsolationLevel:
        return "AUTOCOMMIT"

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...] | None:
        return None

    def _get_default_schema_name(self, connection: Any) -> str:
        return "dbo"

    def do_ping(self, dbapi_connection: Any) -> bool:
        dbapi_connection.execute("SELECT 1").fetchall()
        return True

    @staticmethod
    def _d365(connection: Any) -> d365.Connection:
        return cast(d365.Connection, connection.connection.dbapi_connection)

    @reflection.cache
    def get_schema_names(self, connection: Any, **kw: Any) -> list[str]:
        return ["dbo"]

    @reflection.cache
    def get_table_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return self._d365(connection).table_names()

    def get_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return []

    def has_table(self, connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> bool:
        return table_name.lower() in self.get_table_names(connection, schema, **kw)

    @reflection.cache
    def get_columns(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedColumn]:
        return [
            {
                "name": c["name"],
                "type": _sql_type(c["type"]),
                "nullable": c["nullable"],
                "default": None,
                "comment": c["dataverse_type"],
            }
            for c in self._d365(connection).columns(table_name)
        ]

    @reflection.cache
    def get_pk_constraint(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> ReflectedPrimaryKeyConstraint:
        keys = [c["name"] for c in self._d365(connection).columns(table_name) if c["primary_key"]]
        return {"constrained_columns": keys, "name": None}

    @reflection.cache
    def get_foreign_keys(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedForeignKeyConstraint]:
        conn = self._d365(connection)
        readable = set(conn.table_names())
        rows = conn.execute(
            "SELECT schemaname, referencingattribute, referencedentity, referencedattribute "
            "FROM metadata.relationship WHERE referencingentity = ? ORDER BY schemaname",
            [table_name.lower()],
        ).fetchall()
        return [
            {
                "name": name,
                "constrained_columns": [column],
                "referred_schema": None,
                "referred_table": table,
                "referred_columns": [key],
                "options": {},
            }
            for name, column, table, key in rows
            if table in readable
        ]

    def get_indexes(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedIndex]:
        return []


dialect = D365Dialect
