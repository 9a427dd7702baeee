"""Headline numbers of hwmodel's SRAM table: ``python -m hwmodel.memories [--width 64] [--ports 1]``."""

from __future__ import annotations

import argparse

import numpy as np

from hwmodel.memories import CELLS, min_cacti_kib, sram

SIZES_KIB = (0.125, 0.25, 1, 16, 128, 1024)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--width", type=int, default=64, help="port width, bits")
    ap.add_argument("--ports", type=int, default=1, choices=(1, 2))
    args = ap.parse_args(argv)
    floor = float(min_cacti_kib(args.width))
    print(f"32 nm, {args.width}-bit port, {args.ports} port(s); CACTI prices >= {floor * 1024:g} B, "
          "a register file below")
    print(f"{'cell':>4} {'size':>8} {'read pJ':>9} {'write pJ':>9} {'leak mW':>10} {'area mm2':>10} "
          f"{'cycle ns':>9}  source")
    kib = np.array(SIZES_KIB)
    for cell in CELLS:
        read, write, leak, area, cycle = sram(kib, args.width, args.ports, cell)
        for k, r, w, lk, a, c in zip(kib, read, write, leak, area, cycle):
            size = f"{k * 1024:g} B" if k < 1 else f"{k:g} KiB"
            print(f"{cell:>4} {size:>8} {r:9.3f} {w:9.3f} {lk * 1e3:10.3g} {a:10.4g} {c:9.3f}  "
                  f"{'register file' if k < floor else 'CACTI'}")


if __name__ == "__main__":
    main()
