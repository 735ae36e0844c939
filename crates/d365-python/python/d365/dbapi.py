"""PEP 249 (DB-API 2.0) over the d365 core: :func:`connect`, :class:`Connection`, :class:`Cursor`.

Values
    Parameters are bound to ``?`` markers as typed values (``paramstyle = "qmark"``), never
    spliced into the SQL text. Python types map to SQL types and back:

    ==========================  ======================  ===========================================
    SQL type                    Python out              Python in
    ==========================  ======================  ===========================================
    VARCHAR                     ``str``                 ``str``
    INTEGER, BIGINT             ``int``                 ``int``
    DOUBLE                      ``float``               ``float``
    DECIMAL(p,s) (money too)    ``decimal.Decimal``     ``decimal.Decimal`` (exact), ``int``
    BOOLEAN                     ``bool``                ``bool``
    TIMESTAMP (UTC)             ``datetime`` (UTC)      ``datetime`` (naive = UTC)
    DATE                        ``datetime.date``       ``datetime.date``
    GUID columns                ``str`` (lower case)    ``uuid.UUID`` or ``str``
    NULL                        ``None``                ``None``
    ==========================  ======================  ===========================================

Transactions
    Dataverse has no client transactions: every write takes effect when ``execute`` returns.
    :meth:`Connection.commit` therefore does nothing (it is not an error, so code written for
    other drivers runs unchanged) and :meth:`Connection.rollback` raises
    :class:`NotSupportedError`. A write of several rows that must land together can ask for
    ``atomic=True`` (one ``$batch`` change set, at most 1,000 rows).
"""

from __future__ import annotations

import datetime as _dt
import operator
import os
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from d365 import _internal
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
)
from d365.progress import Progress, watched

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars
    import pyarrow

apilevel = "2.0"
"""PEP 249 level."""
threadsafety = 2
"""Threads may share the module and connections, but not cursors."""
paramstyle = "qmark"
"""Parameters are ``?`` markers bound in order."""

Row = tuple[Any, ...]
Params = Optional[Sequence[Any]]


class _TypeObject:
    """A PEP 249 type object: equal to every ``type_code`` of its group."""

    def __init__(self, name: str, *prefixes: str) -> None:
        self.name = name
        self._prefixes = prefixes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.upper().startswith(self._prefixes)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"d365.{self.name}"


STRING = _TypeObject("STRING", "VARCHAR", "CHAR", "TEXT")
BINARY = _TypeObject("BINARY", "BINARY", "VARBINARY", "BLOB")
NUMBER = _TypeObject("NUMBER", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE", "DECIMAL")
DATETIME = _TypeObject("DATETIME", "TIMESTAMP", "DATE", "TIME")
ROWID = _TypeObject("ROWID", "UNIQUEIDENTIFIER")

Date = _dt.date
Time = _dt.time


def Timestamp(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> _dt.datetime:
    """A UTC timestamp (PEP 249 constructor)."""
    return _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.timezone.utc)


def DateFromTicks(ticks: float) -> _dt.date:
    """The UTC date of a POSIX time."""
    return _dt.datetime.fromtimestamp(ticks, _dt.timezone.utc).date()


def TimeFromTicks(ticks: float) -> _dt.time:
    """The UTC time of day of a POSIX time."""
    return _dt.datetime.fromtimestamp(ticks, _dt.timezone.utc).timetz()


def TimestampFromTicks(ticks: float) -> _dt.datetime:
    """The UTC timestamp of a POSIX time."""
    return _dt.datetime.fromtimestamp(ticks, _dt.timezone.utc)


def Binary(value: bytes) -> bytes:
    """Binary values: Dataverse file and image columns are not readable through SQL yet."""
    return bytes(value)


def _count(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as a whole number from ``low`` to ``high``, or :class:`ProgrammingError`."""
    try:
        n = operator.index(value)
    except TypeError:
        raise ProgrammingError(f"{name} must be a whole number, not {type(value).__name__}") from None
    if n < low or (high is not None and n > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ProgrammingError(f"{name}={n} is out of range: it must be {bounds}")
    return n


def _property_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def connect(
    connection_string: str = "",
    *,
    interactive: bool | str | None = None,
    parallel: int | None = None,
    page_size: int | None = None,
    progress: bool | None = None,
    aggregate_pushdown: bool = True,
    **properties: Any,
) -> Connection:
    """Open a connection to a Dataverse organisation.

    Args:
        connection_string: CData-style properties, e.g.
            ``"OrganizationUrl=https://contoso.crm.dynamics.com;AuthScheme=AzureAD;InitiateOAuth=GETANDREFRESH"``.
            Every sign-in flow of the ``d365`` CLI works, and tokens stored by ``d365 login``
            are used (the same encrypted token store).
        interactive: how a user connection without stored tokens may sign in: ``True`` or
            ``"browser"`` (a browser on this machine), ``"device_code"`` (a code to type on any
            device, printed to standard error), ``False`` (never: a clear error instead of a
            wait). Default: a browser when standard error is a terminal, else never.
        parallel: concurrent requests for whole-table reads (default: the service's
            ``x-ms-dop-hint``, adapting to throttling; ``1`` reads one page chain).
        page_size: rows per page (1-5000; default: the ``Pagesize`` property, else 5000).
        aggregate_pushdown: compute ``GROUP BY``/``COUNT``/``SUM``/``AVG``/``MIN``/``MAX``
            over one table at the service (``$apply``, split into ranges past its 50,000-row
            limit), run filtered joins along lookups as FetchXML ``link-entity`` queries (chains
            of several tables as one query, a one-to-many ``LEFT JOIN`` as two: the joined
            rows, then the kept rows nothing points to), and read the second table of other
            joins by the first one's keys. ``False`` reads
            every row and aggregates and joins locally.
        progress: show a progress line (rows, requests, rows/s, throttling pauses) on standard
            error for reads that take over a second. Default: on in a terminal or notebook.
        **properties: further properties by their CData names (``OrganizationUrl=...``,
            ``AuthScheme=...``); they override the string.

    Raises:
        InterfaceError: the connection string is wrong (the message names the property).
        ProgrammingError: ``parallel`` or ``page_size`` is out of range.
        OperationalError: the sign-in flow cannot be set up.

    Besides the sign-in properties, the string may set ``Readonly=true`` (every write is
    refused before anything is sent), ``MaxRows=N`` (a query without aggregation returns at
    most N rows) and ``Pagesize=N``; the CData connector's other properties are accepted and
    logged as having no effect.
    """
    if not isinstance(connection_string, str):
        raise InterfaceError("connect() takes the connection string as a str")
    if parallel is not None:
        parallel = _count("parallel", parallel, 1)
    if page_size is not None:
        page_size = _count("page_size", page_size, 1, 5000)
    if interactive is None:
        interactive = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if isinstance(interactive, bool):
        mode = "browser" if interactive else "never"
    else:
        mode = str(interactive)
    overrides = [(k, _property_text(v)) for k, v in properties.items()]
    session = _internal.Session.open(
        connection_string, overrides, mode, parallel, page_size, aggregate_pushdown
    )
    return Connection(session, progress=watched() if progress is None else progress)


class Connection:
    """A connection to one organisation (PEP 249). Use it as a context manager to close it."""

    # PEP 249's optional extension: the exception classes as attributes of the connection.
    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, session: _internal.Session, progress: bool = False) -> None:
        self._session: _internal.Session | None = session
        self.progress = progress
        """Whether reads show a progress line on standard error."""
        self.write_options: dict[str, Any] = {}
        """Default options of every write: ``chunk_size`` (rows per request, 1-1000),
        ``parallel``, ``bypass_plugins``, ``optimistic``, ``atomic``, ``caller_id``."""

    @property
    def session(self) -> _internal.Session:
        if self._session is None:
            raise InterfaceError("the connection is closed")
        return self._session

    @property
    def organization_url(self) -> str:
        """The organisation's URL."""
        return self.session.organization_url

    @property
    def closed(self) -> bool:
        return self._session is None

    def cursor(self) -> Cursor:
        """A new cursor.

        Raises:
            InterfaceError: the connection is closed.
        """
        self.session  # noqa: B018 - a closed connection raises
        return Cursor(self)

    def execute(self, operation: str, parameters: Params = None, **write_options: Any) -> Cursor:
        """Run a statement on a new cursor and return it (the sqlite3-style shortcut); keyword
        arguments are write options, as for :meth:`Cursor.execute`."""
        return self.cursor().execute(operation, parameters, **write_options)

    def executemany(
        self, operation: str, seq_of_parameters: Sequence[Sequence[Any]], **write_options: Any
    ) -> Cursor:
        """Run a write statement for every parameter set on a new cursor and return it; keyword
        arguments are write options, as for :meth:`Cursor.executemany`."""
        return self.cursor().executemany(operation, seq_of_parameters, **write_options)

    def commit(self) -> None:
        """Does nothing: writes take effect when ``execute`` returns (see the module docs)."""
        self.session  # noqa: B018 - a closed connection raises

    def rollback(self) -> None:
        """Always raises :class:`NotSupportedError`: Dataverse has no client transactions."""
        raise NotSupportedError(
            "rollback is not supported: Dataverse applies each write when it is sent "
            "(use atomic=True for an all-or-nothing write of up to 1,000 rows)"
        )

    def close(self) -> None:
        """Close the connection; closing twice is harmless."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def stats(self) -> dict[str, Any]:
        """Requests sent so far: ``requests``, ``retries``, ``throttled``, ``throttle_wait_s``,
        ``bytes_received``."""
        return self.session.stats()

    def table_names(self) -> list[str]:
        """Logical names of the tables SQL can query: every table of the organisation's
        metadata, which any user may list. Reading one still needs its read privilege: a table
        the connection may not read answers ``OperationalError`` (HTTP 403);
        :meth:`row_counts` gives ``None`` for such tables."""
        return self.session.table_names()

    def row_counts(self, tables: Sequence[str] | None = None) -> dict[str, int | None]:
        """Row counts of ``tables`` (default: every table), from the service's snapshot, which
        is at most 24 hours old: quick sizes for planning, where ``SELECT count(*)`` is exact.
        One request per 40 tables (Dataverse's ``RetrieveTotalRecordCount``); ``None`` for a
        table the connection may not read. Finance & Operations has no such function: there it
        raises ``ProgrammingError``, which says to use ``SELECT count(*)``.

        >>> conn.row_counts(["account", "contact"])  # doctest: +SKIP
        {'account': 10000, 'contact': 5000}
        """
        names = list(tables) if tables is not None else self.table_names()
        return dict(zip(names, self.session.record_counts(names)))

    def columns(self, table: str) -> list[dict[str, Any]]:
        """The columns of ``table``: ``name``, ``type``, ``precision``, ``scale``, ``nullable``,
        ``dataverse_type``, ``primary_key``."""
        return self.session.columns(table)

    def sync(
        self,
        tables: str | Sequence[str],
        to: str | os.PathLike[str],
        *,
        parallel: int | None = None,
        page_size: int | None = None,
        change_tracking: bool = True,
        soft_delete: bool = False,
    ) -> list[dict[str, Any]]:
        """Keep a copy of ``tables`` up to date in ``to``; the same as ``d365 sync``.

        ``to`` is a local directory (one SQLite file, ``d365.sqlite``, one table per Dataverse
        table), a ``postgresql://user[:password]@host[:port]/db[?schema=name]`` URL (typed
        tables: ``uuid``, ``numeric``, ``timestamptz``; choice labels and lookup names as
        ``…name`` columns), or Delta Lake tables, one per Dataverse table under a location:
        ``"delta:lake"`` (a local directory), ``"delta+s3://bucket/prefix"``,
        ``"delta+abfss://fs@account.dfs.core.windows.net/prefix"``, ``"delta+gs://bucket/prefix"``
        (credentials from the ``AWS_*``, ``AZURE_STORAGE_*``, ``GOOGLE_*`` variables); read them
        with ``deltalake.DeltaTable("lake/account")``, polars, DuckDB or Spark. The first run
        loads each table in full; later runs apply the changes since the last one (change
        tracking, or the ``modifiedon`` watermark for tables without it, which cannot see
        deletes: the result's ``warnings`` say so). The sync position is saved in the same
        transaction (SQLite, PostgreSQL) or commit (Delta) as the rows it covers, so a run that
        dies can simply be run again.

        Args:
            tables: logical names (``"account"``) or entity set names, a list or a
                comma-separated string.
            to: the destination.
            parallel: concurrent requests of a full load (default: adaptive).
            page_size: rows per page (1-5000).
            change_tracking: use change tracking where the table has it.
            soft_delete: keep rows deleted in Dataverse, stamped in ``_d365_deleted``
                (PostgreSQL and Delta Lake).

        Returns:
            One dict per table: ``table``, ``kind`` (``"full"``, ``"delta"`` or
            ``"watermark"``), ``upserted``, ``deleted``, ``rows`` (in the copy afterwards),
            ``warnings``, ``seconds``, ``destination`` (never a password).

        Raises:
            NotSupportedError: a destination this build cannot write to (``mssql://`` …;
                a plain ``s3://`` URL, which names the ``delta+s3://`` form to use).
            ProgrammingError: an unknown table or a malformed destination.
            OperationalError: the service, the database or the object store failed.
        """
        names = [t.strip() for t in tables.split(",")] if isinstance(tables, str) else list(tables)
        return self.session.sync(
            [t for t in names if t],
            os.fspath(to),
            parallel=parallel,
            page_size=page_size,
            change_tracking=change_tracking,
            soft_delete=soft_delete,
        )

    def export(
        self,
        table: str,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        select: str | Sequence[str] | None = None,
        filter: str | None = None,
        parallel: int | None = None,
        page_size: int | None = None,
    ) -> dict[str, Any]:
        """Export ``table`` into the file or Delta table ``path``; the same as ``d365 export``.

        Columns are typed as in SQL (exact decimals, UTC timestamps, dates) and include choice
        labels and lookup names (``statecodename``, ``parentaccountidname``). The table is read
        in parallel ranges; part files and a checkpoint are kept in ``<path>.parts/`` while it
        runs, so calling again after an interruption resumes where it stopped (in every
        format), and the file appears only when complete.

        Args:
            table: logical name (``"account"``) or entity set name.
            path: the output file, an object URL (``"s3://bucket/key.parquet"``), a Delta
                table (``"delta:lake/account"``, ``"delta+s3://bucket/lake/account"``), written
                in one commit that replaces its contents, or a PostgreSQL database
                (``"postgresql://user@host/db?schema=crm"``: the table of the same name, its
                rows replaced in one transaction; the primary key is always exported).
            format: ``"ndjson"``, ``"csv"``, ``"parquet"`` or ``"delta"`` (``path`` is then the
                table's directory or URL); by default from the file name's extension, else
                NDJSON.
            select: SQL column names (a list or a comma-separated string); every column by
                default.
            filter: an OData ``$filter`` of the rows (e.g. ``"statecode eq 0"``).
            parallel: concurrent requests (default: adaptive).
            page_size: rows per page (1-5000).

        Returns:
            ``rows``, ``resumed_rows`` (read by an earlier, interrupted call), ``output``,
            ``format``, ``requests``, ``seconds``.

        Raises:
            ProgrammingError: an unknown table or column (with the nearest name), a bad format.
            NotSupportedError: a destination this build cannot write to (``s3://`` …).
            OperationalError: the service failed; the checkpoint is kept for the next call.
        """
        columns = [c.strip() for c in select.split(",")] if isinstance(select, str) else list(select or [])
        return self.session.export(
            table,
            os.fspath(path),
            format=format,
            select=[c for c in columns if c],
            filter=filter,
            parallel=parallel,
            page_size=page_size,
        )

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._session is None:
            return "<d365.Connection closed>"
        return f"<d365.Connection {self._session.organization_url}>"


Description = tuple[str, str, None, None, Optional[int], Optional[int], bool]


class Cursor:
    """A cursor (PEP 249). Rows stream: each page is fetched and decoded when the rows before
    it have been consumed, so a large result never sits in memory whole. Iterating over the
    cursor (``for row in cur``) yields the remaining rows; the fetch methods go on where an
    interrupted loop stopped."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._arraysize = 1
        self._result: _internal.ResultStream | None = None
        # Rows read ahead by iteration and not yet handed out.
        self._buffer: deque[Row] = deque()
        self._progress: Progress | None = None
        self._description: list[Description] | None = None
        self._rowcount = -1
        self._closed = False
        self.last_write: dict[str, Any] | None = None
        """What the last write did: ``rows``, ``written``, ``requests``, ``skipped``,
        ``dry_run`` and, for a dry run, ``planned`` (the requests that would be sent)."""

    # -- PEP 249 attributes -------------------------------------------------------------------

    @property
    def description(self) -> list[Description] | None:
        """``(name, type_code, None, None, precision, scale, null_ok)`` per column of the last
        query; ``type_code`` is the SQL type name (``"DECIMAL(38,2)"``, ``"TIMESTAMP"``...).
        ``None`` after a write."""
        return self._description

    @property
    def arraysize(self) -> int:
        """Rows :meth:`fetchmany` returns by default (1 or more)."""
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = _count("arraysize", value, 1)

    @property
    def rowcount(self) -> int:
        """Rows written by the last write (``executemany``: by all its parameter sets); -1 for
        a query, whose size is not known before it is read, and before anything ran."""
        return self._rowcount

    def setinputsizes(self, sizes: Any) -> None:
        """Accepted and ignored (PEP 249)."""

    def setoutputsize(self, size: Any, column: int | None = None) -> None:
        """Accepted and ignored (PEP 249)."""

    # -- running statements -----------------------------------------------------------------

    def _check(self) -> _internal.Session:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        return self.connection.session

    def _reset(self) -> None:
        if self._result is not None:
            self._result.close()
        self._result = None
        self._buffer.clear()
        self._description = None
        self._rowcount = -1
        self.last_write = None

    def execute(self, operation: str, parameters: Params = None, **write_options: Any) -> Cursor:
        """Run one statement: a query, ``INSERT``/``UPSERT``/``UPDATE``/``DELETE``/``MERGE``,
        or ``EXEC Procedure @Arg = 'value'``. ``parameters`` are bound to the ``?`` markers.
        Keyword arguments are write options (see :attr:`Connection.write_options`), plus
        ``dry_run=True`` to see what a write would send.

        Returns the cursor itself, so ``cur.execute(...).fetchall()`` works.

        Raises:
            ProgrammingError: bad SQL, unknown table or column (with the nearest name), wrong
                parameter count or type.
            OperationalError: the service refused (403 on a table), throttling past the retry
                budget, sign-in failure. Writes that left rows unwritten raise with
                ``rowcount`` and ``failures`` (one dict per row) on the exception.
        """
        session = self._check()
        self._reset()
        options = {**self.connection.write_options, **write_options}
        out = session.execute(operation, parameters, options or None)
        self._take(out)
        return self

    def executemany(
        self, operation: str, seq_of_parameters: Sequence[Sequence[Any]], **write_options: Any
    ) -> Cursor:
        """Run a write statement for every parameter set. ``INSERT``/``UPSERT ... VALUES (?, ...)``
        sends all sets as one bulk write (CreateMultiple/UpsertMultiple chunks of up to 1,000
        rows, in parallel), never one request per row. Other statements run once per set."""
        session = self._check()
        self._reset()
        options = {**self.connection.write_options, **write_options}
        out = session.execute_many(operation, list(seq_of_parameters), options or None)
        self._take(out)
        return self

    def callproc(self, procname: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Call one of the OAuth procedures (``GetOAuthAuthorizationUrl``,
        ``GetOAuthAccessToken``, ``RefreshOAuthAccessToken``, ``GetAdminConsentURL``) with
        named arguments (a dict, or a sequence of ``(name, value)`` pairs); its result row is
        then fetched like a query's. Returns ``parameters`` unchanged (PEP 249)."""
        session = self._check()
        self._reset()
        if parameters is None:
            pairs: list[tuple[str, str]] = []
        elif isinstance(parameters, Mapping):
            pairs = [(str(k).lstrip("@"), str(v)) for k, v in parameters.items()]
        else:
            try:
                pairs = [(str(k).lstrip("@"), str(v)) for k, v in parameters]
            except (TypeError, ValueError):
                raise ProgrammingError(
                    "callproc takes named arguments: a dict or (name, value) pairs, e.g. "
                    "{'CallbackURL': 'http://localhost:33333'}"
                ) from None
        self._take(session.call_procedure(procname, pairs))
        return parameters

    def _take(self, out: Any) -> None:
        if isinstance(out, _internal.ResultStream):
            self._result = out
            self._progress = Progress(self.connection.session, self.connection.progress)
            self._description = [(n, t, None, None, p, s, null) for (n, t, p, s, null) in out.columns()]
            self._rowcount = -1
        else:
            self.last_write = out
            self._rowcount = int(out.get("written", 0))

    # -- fetching ----------------------------------------------------------------------------

    def _stream(self) -> _internal.ResultStream:
        self._check()
        if self._result is None:
            raise ProgrammingError("no result to fetch: the last statement was not a query (or none ran)")
        return self._result

    def _read(self, n: int | None) -> list[Row]:
        """Up to ``n`` rows (every row: ``None``) from the stream, past the buffer."""
        rows = self._stream().fetch(n)
        if self._progress is not None:
            self._progress.add(len(rows))
            if n is None or len(rows) < n:
                self._progress.done()
        return rows

    def _rows(self, n: int | None) -> list[Row]:
        buffer = self._buffer
        if not buffer:
            return self._read(n)
        if n is not None and len(buffer) >= n:
            return [buffer.popleft() for _ in range(n)]
        rows = list(buffer)
        buffer.clear()
        if n is None or len(rows) < n:
            rows.extend(self._read(None if n is None else n - len(rows)))
        return rows

    def fetchone(self) -> Row | None:
        """The next row, or ``None`` at the end."""
        rows = self._rows(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[Row]:
        """The next ``size`` rows (default :attr:`arraysize`); fewer only at the end."""
        n = self._arraysize if size is None else _count("fetchmany size", size, 0)
        return self._rows(n)

    def fetchall(self) -> list[Row]:
        """Every remaining row."""
        return self._rows(None)

    def __iter__(self) -> Iterator[Row]:
        self._stream()
        return self

    def __next__(self) -> Row:
        """The next row (rows are read from the stream 1,000 at a time, and kept until handed
        out: a loop left early loses none)."""
        if not self._buffer:
            self._buffer.extend(self._read(max(self._arraysize, 1000)))
            if not self._buffer:
                raise StopIteration
        return self._buffer.popleft()

    def nextset(self) -> None:
        """Only one result set per statement: always ``None``."""
        return None

    # -- Arrow and data frames --------------------------------------------------------------

    def __arrow_c_schema__(self) -> Any:
        """The result's schema as an Arrow C schema capsule."""
        return self._stream().__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The remaining rows as an Arrow C stream (the Arrow PyCapsule interface): pyarrow,
        polars and DuckDB read the pages without copying."""
        return self._arrow_stream().__arrow_c_stream__(requested_schema)

    def _arrow_stream(self) -> _internal.ResultStream:
        stream = self._stream()
        if self._buffer:
            raise ProgrammingError(
                f"{len(self._buffer)} rows read ahead by iterating over the cursor are not handed out yet: "
                "take them with fetchall() (or finish the loop) before reading the rest as Arrow"
            )
        return stream

    def _batches(self) -> Iterator[pyarrow.RecordBatch]:
        import pyarrow

        stream = self._arrow_stream()
        progress = self._progress
        while True:
            # Each page is imported without a copy (Arrow C data interface); waiting for it
            # releases the GIL and Ctrl-C interrupts it.
            page = stream.next_batch()
            if page is None:
                break
            batch = pyarrow.record_batch(page)
            if progress is not None:
                progress.add(batch.num_rows)
            yield batch
        if progress is not None:
            progress.done()

    def fetch_record_batch(self) -> pyarrow.RecordBatchReader:
        """The remaining rows as a streaming ``pyarrow.RecordBatchReader`` (one batch per page)."""
        import pyarrow

        return pyarrow.RecordBatchReader.from_batches(pyarrow.schema(self._arrow_stream()), self._batches())

    def fetch_arrow_table(self) -> pyarrow.Table:
        """The remaining rows as a ``pyarrow.Table`` (zero-copy from the decoded pages)."""
        import pyarrow

        schema = pyarrow.schema(self._arrow_stream())
        return pyarrow.Table.from_batches(list(self._batches()), schema=schema)

    def fetch_df(self) -> pandas.DataFrame:
        """The remaining rows as a pandas DataFrame (through Arrow: decimals stay exact as
        ``decimal.Decimal`` objects, timestamps are UTC ``datetime64``)."""
        return self.fetch_arrow_table().to_pandas()

    def fetch_polars(self) -> polars.DataFrame:
        """The remaining rows as a polars DataFrame (zero-copy through the Arrow C stream)."""
        import polars

        return polars.DataFrame(self)

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the cursor: the rest of the result is not read. :attr:`rowcount` keeps its
        value (SQLAlchemy reads it after closing)."""
        if not self._closed:
            if self._result is not None:
                self._result.close()
            self._result = None
            self._buffer.clear()
            self._closed = True

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<d365.Cursor {'closed' if self._closed else 'open'}>"
