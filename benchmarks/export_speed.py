"""Prediction speed of an exported run: int8 ONNX, float32 ONNX, torch predict and transformers.pipeline.

    python benchmarks/export_speed.py --run runs/sst2-minilm-full --threads 2 --repeats 5
    python benchmarks/export_speed.py --train-rows 8000 --threads 2 --repeats 5   # trains the SST-2 run first

One run, exported once (``nlp-transfer export --int8`` into a temporary folder), then the SST-2 dev sentences
(``--rows``, default all 872) are labelled by four sides at batch sizes 1 and 32:
  onnx_int8   predict_texts over the int8 export (onnxruntime, dynamic quantization)
  onnx_fp32   predict_texts over the float32 export
  torch       predict_texts over the run's PyTorch model (what `nlp-transfer predict` runs)
  pipeline    transformers.pipeline("text-classification") on the same run folder
Every side runs with the same thread count (torch.set_num_threads and onnxruntime's intra-op threads), the sides
are interleaved ``--repeats`` times after one warm-up pass, and the median wall time per side is reported with
texts/s, dev accuracy, label agreement with torch, and the speed ratios of int8 against torch and pipeline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import SST2, SST2_CONFIG, dataset_present, read_sst2, report_header, run_recipe, setup, sst2_overrides, write_result

BATCH_SIZES = (1, 32)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained SST-2 run directory (default: train one with --train-rows rows)")
    parser.add_argument("--train-rows", type=int, default=8000, help="training rows when no --run is given")
    parser.add_argument("--rows", type=int, default=None, help="dev rows to label (default: all 872)")
    parser.add_argument("--threads", type=int, default=2, help="threads of torch and onnxruntime alike")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per side, interleaved; medians are reported")
    return parser.parse_args()


def sides(run: Path, export: Path, threads: int, batch_size: int) -> dict[str, Callable[[list[str]], list[int]]]:
    """Name -> a function that labels texts and returns label ids, one per side."""
    from transformers import pipeline

    from nlp_transfer.export.onnx_backend import INT8_FILE, MODEL_FILE, OnnxModel, open_session
    from nlp_transfer.inference import load_run, predict_texts

    model, task = load_run(run, device="cpu")
    int8 = OnnxModel(open_session(export / INT8_FILE, threads))
    fp32 = OnnxModel(open_session(export / MODEL_FILE, threads))
    classifier = pipeline("text-classification", model=str(run), device="cpu", batch_size=batch_size)

    def ours(backend: Any) -> Callable[[list[str]], list[int]]:
        return lambda texts: [task.label2id[row["label"]] for row in predict_texts(backend, task, texts, batch_size=batch_size)]

    def hf(texts: list[str]) -> list[int]:
        return [task.label2id[row["label"]] for row in classifier(texts, truncation=True, max_length=task.max_length)]

    return {"onnx_int8": ours(int8), "onnx_fp32": ours(fp32), "torch": ours(model), "pipeline": hf}


def measure(runners: dict[str, Callable[[list[str]], list[int]]], texts: list[str], repeats: int) -> dict[str, dict[str, Any]]:
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
    """``--run``, or a run trained on the first ``--train-rows`` SST-2 rows (one epoch, the recipe's settings)."""
    if args.run:
        return Path(args.run)
    out = folder / "run"
    run_recipe(SST2_CONFIG, sst2_overrides(out, args))
    return out


def main() -> int:
    args = parse_args()
    if not dataset_present(SST2, "dev.tsv", "SST-2"):
        return 1
    setup(args.threads)
    from nlp_transfer.export.command import export_run

    texts, gold = read_sst2(SST2 / "dev.tsv", args.rows)
    report: dict[str, Any] = {**report_header(args.threads), "rows": len(texts), "batch_sizes": {}}
    with tempfile.TemporaryDirectory() as scratch:
        run = trained_run(args, Path(scratch))
        export = export_run(run, output=Path(scratch) / "onnx", int8=True, max_drop=100.0)  # the figures, not a gate
        report["export_checks"] = export["checks"]
        for batch_size in BATCH_SIZES:
            runners = sides(run, Path(export["output"]), args.threads, batch_size)
            report["batch_sizes"][str(batch_size)] = figures(measure(runners, texts, args.repeats), gold)
    path = write_result("export_speed", report)
    print_table(report)
    print(f"results: {path}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    """A Markdown table of the figures, one row per side and batch size."""
    print("| batch | side | texts/s | median s | accuracy | agreement with torch |\n|---|---|---|---|---|---|")
    for batch_size, table in report["batch_sizes"].items():
        for name, row in table.items():
            if name != "ratios":
                print(
                    f"| {batch_size} | {name} | {row['texts_per_second']} | {row['median_seconds']} | {row['accuracy']} | "
                    f"{row['agreement_with_torch']} |"
                )
        print(f"| {batch_size} | ratios | {table['ratios']} | | | |")


if __name__ == "__main__":
    sys.exit(main())
