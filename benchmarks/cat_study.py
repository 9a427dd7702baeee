"""CAT on real data: the loss attribution, the recipes, VGG-16 and Tiny-ImageNet, each row one `dse train` command.

    python benchmarks/cat_study.py --plan attribution --epochs 20 --jobs 9 --out results/cat/attribution
    python benchmarks/cat_study.py --plan vgg16 --epochs 30 --out results/cat/vgg16
    python benchmarks/cat_study.py --plan tiny --epochs 30 --out results/cat/tiny-imagenet
    python benchmarks/cat_study.py --table-only --out DIR       # rewrite DIR/table.md from DIR/*.json

Every variant is a `dse train` process (run --jobs at a time, on one GPU they share it) writing to
--work/<name>; a killed study re-run with the same --work resumes each training from its last epoch and
skips finished ones. Budgets are equal: a CAT network's epochs include its folded fine-tune epoch.
Each finished row's metrics (with the per-epoch curve) land in --out/<name>.json as it comes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plan(name: str, epochs: int) -> dict[str, dict]:
    """variant name -> TrainSpec fields (on top of the plan's base)."""
    cat = dict(activation="cat", epochs=epochs - 1, finetune_epochs=1)  # equal budget: E epochs in all
    if name == "attribution":
        base = dict(dataset="cifar10", model="small_vgg")
        rows = {
            "relu_fp": dict(activation="relu", epochs=epochs),
            "relu_log5": dict(activation="relu", weights="log", epochs=epochs),
            "cat_fp_weights": dict(cat, weights="float", theta="fixed", log2_theta=0),
            "cat_log5_learned_theta": dict(cat, theta="learned", log2_theta=0),  # the recipe before this study
            "cat_log5_theta1": dict(cat, theta="fixed", log2_theta=0),
            "cat_log5": dict(cat),  # the default recipe: theta auto (fixed at 4 for T = 8)
            "cat_log5_round": dict(cat, theta="fixed", log2_theta=0, rounding="round"),
            "cat_log5_k2_T16": dict(cat, theta="fixed", log2_theta=0, steps_per_octave=2, time_window=16),
            "cat_log5_pretrain": dict(cat, theta="fixed", log2_theta=0, pretrain_epochs=epochs // 2),
            # every epoch CAT with batch norm, then the corrected fold and no fine-tune
            "cat_log5_no_finetune": dict(activation="cat", epochs=epochs, finetune_epochs=0),
            "cat_log5_no_finetune_pretrain": dict(activation="cat", epochs=epochs, finetune_epochs=0,
                                                  pretrain_epochs=epochs // 4),
        }
    elif name == "vgg16":
        base = dict(dataset="cifar10", model="vgg16")
        rows = {"relu_fp": dict(activation="relu", epochs=epochs), "cat_log5": dict(cat),
                "cat_log5_no_finetune": dict(activation="cat", epochs=epochs, finetune_epochs=0)}
    elif name == "tiny":
        base = dict(dataset="tiny-imagenet", model="small_vgg")
        rows = {"relu_fp": dict(activation="relu", epochs=epochs), "cat_log5": dict(cat)}
    else:
        raise SystemExit(f"--plan: unknown plan {name!r}")
    return {k: {**base, **v} for k, v in rows.items()}


def command(fields: dict, work: Path, args) -> list[str]:
    cmd = ["dse", "train"] + [f"--{k.replace('_', '-')}={v}" for k, v in fields.items()]
    cmd += ["--out", str(work), "--monitor", str(args.monitor), "--threads", "1"]
    if args.device:
        cmd += ["--device", args.device]
        if args.device.startswith("cuda"):  # eager CAT: a GPU step is kernel-bound, not worth compiling per process
            cmd += ["--no-fuse"]
    if args.data_dir:
        cmd += ["--data-dir", str(args.data_dir)]
    return cmd


def spec_command(spec: dict) -> str:
    """The `dse train` command that rebuilds ``spec`` with today's defaults (recorded specs stay reproducible
    when a default changes)."""
    from dse.train.spec import TrainSpec

    default = TrainSpec().to_dict()
    spec = {"fold": "plain", **spec}  # recorded before the corrected fold existed
    flags = [(f"--{'' if v else 'no-'}{k.replace('_', '-')}" if isinstance(v, bool) else f"--{k.replace('_', '-')}={v}")
             for k, v in spec.items() if default.get(k) != v]
    return shlex.join(["dse", "train", *flags, "--out", "runs/cat", "--monitor", "10000"])


def write_table(out: Path) -> None:
    rows = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if not p.stem.endswith("_spikes")}
    if not rows:
        return
    lines = ["| variant | epochs | ANN (BN) before folding | after folding | after folded fine-tune | SNN | SNN = ANN | "
             "train s | device |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    pct = lambda v: "-" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    # the images an agreement is measured on, the ANN's (rows without ann_images predate the sampled check: the
    # ANN then ran on every test image)
    of = lambda m: "" if m.get("agreement") is None else f" of {m.get('ann_images', m['test_images']):,}"  # noqa: E731
    for name, m in rows.items():
        s, st = m["spec"], m.get("stages", {})
        total = s["epochs"] + (s["finetune_epochs"] if s["activation"] == "cat" else 0)
        snn = m.get("snn_accuracy")
        naive = " (naive conversion)" if s["activation"] == "relu" and snn is not None else ""
        lines.append(f"| {name} | {total} | {pct(st.get('before_fold'))} | {pct(st.get('after_fold'))} | "
                     f"{pct(m['ann_accuracy'])} | {pct(snn)}{naive} | {pct(m.get('agreement'))}{of(m)} | "
                     f"{m['train_seconds']:.0f} | {m.get('device_name', m['device'])} |")
    lines.append("\nANN accuracies are on all test images (the exact float64 network for folded CAT; where its SNN "
                 "matched it bit for bit on the first N images, the N of 'SNN = ANN', the SNN's predictions stand for "
                 "it on the others); 'SNN = ANN' is measured on the N images the ANN ran on; stage "
                 "columns are the float32 network with batch norm before folding and right after it. "
                 "Each row is reproduced by its command:\n")
    for name, m in rows.items():
        lines.append(f"- `{name}`: `{spec_command(m['spec'])}`")
    tmp = out / "table.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out / "table.md")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", default="attribution", choices=("attribution", "vgg16", "tiny"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--only", nargs="*", help="run only these variants")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="TrainSpec fields for every variant (e.g. max_train_images=2000 batch_size=256)")
    p.add_argument("--jobs", type=int, default=1, help="trainings at a time")
    p.add_argument("--monitor", type=int, default=10000, help="test images for the per-epoch curve")
    p.add_argument("--device", default=None)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/dse-cat-study"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        return write_table(args.out)
    from dse.train.evaluate import agreement_text

    extra = dict(item.split("=", 1) for item in args.set)
    todo = {k: {**v, **extra} for k, v in plan(args.plan, args.epochs).items() if not args.only or k in args.only}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    exe = Path(sys.executable).parent / "dse"
    running: dict[str, tuple[subprocess.Popen, list[str], float]] = {}
    pending = list(todo)
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            work = args.work / args.plan / name
            if (work / "metrics.json").is_file():
                print(f"{name}: finished earlier", flush=True)
                _collect(name, work, todo[name], args)
                continue
            work.mkdir(parents=True, exist_ok=True)
            cmd = command(todo[name], work, args)
            run = [str(exe)] + cmd[1:] if exe.exists() else [sys.executable, "-m", "dse.cli"] + cmd[1:]
            log = open(work / "log.txt", "a")
            running[name] = (subprocess.Popen(run, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), cmd,
                             time.time())
            print(f"{name}: started  {shlex.join(cmd)}", flush=True)
        time.sleep(2)
        for name, (proc, cmd, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            work = args.work / args.plan / name
            if proc.returncode == 0:
                m = _collect(name, work, todo[name], args)
                print(f"{name}: done in {time.time() - t0:.0f} s: ANN {m['ann_accuracy']:.2%}"
                      + (f", SNN {m['snn_accuracy']:.2%}, agreement {agreement_text(m)}" if "agreement" in m else ""),
                      flush=True)
            else:
                tail = (work / "log.txt").read_text().strip().splitlines()[-3:]
                print(f"{name}: FAILED (exit {proc.returncode}): {' | '.join(tail)}", flush=True)
    write_table(args.out)


def _collect(name: str, work: Path, fields: dict, args) -> dict:
    m = json.loads((work / "metrics.json").read_text())
    m["command"] = spec_command(m["spec"])
    tmp = args.out / f"{name}.json.tmp"
    tmp.write_text(json.dumps(m, indent=1))
    tmp.replace(args.out / f"{name}.json")
    if (work / "spikes.json").is_file() and fields.get("activation") == "cat":
        (args.out / f"{name}_spikes.json").write_bytes((work / "spikes.json").read_bytes())
    write_table(args.out)
    return m


if __name__ == "__main__":
    main()
