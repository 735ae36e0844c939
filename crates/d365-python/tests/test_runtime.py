"""Behaviour around the core: threads (the GIL is released while waiting), Ctrl-C, streaming
memory, the emulator handle."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import threading

import pytest

import d365


def test_threads_query_in_parallel_and_the_gil_is_free(emulator: d365.Emulator) -> None:
    with d365.Emulator(rows=50, latency_ms=400) as slow:
        conn = d365.connect(slow.connection_string)
        results: dict[int, int] = {}
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                results[i] = conn.execute(
                    "SELECT count(*) FROM account WHERE numberofemployees >= ?", [i]
                ).fetchone()[0]
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        spins = 0
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            spins += 1  # pure Python: runs only while the queries do not hold the GIL
        assert not errors, errors
        assert sorted(results) == [0, 1, 2, 3] and results[0] == 50
        assert spins > 10_000, f"the main thread ran only {spins} loop turns while queries waited"
        conn.close()


CHILD = textwrap.dedent(
    """
    import sys, time, d365
    with d365.Emulator(rows=20, latency_ms=60_000) as emu:
        conn = d365.connect(emu.connection_string)
        print("ready", flush=True)
        start = time.monotonic()
        try:
            conn.execute("SELECT name FROM account").fetchall()
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted {time.monotonic() - start:.2f}", flush=True)
    """
)


def test_ctrl_c_interrupts_a_slow_query(python: str) -> None:
    child = subprocess.Popen([python, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    # The query's first request now waits on the emulator's 60 s latency.
    import time

    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=30)
    assert out.startswith("interrupted"), out
    assert float(out.split()[1]) < 30, out


# Peak RSS from VmHWM (this process image's high-water mark): getrusage's ru_maxrss would also
# count the parent's size, which Linux carries over exec.
STREAM = textwrap.dedent(
    """
    import sys, d365
    conn = d365.connect(sys.argv[1])
    cur = conn.execute("SELECT * FROM account")
    n = 0
    while True:
        rows = cur.fetchmany(5000)
        if not rows:
            break
        n += len(rows)
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(n, int(hwm.split()[1]) // 1024, flush=True)
    """
)

SERVE = textwrap.dedent(
    """
    import sys, d365
    with d365.Emulator(rows=int(sys.argv[1])) as emu:
        print(emu.connection_string, flush=True)
        sys.stdin.read()
    """
)


def test_fetchmany_streams_200k_rows_in_bounded_memory(python: str) -> None:
    # The emulator in its own process, so only the reader's memory is measured: 200,000
    # accounts, every column (about 4 KB of JSON each with the annotations).
    server = subprocess.Popen(
        [python, "-c", SERVE, "200000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        conn_str = server.stdout.readline().strip()
        out = subprocess.run([python, "-c", STREAM, conn_str], capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        rows, rss_mb = (int(x) for x in out.stdout.split())
        assert rows == 200_000
        assert rss_mb < 300, f"peak RSS {rss_mb} MB while streaming {rows} rows"
    finally:
        server.communicate("", timeout=60)


def test_emulator_handle() -> None:
    emu = d365.Emulator(rows=5)
    assert emu.running and emu.org_url.startswith("https://")
    assert "secret" not in repr(emu)
    with pytest.raises(KeyError, match="integration"):
        emu.app("nope")
    emu.stop()
    emu.stop()
    assert not emu.running
    assert "stopped" in repr(emu)


def test_a_forked_child_gets_a_clear_error(emulator: d365.Emulator) -> None:
    if not hasattr(os, "fork"):  # pragma: no cover
        pytest.skip("no fork")
    d365.connect(emulator.connection_string).close()  # the runtime runs in this process
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        try:
            d365.connect(emulator.connection_string)
            os._exit(1)
        except RuntimeError as e:
            os._exit(0 if "forked" in str(e) else 2)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_progress_line(emulator: d365.Emulator, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import d365.progress

    monkeypatch.setattr(d365.progress, "DELAY", 0.0)
    monkeypatch.setattr(d365.progress, "INTERVAL", 0.0)
    with d365.connect(emulator.connection_string, progress=True) as conn:
        assert conn.execute("SELECT name FROM account").fetchall()
        err = capsys.readouterr().err
        assert "500 rows" in err and "requests" in err and "rows/s" in err
        conn.execute("SELECT name FROM account").fetch_arrow_table()
        assert "500 rows" in capsys.readouterr().err
    with d365.connect(emulator.connection_string, progress=False) as conn:
        conn.execute("SELECT name FROM account").fetchall()
        assert capsys.readouterr().err == ""
    # Not a terminal here: off by default.
    with d365.connect(emulator.connection_string) as conn:
        assert conn.progress is False


def test_log_records_reach_python_logging_without_secrets(
    emulator: d365.Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    secret = emulator.app("integration")["client_secret"]
    caplog.set_level(logging.DEBUG)
    d365.refresh_logging()
    try:
        with d365.connect(emulator.secret_connection_string("integration")) as conn:
            conn.execute("SELECT name FROM account LIMIT 3").fetchall()
        wrong = emulator.secret_connection_string("integration").replace(secret, "emu~wrong~secret~1")
        with d365.connect(wrong) as conn, pytest.raises(d365.OperationalError):
            conn.execute("SELECT name FROM account LIMIT 3")
    finally:
        caplog.set_level(logging.WARNING)
        d365.refresh_logging()
    ours = [r for r in caplog.records if r.name.startswith("d365_")]
    assert any("token obtained" in r.getMessage() for r in ours), [r.getMessage() for r in ours]
    assert any(r.name.startswith("d365_auth") and "refused" in r.getMessage() for r in ours)
    for r in caplog.records:
        text = r.getMessage()
        assert secret not in text and "emu~wrong~secret~1" not in text, text


ARROW_CHILD = textwrap.dedent(
    """
    import sys, time, d365, pyarrow
    with d365.Emulator(rows=5000, latency_ms=2_000) as emu:
        conn = d365.connect(emu.connection_string, page_size=500, parallel=1)
        cur = conn.execute("SELECT name FROM account")   # the first page arrives now
        read = {
            "fetch_arrow_table": lambda: cur.fetch_arrow_table(),
            # An external consumer of the Arrow C stream (pyarrow's reader, as polars and
            # DuckDB read it).
            "c_stream": lambda: pyarrow.RecordBatchReader.from_stream(cur).read_all(),
        }[sys.argv[1]]
        print("ready", flush=True)
        start = time.monotonic()
        try:
            try:
                read()
                print("finished", flush=True)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                # A consumer's own error comes first; the interrupt is raised as soon as
                # Python runs on.
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    pass
                print(f"no interrupt after {type(e).__name__}: {e}", flush=True)
        except KeyboardInterrupt as k:
            print(f"interrupted {time.monotonic() - start:.2f} {k.__context__!r}", flush=True)
    """
)


@pytest.mark.parametrize("how", ["fetch_arrow_table", "c_stream"])
def test_ctrl_c_interrupts_arrow_reads(python: str, how: str) -> None:
    pytest.importorskip("pyarrow")
    child = subprocess.Popen([python, "-c", ARROW_CHILD, how], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    import time

    time.sleep(0.5)  # the next page now waits on the 2 s latency (ten pages: 20 s)
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert out.startswith("interrupted"), out
    assert float(out.split()[1]) < 1.9, out
    if how == "c_stream":
        assert "Ctrl-C" in out, out


def test_emulator_limits_and_faults_are_absorbed_or_reported() -> None:
    # Every request answered 429 once in a while: the client's retry policy absorbs it.
    with (
        d365.Emulator(rows=200, faults="429=0.3", fault_seed=3) as emu,
        d365.connect(emu.connection_string) as conn,
    ):
        # The n-th request draws the n-th fault of the seeded generator; with seed 3 the first
        # 429 is the eighth draw. Pushdown makes each read one request, so read several times.
        for _ in range(6):
            assert conn.execute("SELECT count(*) FROM account").fetchone() == (200,)
            assert len(conn.execute("SELECT name FROM account").fetchall()) == 200
        assert conn.stats()["throttled"] > 0
    with pytest.raises(d365.ProgrammingError, match="limits="):
        d365.Emulator(limits="requests=lots")
    with pytest.raises(d365.ProgrammingError, match="faults="):
        d365.Emulator(faults="teapot=1")
