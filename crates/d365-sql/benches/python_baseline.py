"""The Python baseline of benches/decode.rs: what the seed recipe does with a Web API page
(requests + json, follow @odata.nextLink, build a list of row dicts), timed by CPU.

  python_baseline.py pages DIR              decode the saved page bodies DIR/page-*.json
  python_baseline.py live URL TOKEN CA      GET URL with requests, follow nextLink

Prints one JSON object: rows, cpu_s (process CPU time of the timed part), wall_s.
"""

import glob
import json
import os
import sys
import time

# Best of this many runs, as for the Rust decoders (benches/decode.rs: REPS).
REPS = 5


def rows_of(page, out):
    # One dict per row, as the recipe hands rows on.
    for r in page["value"]:
        out.append(dict(r))


def pages(directory):
    blobs = []
    for path in sorted(glob.glob(os.path.join(directory, "page-*.json"))):
        with open(path, "rb") as f:
            blobs.append(f.read())
    best = None
    for _ in range(REPS):
        out = []
        c0, w0 = time.process_time(), time.perf_counter()
        for b in blobs:
            rows_of(json.loads(b), out)
        c1, w1 = time.process_time(), time.perf_counter()
        if best is None or c1 - c0 < best["cpu_s"]:
            best = {"rows": len(out), "cpu_s": c1 - c0, "wall_s": w1 - w0}
    return best


def live(url, token, ca):
    import requests

    s = requests.Session()
    s.verify = ca
    headers = {
        "Authorization": "Bearer " + token,
        "Accept": "application/json",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
        "Prefer": 'odata.include-annotations="*",odata.maxpagesize=5000',
    }
    out = []
    c0, w0 = time.process_time(), time.perf_counter()
    while url:
        r = s.get(url, headers=headers, verify=ca)
        r.raise_for_status()
        page = r.json()
        rows_of(page, out)
        url = page.get("@odata.nextLink")
    c1, w1 = time.process_time(), time.perf_counter()
    return {"rows": len(out), "cpu_s": c1 - c0, "wall_s": w1 - w0}


if __name__ == "__main__":
    if sys.argv[1] == "pages":
        print(json.dumps(pages(sys.argv[2])))
    else:
        print(json.dumps(live(sys.argv[2], sys.argv[3], sys.argv[4])))
