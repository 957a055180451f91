#!/usr/bin/env python3
"""bench-md.py REPORT.json: vslice-bench's JSON report as the markdown
table docs/benchmarks.md shows (median, p10, p90, ratio subject/peer)."""
import json
import sys


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.0f}"


def main():
    r = json.load(open(sys.argv[1]))
    m = r["meta"]
    print(f"Kernel {m.get('kernel')}, parent {m.get('parent')} ({m.get('units')} units), "
          f"{m.get('reps')} repetitions{' (smoke)' if m.get('smoke') == 'true' else ''}.\n")
    print("| | measurement | series | unit | median | p10 | p90 | ratio |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    for row in r["rows"]:
        for i, s in enumerate(row["series"]):
            first = i == 0
            print(f"| {row['id'] if first else ''} | {row['what'] if first else ''} | {s['label']} (n={s['n']}) "
                  f"| {row['unit']} | {fmt(s['median'])} | {fmt(s['p10'])} | {fmt(s['p90'])} | {fmt(s['ratio'])} |")
    if r["facts"]:
        print("\n| fact | value |\n| --- | ---: |")
        for k, v in r["facts"].items():
            print(f"| {k} | {fmt(v)} |")
    for p in r["problems"]:
        print(f"\nproblem: {p}")
    return 1 if r["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
