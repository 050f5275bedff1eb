"""Prediction speed of an exported run: int8 ONNX, float32 ONNX, torch predict and transformers.pipeline.

    python benchmarks/export_speed.py --run runs/sst2-minilm-full --threads 2 --repeats 5 --memory
    python benchmarks/export_speed.py --train-rows 8000 --threads 2 --repeats 5   # trains the SST-2 run first
    python benchmarks/export_speed.py --data kitchen --threads 2 --repeats 5 --memory   # Amazon kitchen reviews

One run, exported once (``nlp-transfer export --int8`` into a temporary folder), then the dev texts are labelled
by four sides at batch sizes 1 and 32:
  onnx_int8   predict_texts over the int8 export (onnxruntime, dynamic quantization)
  onnx_fp32   predict_texts over the float32 export
  torch       predict_texts over the run's PyTorch model (what `nlp-transfer predict` runs)
  pipeline    transformers.pipeline("text-classification") on the same run folder
``--data sst2`` (default) trains on the first ``--train-rows`` SST-2 rows (validated on dev) and labels SST-2 dev
(``--rows``, default all 872); ``--data kitchen`` trains the same recipe on the Amazon kitchen reviews' train.tsv (1,700 rows;
10 % held out for validation, seeded; below 1,530 ``--train-rows``, a seeded sample of half of them per class) and
labels kitchen dev.tsv (``--rows`` evenly spaced through the label-sorted file, default all 300). ``--max-length`` (default 128) is the run's ``training.max_length`` either way. Every side runs
with the same thread count (torch.set_num_threads and onnxruntime's intra-op threads), the sides are interleaved
``--repeats`` times after one warm-up pass, and the median wall time per side is reported with texts/s, accuracy,
label agreement with torch, and the speed ratios of int8 against torch and pipeline.

``--memory`` adds the peak resident memory of each side: a fresh ``python benchmarks/export_speed.py --memory-side
NAME`` process per side (ru_maxrss only grows, so sides cannot share one) imports torch and transformers, loads the
side, labels every text at batch 32, and reports its peak resident memory (VmHWM) after the imports, after loading,
and at the end (MiB).
Results: ``export_speed.json`` (SST-2) or ``export_speed_kitchen.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    AMAZON,
    SST2,
    SST2_CONFIG,
    dataset_present,
    read_sst2,
    report_header,
    run_recipe,
    setup,
    sst2_overrides,
    write_result,
)

BATCH_SIZES = (1, 32)
MEMORY_BATCH_SIZE = 32
SIDES = ("onnx_int8", "onnx_fp32", "torch", "pipeline")
KITCHEN = AMAZON / "kitchen"
Labeller = Callable[[list[str]], list[int]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["sst2", "kitchen"], default="sst2", help="SST-2 or Amazon kitchen reviews")
    parser.add_argument("--run", help="a trained run directory of --data's labels (default: train one)")
    parser.add_argument("--train-rows", type=int, default=8000, help="training rows without --run (kitchen: at most 1,530)")
    parser.add_argument("--rows", type=int, default=None, help="dev rows to label (default: all, 872 or 300)")
    parser.add_argument("--max-length", type=int, default=128, help="training.max_length of the trained run")
    parser.add_argument("--threads", type=int, default=2, help="threads of torch and onnxruntime alike")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per side, interleaved; medians are reported")
    parser.add_argument("--memory", action="store_true", help="also measure each side's peak memory in a fresh process")
    parser.add_argument("--memory-side", choices=SIDES, help=argparse.SUPPRESS)  # internal: one side's memory, JSON out
    parser.add_argument("--export", help=argparse.SUPPRESS)  # internal: the export folder for --memory-side
    return parser.parse_args(argv)


def read_amazon(path: Path, limit: int | None = None) -> tuple[list[str], list[int]]:
    """Texts and 0/1 labels of an Amazon reviews TSV (header ``sentence<TAB>label``, quoted multi-line fields).

    The files are sorted by label, so ``limit`` rows are taken evenly spaced through the file, not the first ones.
    """
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if limit and limit < len(rows):
        rows = [rows[i * len(rows) // limit] for i in range(limit)]
    return [row["sentence"].strip() for row in rows], [int(row["label"]) for row in rows]


def kitchen_sample(train_rows: int) -> list[str]:
    """``data.per_class`` when ``train_rows`` is below what the 90 % kept for training holds (a seeded, balanced sample).

    ``data.max_train_samples`` would keep the first rows, and kitchen/train.tsv is sorted by label: one class only.
    """
    _, labels = read_amazon(KITCHEN / "train.tsv")
    available = int(0.9 * min(labels.count(0), labels.count(1)))
    return [f"data.per_class={train_rows // 2}"] if train_rows // 2 < available else []


def dev_texts(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    """The texts to label and their gold label ids (0 negative, 1 positive) of ``--data``."""
    if args.data == "kitchen":
        return read_amazon(KITCHEN / "dev.tsv", args.rows)
    return read_sst2(SST2 / "dev.tsv", args.rows)


def run_overrides(out: Path, args: argparse.Namespace) -> list[str]:
    """sst2_full.yaml's overrides: SST-2 as common.sst2_overrides, or kitchen train (10 % held out) and dev as test."""
    length = f"training.max_length={args.max_length}"
    if args.data == "sst2":
        return [*sst2_overrides(out, args), length]
    return [
        f"output_dir={out}",
        *kitchen_sample(args.train_rows),
        "training.epochs=1",
        "training.eval_strategy=epoch",
        f"training.torch_threads={args.threads}",
        f"data.train_file={KITCHEN / 'train.tsv'}",
        "data.validation_file=null",
        "data.validation_split=0.1",
        f"data.test_file={KITCHEN / 'dev.tsv'}",
        length,
    ]


def load_side(name: str, run: Path, export: Path, threads: int, batch_size: int) -> Labeller:
    """A function that labels texts with side ``name`` and returns label ids (the side is loaded here, once)."""
    from transformers import AutoConfig, pipeline

    from nlp_transfer.export.onnx_backend import INT8_FILE, MODEL_FILE, OnnxModel, open_session
    from nlp_transfer.inference import load_run, predict_texts, run_task

    if name == "torch":
        backend, task = load_run(run, device="cpu")
    else:
        task = run_task(run, AutoConfig.from_pretrained(run))
    if name == "pipeline":
        classifier = pipeline("text-classification", model=str(run), device="cpu", batch_size=batch_size)
        return lambda texts: [
            task.label2id[row["label"]] for row in classifier(texts, truncation=True, max_length=task.max_length)
        ]
    if name != "torch":
        backend = OnnxModel(open_session(export / (INT8_FILE if name == "onnx_int8" else MODEL_FILE), threads))
    return lambda texts: [task.label2id[row["label"]] for row in predict_texts(backend, task, texts, batch_size=batch_size)]


def sides(run: Path, export: Path, threads: int, batch_size: int) -> dict[str, Labeller]:
    """Name -> a function that labels texts and returns label ids, one per side."""
    return {name: load_side(name, run, export, threads, batch_size) for name in SIDES}


def measure(runners: dict[str, Labeller], texts: list[str], repeats: int) -> dict[str, dict[str, Any]]:
    """Median seconds per side over ``repeats`` interleaved passes (one untimed warm-up pass each), and its labels."""
    labels = {name: run(texts) for name, run in runners.items()}  # warm-up, and the labels compared below
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(texts)
            times[name].append(time.perf_counter() - start)
    return {name: {"seconds": statistics.median(times[name]), "runs": times[name], "labels": labels[name]} for name in runners}


def figures(measured: dict[str, dict[str, Any]], gold: list[int]) -> dict[str, dict[str, float]]:
    """Texts/s, accuracy and agreement with torch per side, and int8's speed ratios."""
    reference = measured["torch"]["labels"]
    table = {}
    for name, side in measured.items():
        labels = side["labels"]
        table[name] = {
            "median_seconds": round(side["seconds"], 4),
            "texts_per_second": round(len(gold) / side["seconds"], 1),
            "accuracy": round(sum(p == g for p, g in zip(labels, gold, strict=True)) / len(gold), 4),
            "agreement_with_torch": round(sum(p == r for p, r in zip(labels, reference, strict=True)) / len(gold), 4),
            "runs": [round(t, 4) for t in side["runs"]],
        }
    int8 = measured["onnx_int8"]["seconds"]
    table["ratios"] = {
        "int8_vs_torch": round(measured["torch"]["seconds"] / int8, 2),
        "int8_vs_pipeline": round(measured["pipeline"]["seconds"] / int8, 2),
        "fp32_vs_torch": round(measured["torch"]["seconds"] / measured["onnx_fp32"]["seconds"], 2),
    }
    return table


def trained_run(args: argparse.Namespace, folder: Path) -> Path:
    """``--run``, or a run trained on the first ``--train-rows`` rows of ``--data`` (one epoch, the recipe's settings)."""
    if args.run:
        return Path(args.run)
    out = folder / "run"
    run_recipe(SST2_CONFIG, run_overrides(out, args))
    return out


def peak_mib() -> float:
    """This process's peak resident memory so far, in MiB: VmHWM on Linux, else ru_maxrss (KiB on Linux).

    ru_maxrss is not used where VmHWM exists: Linux carries the parent's peak into a forked child and keeps it
    across exec, so a child started by a process that trained a model reports that model's peak. VmHWM belongs to
    the process's own address space, which exec replaces.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def memory_side(args: argparse.Namespace) -> int:
    """The child of ``--memory``: load one side, label every text at batch 32, print its peaks as one JSON line."""
    setup(args.threads)
    texts, _ = dev_texts(args)
    peaks = {"after_imports": peak_mib()}
    label = load_side(args.memory_side, Path(args.run), Path(args.export), args.threads, MEMORY_BATCH_SIZE)
    peaks["after_load"] = peak_mib()
    label(texts)
    peaks["after_labelling"] = peak_mib()
    peaks["labelling_increment"] = round(peaks["after_labelling"] - peaks["after_load"], 1)
    print(json.dumps(peaks))
    return 0


def peak_memory(run: Path, export: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per side, the peaks (MiB) of a fresh process that loads it and labels every text at batch 32."""
    common = ["--run", str(run), "--export", str(export), "--data", args.data, "--threads", str(args.threads)]
    common += ["--rows", str(args.rows)] if args.rows else []
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    peaks = {}
    for name in SIDES:
        command = [sys.executable, str(Path(__file__).resolve()), "--memory-side", name, *common]
        done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"--memory-side {name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        peaks[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return peaks


def main() -> int:
    """Train or take the run, export it, time the four sides at each batch size, and write the report."""
    args = parse_args()
    if args.memory_side:
        return memory_side(args)
    if not dataset_present(KITCHEN if args.data == "kitchen" else SST2, "dev.tsv", args.data):
        return 1
    setup(args.threads)
    from nlp_transfer.export.command import export_run

    texts, gold = dev_texts(args)
    report: dict[str, Any] = {**report_header(args.threads), "data": args.data, "rows": len(texts), "batch_sizes": {}}
    report["max_length"] = args.max_length if not args.run else "the run's"
    with tempfile.TemporaryDirectory() as scratch:
        run = trained_run(args, Path(scratch))
        export = export_run(run, output=Path(scratch) / "onnx", int8=True, max_drop=100.0)  # the figures, not a gate
        report["export_checks"] = export["checks"]
        for batch_size in BATCH_SIZES:
            runners = sides(run, Path(export["output"]), args.threads, batch_size)
            report["batch_sizes"][str(batch_size)] = figures(measure(runners, texts, args.repeats), gold)
            del runners
        if args.memory:
            report["peak_memory_mib"] = peak_memory(run, Path(export["output"]), args)
    path = write_result("export_speed" if args.data == "sst2" else f"export_speed_{args.data}", report)
    print_table(report)
    print(f"results: {path}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    """A Markdown table of the figures, one row per side and batch size, and the peak memory table when measured."""
    print("| batch | side | texts/s | median s | accuracy | agreement with torch |\n|---|---|---|---|---|---|")
    for batch_size, table in report["batch_sizes"].items():
        for name, row in table.items():
            if name != "ratios":
                print(
                    f"| {batch_size} | {name} | {row['texts_per_second']} | {row['median_seconds']} | {row['accuracy']} | "
                    f"{row['agreement_with_torch']} |"
                )
        print(f"| {batch_size} | ratios | {table['ratios']} | | | |")
    if "peak_memory_mib" in report:
        print("\n| side | peak MiB after imports | after load | after labelling (batch 32) | labelling increment |")
        print("|---|---|---|---|---|")
        for name, peaks in report["peak_memory_mib"].items():
            print(
                f"| {name} | {peaks['after_imports']} | {peaks['after_load']} | {peaks['after_labelling']} | "
                f"{peaks['labelling_increment']} |"
            )


if __name__ == "__main__":
    sys.exit(main())
