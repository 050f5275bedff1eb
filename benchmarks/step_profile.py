"""Where a training step of the default encoder spends its time: matrix products against everything else (issue #21).

    python benchmarks/step_profile.py --threads 2 --steps 15

One training step as the loops run it (nlp-transfer's and the Trainer's alike): forward, cross-entropy, backward,
gradient clipping at norm 1, a fused AdamW step and gradients set to None, on the default model with a 2-label head,
on length-grouped SST-2 batches of ``--batch-size`` (``compile_step.batches``). After ``--warmup`` steps (and one more
on the widest batch, first, so that a reused heap has reached its peak), torch's profiler records ``--steps`` steps
with FLOP counting. Reported: the median step, the share of each operator's own time (top ``--top``), the rate the
matrix products (``mm``, ``addmm``, ``bmm``) reach while they run, and MFU: the products' FLOPs over the whole step's
time, against the machine's rate on a 1024^3 product measured in the same run.
A step whose products run at the machine's rate can still have a low MFU: the gap is the other operators' time.
``--fast-dropout-masks`` draws every dropout mask as ``training.fast_dropout_masks`` does (the loop's default on
CPUs); without it, torch's ``bernoulli_`` draws them. ``--reuse-heap-memory`` keeps freed blocks on the heap as
``training.reuse_heap_memory`` does (the loop's default on glibc). ``--bf16`` runs the forward pass and the loss under
bfloat16 autocast, as ``training.mixed_precision=bf16`` and the Trainer's ``bf16=True`` do, and measures the machine's
rate in bfloat16. ``--callers OP`` also splits operator OP's own time by the chain of operators that called it
(``aten::copy_``: which conversions and copies cost what).
Result: step_profile.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from common import SST2, dataset_present, read_sst2, report_header, setup, write_result
from compile_step import batches

PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm")


def training_step(model: Any, optimizer: Any, batch: dict[str, Any], bf16: bool = False) -> None:
    """Forward, loss, backward, clipping, optimizer step, gradients to None (``bf16``: forward and loss autocast)."""
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def product_rate(repeats: int = 20, bf16: bool = False) -> float:
    """GFLOP/s of a float32 (``bf16``: bfloat16) 1024^3 matrix product, median of ``repeats`` calls."""
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * 1024**3 / statistics.median(times) / 1e9


def profile_steps(
    model: Any, data: list[dict[str, Any]], warmup: int, fast_masks: bool, reuse_heap: bool = False, bf16: bool = False
) -> tuple[Any, list[float]]:
    """Run ``warmup`` steps, then profile the rest; the profiler (its averages per operator) and each step's seconds."""
    import torch

    from nlp_transfer.training.dropout_masks import MaskSource, fast_dropout
    from nlp_transfer.training.heap import reused_heap_memory

    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    with reused_heap_memory(reuse_heap), fast_dropout(model, MaskSource(0) if fast_masks else None):
        widest = max(data, key=lambda batch: batch["input_ids"].shape[1])
        for batch in [widest, *data[:warmup]]:  # the widest first: the heap reaches its peak before the profile
            training_step(model, optimizer, batch, bf16)
        return profiled_steps(model, optimizer, data[warmup:], bf16)


def profiled_steps(model: Any, optimizer: Any, data: list[dict[str, Any]], bf16: bool = False) -> tuple[Any, list[float]]:
    """Profile one training step a batch, with FLOP counting; the operators' averages and each step's seconds."""
    from torch.profiler import ProfilerActivity, profile

    times = []
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as profiler:
        for batch in data:
            started = time.perf_counter()
            training_step(model, optimizer, batch, bf16)
            times.append(time.perf_counter() - started)
    return profiler, times


def by_callers(profiler: Any, operator: str, steps: int, depth: int = 2) -> list[dict[str, Any]]:
    """``operator``'s own time per step split by the chain of its ``depth`` nearest callers, largest first."""
    split: dict[str, list[float]] = {}
    for event in profiler.events():
        if event.name != operator:
            continue
        chain, parent = [], event.cpu_parent
        while parent is not None and len(chain) < depth:
            chain.append(parent.name)
            parent = parent.cpu_parent
        entry = split.setdefault(" < ".join(chain) or "(top level)", [0.0, 0.0])
        entry[0] += event.self_cpu_time_total
        entry[1] += 1
    rows = [{"callers": k, "ms_per_step": us / 1000 / steps, "calls_per_step": n / steps} for k, (us, n) in split.items()]
    return sorted(rows, key=lambda row: -row["ms_per_step"])


def summarize(events: Any, times: list[float], peak: float, top: int) -> dict[str, Any]:
    """Per-step figures: step time, operator shares, the products' rate and MFU."""
    steps = len(times)
    total = sum(e.self_cpu_time_total for e in events)  # microseconds, every operator's own time
    products = [e for e in events if e.key in PRODUCTS]
    product_us = sum(e.self_cpu_time_total for e in products)
    flops = sum(e.flops for e in products)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "steps": steps,
        "step_ms_median": 1000 * statistics.median(times),
        "step_ms_mean": 1000 * statistics.mean(times),
        "operators": [
            {"name": e.key, "ms_per_step": e.self_cpu_time_total / 1000 / steps, "share": e.self_cpu_time_total / total}
            for e in ranked
        ],
        "products_share": product_us / total,
        "products_gflops_per_step": flops / steps / 1e9,
        "products_rate_gflops": flops / (product_us / 1e6) / 1e9,
        "machine_rate_gflops": peak,
        "mfu": flops / sum(times) / 1e9 / peak,
    }


def main() -> int:
    """Profile the steps and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--fast-dropout-masks", action="store_true", help="masks as training.fast_dropout_masks draws them")
    parser.add_argument("--reuse-heap-memory", action="store_true", help="heap as training.reuse_heap_memory keeps it")
    parser.add_argument("--bf16", action="store_true", help="forward and loss under bfloat16 autocast (products timed in bf16)")
    parser.add_argument("--callers", default="", help="an operator whose time to split by its callers (aten::copy_)")
    args = parser.parse_args()
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 1
    model_path = setup(args.threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = (args.warmup + args.steps) * args.batch_size
    texts, labels = read_sst2(SST2 / "train.tsv", limit=rows)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2).train()
    data = batches(tokenizer, texts, labels, args.batch_size)
    profiler, times = profile_steps(model, data, args.warmup, args.fast_dropout_masks, args.reuse_heap_memory, args.bf16)
    result = summarize(profiler.key_averages(), times, product_rate(bf16=args.bf16), args.top)
    if args.callers:
        result["callers"] = by_callers(profiler, args.callers, len(times))[: args.top]
    print(f"step {result['step_ms_median']:.1f} ms (median of {result['steps']}); operators' own time per step:")
    for op in result["operators"]:
        print(f"  {op['name']:<36} {op['ms_per_step']:7.1f} ms  {100 * op['share']:5.1f} %")
    print(
        f"products: {100 * result['products_share']:.1f} % of the time, {result['products_rate_gflops']:.0f} GFLOP/s while "
        f"they run (machine {result['machine_rate_gflops']:.0f}); MFU {result['mfu']:.2f}"
    )
    for row in result.get("callers", []):
        print(f"  {args.callers} from {row['callers']:<44} {row['ms_per_step']:6.2f} ms  {row['calls_per_step']:6.1f} calls")
    print(f"results: {write_result('step_profile', {**report_header(args.threads), **vars(args), **result})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
