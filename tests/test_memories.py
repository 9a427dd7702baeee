"""hwmodel.memories: the CACTI 7 SRAM table (hwmodel/memories/sram_cacti7_32nm.csv), its loader, its
register-file price below CACTI's floor, and (with a CACTI binary in $CACTI_DIR) its generator."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from hwmodel import ert, memories
from hwmodel.memories import generate

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "hwmodel" / "memories" / "sram_cacti7_32nm.csv"


def _rows():
    return {(r["cell"], int(r["ports"]), int(r["width_bits"]), int(r["size_bytes"])): r for r in memories.table()}


def _f(row, q):
    return float(row[q])


def test_csv_covers_the_sweep():
    rows = _rows()
    sidecar = yaml.safe_load(CSV.with_suffix(".yaml").read_text())
    rejected = {(r["cell"], r["ports"], r["width_bits"], r["size_bytes"]) for r in sidecar["rejected"]}
    assert sidecar["node_nm"] == 32 and sidecar["objective"]["name"] == generate.DEFAULT_OBJECTIVE
    for point in generate.sweep_points():
        size, width, ports, cell = point
        key = (cell, ports, width, size)
        # CACTI refuses exactly the arrays under its floor, and prices all the others
        below = size * 8 // width < memories.MIN_ROWS or size < memories.MIN_BYTES
        assert (key in rows) == (not below), key
        assert (key in rejected) == below, key
    assert len(rows) == sidecar["rows"] == len(generate.sweep_points()) - len(rejected)
    for row in rows.values():
        assert set(row) == set(generate.COLUMNS)
        assert int(row["rows"]) * int(row["width_bits"]) == 8 * int(row["size_bytes"])
        for q in ("read_pj", "write_pj", "subthreshold_leak_mw", "gate_leak_mw", "area_mm2", "access_ns",
                  "cycle_ns"):
            assert _f(row, q) > 0 and np.isfinite(_f(row, q)), (row, q)
    header = [line for line in CSV.read_text().splitlines() if line.startswith("#")]
    assert any("CACTI" in line and "version" in line for line in header)
    assert any("python -m hwmodel.memories.generate" in line for line in header)


def test_energy_grows_with_capacity():
    """Every doubling of the capacity costs more per read and per write (CACTI's ED^2 organizations)."""
    rows = _rows()
    for (cell, ports, width, size), row in rows.items():
        bigger = rows.get((cell, ports, width, 2 * size))
        if bigger is not None:
            for q in ("read_pj", "write_pj", "area_mm2", "subthreshold_leak_mw"):
                assert _f(bigger, q) > _f(row, q), (cell, ports, width, size, q)


def test_energy_grows_with_width():
    """A wider word costs more per read: from 8 to 128 bits at every capacity, and at every doubling except
    where CACTI's organization changes (4 KiB; 8-bit words at 4 MiB hit CACTI's Nspd <= 256): at most 14 %
    less there (docs/memories.md)."""
    rows = _rows()
    for (cell, ports, width, size), row in rows.items():
        wider = rows.get((cell, ports, 2 * width, size))
        if wider is not None:
            assert _f(wider, "read_pj") > 0.85 * _f(row, "read_pj"), (cell, ports, width, size)
            assert _f(wider, "write_pj") > 0.85 * _f(row, "write_pj"), (cell, ports, width, size)
        widest = rows.get((cell, ports, 16 * width, size))
        if widest is not None:
            assert _f(widest, "read_pj") > _f(row, "read_pj")
    dips = [k for k, r in rows.items() if (w := rows.get((k[0], k[1], 2 * k[2], k[3])))
            and _f(w, "read_pj") < _f(r, "read_pj")]
    assert all(size in (4096, 4 << 20) for _, _, _, size in dips), dips


def test_write_priced_separately_from_read():
    rows = _rows()
    ratio = np.array([_f(r, "write_pj") / _f(r, "read_pj") for r in rows.values()])
    assert not np.allclose(ratio, 1.0)
    assert (ratio > 1.05).sum() > 20 and (ratio < 0.95).sum() > 20   # either way, by organization
    read, write, *_ = memories.sram(np.array([1.0, 64.0]), 64)
    assert np.all(read != write)


def test_hp_leaks_more_than_lstp_and_is_faster():
    rows = _rows()
    for (cell, ports, width, size), row in rows.items():
        if cell == "lstp":
            hp = rows[("hp", ports, width, size)]
            leak = lambda r: _f(r, "subthreshold_leak_mw") + _f(r, "gate_leak_mw")  # noqa: E731
            assert leak(hp) > 100 * leak(row)
            assert _f(hp, "access_ns") < _f(row, "access_ns")


def test_two_ports_cost_more_than_one():
    rows = _rows()
    for (cell, ports, width, size), row in rows.items():
        if ports == 1:
            two = rows[(cell, 2, width, size)]
            assert _f(two, "area_mm2") > _f(row, "area_mm2")
            assert _f(two, "read_pj") > _f(row, "read_pj")


def test_loader_exact_at_generated_points():
    rows = _rows()
    for cell in memories.CELLS:
        for ports in memories.PORTS:
            keys = [k for k in rows if k[0] == cell and k[1] == ports]
            kib = np.array([k[3] / 1024 for k in keys])
            width = np.array([k[2] for k in keys])
            read, write, leak, area, cycle = memories.sram(kib, width, ports, cell)
            for n, k in enumerate(keys):
                r = rows[k]
                assert read[n] == _f(r, "read_pj") and write[n] == _f(r, "write_pj"), k
                assert leak[n] == 1e-3 * (_f(r, "subthreshold_leak_mw") + _f(r, "gate_leak_mw")), k
                assert area[n] == _f(r, "area_mm2") and cycle[n] == _f(r, "cycle_ns"), k
    # one scalar call gives the same as the vectorized ones
    r = rows[("hp", 2, 32, 16384)]
    assert float(memories.sram(16, 32, 2, "hp")[0]) == _f(r, "read_pj")


def test_loader_between_neighbours():
    rows = _rows()
    for cell in memories.CELLS:
        for ports in memories.PORTS:
            for (c, p, width, size), row in rows.items():
                if (c, p) != (cell, ports) or (c, p, width, 2 * size) not in rows:
                    continue
                up = rows[(c, p, width, 2 * size)]
                mid = memories.sram(1.5 * size / 1024, width, ports, cell)
                for n, q in enumerate(("read_pj", "write_pj", None, "area_mm2", "cycle_ns")):
                    if q is None:
                        continue
                    lo, hi = sorted((_f(row, q), _f(up, q)))
                    assert lo <= mid[n] <= hi, (c, p, width, size, q)
                # between widths 32 and 64, at a capacity both price
                if width == 32 and (c, p, 64, size) in rows:
                    lo, hi = sorted((_f(row, "read_pj"), _f(rows[(c, p, 64, size)], "read_pj")))
                    assert lo <= memories.sram(size / 1024, 48, ports, cell)[0] <= hi


def test_broadcast_and_throughput():
    kib = np.geomspace(0.05, 4096, 101)[:, None]
    width = np.array([8, 16, 24, 32, 64, 128])[None, :]
    out = memories.sram(kib, width, 1, "lstp")
    assert all(x.shape == (101, 6) for x in out)
    assert all(np.all(np.isfinite(x)) and np.all(x > 0) for x in out)
    assert all(float(x) == 0.0 for x in memories.sram(0.0, 64))
    n = 100_000
    kib = np.random.default_rng(0).uniform(0.01, 4096, n)
    width = np.random.default_rng(1).choice([8, 16, 32, 64, 128], n)
    memories.sram(kib[:10], width[:10])       # the table loads once
    start = time.perf_counter()
    memories.sram(kib, width, 2, "hp")
    assert time.perf_counter() - start < 0.5   # >= 2e5 estimates/s on a busy 2-core machine
    with pytest.raises(ValueError):
        memories.sram(1.0, 64, 3)


def test_register_file_below_cacti_floor():
    assert memories.ENERGY_EXPONENT == ert.ENERGY_EXPONENT and memories.AREA_EXPONENT == ert.AREA_EXPONENT
    # the crossover: 32 words (64 B for 8- and 16-bit words)
    assert np.allclose(memories.min_cacti_kib(np.array([8, 16, 32, 64, 128])) * 1024, [64, 64, 128, 256, 512])
    floor_b = 256
    kib = np.array([16, 64, 128, 255]) / 1024
    read, write, leak, area, cycle = memories.sram(kib, 64, 1, "hp")
    assert np.allclose(read, 64 * memories.REG_PJ_PER_BIT) and np.allclose(write, read)
    assert np.allclose(leak, kib * 8192 * memories.REG_LEAK_W_PER_BIT)
    assert np.allclose(area, kib * 8192 * memories.REG_MM2_PER_BIT)
    at_floor = memories.sram(floor_b / 1024, 64, 1, "hp")
    assert np.all(cycle == at_floor[4])
    # at the floor the flops leak like CACTI's hp array (Aladdin's 40 nm library ~ ITRS hp devices) ...
    assert 0.8 < leak[-1] / at_floor[2] < 1.25
    # ... and an lstp register file by CACTI's lstp/hp ratio less
    lstp = memories.sram(kib, 64, 1, "lstp")
    assert np.allclose(lstp[2], leak * memories.lstp_leak_factor())
    assert 1 / 2000 < memories.lstp_leak_factor() < 1 / 1000
    # the register file is cheaper per access than CACTI's smallest array, and larger
    assert read[-1] < at_floor[0] and area[-1] > at_floor[3]


def test_generator_config_and_parser_without_cacti():
    text = generate.config_text(2048, 32, 2, "hp")
    assert "$" not in text
    for line in ("-size (bytes) 2048", "-block size (bytes) 4", "-output/input bus width 32", "-read-write port 2",
                 "-exclusive read port 0", '-Data array cell type - "itrs-hp"', "-technology (u) 0.032",
                 '-cache type "ram"', '-Optimize ED or ED^2 (ED, ED^2, NONE): "ED^2"'):
        assert line in text.splitlines(), line
    printed = """
---------- CACTI (version 7.0.3DD Prerelease of Aug, 2012), Uniform Cache Access SRAM Model ----------
    Access time (ns): 0.5
    Cycle time (ns):  0.25
    Total dynamic read energy per access (nJ): 0.00125
    Total dynamic write energy per access (nJ): 0.0015
    Total leakage power of a bank (mW): 0.001
    Total gate leakage power of a bank (mW): 0.0002
    Cache height x width (mm): 0.05 x 0.04

    Best Ndwl : 2
    Best Ndbl : 4
    Best Nspd : 1
    Best Ndcm : 2
    Best Ndsam L1 : 1
    Best Ndsam L2 : 1
"""
    row = generate.row_from(2048, 32, 2, "hp", generate.parse_output(printed))
    assert row["read_pj"] == "1.25" and row["write_pj"] == "1.5" and row["area_mm2"] == "0.002"
    assert row["rows"] == "512" and row["ndbl"] == "4"
    assert generate.parse_output("Cache size must >=64\n") is None


CACTI_DIR = os.environ.get("CACTI_DIR")


@pytest.mark.skipif(not CACTI_DIR, reason="set CACTI_DIR to a built CACTI 7's folder to rerun the generator")
def test_generator_reproduces_committed_rows():
    rows = _rows()
    for size, width, ports, cell in ((256, 64, 1, "lstp"), (16384, 32, 2, "hp"), (1 << 20, 128, 1, "lstp")):
        row, version = generate.run_point(CACTI_DIR, size, width, ports, cell)
        assert row is not None, version
        committed = rows[(cell, ports, width, size)]
        for q in generate.COLUMNS:
            if q in ("cell",):
                assert row[q] == committed[q]
            else:
                assert float(row[q]) == pytest.approx(float(committed[q]), rel=1e-5), (size, width, q)
    row, why = generate.run_point(CACTI_DIR, 128, 64, 1, "lstp")      # 16 rows: CACTI finds no organization
    assert row is None and why


def test_one_bank_is_priced_as_the_vector_path_prices_it() -> None:
    """A scalar estimate takes ``sram``'s one-bank path (Python floats); it must give the vector path's prices,
    on CACTI's table, between its points, beyond its ends and in the register-file range."""
    rng = np.random.default_rng(0)
    kib = np.exp(rng.uniform(np.log(0.01), np.log(8000.0), 200))
    width = rng.choice([4.0, 8.0, 13.0, 29.0, 64.0, 100.0, 128.0, 300.0], 200)
    for cell in memories.CELLS:
        for ports in memories.PORTS:
            many = memories.sram(kib, width, ports, cell)
            for i in range(len(kib)):
                one = memories.sram(np.array([kib[i]]), width[i], ports, cell)
                assert [float(q[0]) for q in one] == pytest.approx([float(q[i]) for q in many], rel=1e-12, abs=0)
