"""What ``training.reuse_heap_memory`` gives a training loop (issue #21): fresh processes, on and off alternating.

    python benchmarks/heap_reuse.py --pairs 4 --threads 2

Each run is a fresh process (this script with ``--one-run on|off``), so neither side inherits the other's heap:
the default model, SST-2's first 4,000 training rows in length-sorted batches of 32, the same 60 batches drawn with
a fixed seed, the short last layer (``first_position_only``), AdamW fused, clipping at 1, gradients set to None after
each step, as nlp-transfer's loop. 5 steps warm up, then the other 55 are timed, inside ``reused_heap_memory(on)``.
The side that runs first alternates between pairs. Prints every pair's seconds and the mean ratio off / on (above 1: the setting is faster).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time

from common import SST2, read_sst2, report_header, write_result


def one_run(on: bool, threads: int) -> float:
    """Seconds of 55 timed training steps in this process, with or without heap reuse."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nlp_transfer.models import packaged_model_path
    from nlp_transfer.training.first_position import first_position_only
    from nlp_transfer.training.heap import reused_heap_memory

    torch.set_num_threads(threads)
    path = packaged_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts, label_ids = read_sst2(SST2 / "train.tsv", limit=4000)
    encoded = tokenizer(texts, truncation=True, max_length=128)
    labels = torch.tensor(label_ids)
    order = sorted(range(len(texts)), key=lambda i: len(encoded["input_ids"][i]))
    batches = [order[i : i + 32] for i in range(0, len(order), 32)]
    chosen = random.Random(3).sample(range(len(batches)), 60)
    features = {
        i: tokenizer.pad({k: [encoded[k][j] for j in batches[i]] for k in ("input_ids", "attention_mask")}, return_tensors="pt")
        for i in chosen
    }
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)

    def steps(indices: list[int]) -> float:
        started = time.perf_counter()
        for i in indices:
            model(**features[i], labels=labels[batches[i]]).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    with first_position_only(model, True), reused_heap_memory(on):
        steps(chosen[:5])
        return steps(chosen[5:])


def main() -> int:
    """``--pairs`` pairs of fresh processes (on first in even pairs, off first in odd ones); prints and writes heap_reuse.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one-run", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        print(one_run(args.one_run == "on", args.threads))
        return 0
    pairs = []
    for number in range(args.pairs):
        pair = {}
        for side in ("on", "off") if number % 2 == 0 else ("off", "on"):
            command = [sys.executable, __file__, "--one-run", side, "--threads", str(args.threads)]
            printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            pair[side] = float(printed.strip().splitlines()[-1])
        pairs.append(pair)
        print(f"on {pair['on']:.2f} s, off {pair['off']:.2f} s, off / on {pair['off'] / pair['on']:.3f}", flush=True)
    ratio = statistics.mean(p["off"] / p["on"] for p in pairs)
    print(f"mean off / on over {len(pairs)} pairs: {ratio:.3f}")
    print(f"written to {write_result('heap_reuse', {**report_header(args.threads), 'pairs': pairs, 'mean_ratio': ratio})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
