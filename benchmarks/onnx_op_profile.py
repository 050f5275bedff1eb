"""Where an exported run's ONNX graph spends its time, per operator type (issue #20): onnxruntime's own profiler.

    python benchmarks/onnx_op_profile.py --run RUN --data kitchen --threads 2 --batch-size 32

RUN is a run directory exported with ``nlp-transfer export RUN --int8``. The dev texts of ``--data`` (SST-2 dev or
Amazon kitchen dev.tsv) are tokenized as the run tokenizes them (``--max-length``, default 128), sorted by length and
cut into batches of ``--batch-size``; each graph (``model.onnx`` and ``model.int8.onnx``) labels them all once after a
warm-up pass with profiling on, and the kernel time of each operator type is summed. It shows what int8 leaves in
float32 (layer norms, GELU, the attention scores) and so bounds int8's speed-up over float32 at that batch size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import AMAZON, SST2, read_sst2, setup
from export_speed import read_amazon


def dev_texts(data: str) -> list[str]:
    """The dev texts of SST-2 or Amazon kitchen reviews, read as export_speed.py reads them."""
    if data == "sst2":
        return read_sst2(SST2 / "dev.tsv")[0]
    return read_amazon(AMAZON / "kitchen" / "dev.tsv")[0]


def profile_graph(path: Path, batches: list[dict], threads: int) -> tuple[float, dict[str, float]]:
    """Seconds to label every batch once (profiling on), and kernel seconds per operator type."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for batch in batches:  # warm-up, unprofiled
        session.run(None, batch)
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "onnx_profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    for batch in batches:
        session.run(None, batch)
    seconds = time.perf_counter() - started
    per_op: dict[str, float] = defaultdict(float)
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1e6
    return seconds, dict(per_op)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="an exported run directory (RUN/onnx/model.int8.onnx)")
    parser.add_argument("--data", choices=["sst2", "kitchen"], default="kitchen")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    setup(args.threads)
    import numpy as np
    from transformers import AutoTokenizer

    run = Path(args.run)
    tokenizer = AutoTokenizer.from_pretrained(run)
    texts = sorted(dev_texts(args.data), key=len)
    batches = []
    for start in range(0, len(texts), args.batch_size):
        encoded = tokenizer(texts[start : start + args.batch_size], truncation=True, max_length=args.max_length, padding=True)
        batches.append({k: np.asarray(v, dtype=np.int64) for k, v in encoded.items()})
    for name in ("model.onnx", "model.int8.onnx"):
        graph = run / "onnx" / name
        inputs = {i.name for i in __import__("onnx").load(str(graph), load_external_data=False).graph.input}
        seconds, per_op = profile_graph(graph, [{k: v for k, v in b.items() if k in inputs} for b in batches], args.threads)
        total = sum(per_op.values())
        print(f"\n{name}: {len(texts)} texts at batch {args.batch_size}, {seconds:.3f} s (profiling on)")
        print("| operator | kernel s | share |\n|---|---:|---:|")
        for op, value in sorted(per_op.items(), key=lambda item: -item[1])[:8]:
            print(f"| {op} | {value:.3f} | {100 * value / total:.1f} % |")


if __name__ == "__main__":
    main()
