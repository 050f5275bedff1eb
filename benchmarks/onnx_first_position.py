"""The fused ONNX export with and without the last layer computed at the first position alone, on one run.

    python benchmarks/onnx_first_position.py --run RUN_DIR --threads 2 --repeats 3

``nlp-transfer export`` traces a BERT-family sequence classifier with its last layer at the first position (the
only one its head reads; ``nlp_transfer/training/first_position.py``). This script exports the same run twice,
with that and with every position, quantizes both to int8, and labels the SST-2 dev sentences with the four
graphs at batch sizes 32 and 1 (length-sorted batches, ``--repeats`` interleaved passes, medians). It reports the
speed-up of each graph and how many labels the two graphs of a precision share. Results:
``onnx_first_position.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import SST2, dataset_present, read_sst2, report_header, setup, write_result


def export_both(run_dir: str, folder: Path) -> tuple[dict[tuple[bool, str], Path], list[str], Any]:
    """float32 and int8 graphs of ``run_dir``, with (True) and without (False) the first-position last layer."""
    import nlp_transfer.export.onnx_export as onnx_export
    from nlp_transfer.inference import load_run

    model, task = load_run(run_dir, device="cpu")
    paths: dict[tuple[bool, str], Path] = {}
    for first_only in (False, True):
        paths[first_only, "fp32"] = folder / f"first-{first_only}.onnx"
        paths[first_only, "int8"] = folder / f"first-{first_only}.int8.onnx"
        names = onnx_export.write_onnx(model, task, paths[first_only, "fp32"], first_position=first_only)
        onnx_export.quantize_int8(paths[first_only, "fp32"], paths[first_only, "int8"])
    return paths, names, task


def label_all(session: Any, task: Any, names: list[str], texts: list[str], batch_size: int) -> Any:
    """Logits of every text, batches of similar lengths, in text order."""
    import numpy as np

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    logits = np.zeros((len(texts), len(task.labels)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        encoded = task.tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=128, return_tensors="np")
        logits[rows] = session.run(None, {name: encoded[name].astype(np.int64) for name in names})[0]
    return logits


def main() -> int:
    """Export twice, time the four graphs at batch sizes 32 and 1, print and save the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained sequence-classification run directory")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime's intra-op threads (and torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per graph, interleaved")
    args = parser.parse_args()
    if not dataset_present(SST2, "dev.tsv", "SST-2"):
        return 2
    import onnxruntime as ort

    setup(args.threads)
    texts, _ = read_sst2(SST2 / "dev.tsv")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths, names, task = export_both(args.run, Path(tmp))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        sessions = {
            key: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]) for key, path in paths.items()
        }
        for batch_size in (32, 1):
            seconds: dict[tuple[bool, str], list[float]] = {key: [] for key in sessions}
            logits = {}
            for _ in range(args.repeats):
                for key, session in sessions.items():
                    start = time.perf_counter()
                    logits[key] = label_all(session, task, names, texts, batch_size)
                    seconds[key].append(time.perf_counter() - start)
            for kind in ("fp32", "int8"):
                every, first = statistics.median(seconds[False, kind]), statistics.median(seconds[True, kind])
                same = int((logits[False, kind].argmax(1) == logits[True, kind].argmax(1)).sum())
                results[f"batch{batch_size}_{kind}"] = {
                    "every_position_seconds": every,
                    "first_position_seconds": first,
                    "speed_up": every / first,
                    "same_labels": f"{same}/{len(texts)}",
                }
                print(
                    f"batch {batch_size} {kind}: {every:.2f} s -> {first:.2f} s, {every / first:.2f}x, same labels {same}/{len(texts)}"
                )
    write_result("onnx_first_position", {**report_header(args.threads), "run": args.run, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
