#!/usr/bin/env python3
"""Python read benchmark: N accounts, every column with formatted values, from an emulator in
its own process with a per-request latency, read four ways side by side in one run:

  d365 fetch_arrow_table()   d365.connect(...).execute("SELECT * FROM account").fetch_arrow_table()
  d365 fetchall()            the same, as Python tuples
  requests + json recipe     the seeds' loop: GET with Prefer maxpagesize 5000 and every
                             annotation, follow @odata.nextLink, json, rows as dicts
  Microsoft's Python SDK     PowerPlatform-Dataverse-Client records.list_pages(...)

For each: wall-clock seconds, rows/s, and the CPU time of this (reading) process per row. Run it
with a release build of the extension on PYTHONPATH (scripts/bench-python.sh does it all).

  python scripts/bench-python.py --rows 100000 --latency-ms 50 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any, Callable

import d365

SERVE = textwrap.dedent(
    """
    import sys, d365
    with d365.Emulator(rows=int(sys.argv[1]), latency_ms=int(sys.argv[2]),
                       latency_per_row_us=int(sys.argv[3])) as emu:
        print(emu._inner.ready_json, flush=True)
        sys.stdin.read()
    """
)


def token(info: dict[str, Any], app: dict[str, Any]) -> str:
    import requests

    r = requests.post(
        f"{info['authority']}/{info['tenant_id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "scope": f"{info['org_url']}/.default",
        },
        timeout=60,
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def recipe(info: dict[str, Any], bearer: str) -> int:
    import requests

    s = requests.Session()
    s.headers.update(
        {
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
            "Prefer": 'odata.include-annotations="*",odata.maxpagesize=5000',
        }
    )
    url: str | None = f"{info['webapi']}/accounts"
    rows: list[dict[str, Any]] = []
    while url:
        r = s.get(url, timeout=300)
        r.raise_for_status()
        page = json.loads(r.content)
        rows.extend(page["value"])
        url = page.get("@odata.nextLink")
    return len(rows)


def sdk(info: dict[str, Any], bearer: str) -> int:
    from azure.core.credentials import AccessToken
    from PowerPlatform.Dataverse.client import DataverseClient

    class Fixed:
        def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
            return AccessToken(bearer, int(time.time()) + 3000)

    rows: list[Any] = []
    with DataverseClient(info["org_url"], Fixed()) as client:
        for page in client.records.list_pages("account", page_size=5000, include_annotations="*"):
            rows.extend(page)
    return len(rows)


def measure(fn: Callable[[], int]) -> tuple[int, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return n, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000, help="accounts to read")
    p.add_argument("--latency-ms", type=int, default=50, help="emulator latency per Web API request")
    p.add_argument(
        "--latency-per-row-us",
        type=int,
        default=0,
        help="emulator service time per row returned (a sleep: server time that costs the client no CPU)",
    )
    p.add_argument("--rounds", type=int, default=2, help="rounds; the best of each method is kept")
    p.add_argument("--skip-sdk", action="store_true", help="leave out Microsoft's SDK")
    p.add_argument(
        "--only",
        metavar="TEXT",
        help="run only the methods whose name contains TEXT (e.g. 'arrow', to profile one of them)",
    )
    a = p.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(a.rows), str(a.latency_ms), str(a.latency_per_row_us)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        os.environ["REQUESTS_CA_BUNDLE"] = info["ca_pem"]
        app = next(x for x in info["apps"] if x["name"] == "integration")
        conn_str = (
            f"OrganizationUrl={info['org_url']};AuthScheme=AzureServicePrincipal;"
            f"AzureTenant={info['tenant_id']};"
            f"OAuthClientId={app['client_id']};OAuthClientSecret={app['client_secret']};"
            f"AzureAuthorityHost={info['authority']};SSLServerCert={info['ca_pem']}"
        )
        bearer = token(info, app)
        conn = d365.connect(conn_str)
        conn.execute("SELECT name FROM account LIMIT 1").fetchall()  # metadata, token

        def arrow() -> int:
            return int(conn.execute("SELECT * FROM account").fetch_arrow_table().num_rows)

        def rows() -> int:
            return len(conn.execute("SELECT * FROM account").fetchall())

        methods: dict[str, Callable[[], int]] = {
            "d365 fetch_arrow_table()": arrow,
            "d365 fetchall()": rows,
            "requests + json recipe": lambda: recipe(info, bearer),
        }
        if not a.skip_sdk:
            methods["PowerPlatform-Dataverse-Client list_pages"] = lambda: sdk(info, bearer)
        if a.only:
            methods = {k: v for k, v in methods.items() if a.only in k}
        best: dict[str, tuple[int, float, float]] = {}
        for r in range(a.rounds):
            for name, fn in methods.items():
                n, wall, cpu = measure(fn)
                print(f"round {r + 1}: {name}: {n} rows, {wall:.2f} s wall, {cpu:.2f} s CPU", file=sys.stderr)
                if name not in best or wall < best[name][1]:
                    best[name] = (n, wall, cpu)
        base = best.get("requests + json recipe")
        print(
            f"\n{a.rows} accounts, every column with formatted values, "
            f"emulator latency {a.latency_ms} ms/request"
            f" + {a.latency_per_row_us} µs/row"
        )
        print(
            f"{'method':<44}{'rows':>9}{'wall s':>9}{'rows/s':>10}{'CPU µs/row':>12}"
            f"{'speed x':>8}{'CPU /':>7}"
        )
        for name, (n, wall, cpu) in best.items():
            ratios = f"{'-':>8}{'-':>7}"
            if base:
                ratios = f"{base[1] / wall:>8.1f}{(base[2] / base[0]) / (cpu / n):>7.1f}"
            print(f"{name:<44}{n:>9}{wall:>9.2f}{n / wall:>10.0f}{cpu / n * 1e6:>12.2f}{ratios}")
        conn.close()
    finally:
        server.communicate("", timeout=120)


if __name__ == "__main__":
    main()
