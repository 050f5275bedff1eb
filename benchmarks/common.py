"""Set-up shared by the benchmark scripts: paths, data readers, the Trainer's arguments, recipe runs, timing, results.

Every script in benchmarks/ compares nlp-transfer with the plain Hugging Face Trainer on the same model, rows
and machine. What they have in common lives here, once: the Trainer's ``TrainingArguments`` (transformers 5.x),
the SST-2 and CoNLL-2003 readers, the recipe overrides, the median and timing helpers and the JSON writer.
Results go to benchmarks/results/, or to the folder named by the environment variable
``NLP_TRANSFER_BENCHMARK_RESULTS`` (benchmarks/gpu_smoke.sh uses it to keep its small runs apart). The datasets are
read from ../shared/datasets, or from the folder named by ``NLP_TRANSFER_DATASETS``.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("NLP_TRANSFER_DATASETS") or REPO.parent / "shared" / "datasets")
SST2 = DATASETS / "sst2"
CONLL = DATASETS / "conll2003"
AMAZON = DATASETS / "amazon_multidomain"
SST2_CONFIG = REPO / "recipes/configs/sentiment/sst2_full.yaml"
CONLL_CONFIG = REPO / "recipes/configs/ner/conll2003_full.yaml"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
RESULTS_VARIABLE = "NLP_TRANSFER_BENCHMARK_RESULTS"
MAX_LENGTH = 128


def dataset_present(folder: Path, first_file: str, name: str) -> bool:
    """True when ``folder/first_file`` exists; otherwise say which dataset is missing on stderr."""
    if (folder / first_file).is_file():
        return True
    print(f"error: {folder} is missing; the benchmark reads {name} from ../shared/datasets.", file=sys.stderr)
    return False


def setup(threads: int) -> str:
    """Set torch's thread count, quieten transformers and return the default model's local folder."""
    import torch
    import transformers

    from nlp_transfer.models import resolve_model

    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    return resolve_model(DEFAULT_MODEL).path


def report_header(threads: int) -> dict[str, str]:
    """The date, command line and machine that every JSON result opens with."""
    import torch
    import transformers

    device = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
        "machine": f"{os.cpu_count()} CPUs{device}, torch threads {threads}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}",
    }


def results_folder() -> Path:
    """benchmarks/results, or the folder named by ``$NLP_TRANSFER_BENCHMARK_RESULTS``."""
    return Path(os.environ.get(RESULTS_VARIABLE) or REPO / "benchmarks" / "results")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a resumable benchmark's runs file written so far (none when it does not exist yet)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one finished run to a runs file (so an interrupted benchmark resumes after it) and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def write_result(name: str, report: dict[str, Any]) -> Path:
    """Write ``report`` as ``NAME.json`` in the results folder and return its path."""
    folder = results_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path


def sst2_parser(
    description: str, *, epochs: int | None = None, learning_rate: float | None = None, repeats: bool = True
) -> argparse.ArgumentParser:
    """The flags the SST-2 comparisons share; ``--epochs`` and ``--learning-rate`` only where a default is given."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=8000)
    if epochs is not None:
        parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=32)
    if learning_rate is not None:
        parser.add_argument("--learning-rate", type=float, default=learning_rate)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every side")
    if repeats:
        parser.add_argument("--repeats", type=int, default=1, help="runs of each side, interleaved; medians are reported")
    parser.add_argument("--seed", type=int, default=42)
    return parser


def run_interleaved(sides: dict[str, Callable[[Path], dict[str, Any]]], repeats: int, folder: Path) -> dict[str, list[dict]]:
    """Run every side ``repeats`` times, interleaved (A, B, A, B, ...); each call gets its own folder under ``folder``."""
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for repeat in range(repeats):
        for name, side in sides.items():
            runs[name].append(side(folder / f"{name}-{repeat}"))
    return runs


def read_sst2(path: Path, limit: int | None = None) -> tuple[list[str], list[int]]:
    """Sentences and 0/1 labels of an SST-2 TSV as published (header line, ``sentence<TAB>label``)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    if limit:
        lines = lines[:limit]
    rows = [line.rsplit("\t", 1) for line in lines]
    return [text.strip() for text, _ in rows], [int(label) for _, label in rows]


def read_trec(path: Path) -> tuple[list[str], list[str]]:
    """Questions and coarse labels of a TREC file (``COARSE:fine question``; train.txt is Latin-1, test.txt ASCII)."""
    rows = [line.split(" ", 1) for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]
    return [text.strip() for _, text in rows], [label.split(":", 1)[0] for label, _ in rows]


def read_conll_sentences(file_name: str, limit: int | None = None) -> list[Any]:
    """The sentences of a CoNLL-2003 file (NER tags in column 3), the first ``limit`` when given."""
    from nlp_transfer.data.conll import read_conll

    sentences = read_conll(str(CONLL / file_name), tag_column=3).sentences
    return sentences[:limit] if limit else sentences


def medians(runs: dict[str, list[dict[str, float]]], keys: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Per side, the median of each figure (``keys``, or every key of the first run) over its runs."""
    return {side: {k: statistics.median(r[k] for r in results) for k in (keys or results[0])} for side, results in runs.items()}


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t:`` leaves the block's wall time in ``t["seconds"]``."""
    elapsed: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed["seconds"] = time.perf_counter() - start


def median_seconds(call: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``call`` over ``repeats`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        with timer() as elapsed:
            call()
        times.append(elapsed["seconds"])
    return statistics.median(times)


def trainer_arguments(
    output_dir: str,
    *,
    train_rows: int,
    batch_size: int,
    learning_rate: float,
    epochs: int,
    seed: int,
    sampling: str = "random",
    bf16: bool = False,
) -> Any:
    """The Trainer's ``TrainingArguments`` in every comparison, the one place they are written.

    AdamW at ``learning_rate``, linear decay after 6 % warmup, weight decay 0.01, clipping 1.0, no saving and no
    evaluation during training. transformers 5.x: warmup is given in steps (``warmup_ratio`` is rejected) and length
    grouping is ``sampling="group_by_length"`` (``train_sampling_strategy``; ``group_by_length=True`` is rejected).
    The Trainer runs on the GPU when one is visible, else on the CPU; ``bf16`` turns on its bf16 autocast.
    """
    import torch
    from transformers import TrainingArguments

    steps = math.ceil(train_rows / batch_size) * epochs
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        learning_rate=learning_rate,
        num_train_epochs=epochs,
        weight_decay=0.01,
        warmup_steps=math.ceil(0.06 * steps),
        max_grad_norm=1.0,
        lr_scheduler_type="linear",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        logging_steps=50,
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        train_sampling_strategy=sampling,
        bf16=bf16,
    )


def train_with_trainer(
    model: Any, train_set: Any, collator: Any, settings: dict[str, Any], predict_set: Any = None
) -> tuple[dict, Any]:
    """Train ``model`` with the plain Trainer (``settings``: the keywords of :func:`trainer_arguments` but the first two).

    Returns the training throughput and time (evaluation excluded) and, given ``predict_set``, ``Trainer.predict``'s
    output on it (in input order only with random sampling: transformers 5.23 reorders it under group_by_length).
    """
    from transformers import Trainer

    with tempfile.TemporaryDirectory() as out:
        arguments = trainer_arguments(out, train_rows=len(train_set), **settings)
        trainer = Trainer(model=model, args=arguments, train_dataset=train_set, data_collator=collator)
        metrics = trainer.train().metrics
        output = trainer.predict(predict_set) if predict_set is not None else None
    return {"samples_per_second": metrics["train_samples_per_second"], "train_seconds": metrics["train_runtime"]}, output


def trainer_on_sst2(
    model_path: str, train_rows: int, prepare: Callable[[Any], None] | None = None, **settings: Any
) -> dict[str, float]:
    """The plain Trainer on the first ``train_rows`` SST-2 rows, scored on all dev rows.

    Tokenized as the example scripts do (truncation at 128, ``DataCollatorWithPadding``); ``prepare(model)`` runs
    before training (to freeze the encoder, say). Dev is scored outside the Trainer, in input order, by
    nlp-transfer's ``text_logits``, so the score does not depend on the Trainer's sampling.
    """
    import numpy as np
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed

    from nlp_transfer.inference import text_logits
    from nlp_transfer.tasks.classification import SequenceClassificationTask

    set_seed(settings["seed"])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    texts, labels = read_sst2(SST2 / "train.tsv", train_rows)
    dev_texts, dev_labels = read_sst2(SST2 / "dev.tsv")
    train = Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH), batched=True, remove_columns=["text"]
    )
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    if prepare is not None:
        prepare(model)
    figures, _ = train_with_trainer(model, train, DataCollatorWithPadding(tokenizer), settings)
    task = SequenceClassificationTask(model_path=model_path, labels=["0", "1"], tokenizer=tokenizer, max_length=MAX_LENGTH)
    model.eval()
    figures["dev_accuracy"] = float((text_logits(model, task, dev_texts).argmax(-1) == np.asarray(dev_labels)).mean())
    return figures


def sst2_overrides(out: Path, args: argparse.Namespace, **fixed: Any) -> list[str]:
    """Overrides of sst2_full.yaml for a benchmark run: the first ``args.train_rows`` rows, dev scored after each epoch.

    ``args`` gives train_rows and threads, and epochs (else 1), batch_size, learning_rate and seed where it has them
    (else the recipe's); ``fixed`` keywords (``learning_rate=5e-5``) take precedence over ``args``.
    """
    settings = {key: getattr(args, key, None) for key in ("epochs", "batch_size", "learning_rate", "seed")} | fixed
    overrides = [
        f"output_dir={out}",
        f"data.max_train_samples={args.train_rows}",
        f"training.epochs={settings['epochs'] or 1}",
        "training.eval_strategy=epoch",
        f"training.torch_threads={args.threads}",
        f"data.train_file={SST2 / 'train.tsv'}",
        f"data.validation_file={SST2 / 'dev.tsv'}",
    ]
    optional = {
        "training.batch_size": settings["batch_size"],
        "training.learning_rate": settings["learning_rate"],
        "seed": settings["seed"],
    }
    return overrides + [f"{key}={value}" for key, value in optional.items() if value is not None]


def run_recipe(config_path: Path, overrides: Sequence[str]) -> Any:
    """Train one nlp-transfer run from a recipe config and ``key=value`` overrides (replacing its output folder)."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    return run_training(load_config(config_path, list(overrides)), overwrite=True)


def recipe_figures(result: Any, metric: str, name: str | None = None) -> dict[str, float]:
    """Throughput, training time and the validation ``metric`` (reported as ``name``) of a recipe run."""
    return {
        "samples_per_second": result.info["train_samples_per_second"],
        "train_seconds": result.info["train_seconds"],
        name or metric: result.metrics["validation"][metric],
    }


def non_embedding_parameters(model: Any) -> int:
    """Parameters outside the embeddings: the count model FLOPs (6 x this x tokens) are taken over."""
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)


def model_flops(model: Any, data: list[dict[str, Any]]) -> list[float]:
    """Each batch's model FLOPs: 6 x non-embedding parameters x its non-pad tokens."""
    non_embedding = non_embedding_parameters(model)
    return [6.0 * non_embedding * int(batch["attention_mask"].sum()) for batch in data]
