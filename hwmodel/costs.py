"""The cost-term registry: every energy the model charges, with its kind, action, price and source.

The model (model.py) counts each term's actions in its stages and prices each term with one function of them
(``model.PRICES``); breakdowns group terms by ``kind``. A new component is one entry here plus its price function
(and, if it counts a new action, that count in the stage it belongs to); the model refuses to load when the two
lists differ.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Term:
    name: str
    kind: str
    action: str       # what is counted
    price: str        # what one action costs
    source: str


KINDS = ("compute", "memory", "interconnect", "clock", "leakage", "dram")
CHIP_KINDS = KINDS[:-1]    # the on-chip (core) energy; DRAM is the off-chip rest of the system

TERMS = (
    Term("datapath", "compute", "synaptic operation (SOP); an add layer's shortcut spike is one accumulate",
         "log: exponent add + shift + accumulate; int: n x n multiply + accumulate",
         "Horowitz ISSCC 2014 (x0.51 to 28 nm); ISAAC shift = 0.75 add"),
    Term("weight_register", "compute", "SOP (the PE reads its weight register); weight bit loaded into a register "
         "(a write)", "weight_bits x register bit",
         "Aladdin 40 nm register 0.009 pJ/bit"),
    Term("fire", "compute", "output neuron of a spiking layer",
         "compare: T compares of the Vmem width; lod: one leading-one detect (~one compare)",
         "Aladdin 40 nm comparator 0.029 pJ / 32 bits"),
    Term("pool", "compute", "max-pool input spike", "compare of the spike-time bits", "Aladdin comparator"),
    Term("vmem_sram", "memory", "Vmem read and write per SOP (shortcut accumulates included); init write and "
         "fire read per output",
         "a read and a write through the neuron-word port of one bank", "CACTI 7 table (hwmodel/memories), 32 nm x0.8"),
    Term("weight_sram", "memory", "weight bits read into PE registers (64-bit port; a crossbar core's synapse word, "
         "read and written back once per word's neurons); 64-bit words written when streamed",
         "a port-width access (30 % fixed + its share of the bits when narrower) at the weight bank size",
         "CACTI 7 table"),
    Term("spike_sram", "memory", "event read per PE round, event write per output spike; an add's shortcut "
         "spike: one more write (the residual buffer, kept until the add) and its read",
         "a read or a write through the widest event's port of the spike SRAM", "CACTI 7 table"),
    Term("wire", "interconnect", "bit x mm moved: spike broadcast, Vmem bus, weight load",
         "0.087 pJ/bit/mm at 0.9 V (0.174 full swing x 0.5 toggle rate)", "on-chip interconnect survey (ISRN Electronics 2012), 130 nm 1.2 V x V^2"),
    Term("clock", "clock", "cycle", "clocked PE flip-flops x DFF clock energy", "ZigZag 28 nm DFF 1.7 fJ/bit"),
    Term("control_clock", "clock", "cycle", "SRAM port registers (address + data in and out per bank) x DFF "
         "clock energy", "ZigZag 28 nm DFF 1.7 fJ/bit; ports from the derived banks and widths"),
    Term("leakage_sram", "leakage", "second of latency, or of the frame when longer", "CACTI leakage of every bank at its size and cell",
         "CACTI 7 (hp / lstp cells)"),
    Term("leakage_logic", "leakage", "second of latency, or of the frame when longer", "PE datapath bits x adder-bit leakage",
         "Aladdin 40 nm adder 2.4 uW / 32 bits"),
    Term("dram", "dram", "bit moved off chip", "pJ/bit of the DRAM kind", "ert.DRAM (notes; JEDEC rates)"),
)
NAMES = tuple(t.name for t in TERMS)
BY_NAME = {t.name: t for t in TERMS}
LATENCY_PARTS = ("compute", "bank_stall", "memory_stall", "fire")
AREA_PARTS = ("pe_array", "weight_sram", "vmem_sram", "spike_sram", "overhead")
