"""Self-training: a teacher labels unlabelled texts, a fresh student trains on the labelled rows plus its confident labels.

A run with ``data.unlabeled_file`` is ``self_training.rounds + 1`` ordinary runs in ``RUN_DIR/self_training/round_N``:
round 0 trains on the labelled rows; round N trains a fresh model from ``model`` on the labelled rows plus the
pseudo-labels that round N-1 gave the unlabelled texts (``RUN_DIR/self_training/pseudo_labels_round_N.jsonl``, read
as ``data.pseudo_labeled_file``; see
:mod:`nlp_transfer.data.pseudo_labels`). Every round picks its best model on the same human-labelled validation
split; only the last round scores the test split, and its files become the run directory's own. A teacher's
weights are deleted once its pseudo-labels are written (its metrics and run info stay). When a teacher keeps no
pseudo-label at all, the next round would only retrain round 0's model, so the rounds stop there: that teacher
stays the run's model and scores the test split itself (``stopped_at_round`` in run_info). ``--resume`` skips
finished rounds and resumes the interrupted one from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.config import RunConfig, save_config
from nlp_transfer.data.pseudo_labels import class_shares, select_pseudo_labels, write_pseudo_labels
from nlp_transfer.errors import DataError
from nlp_transfer.files import write_text_atomic
from nlp_transfer.run_info import RunInfo, data_provenance

ROUNDS_DIR = "self_training"
TEACHER_WEIGHTS = ("*.safetensors", "*.bin", "adapter", "checkpoints")


def run_self_training(
    config: RunConfig, train: Callable[..., Any], *, resume: bool = False, overwrite: bool = False, from_scratch: bool = False
) -> Any:
    """Train the rounds of a self-training run; ``train`` is :func:`nlp_transfer.pipeline.run_training`.

    Returns the last round's result, its ``output_dir`` and ``info`` now those of ``config.output_dir``.
    """
    from nlp_transfer.output_dir import replaced_on_success
    from nlp_transfer.pipeline import check_output_dir, data_files
    from nlp_transfer.training.accelerator import process_state

    output_dir, state = Path(config.output_dir), process_state()
    replace = check_output_dir(output_dir, overwrite=overwrite, resume=resume, model=config.model, data_files=data_files(config))
    if resume and (output_dir / FINISHING).is_file():
        check_resumed_rounds(config, output_dir)  # the settings it finishes with must be those it trained with
        return complete_finish(config, state)
    splits = labelled_splits(config)  # every input read and checked before --overwrite moves the earlier run aside
    texts, overlap, repeated = unlabeled_texts_apart_from_labelled(config, splits)
    shares = class_shares(splits["train"]["label"][:]) if config.self_training.balance else None
    if resume:
        check_resumed_rounds(config, output_dir)
    with replaced_on_success(output_dir, replace, state, resumable=has_resumable_round):
        if state.is_main_process:  # round 0's own record holds no unlabelled file: the run's records them all
            from nlp_transfer.pipeline import record_data_files

            output_dir.mkdir(parents=True, exist_ok=True)
            record_data_files(config, output_dir)
        rounds, result, stopped_at = train_rounds(config, texts, shares, train, resume=resume, state=state)
        return finish(config, result, rounds, (len(texts), overlap, repeated), state, stopped_at)


def has_resumable_round(output_dir: Path) -> bool:
    """Whether a failed self-training run left a finished round or a round's checkpoint that ``--resume`` continues."""
    from nlp_transfer.output_dir import has_checkpoint

    rounds = sorted((output_dir / ROUNDS_DIR).glob("round_*"))
    return any((round_dir / "metrics.json").is_file() or has_checkpoint(round_dir) for round_dir in rounds)


def train_rounds(
    config: RunConfig, texts: list[str], shares: Any, train: Callable[..., Any], *, resume: bool, state: Any
) -> tuple[list[dict[str, Any]], Any, int | None]:
    """Round 0 on the labels, then each round on the labels and its teacher's pseudo-labels; the rounds and the last."""
    output_dir = Path(config.output_dir)
    rounds: list[dict[str, Any]] = []
    result, stopped_at = None, None
    for number in range(config.self_training.rounds + 1):
        round_dir = output_dir / ROUNDS_DIR / f"round_{number}"
        pseudo_file = output_dir / ROUNDS_DIR / f"pseudo_labels_round_{number}.jsonl" if number else None
        record: dict[str, Any] = {"round": number}
        if pseudo_file is not None:
            record.update(pseudo_label_round(config, rounds[-1]["dir"], texts, shares, pseudo_file, state))
            if not record["pseudo_labels"]:  # the student would be round 0's model again: keep the teacher
                stopped_at = number
                result = score_kept_teacher(config, result, state)
                rounds.append({**record, "trained": False})  # run_info shows the round that stopped the rounds
                break
        result = train_round(config, round_dir, pseudo_file, train, resume=resume, last=number == config.self_training.rounds)
        rounds.append(
            {**record, "dir": round_dir, "validation": result.metrics.get("validation", {}), "examples": result.info["examples"]}
        )
    assert result is not None
    return rounds, result, stopped_at


def read_unlabeled_texts(config: RunConfig) -> list[str]:
    """The texts of ``data.unlabeled_file`` (one a line, or ``data.text_column`` of a table); at least one."""
    from nlp_transfer.data.texts import check_not_binary, read_texts

    if not config.data.unlabeled_file:  # run_self_training called from Python on a config without one
        raise DataError("data.unlabeled_file is not set: self-training needs a file of unlabelled texts; set it, or train "
                        "with run_training.")  # fmt: skip
    path = str(config.data.unlabeled_file)
    if not Path(path).is_file():
        raise DataError(f"data.unlabeled_file={path}: no such file. Fix the path, or set data.unlabeled_file=null.")
    check_not_binary(path, config.data.encoding)
    texts = read_texts(path, text_column=config.data.text_column, encoding=config.data.encoding)
    if not texts:
        raise DataError(f"data.unlabeled_file={path}: no texts in it. Give a file of unlabelled texts, one per line.")
    return texts


def unlabeled_texts_apart_from_labelled(config: RunConfig, splits: dict[str, Any]) -> tuple[list[str], int, int]:
    """The unlabelled texts less any that a labelled split (``splits``) holds too, each once; and how many were left
    out for each reason (in a labelled split, a repeat of an earlier line).

    A validation or test text among the pseudo-labels would be trained on with the teacher's label, and then used to
    pick the model or scored as unseen; a training text would count twice, and so would a text the file repeats (the
    copies also fill a class's share under ``self_training.balance``). Texts are compared after stripping.
    """
    from nlp_transfer.training.accelerator import process_state

    texts = read_unlabeled_texts(config)
    labelled = {text.strip() for split in splits.values() for text in split["text"]}
    kept = [text for text in texts if text.strip() not in labelled]
    overlap = len(texts) - len(kept)
    if overlap:
        process_state().print(
            f"self-training: {overlap:,} of {len(texts):,} unlabelled texts are also in a labelled split "
            f"(train, validation or test) and are left out ({config.data.unlabeled_file})"
        )
    if not kept:
        raise DataError(
            f"data.unlabeled_file={config.data.unlabeled_file}: every text is also in a labelled split. "
            "Give unlabelled texts that the train, validation and test files do not hold."
        )
    seen: set[str] = set()
    once = [text for text in kept if not (text.strip() in seen or seen.add(text.strip()))]  # the first of each
    if len(once) < len(kept):
        process_state().print(
            f"self-training: {len(kept) - len(once):,} unlabelled texts repeat an earlier line and are used once "
            f"({config.data.unlabeled_file})"
        )
    return once, overlap, len(kept) - len(once)


def labelled_splits(config: RunConfig) -> dict[str, Any]:
    """The labelled splits as a run without the unlabelled file reads them (after the hold-out), made rows left out."""
    from nlp_transfer.data.text_rows import load_text_classification_data

    return load_text_classification_data(config.data.human_labelled_only(), seed=config.seed).splits


def pseudo_label_round(
    config: RunConfig, teacher_dir: Path, texts: list[str], shares: dict[str, float] | None, path: Path, state: Any
) -> dict[str, Any]:
    """Label ``texts`` with the teacher in ``teacher_dir``, keep the confident, balanced ones in ``path``; a summary."""
    if not path.is_file() and state.is_main_process:  # a resumed run keeps the labels it already chose
        probabilities, labels = teacher_probabilities(teacher_dir, texts, config.training.eval_batch_size)
        chosen = select_pseudo_labels(
            texts,
            probabilities,
            labels,
            threshold=config.self_training.threshold,
            class_shares=shares,
            max_per_class=config.self_training.max_per_class,
        )
        write_pseudo_labels(path, chosen)
    state.wait_for_everyone()  # the other processes read the labels the main process chose
    labels_of = [json.loads(line)["label"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if labels_of and state.is_main_process:  # a teacher that labelled nothing stays the run's model; a resumed run
        remove_teacher_weights(teacher_dir)  # stopped after writing the labels deletes the weights now
    counts = dict(sorted(Counter(labels_of).items()))
    state.print(f"self-training: {len(labels_of):,} of {len(texts):,} unlabelled texts pseudo-labelled {counts} ({path})")
    if not labels_of:
        state.print(
            f"self-training: warning: no pseudo-label reached self_training.threshold={config.self_training.threshold} "
            f"in every class, so the rounds stop here and the teacher ({teacher_dir.name}) is the run's model. "
            "Lower the threshold, set self_training.balance=false, or use fewer rounds."
        )
    return {"pseudo_labels": len(labels_of), "pseudo_labels_per_class": counts, "pseudo_labeled_file": str(path)}


def teacher_probabilities(teacher_dir: Path, texts: list[str], batch_size: int) -> tuple[np.ndarray, list[str]]:
    """The teacher's softmax probabilities for ``texts`` (no temperature: a fresh run has none) and its label names."""
    import torch

    from nlp_transfer.inference import load_run, text_logits

    model, task = load_run(teacher_dir)
    logits = text_logits(model, task, texts, batch_size=batch_size)
    return torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy(), list(task.labels)


def remove_teacher_weights(teacher_dir: Path) -> None:
    """Delete a teacher's weights and checkpoints once its pseudo-labels are written (metrics and run info stay)."""
    for pattern in TEACHER_WEIGHTS:
        for path in teacher_dir.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def round_config(config: RunConfig, round_dir: Path, pseudo_file: Path | None, *, last: bool) -> RunConfig:
    """The config of one round: the run's, with its pseudo-labels, its own folder, and the test split if ``last``."""
    data = dataclasses.replace(
        config.data,
        unlabeled_file=None,
        pseudo_labeled_file=str(pseudo_file) if pseudo_file else None,
        test_file=config.data.test_file if last else None,  # the test split is scored once, by the last round
        hub_splits=config.data.hub_splits if last else {k: v for k, v in config.data.hub_splits.items() if k != "test"},
    )
    hub = dataclasses.replace(config.hub, push=False)
    return dataclasses.replace(config, data=data, hub=hub, output_dir=str(round_dir))


def train_round(
    config: RunConfig, round_dir: Path, pseudo_file: Path | None, train: Callable[..., Any], *, resume: bool, last: bool
) -> Any:
    """Train one round as an ordinary run in ``round_dir`` (a finished one is read back, not retrained).

    Resumed, a round that wrote a checkpoint continues from it; one stopped before its first checkpoint starts again.
    """
    from nlp_transfer.output_dir import has_checkpoint, is_finished

    if resume and is_finished(round_dir):  # both reports whole: one stopped between them trains again
        return _finished_round(round_dir)
    interrupted = resume and has_checkpoint(round_dir)
    return train(round_config(config, round_dir, pseudo_file, last=last), resume=interrupted, overwrite=not interrupted)


def check_resumed_rounds(config: RunConfig, output_dir: Path) -> None:
    """Refuse to resume a self-training run with settings that change training (checked against round 0's, which
    every round shares): stopped between rounds, a changed threshold or learning rate went through unnoticed."""
    from nlp_transfer.pipeline import check_resumed_config

    first = output_dir / ROUNDS_DIR / "round_0"
    if (first / "config.yaml").is_file():
        check_resumed_config(round_config(config, first, None, last=config.self_training.rounds == 0), first)
    from nlp_transfer.pipeline import check_same_data

    check_same_data(config, output_dir)  # another or an edited unlabelled file would mix two files' pseudo-labels


def score_kept_teacher(config: RunConfig, teacher: Any, state: Any) -> Any:
    """A teacher kept as the run's model (it trained without the test split): score ``data.test_file`` once now, and
    record the test split in its run_info.json as a last round records it (its rows, the file's size and sha256)."""
    round_dir = Path(teacher.output_dir)
    if config.data.test_file and "test" not in teacher.metrics:
        if state.is_main_process:
            from nlp_transfer.pipeline import save_metrics

            test, rows = _score_test_file(round_dir, config)
            info = RunInfo.read(round_dir)
            info.examples = {**info.examples, "test": rows}
            info.data_files = {**info.data_files, **data_provenance({"test_file": config.data.test_file})}
            info.write(round_dir)  # before metrics.json, whose test entry tells a resumed run the scoring is done
            save_metrics(round_dir, {**teacher.metrics, "test": test})
        state.wait_for_everyone()
    return _finished_round(round_dir)


def _score_test_file(round_dir: Path, config: RunConfig) -> tuple[dict[str, Any], int]:
    """The metrics of the model in ``round_dir`` on ``data.test_file`` (its first ``data.max_eval_samples`` rows, as a
    run cuts its test split) and the number of rows scored."""
    from nlp_transfer.inference import load_run
    from nlp_transfer.inference.logits import labelled_file_logits

    model, task = load_run(round_dir)
    logits, labels = labelled_file_logits(
        model, task, str(config.data.test_file), config.data, batch_size=config.training.eval_batch_size,
        max_rows=config.data.max_eval_samples,
    )  # fmt: skip
    return task.compute_metrics(logits, labels), len(labels)


def _finished_round(round_dir: Path) -> Any:
    from nlp_transfer.pipeline import RunResult

    metrics = json.loads((round_dir / "metrics.json").read_text(encoding="utf-8"))
    return RunResult(output_dir=round_dir, metrics=metrics, info=RunInfo.read(round_dir).to_dict())


def finish(
    config: RunConfig,
    result: Any,
    rounds: list[dict[str, Any]],
    unlabeled: tuple[int, int, int],
    state: Any,
    stopped_at: int | None = None,
) -> Any:
    """Move the last trained round's files up into the run directory and record the rounds in its run_info.json.

    ``unlabeled``: the unlabelled texts used, those left out because a labelled split holds them too, and those left
    out as repeats of an earlier line.
    """
    output_dir, last_dir = Path(config.output_dir), Path(result.output_dir)
    stopping = [{k: v for k, v in r.items() if k != "trained"} for r in rounds if r.get("trained") is False]
    rounds = [r for r in rounds if r.get("trained") is not False]
    summary = {
        "unlabeled_file": config.data.unlabeled_file,
        "unlabeled_texts": unlabeled[0],
        "unlabeled_in_labelled_splits": unlabeled[1],  # left out: also in the train, validation or test split
        "unlabeled_repeated": unlabeled[2],  # left out: the same text as an earlier line of the file
        "threshold": config.self_training.threshold,
        "balance": config.self_training.balance,
        "rounds": [{k: (str(v) if k == "dir" else v) for k, v in r.items()} for r in rounds],
        "stopped_at_round": stopped_at,  # null: every round of self_training.rounds ran
        "stopping_round": stopping[0] if stopping else None,  # its pseudo-labels (none), which ended the rounds
    }
    if state.is_main_process:
        write_text_atomic(output_dir / FINISHING, json.dumps({"last_round": last_dir.name, "summary": summary}))
        move_up_last_round(config)
        report_gain(rounds)
        if config.hub.push:
            from nlp_transfer.hub import push_configured_run

            print(f"pushed to {push_configured_run(config.hub, output_dir)}")
    state.wait_for_everyone()
    return dataclasses.replace(result, output_dir=output_dir, info=RunInfo.read(output_dir).to_dict())


#: written before the last round's files move up into the run directory, removed once they all have: a run stopped
#: in between is completed by --resume from it (its files split between two folders are no run otherwise)
FINISHING = f"{ROUNDS_DIR}/finishing.json"


def move_up_last_round(config: RunConfig) -> None:
    """Move the last round's files up into the run directory (``FINISHING`` names it and holds the rounds' summary),
    the run's config and run_info written before ``metrics.json``, the file that marks a run as finished."""
    from nlp_transfer.pipeline import DATA_RECORD, METRICS_FILE

    output_dir = Path(config.output_dir)
    finishing = json.loads((output_dir / FINISHING).read_text(encoding="utf-8"))
    last_dir = output_dir / ROUNDS_DIR / finishing["last_round"]
    (output_dir / DATA_RECORD).unlink(missing_ok=True)  # a finished run keeps no record (the last round's, if kept)
    for entry in sorted(last_dir.iterdir(), key=lambda e: e.name == METRICS_FILE):  # metrics.json last
        target = output_dir / entry.name
        if entry.name == METRICS_FILE:
            save_config(config, output_dir / "config.yaml")
            info = RunInfo.read(output_dir)
            info.self_training = finishing["summary"]
            info.write(output_dir)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    (output_dir / FINISHING).unlink()


def complete_finish(config: RunConfig, state: Any) -> Any:
    """``--resume`` of a run stopped while its last round's files moved up: finish moving them, retrain nothing."""
    from nlp_transfer.pipeline import RunResult

    output_dir = Path(config.output_dir)
    if state.is_main_process:
        move_up_last_round(config)
        state.print(f"self-training: every round had finished; the last round's files are now {output_dir}'s own")
        if config.hub.push:
            from nlp_transfer.hub import push_configured_run

            print(f"pushed to {push_configured_run(config.hub, output_dir)}")
    state.wait_for_everyone()
    metrics = json.loads((output_dir / "metrics.json").read_text(encoding="utf-8"))
    return RunResult(output_dir=output_dir, metrics=metrics, info=RunInfo.read(output_dir).to_dict())


def report_gain(rounds: list[dict[str, Any]]) -> None:
    """Say whether the last round beat round 0 on validation (the only split both were chosen on)."""
    first, last = rounds[0]["validation"], rounds[-1]["validation"]
    key = next((k for k in ("f1_macro", "accuracy") if k in first and k in last), None)
    if key is None or len(rounds) < 2:
        return
    verdict = "better" if last[key] > first[key] else "not better: consider training without data.unlabeled_file"
    print(f"self-training: validation {key} {first[key]:.4f} (labelled only) -> {last[key]:.4f} (last round), {verdict}")
