"""Run every case of tests/bad_inputs/cases.yaml and write what each measurably did.

    python -m tests.report_bad_inputs [--report results/reliability/bad_inputs.txt]

The same runner as tests/test_bad_inputs.py; the case needing the real CIFAR-10 uses the copy under
$DSE_DATA_DIR (or ~/.cache/dse/data) that the test suite's fixture prepares, and is reported as skipped
without it. Exit status 1 if any case misbehaves.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bad_inputs import CASES, run_case  # noqa: E402


def _real_cifar10() -> Path | None:
    from dse.data.registry import default_data_dir

    root = default_data_dir()
    return root if (root / "cifar-10-batches-py" / "test_batch").is_file() else None


def _hide(text: str, places: dict[str, str]) -> str:
    """Temporary paths back to their placeholders, so the report does not change from run to run."""
    for key in sorted(places, key=lambda k: -len(places[k])):
        text = text.replace(places[key], "{" + key + "}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=Path("results/reliability/bad_inputs.txt"))
    args = parser.parse_args(argv)
    shared = _real_cifar10()
    blocks, counts, start = [], {"pass": 0, "FAIL": 0, "skipped": 0}, time.perf_counter()
    for case in CASES:
        file = next((t.split("{in}/", 1)[1] for t in case.run.split() if "{in}/" in t), None)
        source = file or (f"(built at run time: {case.setup})" if case.setup else "-")
        head = [f"    file:     {source}",
                f"    command:  {case.run}", f"    expected: {case.expect}"]
        if case.shared and shared is None:
            counts["skipped"] += 1
            blocks.append("\n".join([f"[skipped] {case.id}: no real CIFAR-10 under $DSE_DATA_DIR", *head]))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            outcome, places, found = run_case(case, Path(tmp), shared)
            stderr = _hide(outcome.stderr.strip(), places)
        verdict = "FAIL" if found else "pass"
        counts[verdict] += 1
        how = "subprocess" if case.process else "in-process"
        lines = [f"[{verdict}] {case.id} ({how})", *head, f"    measured: exit {outcome.exit}; stderr: {stderr}"]
        lines += [f"    PROBLEM:  {_hide(p, places)}" for p in found]
        blocks.append("\n".join(lines))
        print(f"{verdict:7} {case.id}", file=sys.stderr)
    summary = (f"# tests/bad_inputs/cases.yaml: {len(CASES)} broken inputs through the real command lines "
               f"({sum(c.process for c in CASES)} as subprocesses); {counts['pass']} behave, {counts['FAIL']} "
               f"misbehave, {counts['skipped']} skipped; {time.perf_counter() - start:.0f} s.\n"
               "# Behaving = exit status 2, one stderr line 'error: ...' containing the expected text, no traceback,\n"
               "# no file created, changed or removed under the run's directory. Regenerate: "
               "python -m tests.report_bad_inputs\n")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(summary + "\n" + "\n\n".join(blocks) + "\n")
    print(summary, file=sys.stderr)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
