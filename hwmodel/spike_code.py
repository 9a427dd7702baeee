"""The spike code and the logarithmic weights, defined once for both packages: the ranges of T, k, the rounding
and the weight bits, and the widths that follow from them. hwmodel's fields, dse's TrainSpec and dse's SpikeCode
all read these (dse through ``hwmodel.spike_code``). No numpy: every formula takes Python numbers and numpy
arrays alike, so the model's vectorized path and the exact SNN use the same lines.

A spike at step t of a window of T steps means theta * 2^(-t/k); a log weight of n bits is a sign and an
(n - 1)-bit exponent code, 2^(n-1) - 1 magnitudes 2^0 .. 2^-(2^(n-1) - 2) and zero.
"""

from __future__ import annotations

# Fractional bits of the fixed-point mantissa of a level or threshold that is not a power of two (k > 1, or
# round-to-nearest thresholds 2^(-1/2)): eight keep every table entry within 0.2 % of the ideal value and cost a
# 2^k-entry ROM in hardware.
MANTISSA_BITS = 8
ROUNDINGS = ("floor", "round")  # floor: fire when V >= level; round: threshold halfway (in log) below
MIN_TIME_WINDOW = 1
MIN_STEPS_PER_OCTAVE = 1
# Log weights: sign + exponent; 7 bits would span 2^-62, beyond any exact datapath. Linear (int) weights, which
# only hwmodel's `datapath: int` prices, go to 16 bits.
LOG_WEIGHT_BITS = (2, 6)
INT_WEIGHT_BITS = (2, 16)


def exact_levels(steps_per_octave, floor):
    """Every level and threshold is a power of two (k = 1 with floor rounding): each product is a pure shift.
    ``floor``: the rounding is floor (a bool, or a bool array)."""
    return (steps_per_octave == 1) & floor


def fraction_bits(time_window, steps_per_octave, floor):
    """Fractional bits below theta that a decoded spike value needs (the exact SNN's LSB for theta = 1)."""
    inexact = exact_levels(steps_per_octave, floor) == False  # noqa: E712 - elementwise on arrays too
    return (time_window - 1) // steps_per_octave + MANTISSA_BITS * inexact


def max_exponent(weight_bits):
    """The largest exponent magnitude e of a log weight 2^-e of ``weight_bits`` bits (sign + exponent code)."""
    return 2 ** (weight_bits - 1) - 2
