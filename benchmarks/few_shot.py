"""Few-shot classification: the SetFit library against nlp-transfer's contrastive, full and frozen strategies (issue #16).

    python benchmarks/few_shot.py --threads 2
    python benchmarks/few_shot.py --report
    python benchmarks/few_shot.py --memory --threads 2

Datasets (../shared/datasets): ``sst2`` (train.tsv; GLUE dev is the test set), ``emotion`` (train.txt; test.txt),
``trec`` (train.txt; test.txt; the 6 coarse labels) and ``kitchen`` (amazon_multidomain/kitchen train.tsv; dev.tsv is
the test set). Sizes 8, 16, 32, 64 training examples per class, seeds 0-4. Each (dataset, size, seed) samples ``size``
training rows per class exactly as benchmarks/augment_curve.py does (``random.Random(seed).sample(the class's row
indices, size)``, a fresh generator per class) and a disjoint validation set of ``size`` rows per class from the rest
of train (``random.Random(10_000 + seed)``; TREC's ABBR, 86 training rows, keeps the 22 left at 64 per class). The
rows go to temporary CSV files that every method reads: the same examples for all. The test split is scored once per
run (``--test-limit N``: its first N rows only, for smoke runs; the limit is recorded in every row and the report never
mixes limits).

Methods, all on the same body (the packaged all-MiniLM-L6-v2, ``nlp_transfer.models.packaged_model_path()``), all
reading at most 256 tokens (the body's ``max_seq_length``, which SetFit uses; ``training.max_length=256`` for ours):

- ``setfit``: the SetFit library (1.2.0) with its defaults, ``setfit.TrainingArguments(seed=seed)`` and nothing else,
  no validation set. Its defaults (setfit/training_args.py): body fine-tuned on pairs with ``CosineSimilarityLoss``,
  ``sampling_strategy="oversampling"`` (``num_iterations=None``: every pair of training texts, repeats included, is
  drawn, and the smaller of the similar and dissimilar sets is repeated up to the larger's size: 2 x max(C k(k+1)/2,
  C(C-1)/2 k^2) pairs for C classes of k examples: 144 pairs for SST-2 at 8 per class, 8,320 at 64, 122,880 for
  emotion and TREC at 64), ``batch_size=(16, 2)``, ``num_epochs=(1, 16)``, ``body_learning_rate=(2e-5, 1e-5)``,
  ``warmup_proportion=0.1``, ``l2_weight=0.01``, ``max_steps=-1``, ``max_length=None`` (the body's 256),
  ``end_to_end=False``, ``use_amp=False``, ``eval_strategy="no"``, ``save_strategy="steps"`` every 500 steps,
  ``report_to="all"``; then the head, scikit-learn's ``LogisticRegression()`` (lbfgs, C=1, 100 iterations), fits the
  embeddings (the second values of the pairs above only serve a differentiable head).
- ``contrastive``: nlp-transfer ``strategy=contrastive`` at its defaults (1 epoch of pairs, encoder learning rate 2e-5,
  16 pairs a step, best encoder by pair AUC on validation pairs), one arm per entry of ``--contrastive-grid``
  (``loss:pairs``: ``transfer.contrastive_loss`` and ``transfer.contrastive_pairs``, pairs per example, half similar;
  a third field, ``loss:pairs:logistic``, sets ``transfer.head_fit=logistic``); phase 2, the head on the cached
  mean-pooled vectors, as ``frozen_mean`` (with ``:logistic``, fitted to convergence in one solve). Every arm runs;
  the report picks, per dataset and size, the arm with the best mean validation accuracy (a tie goes to the arm
  listed first) and reports its test accuracy (every arm's figures are in the JSON).
- ``full``: ``strategy=full`` (the first token, as the recipes), learning rate 1e-4 as recipes/configs/sentiment/
  sst2_full.yaml, batch ``--batch-size``, for at least ``--full-steps`` optimizer steps (epochs are set to reach them:
  200 epochs of 16 examples, 9 epochs or 216 steps of 384), so small sets are not undertrained; validation every tenth
  of the steps, the best evaluation kept.
- ``frozen_mean``: ``strategy=frozen``, ``transfer.pooling=mean``, cached features (the encoder runs once per split),
  the head trained with AdamW at ``--head-learning-rate`` for at least ``--head-steps`` steps, validation every tenth,
  the best kept (as benchmarks/augment_curve.py).
- ``self_training`` (not run by default): the ``cosine:20`` contrastive arm with every other training text of the
  dataset as ``data.unlabeled_file`` (labels dropped; the sampled train and validation rows left out), one round
  (``--self-training-rounds``): the round-0 model pseudo-labels them (probability at least 0.9, the labelled class
  shares kept, at most ``--pseudo-per-class`` a class, default 500) and a fresh contrastive run trains on the labelled
  rows plus those. Answers the issue's question of what unlabelled in-domain text adds to a few labels.

Pair-loss arms (``cosine``, ``contrastive``) run with ``transfer.contrastive_encode_once=true``, the default (a text
drawn into several pairs of a step is encoded once), recorded in their settings; ``--encode-every-occurrence`` runs
them as before that setting existed (every occurrence encoded, as SetFit), which are the runs without the key.
``supcon`` arms always encode every occurrence.

``--end-to-end-epochs N`` (default 0): every contrastive arm adds phase 3, the encoder and the fitted head trained
together for N epochs at ``--end-to-end-learning-rate`` (``transfer.contrastive_end_to_end_*``), kept by the run only
where it beats phase 2 on validation; the rows record whether it was kept, and ``--report --end-to-end-epochs N`` adds
each arm's paired gain over the same arm without phase 3.

``--pair-learning-rate LR`` (unset by default): every contrastive arm trains phase 1 at LR
(``transfer.contrastive_learning_rate``), recorded in its settings; ``--report --pair-learning-rate LR`` adds each
arm's paired gain over the same arm without it. Unset, the arms run phase 1 at 2e-5, the rate of every run recorded
without the key (the strategy's default until the thirty-fourth session), so those records stay the same runs.

``--label-examples N`` (default 0): every method also trains on N rows a label written from the label's name
(``This sentence is negative.``; TREC's codes as words, :data:`TREC_CLASSES`): ``data.label_examples=N`` for
nlp-transfer's methods (the head's epochs count those rows), the same texts appended to SetFit's training rows (as
SetFit's own ``get_templated_dataset`` would add them). The setting is part of each run's settings, so these runs
sit beside the plain ones in the runs file; ``--report --label-examples N`` reports them and adds each method's and
arm's paired gain over the same run without the rows.

Every run is a child process (this script with ``--one-run``) with ``torch.set_num_threads(--threads)`` and
``TOKENIZERS_PARALLELISM=false``. Recorded per run: ``wall_seconds``, timed in the child from its start (library
imports and model load included) to the test score (nlp-transfer then writes its run folder; ``child_seconds`` includes
that), ``peak_rss_mib`` (the child's ``ru_maxrss``), test accuracy and macro-F1, validation accuracy (none for SetFit).

Each finished run appends a JSON line to benchmarks/results/few_shot_runs.jsonl (or under
``$NLP_TRANSFER_BENCHMARK_RESULTS``); a rerun skips the runs already there (same dataset, size, seed, method, arm and
test limit, and the method's settings: ``--full-steps``, ``--head-steps``, learning rates, batch size), so the benchmark
can be interrupted (Ctrl-C or SIGTERM: the running child is stopped and not recorded) and resumed. ``--report`` reads
that file only: a table per dataset (mean ± std over seeds, std with ddof=1, and the number of seeds), median wall time
and peak memory per method, the contrastive/SetFit wall-time ratio, saved as few_shot.json. It takes the runs made
with its own ``--test-limit``, ``--contrastive-grid`` and method settings (the defaults unless given), and says how
many others it left out.

``--memory``: the first ``--memory-rows`` (10,000) SST-2 training rows, phase 1 (pair training) only, stopped after
``--memory-steps`` optimizer steps, for each ``--memory-pairs`` value P: nlp-transfer with
``transfer.contrastive_pairs=P`` (10,000 x P pairs, drawn on demand) and SetFit with ``num_iterations=P`` and
``max_steps`` at the cap (2 x 10,000 x P pairs, built as a list of dicts; ``max_steps`` also stops its pair generation
early, which without it walks all 50 million combinations of 10,000 texts, though it still builds their index array).
nlp-transfer has no step limit, so the child stops its loop by raising after the last step (it patches
``nlp_transfer.training.loop.after_optimizer_step``); SetFit's classifier head is not fitted. Peak RSS per child, saved
as few_shot_memory.json. (nlp-transfer's length-grouped batch sampler still lists every pair index each epoch, about
60 bytes a pair: flat at these sizes, about 1.2 GB at 20 million pairs.)
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augment_curve import sample_rows, write_rows
from common import DATASETS, REPO, read_rows, read_sst2, read_trec, report_header, results_folder, write_result

METHODS = ("setfit", "contrastive", "full", "frozen_mean", "self_training")
RUNS_FILE = "few_shot_runs.jsonl"
#: the settings a contrastive arm records with ``--end-to-end-epochs``
END_TO_END = ("transfer.contrastive_end_to_end_epochs", "transfer.contrastive_end_to_end_learning_rate")
PAIR_LEARNING_RATE = "transfer.contrastive_learning_rate"  # phase 1's, an arm setting with --pair-learning-rate
RECORDED_PAIR_LEARNING_RATE = 2e-5  # phase 1's rate in every run recorded without that key (the strategy's old default)
#: the setting every contrastive arm records unless ``--encode-every-occurrence``
ENCODE_ONCE = "transfer.contrastive_encode_once"
BINARY = ("negative", "positive")
# TREC's coarse classes as Li and Roth describe them (their codes are not words a sentence encoder reads)
TREC_CLASSES = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "human",
    "LOC": "location",
    "NUM": "number",
}
MAX_LENGTH = 256  # the packaged body's max_seq_length (sentence_bert_config.json), what SetFit truncates to
KEY_FIELDS = ("dataset", "size", "seed", "method", "arm", "test_limit", "settings")


class StepCapReached(Exception):
    """Raised in a ``--memory`` child once nlp-transfer's loop has taken the allowed optimizer steps."""

    def __init__(self, steps: int) -> None:
        """Remember how many steps were taken."""
        super().__init__(f"stopped after {steps} optimizer steps")
        self.steps = steps


# ----------------------------------------------------------------------------- data


def read_sst2_named(path: Path) -> tuple[list[str], list[str]]:
    """SST-2 sentences and their label names (0 negative, 1 positive), read as common.read_sst2 does."""
    texts, labels = read_sst2(path)
    return texts, [BINARY[label] for label in labels]


def read_emotion(path: Path) -> tuple[list[str], list[str]]:
    """Texts and label words of an emotion file (``text;label`` lines, no header)."""
    rows = [line.rsplit(";", 1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [text.strip() for text, _ in rows], [label.strip() for _, label in rows]


def read_amazon(path: Path) -> tuple[list[str], list[str]]:
    """Reviews and label names of an Amazon multi-domain TSV (quoted fields spanning lines, header ``sentence label``)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    rows = [row for row in rows if row and row[0].strip()]
    return [text.strip() for text, _ in rows], [BINARY[int(label)] for _, label in rows]


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's train and test files are, how to read them, and its label names in id order."""

    folder: str
    train: str
    test: str
    reader: Callable[[Path], tuple[list[str], list[str]]]
    names: tuple[str, ...] | None  # None: the sorted labels of train
    descriptions: dict[str, str] = field(default_factory=dict)  # --label-examples: words for labels named by codes


SPECS = {
    "sst2": DatasetSpec("sst2", "train.tsv", "dev.tsv", read_sst2_named, BINARY),
    "emotion": DatasetSpec("emotion", "train.txt", "test.txt", read_emotion, None),
    "trec": DatasetSpec("trec", "train.txt", "test.txt", read_trec, None, TREC_CLASSES),
    "kitchen": DatasetSpec("amazon_multidomain/kitchen", "train.tsv", "dev.tsv", read_amazon, BINARY),
}


@dataclass
class Corpus:
    """A dataset read for the benchmark: label names, and texts with label names per row, for train and test."""

    names: list[str]
    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]

    def train_ids(self) -> list[int]:
        """The training labels as ids (positions in ``names``): what the samplers take."""
        index = {name: i for i, name in enumerate(self.names)}
        return [index[label] for label in self.train_labels]


def load_corpus(name: str) -> Corpus:
    """Read one dataset of :data:`SPECS` from the shared datasets folder."""
    spec = SPECS[name]
    folder = DATASETS / spec.folder
    train_texts, train_labels = spec.reader(folder / spec.train)
    test_texts, test_labels = spec.reader(folder / spec.test)
    names = list(spec.names or sorted(set(train_labels)))
    return Corpus(names, train_texts, train_labels, test_texts, test_labels)


def validation_rows(labels: list[int], per_class: int, seed: int, train: list[int]) -> list[int]:
    """``sample_rows(labels, per_class, seed, exclude=set(train))``, but a class with fewer rows left keeps them all."""
    exclude, chosen = set(train), []
    for label in sorted(set(labels)):
        rows = [i for i, value in enumerate(labels) if value == label and i not in exclude]
        chosen.extend(random.Random(seed).sample(rows, min(per_class, len(rows))))
    return sorted(chosen)


def write_group(corpus: Corpus, size: int, seed: int, test_limit: int, folder: Path, unlabeled: bool = False) -> dict[str, Any]:
    """Sample one (size, seed) group and write its train, validation and test CSVs; their paths and row counts.

    ``unlabeled``: also every other training text, labels dropped (``unlabeled.csv``), for ``self_training``.
    """
    ids = corpus.train_ids()
    train = sample_rows(ids, size, seed)
    validation = validation_rows(ids, size, 10_000 + seed, train)
    test_rows = min(test_limit or len(corpus.test_texts), len(corpus.test_texts))
    files = {
        "train": write_rows(folder / "train.csv", corpus.train_texts, corpus.train_labels, train),
        "validation": write_rows(folder / "validation.csv", corpus.train_texts, corpus.train_labels, validation),
        "test": write_rows(folder / "test.csv", corpus.test_texts, corpus.test_labels, list(range(test_rows))),
    }
    if unlabeled:
        rest = sorted(set(range(len(ids))) - set(train) - set(validation))
        files["unlabeled"] = write_rows(folder / "unlabeled.csv", corpus.train_texts, corpus.train_labels, rest)
    return {
        "files": {split: str(path) for split, path in files.items()},
        "counts": {"train_rows": len(train), "validation_rows": len(validation), "test_rows": test_rows},
    }


def read_split(path: str, names: list[str]) -> tuple[list[str], list[int]]:
    """Texts and label ids of a CSV written by :func:`write_group` (columns ``sentence``, ``label``)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["sentence"] for row in rows], [names.index(row["label"]) for row in rows]


# ----------------------------------------------------------------------------- what each run does


def method_arms(method: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Arm name -> settings of a method: one ``loss:pairs`` arm per grid entry for contrastive, ``default`` otherwise.

    The settings (none for SetFit; steps, learning rate and batch size for ours) are recorded with each run and are
    part of what makes a run the same run: changing ``--full-steps`` runs ``full`` again, and the report takes the
    runs whose settings are the command line's.
    """
    named = {"data.label_examples": args.label_examples} if args.label_examples else {}
    if method == "setfit":
        return {"default": named}
    return {arm: settings | named for arm, settings in recipe_arms(method, args).items()}


def recipe_arms(method: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The arms of an nlp-transfer method (:func:`method_arms` less ``--label-examples``)."""
    if method == "full":
        base = {"steps": args.full_steps, "learning_rate": args.full_learning_rate, "batch_size": args.batch_size}
    else:
        base = {"steps": args.head_steps, "learning_rate": args.head_learning_rate, "batch_size": args.batch_size}
    if method == "self_training":
        pseudo = {"self_training.max_per_class": args.pseudo_per_class, "self_training.rounds": args.self_training_rounds}
        arm = {"transfer.contrastive_loss": "cosine"} | encode_once("cosine", args) | pseudo | base
        return {f"cosine:20+pseudo{args.pseudo_per_class}": arm}
    if method != "contrastive":
        return {"default": base}
    arms = {}
    for arm in args.contrastive_grid.split(","):
        loss, pairs, *head = arm.split(":")
        count = int(pairs) if pairs.isdigit() else pairs  # a number, or setfit (SetFit's count for the examples)
        fit = {"transfer.head_fit": head[0]} if head and head[0] != "steps" else {}  # steps: the arm as before
        arms[arm] = (
            {"transfer.contrastive_loss": loss, "transfer.contrastive_pairs": count}
            | encode_once(loss, args)
            | fit
            | end_to_end(args)
            | ({PAIR_LEARNING_RATE: args.pair_learning_rate} if args.pair_learning_rate else {})
            | base
        )
    return arms


def end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    """Phase 3 of contrastive arms (``--end-to-end-epochs``; none: the arms as run before the setting existed)."""
    if not args.end_to_end_epochs:
        return {}
    return {END_TO_END[0]: args.end_to_end_epochs, END_TO_END[1]: args.end_to_end_learning_rate}


def encode_once(loss: str, args: argparse.Namespace) -> dict[str, Any]:
    """``transfer.contrastive_encode_once`` as a setting of pair-loss arms, unless ``--encode-every-occurrence``
    (``supcon`` always encodes every occurrence).

    Runs made before the setting existed encoded every occurrence and carry no such key, so they stay the same runs
    as those made with ``--encode-every-occurrence``.
    """
    from nlp_transfer.config import TransferConfig

    if args.encode_every_occurrence or not TransferConfig(contrastive_loss=loss).contrastive_encodes_once():
        return {}
    return {ENCODE_ONCE: True}


def recipe_overrides(method: str, settings: dict[str, Any], group: dict[str, Any], threads: int) -> dict[str, Any]:
    """The nlp-transfer config (dotted keys) of one run of ``full``, ``frozen_mean`` or a ``contrastive`` arm."""
    strategy = {
        "full": {"strategy": "full"},
        "frozen_mean": {"strategy": "frozen", "transfer.pooling": "mean"},
        "contrastive": {"strategy": "contrastive"},
        "self_training": {"strategy": "contrastive", "data.unlabeled_file": group["files"].get("unlabeled")},
    }[method] | {key: value for key, value in settings.items() if "." in key}  # the arm's own config keys
    if method in ("contrastive", "self_training"):  # runs without the key keep the rate they were recorded at
        strategy.setdefault(PAIR_LEARNING_RATE, RECORDED_PAIR_LEARNING_RATE)
    steps, batch_size = settings["steps"], settings["batch_size"]
    rows = group["counts"]["train_rows"] + settings.get("data.label_examples", 0) * len(group["names"])
    per_epoch = math.ceil(rows / batch_size)  # the label-name rows are training rows too
    files = group["files"]
    if settings.get("data.label_examples") and group["descriptions"]:
        strategy["data.label_descriptions"] = json.dumps(group["descriptions"])
    return {
        "seed": group["seed"],
        **strategy,
        "data.train_file": files["train"],
        "data.validation_file": files["validation"],
        "data.test_file": files["test"],
        "data.format": "csv",
        "data.text_column": "sentence",
        "data.label_column": "label",
        "data.labels": json.dumps(group["names"]),
        "training.epochs": math.ceil(steps / per_epoch),
        "training.batch_size": batch_size,
        "training.learning_rate": settings["learning_rate"],
        "training.max_length": MAX_LENGTH,
        "training.eval_strategy": "steps",
        "training.eval_steps": max(1, steps // 10),
        "training.save_total_limit": 1,
        "training.torch_threads": threads,
    }


def run_spec(method: str, arm: str, settings: dict[str, Any], group: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Everything a child needs for one run (and the JSON line records, but the files)."""
    seed = group["seed"]
    spec = {"method": method, "seed": seed, "names": group["names"], "files": group["files"], "threads": args.threads}
    spec["descriptions"] = group["descriptions"]
    if method == "setfit":
        spec["setfit_arguments"] = {"seed": seed}
    else:
        spec["overrides"] = recipe_overrides(method, settings, group, args.threads)
    return spec | {"arm": arm, "settings": settings}


def scores(gold: list[int], predicted: Any, labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 (every class in the average, as nlp-transfer's metrics do)."""
    from sklearn.metrics import accuracy_score, f1_score

    f1 = f1_score(gold, predicted, labels=list(range(labels)), average="macro", zero_division=0)
    return {"test_accuracy": float(accuracy_score(gold, predicted)), "test_f1_macro": float(f1)}


def setfit_trainer(spec: dict[str, Any], texts: list[str], labels: list[int], **arguments: Any) -> Any:
    """A SetFit ``Trainer`` on the packaged body with ``TrainingArguments(seed=..., **arguments)``."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from nlp_transfer.models import packaged_model_path

    model = SetFitModel.from_pretrained(packaged_model_path())
    train = Dataset.from_dict({"text": texts, "label": labels})
    return Trainer(model=model, args=TrainingArguments(**spec["setfit_arguments"], **arguments), train_dataset=train)


def with_label_examples(spec: dict[str, Any], texts: list[str], labels: list[int]) -> tuple[list[str], list[int]]:
    """SetFit's training rows plus the label-name rows nlp-transfer's ``data.label_examples`` adds (same texts, order)."""
    copies = spec["settings"].get("data.label_examples", 0)
    if not copies:
        return texts, labels
    from nlp_transfer.config import DataConfig
    from nlp_transfer.data.label_examples import label_example_rows

    template = DataConfig.__dataclass_fields__["label_template"].default
    rows = label_example_rows(
        spec["names"],
        lambda text, name: (text, spec["names"].index(name)),
        copies=copies,
        template=template,
        descriptions=spec["descriptions"],
        multi_label=False,
    )
    return texts + [text for text, _ in rows], labels + [label for _, label in rows]


def setfit_run(spec: dict[str, Any], started: float) -> dict[str, Any]:
    """Child: train SetFit with its defaults on the train file, then score the test file."""
    texts, labels = read_split(spec["files"]["train"], spec["names"])
    test_texts, test_labels = read_split(spec["files"]["test"], spec["names"])
    texts, labels = with_label_examples(spec, texts, labels)
    trainer = setfit_trainer(spec, texts, labels)
    trainer.train()
    predicted = trainer.model.predict(test_texts, as_numpy=True)
    figures = scores(test_labels, predicted, len(spec["names"]))
    wall = round(time.perf_counter() - started, 1)
    phase = trainer.st_trainer
    return figures | {
        "validation_accuracy": None,
        "wall_seconds": wall,
        "child_seconds": wall,
        "phase1_pairs": len(phase.train_dataset),
        "phase1_steps": phase.state.global_step,
    }


def note_test_score(pipeline: Any) -> list[float]:
    """Make ``run_training`` note when its test score is done: it calls ``save_outputs`` right after."""
    noted: list[float] = []
    save_outputs = pipeline.save_outputs

    def noting(*args: Any, **kwargs: Any) -> Any:
        """Note the time, then save as usual."""
        noted.append(time.perf_counter())
        return save_outputs(*args, **kwargs)

    pipeline.save_outputs = noting
    return noted


def recipe_run(spec: dict[str, Any], started: float) -> dict[str, Any]:
    """Child: one nlp-transfer run (``run_training``) from the spec's overrides, in the child's working folder."""
    from nlp_transfer import pipeline
    from nlp_transfer.config import load_config

    scored = note_test_score(pipeline)
    overrides = [f"output_dir={Path.cwd() / 'run'}", *(f"{key}={value}" for key, value in spec["overrides"].items())]
    result = pipeline.run_training(load_config(None, overrides), overwrite=True)
    test, info = result.metrics["test"], result.info
    phase = info.get("phases", {}).get("contrastive", {})
    # the last round's test score (self_training: its last round); rounds that stopped early score it after training
    tested = time.perf_counter() if info.get("self_training", {}).get("stopped_at_round") else scored[-1]
    return {
        "test_accuracy": test["accuracy"],
        "test_f1_macro": test["f1_macro"],
        "validation_accuracy": result.metrics["validation"]["accuracy"],
        "wall_seconds": round(tested - started, 1),
        "child_seconds": round(time.perf_counter() - started, 1),
        "steps": info["global_steps"],
        "best_step": info["best_step"],
        "phase1_pairs": phase.get("pairs"),
        "phase1_steps": phase.get("steps"),
        "phase1_best_pair_auc": phase.get("best_pair_auc"),
        **end_to_end_figures(info),
        **self_training_figures(info),
    }


def end_to_end_figures(info: dict[str, Any]) -> dict[str, Any]:
    """Whether a contrastive run kept its phase 3, and phase 3's best step (nothing for other runs)."""
    phase = info.get("phases", {}).get("end_to_end")
    if not phase:
        return {}
    return {"end_to_end_kept": phase["kept"], "end_to_end_best_step": phase["best_step"], "end_to_end_steps": phase["steps"]}


def self_training_figures(info: dict[str, Any]) -> dict[str, Any]:
    """A self-training run's pseudo-labels per class and round 0's validation accuracy (nothing for other runs)."""
    rounds = info.get("self_training", {}).get("rounds", [])
    if not rounds:
        return {}
    return {
        "pseudo_labels": rounds[-1].get("pseudo_labels_per_class"),
        "round_0_validation_accuracy": rounds[0]["validation"].get("accuracy"),
        "stopped_at_round": info["self_training"].get("stopped_at_round"),
    }


def contrastive_memory(spec: dict[str, Any], started: float) -> dict[str, Any]:
    """Child (``--memory``): nlp-transfer's contrastive phase 1, stopped after ``spec["steps"]`` optimizer steps."""
    from nlp_transfer import pipeline
    from nlp_transfer.config import load_config
    from nlp_transfer.training import loop

    step = loop.after_optimizer_step

    def capped(state: Any, progress: Any) -> None:
        """The loop's own step bookkeeping, then stop once the cap is reached."""
        step(state, progress)
        if state.state.global_step >= spec["steps"]:
            raise StepCapReached(state.state.global_step)

    loop.after_optimizer_step = capped
    overrides = [f"output_dir={Path.cwd() / 'run'}", *(f"{key}={value}" for key, value in spec["overrides"].items())]
    try:
        pipeline.run_training(load_config(None, overrides), overwrite=True)
    except StepCapReached as reached:
        steps = reached.steps
    else:
        raise RuntimeError("the contrastive run ended before the step cap; raise --memory-rows or lower --memory-steps")
    pairs = spec["overrides"]["transfer.contrastive_pairs"] * spec["rows"]
    return {"steps": steps, "pairs": pairs, "wall_seconds": round(time.perf_counter() - started, 1)}


def setfit_memory(spec: dict[str, Any], started: float) -> dict[str, Any]:
    """Child (``--memory``): SetFit's embedding phase only, ``num_iterations`` and ``max_steps`` from the spec."""
    texts, labels = read_split(spec["files"]["train"], spec["names"])
    trainer = setfit_trainer(spec, texts, labels)
    trainer.train_embeddings(texts, labels, args=trainer.args)
    phase = trainer.st_trainer
    return {
        "steps": phase.state.global_step,
        "pairs": len(phase.train_dataset),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


CHILD_RUNS: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
    "setfit": setfit_run,
    "setfit_memory": setfit_memory,
    "contrastive_memory": contrastive_memory,
}


def child_main(spec_text: str, started: float) -> int:
    """``--one-run``: run one spec in this process and write its figures, peak RSS included, to ``result.json``."""
    spec = json.loads(spec_text)
    import torch
    import transformers

    torch.set_num_threads(spec["threads"])
    transformers.logging.set_verbosity_error()
    figures = CHILD_RUNS.get(spec["method"], recipe_run)(spec, started)
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    Path("result.json").write_text(json.dumps(figures), encoding="utf-8")
    return 0


def run_child(spec: dict[str, Any], work: Path) -> dict[str, Any] | None:
    """Run ``spec`` in a fresh Python process working in ``work``; its figures, or None (and its log's end) on failure."""
    work.mkdir(parents=True)
    log = work / "child.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--one-run", json.dumps(spec)]
    # the child imports nlp_transfer from this checkout, whatever an installed copy points at
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "PYTHONPATH": path}
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        proc = subprocess.run(command, cwd=work, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
    result = work / "result.json"
    if proc.returncode or not result.is_file():
        print(f"few_shot: the child failed (exit {proc.returncode}); the end of its log:", file=sys.stderr)
        print(log.read_text(encoding="utf-8", errors="replace")[-4000:], file=sys.stderr)
        return None
    figures = json.loads(result.read_text(encoding="utf-8"))
    figures["process_seconds"] = round(time.perf_counter() - started, 1)
    return figures


# ----------------------------------------------------------------------------- the benchmark loop


def run_key(row: dict[str, Any]) -> tuple:
    """What makes a run the same run: dataset, size, seed, method, arm, test limit and settings."""
    return tuple(json.dumps(row[field], sort_keys=True) for field in KEY_FIELDS)


def pending_runs(dataset: str, size: int, seed: int, done: set[tuple], args: argparse.Namespace) -> list[tuple[str, str, dict]]:
    """(method, arm, settings) of the group's runs not yet in the runs file."""
    pending = []
    for method in args.methods.split(","):
        for arm, settings in method_arms(method, args).items():
            key = {"dataset": dataset, "size": size, "seed": seed, "method": method, "arm": arm}
            if run_key(key | {"test_limit": args.test_limit, "settings": settings}) not in done:
                pending.append((method, arm, settings))
    return pending


def run_group(corpus: Corpus, key: dict[str, Any], pending: list[tuple[str, str, dict]], args: argparse.Namespace) -> int:
    """Run the pending runs of one (dataset, size, seed) group on one sample; append each row; the number that failed."""
    failed = 0
    with tempfile.TemporaryDirectory(prefix="few_shot_") as tmp:
        unlabeled = any(method == "self_training" for method, _, _ in pending)
        group = write_group(corpus, key["size"], key["seed"], args.test_limit, Path(tmp), unlabeled)
        group |= {"names": corpus.names, "seed": key["seed"], "descriptions": SPECS[key["dataset"]].descriptions}
        for number, (method, arm, settings) in enumerate(pending):
            spec = run_spec(method, arm, settings, group, args)
            figures = run_child(spec, Path(tmp) / f"run-{number}")
            if figures is None:
                failed += 1
                continue
            row = {**key, "method": method, "arm": arm, "test_limit": args.test_limit, "settings": settings}
            row |= group["counts"] | {"threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M")} | figures
            with (results_folder() / RUNS_FILE).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            print(
                f"few_shot: {key['dataset']} {key['size']}/class seed {key['seed']} {method} {arm}: "
                f"test acc {row['test_accuracy']:.4f}, {row['wall_seconds']} s, {row['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    return failed


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``subprocess.run`` kills the running child and temporary folders are removed."""
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))


def run_benchmark(args: argparse.Namespace) -> int:
    """Every dataset x size x seed x method (x arm) not yet in the runs file; exit status 1 when a run failed."""
    results_folder().mkdir(parents=True, exist_ok=True)
    done = {run_key(row) for row in read_rows(results_folder() / RUNS_FILE)}
    failed, started = 0, time.perf_counter()
    for dataset in args.datasets.split(","):
        corpus = None
        for size in [int(s) for s in args.sizes.split(",")]:
            for seed in [int(s) for s in args.seeds.split(",")]:
                pending = pending_runs(dataset, size, seed, done, args)
                if not pending:
                    print(f"few_shot: {dataset} {size}/class seed {seed}: every run is already done, skipped", flush=True)
                    continue
                skipped = sum(len(method_arms(method, args)) for method in args.methods.split(",")) - len(pending)
                if skipped:
                    print(f"few_shot: {dataset} {size}/class seed {seed}: {skipped} run(s) already done, skipped", flush=True)
                corpus = corpus or load_corpus(dataset)
                failed += run_group(corpus, {"dataset": dataset, "size": size, "seed": seed}, pending, args)
    print(f"few_shot: {(time.perf_counter() - started) / 60:.1f} minutes; runs in {results_folder() / RUNS_FILE}")
    if failed:
        print(f"few_shot: {failed} run(s) failed; rerun the same command to retry them", file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------- the report


def spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof=1; None for one value) and count."""
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.mean(values), "std": std, "n": len(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One method (or arm) at one size: test and validation figures over seeds, median wall time and peak memory."""
    summary = {
        "seeds": sorted(run["seed"] for run in runs),
        "test_accuracy": spread([run["test_accuracy"] for run in runs]),
        "test_f1_macro": spread([run["test_f1_macro"] for run in runs]),
        "wall_seconds_median": statistics.median(run["wall_seconds"] for run in runs),
        "peak_rss_mib_median": statistics.median(run["peak_rss_mib"] for run in runs),
    }
    validation = [run["validation_accuracy"] for run in runs if run["validation_accuracy"] is not None]
    if validation:
        summary["validation_accuracy"] = spread(validation)
    return summary


def summarize_method(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A method at one size; with several arms, the arm of best mean validation accuracy, every arm listed."""
    arms: dict[str, list[dict]] = {}
    for run in runs:
        arms.setdefault(run["arm"], []).append(run)
    if len(arms) == 1:
        return {"arm": next(iter(arms))} | summarize(runs)
    summaries = {arm: summarize(arm_runs) for arm, arm_runs in arms.items()}
    for arm, summary in summaries.items():  # the same arm with its head fitted in one solve, paired by seed
        base = arm.removesuffix(":logistic")
        if base != arm and base in arms:
            summary["test_gain_over"] = {base: paired_gain(arms[arm], arms[base])}
    chosen = max(summaries, key=lambda arm: summaries[arm].get("validation_accuracy", {}).get("mean", -1.0))
    return {"arm": chosen, "chosen_on": "mean validation accuracy"} | summaries[chosen] | {"arms": summaries}


def common_seeds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the seeds that every (method, arm) among ``rows`` has run: all compared on the same samples."""
    seeds: dict[tuple[str, str], set[int]] = {}
    for row in rows:
        seeds.setdefault((row["method"], row["arm"]), set()).add(row["seed"])
    shared = set.intersection(*seeds.values())
    return [row for row in rows if row["seed"] in shared]


def paired_gain(chosen: list[dict[str, Any]], anchor: list[dict[str, Any]]) -> dict[str, Any]:
    """Per seed, test accuracy of ``chosen`` less ``anchor``'s on the same sample: mean, std, count, 95 % interval."""
    anchor_by_seed = {run["seed"]: run["test_accuracy"] for run in anchor}
    return difference([run["test_accuracy"] - anchor_by_seed[run["seed"]] for run in chosen if run["seed"] in anchor_by_seed])


def difference(values: list[float]) -> dict[str, Any]:
    """:func:`spread` of paired differences, with the Student-t 95 % interval of their mean (None below two)."""
    from nlp_transfer.evaluation.paired import mean_interval

    low, high = mean_interval(values)
    return spread(values) | {"interval": None if low is None else [low, high]}


def aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> size -> method -> summary, in the order of :data:`SPECS`, sizes ascending, :data:`METHODS`.

    Each (dataset, size) keeps the seeds that every method and arm there has run (:func:`common_seeds`); a method
    with a SetFit run beside it gets ``gain_over_setfit``, the paired difference of test accuracy.
    """
    grouped: dict[str, dict[int, list[dict]]] = {}
    for row in rows:
        grouped.setdefault(row["dataset"], {}).setdefault(row["size"], []).append(row)
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset in sorted(grouped, key=lambda name: list(SPECS).index(name)):
        result[dataset] = {}
        for size in sorted(grouped[dataset]):
            by_method: dict[str, list[dict]] = {}
            for row in common_seeds(grouped[dataset][size]):
                by_method.setdefault(row["method"], []).append(row)
            summaries = {m: summarize_method(by_method[m]) for m in METHODS if m in by_method}
            for method, summary in summaries.items():
                chosen = [run for run in by_method[method] if run["arm"] == summary["arm"]]
                if "setfit" in by_method and method != "setfit":
                    summary["gain_over_setfit"] = paired_gain(chosen, by_method["setfit"])
            result[dataset][str(size)] = summaries
    return result


def cell(figure: dict[str, Any], sign: str = "") -> str:
    """``mean ± std (n)`` in percent (``sign="+"``: the mean with its sign), and a difference's 95 % interval."""
    std = "–" if figure["std"] is None else f"{100 * figure['std']:.1f}"
    interval = figure.get("interval")
    bounds = f" [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]" if interval else ""
    return f"{100 * figure['mean']:{sign}.1f} ± {std} ({figure['n']}){bounds}"


def gain_and_arm_tables(dataset: str, sizes: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown: each method's paired gain over SetFit, and every contrastive arm's validation and test accuracy."""
    methods = [m for m in METHODS if m != "setfit" and any("gain_over_setfit" in s.get(m, {}) for s in sizes.values())]
    lines = []
    if methods:
        lines += [f"\n{dataset}: test accuracy less SetFit's on the same sample, points, mean ± std (seeds) [95 % interval]"]
        lines += ["| per class | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for size, by_method in sizes.items():
            cells = [
                cell(by_method[m]["gain_over_setfit"], "+") if "gain_over_setfit" in by_method.get(m, {}) else "" for m in methods
            ]
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
    for size, by_method in sizes.items():
        arms = by_method.get("contrastive", {}).get("arms")
        if not arms:
            continue
        lines += [f"\n{dataset}, {size} per class: contrastive arms, accuracy % (validation chooses)"]
        lines += ["| arm | validation | test |", "|---|---|---|"]
        for arm, summary in arms.items():
            lines.append(f"| {arm} | {cell(summary['validation_accuracy'])} | {cell(summary['test_accuracy'])} |")
        lines += head_fit_lines(arms)
    return lines


def head_fit_lines(arms: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown: each ``ARM:logistic`` less ``ARM`` on the same seeds (the same encoder, another head), test points."""
    return [
        f"- {arm} less {base}, paired: {cell(gain, '+')} points"
        for arm, summary in arms.items()
        for base, gain in summary.get("test_gain_over", {}).items()
    ]


def dataset_tables(dataset: str, sizes: dict[str, dict[str, Any]], test_rows: int) -> list[str]:
    """Markdown: test accuracy (and macro-F1 for multi-class sets) per size and method, then time and memory."""
    methods = [m for m in METHODS if any(m in by_method for by_method in sizes.values())]
    header = "| per class | " + " | ".join(methods) + " |"
    rule = "|---" * (len(methods) + 1) + "|"
    figures = ["test_accuracy"] + (["test_f1_macro"] if dataset in ("emotion", "trec") else [])
    lines = []
    for figure in figures:
        lines += [f"\n{dataset}: {figure.replace('_', ' ')} % on {test_rows} test rows, mean ± std (seeds)", header, rule]
        for size, by_method in sizes.items():
            cells = [cell(by_method[m][figure]) if m in by_method else "" for m in methods]
            if "contrastive" in by_method and "arms" in by_method["contrastive"]:
                cells[methods.index("contrastive")] += f" [{by_method['contrastive']['arm']}]"
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
    lines += [
        f"\n{dataset}: median wall seconds per run (median peak RSS MiB)",
        header[:-1] + "| contrastive / setfit |",
        rule + "---|",
    ]
    for size, by_method in sizes.items():
        cells = [
            f"{by_method[m]['wall_seconds_median']:.0f} ({by_method[m]['peak_rss_mib_median']:.0f})" if m in by_method else ""
            for m in methods
        ]
        ratio = ""
        if "contrastive" in by_method and "setfit" in by_method:
            ratio = f"{by_method['contrastive']['wall_seconds_median'] / by_method['setfit']['wall_seconds_median']:.2f}"
        lines.append(f"| {size} | " + " | ".join(cells) + f" | {ratio} |")
    return lines + gain_and_arm_tables(dataset, sizes)


def setting_gains(rows: list[dict[str, Any]], kept: list[dict[str, Any]], keys: str | tuple[str, ...], title: str) -> list[str]:
    """Markdown: each method and arm of ``kept`` whose settings hold ``keys`` (one key, or several set together) less
    the same run without them (every other setting alike), and less SetFit at its defaults (no settings: the issue's
    anchor), paired by seed."""
    keys = (keys,) if isinstance(keys, str) else keys
    key = keys[0]

    def plain(row: dict[str, Any]) -> tuple:
        settings = {k: v for k, v in row["settings"].items() if k not in keys}
        return run_key(row | {"settings": settings})

    without = {plain(row): row for row in rows if key not in row["settings"]}
    pairs: dict[tuple, list[tuple[float, float, float | None]]] = {}
    for row in kept:
        anchor = without.get(plain(row)) if key in row["settings"] else None
        setfit = without.get(plain(row | {"method": "setfit", "arm": "default", "settings": {}}))
        if anchor:
            group = (row["dataset"], row["size"], row["method"], row["arm"])
            default = setfit["test_accuracy"] if setfit else None
            pairs.setdefault(group, []).append((row["test_accuracy"], anchor["test_accuracy"], default))
    if not pairs:  # no run of this command differs from another by ``key`` alone
        return []
    lines = [f"\n{title} less without, and less SetFit's defaults, test accuracy on the same samples"]
    lines += ["| dataset | per class | method | arm | with | without | paired gain | less SetFit's defaults |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for (dataset, size, method, arm), values in sorted(
        pairs.items(), key=lambda item: (list(SPECS).index(item[0][0]), item[0][1:])
    ):
        with_, without_ = spread([a for a, _, _ in values]), spread([b for _, b, _ in values])
        gain = difference([a - b for a, b, _ in values])
        over = [a - c for a, _, c in values if c is not None]
        versus = cell(difference(over), "+") if over else ""
        lines.append(
            f"| {dataset} | {size} | {method} | {arm} | {cell(with_)} | {cell(without_)} | {cell(gain, '+')} | {versus} |"
        )
    return lines


def defaults_gains(rows: list[dict[str, Any]], kept: list[dict[str, Any]]) -> list[str]:
    """Markdown: every method and arm of ``kept`` less SetFit at its defaults (no settings: the issue's anchor, which a
    command with settings such as ``--label-examples`` leaves out of ``kept``), paired by seed, with a 95 % interval,
    and the ratio of their median wall times on those seeds."""
    setfit = {
        (row["dataset"], row["size"], row["seed"]): row
        for row in rows
        if row["method"] == "setfit" and row["arm"] == "default" and not row["settings"]
    }
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for row in kept:
        anchor = setfit.get((row["dataset"], row["size"], row["seed"]))
        if anchor is not None and row["settings"]:
            groups.setdefault((row["dataset"], row["size"], row["method"], row["arm"]), []).append((row, anchor))
    if not groups:
        return []
    lines = ["\nLess SetFit at its defaults on the same samples, test accuracy points, mean ± std (seeds) [95 % interval]"]
    lines += [
        "| dataset | per class | method | arm | less SetFit's defaults | wall time / SetFit's |",
        "|---|---|---|---|---|---|",
    ]
    for (dataset, size, method, arm), pairs in sorted(
        groups.items(), key=lambda item: (list(SPECS).index(item[0][0]), item[0][1:])
    ):
        gain = paired_gain([mine for mine, _ in pairs], [theirs for _, theirs in pairs])
        wall = statistics.median(m["wall_seconds"] for m, _ in pairs) / statistics.median(t["wall_seconds"] for _, t in pairs)
        lines.append(f"| {dataset} | {size} | {method} | {arm} | {cell(gain, '+')} | {wall:.2f} |")
    return lines


def records_rows(pattern: str) -> list[dict[str, Any]]:
    """The runs of every file matching ``pattern`` (a glob, e.g. the committed records), in name order; a run found
    again in a later file (the same :func:`run_key`) replaces the earlier one, so no run counts twice."""
    rows: dict[tuple, dict[str, Any]] = {}
    for path in sorted(glob.glob(pattern)):  # relative or absolute (Path.glob takes relative patterns only)
        for row in read_rows(Path(path)):
            rows[run_key(row)] = row
    if not rows:
        raise SystemExit(f"few_shot: --runs {pattern}: no runs in files matching it")
    return list(rows.values())


def report(args: argparse.Namespace) -> int:
    """Read the runs file, print the tables and write few_shot.json; only rows of ``--test-limit``."""
    path = results_folder() / RUNS_FILE
    everything = records_rows(args.runs) if args.runs else read_rows(path)
    rows = [row for row in everything if row["test_limit"] == args.test_limit]
    others = sorted({row["test_limit"] for row in everything} - {args.test_limit})
    if others:
        print(f"few_shot: left out {len(everything) - len(rows)} run(s) with --test-limit {others} (report them with that flag)")
    methods, datasets = args.methods.split(","), args.datasets.split(",")
    sizes = {int(size) for size in args.sizes.split(",")}
    wanted = {(method, arm): settings for method in methods for arm, settings in method_arms(method, args).items()}
    kept = [
        row
        for row in rows
        if wanted.get((row["method"], row["arm"])) == row["settings"] and row["dataset"] in datasets and row["size"] in sizes
    ]
    if len(kept) < len(rows):
        print(
            f"few_shot: left out {len(rows) - len(kept)} run(s) of other datasets, sizes, methods, arms or settings than"
            " this command's"
        )
    gains = defaults_gains(rows, kept)
    gains += setting_gains(rows, kept, "data.label_examples", "With label-name rows") if args.label_examples else []
    if not args.encode_every_occurrence:
        gains += setting_gains(rows, kept, ENCODE_ONCE, "Each distinct text encoded once a step")
    if args.end_to_end_epochs:
        gains += setting_gains(rows, kept, END_TO_END, "With phase 3 (encoder and head trained together)")
    if args.pair_learning_rate:
        gains += setting_gains(rows, kept, PAIR_LEARNING_RATE, f"Phase 1 at learning rate {args.pair_learning_rate:g}")
    rows = kept
    if not rows:
        print(f"few_shot: no runs with --test-limit {args.test_limit} in {path}", file=sys.stderr)
        return 1
    results = aggregate(rows)
    lines = []
    for dataset, sizes in results.items():
        test_rows = max(row["test_rows"] for row in rows if row["dataset"] == dataset)
        lines += dataset_tables(dataset, sizes, test_rows)
    table = "\n".join(lines + gains).strip()
    print(table)
    threads = sorted({row["threads"] for row in rows})
    summary = {**report_header(threads[0]), "runs_file": str(path), "runs": len(rows), "test_limit": args.test_limit}
    summary |= {"threads_of_runs": threads, "results": results, "table": table}
    print(f"results: {write_result('few_shot', summary)}")
    return 0


# ----------------------------------------------------------------------------- --memory


def memory_specs(files: dict[str, str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One nlp-transfer and one SetFit child per ``--memory-pairs`` value."""
    shared = {
        "names": list(BINARY),
        "files": files,
        "threads": args.threads,
        "rows": args.memory_rows,
        "steps": args.memory_steps,
    }
    specs = []
    for pairs in [int(p) for p in args.memory_pairs.split(",")]:
        overrides = {
            "strategy": "contrastive",
            "transfer.contrastive_pairs": pairs,
            "data.train_file": files["train"],
            "data.validation_file": files["validation"],
            "data.test_file": files["test"],
            "data.text_column": "sentence",
            "data.labels": json.dumps(list(BINARY)),
            "training.max_length": MAX_LENGTH,
            "training.torch_threads": args.threads,
        }
        specs.append(shared | {"method": "contrastive_memory", "setting": f"contrastive_pairs={pairs}", "overrides": overrides})
        arguments = {"seed": 0, "num_iterations": pairs, "max_steps": args.memory_steps}
        specs.append(shared | {"method": "setfit_memory", "setting": f"num_iterations={pairs}", "setfit_arguments": arguments})
    return specs


def memory(args: argparse.Namespace) -> int:
    """``--memory``: peak RSS of pair training on many SST-2 rows as the number of pairs grows, per child."""
    texts, labels = read_sst2(DATASETS / "sst2" / "train.tsv")
    names = [BINARY[label] for label in labels]
    rows = args.memory_rows
    results = []
    with tempfile.TemporaryDirectory(prefix="few_shot_memory_") as tmp:
        folder = Path(tmp)
        files = {
            "train": str(write_rows(folder / "train.csv", texts, names, list(range(rows)))),
            "validation": str(write_rows(folder / "validation.csv", texts, names, list(range(rows, rows + 256)))),
            "test": str(write_rows(folder / "test.csv", texts, names, list(range(rows + 256, rows + 512)))),
        }
        for number, spec in enumerate(memory_specs(files, args)):
            figures = run_child(spec, folder / f"run-{number}")
            if figures is None:
                return 1
            results.append({"method": spec["method"].removesuffix("_memory"), "setting": spec["setting"]} | figures)
            print(f"few_shot --memory: {results[-1]}", flush=True)
    lines = [f"Phase 1 only, first {rows:,} SST-2 training rows, stopped after {args.memory_steps} steps", ""]
    lines += ["| method | setting | pairs | steps | peak RSS MiB | wall s |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['method']} | {r['setting']} | {r['pairs']:,} | {r['steps']} | {r['peak_rss_mib']:.0f} | {r['wall_seconds']} |"
        )
    table = "\n".join(lines)
    print(table)
    summary = {**report_header(args.threads), "rows": rows, "steps": args.memory_steps, "results": results, "table": table}
    print(f"results: {write_result('few_shot_memory', summary)}")
    return 0


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``: these arguments instead of ``sys.argv``'s, e.g. to take the defaults elsewhere)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="sst2,emotion,trec,kitchen", help=f"some of {','.join(SPECS)}")
    parser.add_argument("--sizes", default="8,16,32,64", help="training examples per class")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument(
        "--methods", default=",".join(METHODS[:-1]), help=f"some of {','.join(METHODS)} (default all but self_training)"
    )
    parser.add_argument(
        "--contrastive-grid", default="cosine:20,contrastive:20", help="loss:pairs[:logistic] arms of contrastive"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every child")
    parser.add_argument("--test-limit", type=int, default=0, help="score only the first N test rows (0: all; smoke runs)")
    parser.add_argument("--batch-size", type=int, default=16, help="full and the heads of contrastive and frozen_mean")
    parser.add_argument("--head-steps", type=int, default=300, help="least optimizer steps of a head (contrastive, frozen_mean)")
    parser.add_argument("--head-learning-rate", type=float, default=1e-3)
    parser.add_argument("--full-steps", type=int, default=200, help="least optimizer steps of full fine-tuning")
    parser.add_argument("--full-learning-rate", type=float, default=1e-4)
    parser.add_argument(
        "--pseudo-per-class", type=int, default=500, help="self_training: at most this many pseudo-labels per class"
    )
    parser.add_argument(
        "--label-examples",
        type=int,
        default=0,
        help="every method also trains on N rows a label written from the label's name (data.label_examples; 0: off)",
    )
    parser.add_argument(
        "--encode-every-occurrence",
        action="store_true",
        help="contrastive pair-loss arms: transfer.contrastive_encode_once=false (every occurrence of a text encoded)",
    )
    parser.add_argument(
        "--end-to-end-epochs",
        type=int,
        default=0,
        help="contrastive arms: phase 3, encoder and head trained together (transfer.contrastive_end_to_end_epochs; 0: off)",
    )
    parser.add_argument(
        "--end-to-end-learning-rate", type=float, default=2e-5, help="contrastive arms, phase 3: its learning rate"
    )
    parser.add_argument(
        "--pair-learning-rate",
        type=float,
        help="contrastive arms: phase 1's learning rate (transfer.contrastive_learning_rate; unset: 2e-5, the rate of "
        "every run recorded without the key, whatever the strategy's default)",
    )
    parser.add_argument("--self-training-rounds", type=int, default=1, help="self_training: teacher-student rounds")
    parser.add_argument("--report", action="store_true", help="only read the runs file and report")
    parser.add_argument("--runs", help="with --report: read the runs files matching this glob instead (duplicates counted once)")
    parser.add_argument("--memory", action="store_true", help="peak memory of pair training on many rows instead")
    parser.add_argument("--memory-rows", type=int, default=10_000)
    parser.add_argument("--memory-pairs", default="2,20", help="contrastive_pairs (nlp-transfer) = num_iterations (SetFit)")
    parser.add_argument("--memory-steps", type=int, default=20)
    parser.add_argument("--one-run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.datasets.split(",")) - set(SPECS) | set(args.methods.split(",")) - set(METHODS)
    if unknown:
        parser.error(f"unknown dataset or method: {', '.join(sorted(unknown))}")
    return args


def main() -> int:
    """Run the benchmark, report it, measure memory, or (in a child) run one spec."""
    started = time.perf_counter()
    args = parse_args()
    if args.one_run:
        return child_main(args.one_run, started)
    if args.report:
        return report(args)
    missing = [name for name in args.datasets.split(",") if not (DATASETS / SPECS[name].folder / SPECS[name].train).is_file()]
    if missing or (args.memory and not (DATASETS / "sst2" / "train.tsv").is_file()):
        print(f"error: {DATASETS} lacks {', '.join(missing) or 'sst2'}; the benchmark reads ../shared/datasets.", file=sys.stderr)
        return 2
    stop_on_sigterm()
    return memory(args) if args.memory else run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
