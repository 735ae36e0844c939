"""d365: Dynamics 365 / Dataverse for data engineers.

A DB-API 2.0 (PEP 249) connector over the Dataverse Web API, on the d365 Rust core::

    import d365

    conn = d365.connect("OrganizationUrl=https://contoso.crm.dynamics.com;AuthScheme=AzureAD;"
                        "InitiateOAuth=GETANDREFRESH")
    cur = conn.execute("SELECT name, revenue FROM account WHERE revenue > ?", [1_000_000])
    for name, revenue in cur:
        print(name, revenue)

    table = conn.execute("SELECT * FROM contact").fetch_arrow_table()   # pyarrow, zero-copy

Log records of the Rust core go to Python's ``logging`` (loggers ``d365_core``, ``d365_auth``,
``d365_client``, ``d365_sql``); call :func:`refresh_logging` after changing the configuration.

Try it with no account against the built-in emulator::

    with d365.Emulator(rows=10_000) as emu:
        conn = d365.connect(emu.connection_string)
"""

from __future__ import annotations

from d365._internal import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
    __version__,
    refresh_logging,
)
from d365.dbapi import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Connection,
    Cursor,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    apilevel,
    connect,
    paramstyle,
    threadsafety,
)
from d365.emulator import Emulator

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Emulator",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Warning",
    "__version__",
    "apilevel",
    "connect",
    "paramstyle",
    "refresh_logging",
    "threadsafety",
]
