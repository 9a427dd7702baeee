"""The unit policy: SI with the unit in the key for machines, auto-scaled 3 significant digits for humans."""

from __future__ import annotations

import pytest

from dse.util.units import duration, human, human_metric, key, si_dict, to_si


@pytest.mark.parametrize("value, unit, text", [
    (2.88e-8, "J", "28.8 nJ"), (0.0288e-6, "J", "28.8 nJ"), (486.7e-6, "J", "487 uJ"), (9.996e-7, "J", "1.00 uJ"),
    (1e-3, "s", "1.00 ms"), (3.25e-4, "s", "325 us"), (1.5, "s", "1.50 s"), (0.0, "J", "0 J"),
    (97.83, "%", "97.8 %"), (100.0, "%", "100 %"), (0.01234, "mm2", "0.0123 mm2"), (4.0, "mm2", "4.00 mm2"),
])
def test_human_values_are_auto_scaled_to_three_significant_digits(value, unit, text) -> None:
    assert human(value, unit) == text


def test_study_values_convert_to_si_keys_exactly() -> None:
    assert [key(m) for m in ("accuracy", "energy", "latency", "area", "sops")] == \
        ["val_accuracy_percent", "energy_J", "latency_s", "area_mm2", "sops"]
    assert to_si("energy", 486.7) == 0.0004867 and to_si("latency", 0.325) == 0.000325 and to_si("area", 3.5) == 3.5
    assert si_dict({"energy": 28.8, "net": {"latency": 2.0, "feasible": True}}) == \
        {"energy_J": 28.8 / 1e6, "net": {"latency_s": 2.0 / 1e3, "feasible": True}}
    # the summary lines of the issue: 0.0288 uJ was printed "0.03 uJ", a latency "0.001 ms"
    assert human_metric("energy", 0.0288) == "28.8 nJ" and human_metric("latency", 0.001) == "1.00 us"


def test_durations_read_in_the_unit_a_person_would_use() -> None:
    assert [duration(s) for s in (2.72, 435.0, 5400.0)] == ["2.72 s", "7.25 min", "1.50 h"]
