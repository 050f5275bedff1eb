"""Where contrastive few-shot loses to SetFit (issue #16): the head or the pairs?

    python benchmarks/few_shot_head.py --seeds 0,1,2 --arm cosine:20 --size 32 --threads 2
    python benchmarks/few_shot_head.py --seeds 0,1,2 --arm cosine:33 --size 32 --threads 2

For each seed, the same sampled SST-2 examples as benchmarks/few_shot.py (``size`` per class for training, as many
for validation, GLUE dev as the test set), one ``strategy=contrastive`` run with the arm's loss and pairs per
example (``LOSS:PAIRS``, few_shot.py's settings otherwise). Then, on that run's encoder (mean-pooled vectors), the
head SetFit fits: scikit-learn's ``LogisticRegression()`` on L2-normalised vectors (what the sentence-transformers
body gives SetFit) and on the raw ones. One JSON line per seed: the run's own test and validation accuracy and the
two logistic heads', printed and written to ``few_shot_head_LOSS_PAIRS_SIZE.json`` in the results folder
(``$NLP_TRANSFER_BENCHMARK_RESULTS``, default benchmarks/results).
SetFit's default pair count for C classes of k examples is 2 x max(C k(k+1)/2, C(C-1)/2 k^2): 2,112 for SST-2 at 32
per class, 33 pairs per example.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import few_shot
import numpy as np
from common import write_result


def logistic_head(vectors: dict[str, np.ndarray], labels: dict[str, list[int]], normalise: bool) -> dict[str, float]:
    """Test and validation accuracy of ``LogisticRegression()`` fitted on the training vectors."""
    from sklearn.linear_model import LogisticRegression

    if normalise:
        vectors = {name: v / np.linalg.norm(v, axis=1, keepdims=True) for name, v in vectors.items()}
    head = LogisticRegression().fit(vectors["train"], labels["train"])
    return {split: float((head.predict(vectors[split]) == np.array(labels[split])).mean()) for split in ("test", "validation")}


def one_seed(corpus: few_shot.Corpus, seed: int, args: argparse.Namespace, work: Path) -> dict[str, object]:
    """One contrastive run on the seed's examples, then both logistic heads on its encoder."""
    import torch

    from nlp_transfer.config import load_config
    from nlp_transfer.inference import load_run
    from nlp_transfer.pipeline import run_training
    from nlp_transfer.shift.embed import embed_texts, run_encoder

    torch.set_num_threads(args.threads)
    group = few_shot.write_group(corpus, args.size, seed, 0, work) | {"seed": seed, "names": corpus.names}
    settings = few_shot.method_arms("contrastive", args)[args.arm]
    overrides = few_shot.recipe_overrides("contrastive", settings, group, args.threads)
    started = time.perf_counter()
    config = load_config(None, [f"output_dir={work / 'run'}", *(f"{key}={value}" for key, value in overrides.items())])
    result = run_training(config, overwrite=True)
    seconds = time.perf_counter() - started
    model, task = load_run(work / "run")
    encoder = run_encoder(model, task, work / "run")
    splits = {name: few_shot.read_split(group["files"][name], corpus.names) for name in ("train", "validation", "test")}
    vectors = {name: embed_texts(encoder, texts) for name, (texts, _) in splits.items()}
    labels = {name: ids for name, (_, ids) in splits.items()}
    row = {"seed": seed, "size": args.size, "arm": args.arm, "run_seconds": round(seconds, 1)}
    row |= {"ours_test": result.metrics["test"]["accuracy"], "ours_validation": result.metrics["validation"]["accuracy"]}
    for name, normalise in (("logistic_normalised", True), ("logistic_raw", False)):
        scores = logistic_head(vectors, labels, normalise)
        row |= {f"{name}_test": scores["test"], f"{name}_validation": scores["validation"]}
    return row


def main() -> int:
    """Every seed of the command line, one after another; prints and appends one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arm", default="cosine:20", help="LOSS:PAIRS, as few_shot.py's --contrastive-grid entries")
    parser.add_argument("--size", type=int, default=32, help="training examples per class")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    grid = few_shot.parse_args(["--contrastive-grid", args.arm])  # few_shot.py's defaults for every arm setting
    args = argparse.Namespace(**{**vars(grid), **vars(args)})
    corpus = few_shot.load_corpus("sst2")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory(prefix="few-shot-head-") as work:
            rows.append(one_seed(corpus, seed, args, Path(work)))
        print(json.dumps(rows[-1]), flush=True)
    name = f"few_shot_head_{args.arm.replace(':', '_')}_{args.size}"
    print(f"written to {write_result(name, {'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
