#!/usr/bin/env python3
"""check-regs-doc.py REGS_RS DOC_MD: the register map (the one source of
truth) and its documentation agree.

- every constant in REGS_RS is named in DOC_MD (as `NAME`);
- where DOC_MD gives a value (a table row "| `NAME` | `VALUE` |" or the
  form "`NAME` = `VALUE`"), it equals the constant's value;
- every `UPPER_CASE` name DOC_MD uses in backticks exists in REGS_RS.
Prints each disagreement and exits 1 if there is any."""
import re
import sys


def consts(path):
    src = open(path).read()
    src = re.sub(r"//[^\n]*", "", src)
    exprs = {}
    for m in re.finditer(r"pub const (\w+): \w+ = (.*?);", src, re.S):
        py = re.sub(r"\bas \w+", "", " ".join(m.group(2).split()))
        py = re.sub(r"\b(0x[0-9a-fA-F_]+|[0-9][0-9_]*)", lambda n: n.group(1).replace("_", ""), py)
        exprs[m.group(1)] = py.replace("/", "//")
    vals = dict.fromkeys(exprs)
    # Constants may refer to later ones: evaluate until nothing changes.
    for _ in range(len(exprs)):
        for name, py in exprs.items():
            if vals[name] is None:
                try:
                    vals[name] = eval(py, {}, {k: v for k, v in vals.items() if v is not None})
                except Exception:  # noqa: BLE001 - not evaluable yet
                    pass
    fns = set(re.findall(r"pub const fn (\w+)", src))
    return vals, fns


def main():
    vals, fns = consts(sys.argv[1])
    unknown = [n for n, v in vals.items() if v is None]
    if unknown:
        print(f"cannot evaluate: {', '.join(unknown)}")
        return 1
    doc = open(sys.argv[2]).read()
    bad = []
    for name, v in vals.items():
        if f"`{name}`" not in doc:
            bad.append(f"{name} is not documented in {sys.argv[2]}")
            continue
        pats = [rf"\|\s*`{name}`\s*\|\s*`([^`]+)`", rf"`{name}`\s*=\s*`([^`]+)`", rf"`{name}`\s*\(`?([0-9][0-9a-fA-Fx]*)`?\)"]
        for pat in pats:
            for m in re.finditer(pat, doc):
                try:
                    d = int(m.group(1).replace("_", ""), 0)
                except ValueError:
                    continue
                if v is not None and d != v:
                    bad.append(f"{name}: doc says {m.group(1)}, regs say {v:#x}")
    for name in sorted(set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9])`", doc))):
        if name not in vals and name not in fns:
            bad.append(f"{sys.argv[2]} names `{name}`, which regs do not define")
    for b in bad:
        print(b)
    print(f"{len(vals)} constants checked, {len(bad)} disagreement(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
