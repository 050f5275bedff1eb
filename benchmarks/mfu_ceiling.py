"""The highest float32 training-loop MFU any exact loop can reach on this machine, from measurements (issue #21).

    python benchmarks/mfu_ceiling.py --threads 2 --train-rows 4000

``speed.py`` counts a step's work as 6 x non-embedding parameters x non-pad tokens and divides by the machine's rate
on a 1024^3 product. Two parts of every step of the same training bound that figure from above, whatever a loop
does around them, and both are measured here on the default model, on the length-grouped SST-2 batches
``speed.py`` trains on (``compile_step.batches``):

1. **the products**: their FLOPs counted by torch's ``FlopCounterMode`` on a real forward and backward of every
   batch (over padded positions, the last layer computing only the position the head reads, as
   ``training.skip_unread_positions`` does), timed at the rate of the step's linear-layer shapes (each linear
   layer's forward product, input gradient and weight gradient at the median batch's padded token count; the
   quartiles' rates show the spread). The attention scores' small batched products are timed at that rate too,
   which can only flatter them;
2. **the parameter work** that an exact AdamW step does whatever the batch: the clipping norm over every gradient
   (``training.max_grad_norm``), the fused AdamW step over all 22.7 M parameters (the word embeddings' 11.7 M
   included: their gradient is dense, and the moments of every row decay every step) and zero-filling the dense
   word-embedding gradient that backward writes.

ceiling = counted FLOPs / machine rate / (products' time + parameter time), every other operator (norms, GELU,
softmax, dropout, residuals, copies) counted as free. Two ceilings: products at the 1024^3 rate (the loosest) and
at their own shapes' rate. Result: mfu_ceiling.json.
"""

from __future__ import annotations

import argparse
import functools
import statistics
from typing import Any

from common import SST2, dataset_present, median_seconds, model_flops, read_sst2, report_header, setup, write_result
from compile_step import batches
from step_profile import product_rate


def linear_product_seconds(tokens: int, hidden: int, intermediate: int, repeats: int) -> dict[str, float]:
    """Seconds and FLOPs of one encoder layer's linear products at ``tokens`` rows, forward and both gradients."""
    import torch

    shapes = [(hidden, hidden)] * 4 + [(hidden, intermediate), (intermediate, hidden)]  # q, k, v, out, FFN in, out
    seconds = flops = 0.0
    for fan_in, fan_out in shapes:
        x, weight, grad = torch.randn(tokens, fan_in), torch.randn(fan_out, fan_in), torch.randn(tokens, fan_out)
        for left, right in ((x, weight.T), (grad, weight), (grad.T, x)):
            seconds += median_seconds(functools.partial(torch.matmul, left, right), repeats)
            flops += 2 * tokens * fan_in * fan_out
    return {"seconds": seconds, "flops": flops}


def executed_product_flops(model: Any, data: list[dict[str, Any]]) -> float:
    """Mean FLOPs of the products one training step runs (forward, loss, backward), counted by torch per batch.

    As the loop runs it on a CPU: the last layer computes the first position alone
    (``training.skip_unread_positions``) and attention is the eager form the fast dropout masks use, so its
    products are counted too; products run over padded positions.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nlp_transfer.training.dropout_masks import MaskSource, fast_dropout
    from nlp_transfer.training.first_position import first_position_only

    total = 0
    with first_position_only(model), fast_dropout(model, MaskSource(0)):
        for batch in data:
            with FlopCounterMode(display=False) as counter:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
            total += counter.get_total_flops()
            model.zero_grad(set_to_none=True)
    return total / len(data)


def parameter_seconds(model: Any, repeats: int) -> dict[str, float]:
    """Median seconds of the clipping norm, the fused AdamW step and the word-embedding gradient's zero-fill."""
    import torch

    parameters = [p for p in model.parameters() if p.requires_grad]
    for p in parameters:
        p.grad = torch.randn_like(p) * 1e-3
    optimizer = torch.optim.AdamW(parameters, lr=5e-5, fused=True)
    words = model.get_input_embeddings().weight
    return {
        "clip_grad_norm": median_seconds(lambda: torch.nn.utils.clip_grad_norm_(parameters, 1.0), repeats),
        "adamw_fused": median_seconds(optimizer.step, repeats),
        "embedding_grad_zero_fill": median_seconds(lambda: torch.zeros_like(words), repeats),
    }


def sst2_batches(model_path: str, rows: int, batch_size: int) -> list[dict[str, Any]]:
    """The length-grouped, padded batches of the first ``rows`` SST-2 training rows."""
    from transformers import AutoTokenizer

    texts, labels = read_sst2(SST2 / "train.tsv", limit=rows)
    return batches(AutoTokenizer.from_pretrained(model_path), texts, labels, batch_size)


def measured_rates(quartiles: dict[str, int], hidden: int, intermediate: int, repeats: int, rounds: int) -> dict:
    """The 1024^3 rate and each quartile's linear-product rate (GFLOP/s), measured in turn ``rounds`` times; medians.

    This machine's speed drifts between minutes, so the machine rate and the shapes' rates are taken in the same
    moments, alternately, and the medians compared.
    """
    peaks, shapes = [], {name: [] for name in quartiles}
    for _ in range(rounds):
        peaks.append(product_rate(repeats))
        for name, tokens in quartiles.items():
            timing = linear_product_seconds(tokens, hidden, intermediate, repeats)
            shapes[name].append(timing["flops"] / timing["seconds"] / 1e9)
    return {
        "machine": statistics.median(peaks),
        "machine_rounds": [round(r) for r in peaks],
        "shapes": {name: {"tokens": quartiles[name], "gflops": statistics.median(r)} for name, r in shapes.items()},
    }


def ceilings(model: Any, data: list[dict[str, Any]], repeats: int, rounds: int) -> dict[str, Any]:
    """Both ceilings and the figures they come from, per step on average over the batches ``data``."""
    steps = len(data)
    counted = sum(model_flops(model, data)) / steps
    executed = executed_product_flops(model, data)
    padded_sorted = sorted(b["input_ids"].numel() for b in data)
    quartiles = {f"q{int(q * 100)}": padded_sorted[int(q * (steps - 1))] for q in (0.25, 0.5, 0.75)}
    config = model.config
    measured = measured_rates(quartiles, config.hidden_size, config.intermediate_size, repeats, rounds)
    peak, rates = measured["machine"], measured["shapes"]
    shape_rate = rates["q50"]["gflops"]
    params = parameter_seconds(model, repeats)
    param_total = sum(params.values())
    loose = counted / 1e9 / peak / (executed / 1e9 / peak + param_total)
    tight = counted / 1e9 / peak / (executed / 1e9 / shape_rate + param_total)
    return {
        "steps": steps,
        "counted_gflops_per_step": counted / 1e9,
        "executed_product_gflops_per_step": executed / 1e9,
        "machine_rate_gflops": peak,
        "machine_rate_rounds": measured["machine_rounds"],
        "shape_rates": rates,
        "parameter_seconds": params,
        "ceiling_products_at_machine_rate": loose,
        "ceiling_products_at_shape_rate": tight,
        "step_ms_at_ceiling": 1000 * (executed / 1e9 / shape_rate + param_total),
        "step_ms_for_mfu_0_75": 1000 * counted / 1e9 / peak / 0.75,
    }


def main() -> int:
    """Measure, print and write the ceilings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-rows", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15, help="timed calls of each measurement; medians reported")
    parser.add_argument("--rounds", type=int, default=3, help="times the rates are measured, alternately")
    args = parser.parse_args()
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 1
    model_path = setup(args.threads)
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2).train()
    data = sst2_batches(model_path, args.train_rows, args.batch_size)
    result = ceilings(model, data, args.repeats, args.rounds)
    print_report(result)
    print(f"results: {write_result('mfu_ceiling', {**report_header(args.threads), **vars(args), **result})}")
    return 0


def print_report(result: dict[str, Any]) -> None:
    """The figures, one per line."""
    rates = ", ".join(f"{k} ({v['tokens']} tokens) {v['gflops']:.0f}" for k, v in result["shape_rates"].items())
    params = ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in result["parameter_seconds"].items())
    print(
        f"machine rate (1024^3): {result['machine_rate_gflops']:.0f} GFLOP/s {result['machine_rate_rounds']}; the step's products at their shapes: {rates}"
    )
    print(
        f"per step: counted {result['counted_gflops_per_step']:.2f} GFLOP, executed products "
        f"{result['executed_product_gflops_per_step']:.2f} GFLOP; parameter work: {params}"
    )
    print(
        f"MFU ceiling: {result['ceiling_products_at_machine_rate']:.2f} (products at the machine rate), "
        f"{result['ceiling_products_at_shape_rate']:.2f} (at their shapes' rate); step at that ceiling "
        f"{result['step_ms_at_ceiling']:.1f} ms, MFU 0.75 needs {result['step_ms_for_mfu_0_75']:.1f} ms"
    )


if __name__ == "__main__":
    raise SystemExit(main())
