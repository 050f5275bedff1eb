"""What ``torch.compile`` gives a training step of the default encoder, and after how many steps it pays.

    python benchmarks/compile_step.py --threads 2 --steps 30 --precisions fp32,bf16

The first ``(warm-up + steps) x batch`` SST-2 training sentences, in batches of ``--batch-size`` padded to their own
longest sentence (batches of similar lengths, as ``group_by_length`` forms them: the rows are sorted by length in
chunks of 50 batches, then cut). One training step is forward, cross-entropy, backward and a fused AdamW step on
the default model with a 2-label head, as nlp-transfer's loop runs it (bf16: ``torch.autocast``). Eager and
compiled (``torch.compile(model, dynamic=True)``, inductor, as ``training.torch_compile`` does) run the same
batches from the same weights, and so does a third side, ``eager_loop``: eager with the loop's CPU defaults
(``training.fast_dropout_masks``, ``skip_unread_positions``, ``reuse_heap_memory``; the compiled side reuses heap
memory too). No side clips gradients. Reported per precision: the steady-state seconds per step of eager and
compiled (median over ``--steps`` steps after ``--warmup`` warm-up steps), the speed-up, the compile overhead (the
compiled side's warm-up time less as many steady-state steps) and the break-even point: overhead / (eager step -
compiled step), the number of steps a run needs before compiling pays; and each side's MFU over its timed steps
(6 x non-embedding parameters x non-pad tokens over their seconds, against the float32 1024^3 rate measured just
before the side) and the median of its steps' MFUs (which a recompiling step moves less). Result: compile_step.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from common import SST2, dataset_present, model_flops, read_sst2, report_header, setup, write_result


def batches(tokenizer: Any, texts: list[str], labels: list[int], size: int) -> list[dict[str, Any]]:
    """Length-grouped padded batches (chunks of 50 batches sorted by length), in their original chunk order."""
    import torch

    encoded = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    order: list[int] = []
    for start in range(0, len(texts), 50 * size):
        order += sorted(range(start, min(start + 50 * size, len(texts))), key=lambda i: len(encoded[i]))
    out = []
    for start in range(0, len(order) - size + 1, size):
        rows = order[start : start + size]
        padded = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt")
        padded["labels"] = torch.tensor([labels[i] for i in rows])
        out.append(dict(padded))
    return out


def step_times(model: Any, data: list[dict[str, Any]], bf16: bool) -> list[float]:
    """Seconds of each training step over ``data``, in order."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    times = []
    for batch in data:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times


def side_steps(model_path: str, data: list[dict[str, Any]], name: str, bf16: bool) -> tuple[list[float], list[float]]:
    """Step seconds of one side (``eager``, ``eager_loop``: the loop's CPU defaults, or ``compiled``), and FLOPs."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from nlp_transfer.training.dropout_masks import MaskSource, fast_dropout
    from nlp_transfer.training.first_position import first_position_only
    from nlp_transfer.training.heap import reused_heap_memory

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2).train()
    runner = torch.compile(model, dynamic=True) if name == "compiled" else model
    loop_defaults = name == "eager_loop"
    masks = MaskSource(0) if loop_defaults else None
    with reused_heap_memory(name != "eager"), first_position_only(model, loop_defaults), fast_dropout(model, masks):
        return step_times(runner, data, bf16), model_flops(model, data)


def measure(model_path: str, data: list[dict[str, Any]], warmup: int, bf16: bool) -> dict[str, Any]:
    """Eager, eager as the loop runs it and compiled on the same batches and starting weights.

    Per side: the steady-state step (median after ``warmup``) and MFU over the timed steps (model FLOPs over their
    time, against the float32 1024^3 rate measured just before the side); for compiled against eager: the speed-up,
    the compile overhead and the break-even point.
    """
    from step_profile import product_rate

    sides = {}
    for name in ("eager", "eager_loop", "compiled"):
        rate = product_rate()
        times, flops = side_steps(model_path, data, name, bf16)
        per_step = [f / t / (rate * 1e9) for f, t in zip(flops[warmup:], times[warmup:], strict=True)]
        sides[name] = {
            "warmup_seconds": sum(times[:warmup]),
            "step_seconds": statistics.median(times[warmup:]),
            "matmul_gflops": rate,
            "mfu": sum(flops[warmup:]) / sum(times[warmup:]) / (rate * 1e9),
            "mfu_median_step": statistics.median(per_step),
        }
    eager, compiled = sides["eager"]["step_seconds"], sides["compiled"]["step_seconds"]
    overhead = sides["compiled"]["warmup_seconds"] - warmup * compiled
    saving = eager - compiled
    return {
        "eager_step_seconds": eager,
        "compiled_step_seconds": compiled,
        "speedup": eager / compiled,
        "compile_overhead_seconds": overhead,
        "break_even_steps": overhead / saving if saving > 0 else None,
        "sides": sides,
    }


def main() -> int:
    """Measure each precision and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per step")
    parser.add_argument("--warmup", type=int, default=10, help="steps before timing (the compiled side compiles here)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per side")
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16")
    args = parser.parse_args()
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 2
    model_path = setup(args.threads)
    from transformers import AutoTokenizer

    texts, labels = read_sst2(SST2 / "train.tsv", limit=(args.warmup + args.steps) * args.batch_size)
    data = batches(AutoTokenizer.from_pretrained(model_path), texts, labels, args.batch_size)
    results = {p: measure(model_path, data, args.warmup, p == "bf16") for p in args.precisions.split(",")}
    sides = "per side: step, MFU over the steps / median step's (GFLOP/s)"
    print(f"| precision | eager s/step | compiled s/step | speed-up | compile overhead s | break-even steps | {sides} |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for precision, r in results.items():
        even = "never" if r["break_even_steps"] is None else f"{r['break_even_steps']:.0f}"
        mfu = ", ".join(
            f"{name} {side['step_seconds']:.3f} s, {side['mfu']:.2f} / {side['mfu_median_step']:.2f} "
            f"({side['matmul_gflops']:.0f})"
            for name, side in r["sides"].items()
        )
        print(
            f"| {precision} | {r['eager_step_seconds']:.3f} | {r['compiled_step_seconds']:.3f} | {r['speedup']:.2f}x "
            f"| {r['compile_overhead_seconds']:.1f} | {even} | {mfu} |"
        )
    report = {**report_header(args.threads), "batch_size": args.batch_size, "warmup": args.warmup, "results": results}
    print(f"\nwritten to {write_result('compile_step', report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
