#!/usr/bin/env python3
"""ktap-count.py KUNIT_PY FILE: split FILE (guest output) into KTAP
documents, parse each with the kernel's `kunit.py parse --json`, print
every leaf test as "ok|not ok|skip NAME" and a last line
"COUNT passed failed skipped". A document kunit.py cannot parse counts as
one failed test."""
import json
import os
import subprocess
import sys
import tempfile


def leaves(node, prefix):
    subs = node.get("sub_groups") or []
    cases = node.get("test_cases") or []
    name = prefix + node.get("name", "?")
    if name == "KUnit Test Group":
        name = ""
    sep = "." if name else ""
    if not subs and not cases:
        yield name, node.get("status", "FAIL")
    for c in cases:
        yield name + sep + c.get("name", "?"), c.get("status", "FAIL")
    for s in subs:
        yield from leaves(s, name + sep)


def main():
    kunit_py, path = sys.argv[1], sys.argv[2]
    docs, cur = [], None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.startswith("VSLICE-REPORT "):
                continue  # a scenario's JSON report, saved by the host
            if line == "KTAP version 1":
                cur = [line]
                docs.append(cur)
            elif cur is not None:
                cur.append(line)
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for i, doc in enumerate(docs):
        with tempfile.TemporaryDirectory() as td:
            src = os.path.join(td, "doc.ktap")
            out = os.path.join(td, "doc.json")
            with open(src, "w") as f:
                f.write("\n".join(doc) + "\n")
            r = subprocess.run([sys.executable, kunit_py, "parse", "--json=" + out, src],
                               capture_output=True, text=True)
            try:
                with open(out) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                print(f"not ok ktap_document_{i} (kunit.py parse failed: {r.stderr.strip()[-200:]})")
                counts["FAIL"] += 1
                continue
        for name, status in leaves(data, ""):
            status = status if status in counts else "FAIL"
            counts[status] += 1
            word = {"PASS": "ok", "FAIL": "not ok", "SKIP": "skip"}[status]
            print(f"{word} {name}")
    if not docs:
        print("not ok guest_results (no KTAP document in the guest output)")
        counts["FAIL"] += 1
    print(f"COUNT {counts['PASS']} {counts['FAIL']} {counts['SKIP']}")


main()
