"""Training and prediction speed against the Trainer and pipeline: same model, same SST-2 rows, one run.

    python benchmarks/speed.py --train-rows 8000 --threads 2

Training variants, each one epoch at batch 32 and lr 5e-5 on the same rows, scored on all 872 dev rows:
  trainer_random   the Trainer as its example scripts run it (random order, dynamic padding)
  trainer_grouped  the Trainer at its best (train_sampling_strategy="group_by_length")
  nlp_fp32         nlp-transfer's loop in float32 (length-grouped batches)
  nlp_bf16         nlp-transfer's loop with bf16 autocast (training.mixed_precision=bf16)
Model FLOPs utilisation (MFU) = 6 x non-embedding parameters x non-pad training tokens / train time,
divided by this machine's median matmul rate in the same precision (measured first, 1024^3 matmuls).
Prediction: `nlp-transfer predict` (predict_texts) against transformers.pipeline on the dev sentences
at the same batch size, with the labels compared. The float32 and bf16 models' dev predictions are
compared too (how many labels agree, the largest probability difference), so equal accuracies are
shown to come from two different models. With --repeats N every variant runs N times, interleaved,
and the medians are reported (each run's figures are kept in the JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
SST2 = REPO.parent / "shared" / "datasets" / "sst2"
sys.path.insert(0, str(REPO / "benchmarks"))

from sst2_vs_trainer import read_sst2  # noqa: E402


def matmul_rate(dtype, size: int = 1024, repeats: int = 15) -> float:
    """Median GFLOP/s of size x size matmuls in ``dtype``."""
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def trainer_run(model_path: str, texts, labels, dev_texts, dev_labels, args, sampling: str) -> dict[str, float]:
    """One Trainer epoch with the given sampling strategy."""
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)

    def encode(t, y):
        data = Dataset.from_dict({"text": t, "label": y})
        return data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"])

    train = encode(texts, labels)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    steps = math.ceil(len(train) / args.batch_size)
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=5e-5,
            num_train_epochs=1,
            weight_decay=0.01,
            warmup_steps=math.ceil(0.06 * steps),
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            seed=args.seed,
            use_cpu=True,
            disable_tqdm=True,
            train_sampling_strategy=sampling,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
        result = trainer.train()
    # predict outside the Trainer: with group_by_length, Trainer.predict reorders its batches in transformers 5.23
    from nlp_transfer.tasks.classification import SequenceClassificationTask

    task = SequenceClassificationTask(model_path=model_path, labels=["0", "1"], tokenizer=tokenizer, max_length=128)
    from nlp_transfer.inference import text_logits

    model.eval()
    accuracy = float((text_logits(model, task, dev_texts).argmax(-1) == np.asarray(dev_labels)).mean())
    return {
        "samples_per_second": result.metrics["train_samples_per_second"],
        "train_seconds": result.metrics["train_runtime"],
        "dev_accuracy": accuracy,
    }


def nlp_run(args, precision: str, out: Path) -> dict[str, float]:
    """One epoch of nlp-transfer's sentiment recipe config."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    config = load_config(
        REPO / "recipes/configs/sentiment/sst2_full.yaml",
        [
            f"output_dir={out}",
            f"data.max_train_samples={args.train_rows}",
            "training.epochs=1",
            f"training.batch_size={args.batch_size}",
            "training.learning_rate=5e-5",
            "training.eval_strategy=epoch",
            f"training.torch_threads={args.threads}",
            f"seed={args.seed}",
            f"training.mixed_precision={precision}",
            f"data.train_file={SST2 / 'train.tsv'}",
            f"data.validation_file={SST2 / 'dev.tsv'}",
        ],
    )
    result = run_training(config, overwrite=True)
    return {
        "samples_per_second": result.info["train_samples_per_second"],
        "train_seconds": result.info["train_seconds"],
        "dev_accuracy": result.metrics["validation"]["accuracy"],
        "run_dir": str(out),
    }


def main() -> int:
    """Run every variant, print the table and save it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip", default="", help="comma-separated variants to leave out")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant; medians are reported")
    args = parser.parse_args()
    if not (SST2 / "train.tsv").is_file():
        print(f"error: {SST2} is missing; the benchmark reads SST-2 from ../shared/datasets.", file=sys.stderr)
        return 2
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from nlp_transfer.inference import load_run, predict_texts
    from nlp_transfer.models import resolve_model

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    model_path = resolve_model("sentence-transformers/all-MiniLM-L6-v2").path
    texts, labels = read_sst2(SST2 / "train.tsv", args.train_rows)
    dev_texts, dev_labels = read_sst2(SST2 / "dev.tsv")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=128)["input_ids"])
    probe = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    embedding = sum(p.numel() for n, p in probe.named_parameters() if "embeddings" in n)
    non_embedding = sum(p.numel() for p in probe.parameters()) - embedding
    flops = 6 * non_embedding * tokens
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "trainer_random": lambda r: trainer_run(model_path, texts, labels, dev_texts, dev_labels, args, "random"),
            "trainer_grouped": lambda r: trainer_run(model_path, texts, labels, dev_texts, dev_labels, args, "group_by_length"),
            "nlp_fp32": lambda r: nlp_run(args, "no", Path(tmp) / f"fp32-{r}"),
            "nlp_bf16": lambda r: nlp_run(args, "bf16", Path(tmp) / f"bf16-{r}"),
        }
        runs: dict[str, list[dict]] = {name: [] for name in variants if name not in skip}
        for repeat in range(args.repeats):
            for name in runs:
                runs[name].append(variants[name](repeat))
        for name, measured in runs.items():
            results[name] = {
                key: statistics.median(m[key] for m in measured)
                for key in ("samples_per_second", "train_seconds", "dev_accuracy")
            }
            results[name]["runs_samples_per_second"] = [round(m["samples_per_second"], 2) for m in measured]
            if "run_dir" in measured[0]:
                results[name]["run_dir"] = measured[0]["run_dir"]
            rate = rates["bf16" if name.endswith("bf16") else "fp32"]
            results[name]["mfu"] = flops / results[name]["train_seconds"] / 1e9 / rate
        if "nlp_fp32" in results and "nlp_bf16" in results:
            from nlp_transfer.inference import text_logits

            probs = {}
            for name in ("nlp_fp32", "nlp_bf16"):
                model, task = load_run(results[name]["run_dir"], device="cpu")
                probs[name] = torch.softmax(torch.from_numpy(text_logits(model, task, dev_texts)), dim=-1)
            same = int((probs["nlp_fp32"].argmax(-1) == probs["nlp_bf16"].argmax(-1)).sum())
            results["fp32_vs_bf16"] = {
                "same_dev_labels": f"{same}/{len(dev_texts)}",
                "max_abs_probability_difference": float((probs["nlp_fp32"] - probs["nlp_bf16"]).abs().max()),
                "mean_abs_probability_difference": float((probs["nlp_fp32"] - probs["nlp_bf16"]).abs().mean()),
            }
        if "nlp_fp32" in results:
            run_dir = results["nlp_fp32"]["run_dir"]
            model, task = load_run(run_dir, device="cpu")
            start = time.perf_counter()
            ours = predict_texts(model, task, dev_texts, batch_size=args.batch_size)
            ours_rate = len(dev_texts) / (time.perf_counter() - start)
            classifier = pipeline("text-classification", model=run_dir, device="cpu")
            start = time.perf_counter()
            theirs = classifier(dev_texts, batch_size=args.batch_size, truncation=True, max_length=128)
            theirs_rate = len(dev_texts) / (time.perf_counter() - start)
            same = sum(o["label"] == t["label"] for o, t in zip(ours, theirs, strict=True))
            results["predict"] = {
                "nlp_sentences_per_second": ours_rate,
                "pipeline_sentences_per_second": theirs_rate,
                "ratio": ours_rate / theirs_rate,
                "identical_labels": f"{same}/{len(dev_texts)}",
            }
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
        "machine": f"{os.cpu_count()} CPUs, torch threads {args.threads}, torch {torch.__version__}, transformers {transformers.__version__}",
        "matmul_gflops": rates,
        "repeats": args.repeats,
        "training_tokens": tokens,
        "non_embedding_parameters": non_embedding,
        "results": results,
    }
    print(
        f"\nSST-2 first {args.train_rows} rows, 1 epoch, batch {args.batch_size}, {args.threads} threads; "
        f"matmul fp32 {rates['fp32']:.0f} GFLOP/s, bf16 {rates['bf16']:.0f} GFLOP/s"
    )
    print(f"{'':<17}{'samples/s':>10}{'dev acc':>9}{'MFU':>7}")
    for name, values in results.items():
        if name not in ("predict", "fp32_vs_bf16"):
            print(f"{name:<17}{values['samples_per_second']:>10.1f}{values['dev_accuracy']:>9.4f}{values['mfu']:>7.2f}")
    base = results.get("trainer_grouped") or results.get("trainer_random")
    for name in ("nlp_fp32", "nlp_bf16"):
        if name in results and base:
            ratios = {
                k: results[name]["samples_per_second"] / results[k]["samples_per_second"]
                for k in ("trainer_random", "trainer_grouped")
                if k in results
            }
            print(f"{name} / Trainer: " + ", ".join(f"{v:.2f}x vs {k}" for k, v in ratios.items()))
    if "fp32_vs_bf16" in results:
        c = results["fp32_vs_bf16"]
        print(
            f"fp32 vs bf16 models on dev: same labels {c['same_dev_labels']}, probability difference "
            f"max {c['max_abs_probability_difference']:.4f}, mean {c['mean_abs_probability_difference']:.4f}"
        )
    if "predict" in results:
        p = results["predict"]
        print(
            f"predict {p['nlp_sentences_per_second']:.1f} sentences/s, pipeline {p['pipeline_sentences_per_second']:.1f}: "
            f"{p['ratio']:.2f}x, identical labels {p['identical_labels']}"
        )
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"speed_{args.train_rows}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
