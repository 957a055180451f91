#!/usr/bin/env python3
"""gen-regs-header.py REGS_RS OUT_H: the register map (the one source of
truth, regs/vslice_regs.rs) as a C header for C users outside the kernel
module (the VFIO selftests driver). Every constant becomes
VSLICE_<NAME>, evaluated; nothing is written by hand. The values are the
ones scripts/check-regs-doc.py checks docs/device.md against."""
import importlib.util
import os
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("regsdoc", os.path.join(here, "check-regs-doc.py"))
    regsdoc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regsdoc)
    vals, _ = regsdoc.consts(sys.argv[1])
    bad = [n for n, v in vals.items() if v is None]
    if bad:
        print(f"cannot evaluate: {', '.join(bad)}", file=sys.stderr)
        return 1
    lines = [
        "/* SPDX-License-Identifier: GPL-2.0 */",
        "/* Generated from regs/vslice_regs.rs by scripts/gen-regs-header.py: do not edit. */",
        "#ifndef VSLICE_REGS_H",
        "#define VSLICE_REGS_H",
        "",
    ]
    for name, v in vals.items():
        lines.append(f"#define VSLICE_{name} {v:#x}ULL")
    lines += ["", "#endif /* VSLICE_REGS_H */", ""]
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
