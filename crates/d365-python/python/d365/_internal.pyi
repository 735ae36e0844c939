"""Type stubs of the compiled core (``d365._internal``)."""

from typing import Any

__version__: str

def refresh_logging() -> None:
    """Forget the cached logger levels, after the logging configuration changed."""

def is_secret_property(name: str) -> bool:
    """Whether a connection property (any spelling or alias) holds a secret."""

class Warning(Exception): ...

class Error(Exception):
    """Base class of every d365 error; the attributes are ``None`` where not known."""

    status: int | None
    """The HTTP status the service answered with."""
    code: str | None
    """Dataverse's error code (``"0x80040220"``) or Entra ID's (``"AADSTS7000215"``)."""
    request_id: str | None
    """The service's request id, for support cases."""
    rowcount: int | None
    """Rows written before a write failed or stopped."""
    failures: list[dict[str, Any]] | None
    """A failed write's rows: ``row``, ``key``, ``column``, ``status``, ``code``, ``message``."""

class InterfaceError(Error): ...
class DatabaseError(Error): ...
class DataError(DatabaseError): ...
class OperationalError(DatabaseError): ...
class IntegrityError(DatabaseError): ...
class InternalError(DatabaseError): ...
class ProgrammingError(DatabaseError): ...
class NotSupportedError(DatabaseError): ...

class ResultStream:
    def columns(self) -> list[tuple[str, str, int | None, int | None, bool]]: ...
    def fetch(self, n: int | None = None) -> list[tuple[Any, ...]]: ...
    def next_batch(self) -> Any | None:
        """The next page as an object with ``__arrow_c_array__``, or None at the end."""
    def __arrow_c_schema__(self) -> object: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    def close(self) -> None: ...

class Session:
    @staticmethod
    def open(
        connection_string: str,
        overrides: list[tuple[str, str]],
        interactive: str,
        parallel: int | None = None,
        page_size: int | None = None,
        aggregate_pushdown: bool = True,
    ) -> Session: ...
    @property
    def organization_url(self) -> str: ...
    def execute(
        self, sql: str, parameters: Any | None = None, options: dict[str, Any] | None = None
    ) -> ResultStream | dict[str, Any]: ...
    def execute_many(
        self, sql: str, parameter_sets: Any, options: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...
    def call_procedure(self, name: str, arguments: list[tuple[str, str]]) -> ResultStream: ...
    def table_names(self) -> list[str]: ...
    def record_counts(self, tables: list[str]) -> list[int | None]: ...
    def stats(self) -> dict[str, Any]: ...
    def columns(self, table: str) -> list[dict[str, Any]]: ...
    def sync(
        self,
        tables: list[str],
        to: str,
        parallel: int | None = None,
        page_size: int | None = None,
        change_tracking: bool = True,
        soft_delete: bool = False,
    ) -> list[dict[str, Any]]: ...
    def export(
        self,
        table: str,
        path: str,
        format: str | None = None,
        select: list[str] | None = None,
        filter: str | None = None,
        parallel: int | None = None,
        page_size: int | None = None,
    ) -> dict[str, Any]: ...
    def close(self) -> None: ...

class Emulator:
    def __init__(
        self,
        rows: int = 1000,
        port: int = 0,
        data: str | None = None,
        config: str | None = None,
        latency_ms: int = 0,
        latency_per_row_us: int = 0,
        dop_hint: int | None = None,
        verbose: bool = False,
        auto_approve: str | None = None,
        state_dir: str | None = None,
        token_lifetime_s: int = 3600,
        limits: str | None = None,
        faults: str | None = None,
        fault_seed: int = 1,
        app_users: int = 0,
    ) -> None: ...
    @property
    def connection_string(self) -> str: ...
    @property
    def ready_json(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def stop(self) -> None: ...

def load_manifest(location: str) -> str: ...
def plan(
    session: Session,
    tables: list[str],
    to: str,
    output: str | None = None,
    unit_rows: int = 200_000,
    credentials: int = 1,
    change_tracking: bool = True,
) -> str: ...
def run_units(
    session: Session,
    manifest: str,
    shard: str | None = None,
    units: list[str] | None = None,
    parallel: int | None = None,
    page_size: int | None = None,
) -> dict[str, Any]: ...
def commit(manifest: str, to: str | None = None) -> list[dict[str, Any]]: ...
def read_unit(session: Session, manifest: str, unit: str, parallel: int | None = None) -> ResultStream: ...
