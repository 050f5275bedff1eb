"""Batching tokenized rows for training and for inference.

:func:`make_dataloader` gives the training loop shuffled, length-grouped batches.
:class:`LengthSortedBatches` is the one inference path: the loop's evaluation, ``predict`` /
``evaluate`` on a saved run and feature extraction all run a forward function over length-sorted
batches (little padding) and get the outputs back in row order, gathered once per row across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader

from nlp_transfer.training.sampler import LengthGroupedBatchSampler

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")
IGNORE = -100

Forward = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def batch_rows(
    dataset: datasets.Dataset | Sequence[dict[str, Any]], columns: Sequence[str] = MODEL_COLUMNS
) -> Sequence[dict[str, Any]]:
    """The rows of ``dataset`` restricted to ``columns`` (what the collator should see).

    Any other sequence of row dicts (e.g. pairs drawn on demand) is passed through as it is.
    """
    if not isinstance(dataset, datasets.Dataset):
        return dataset
    return dataset.select_columns([c for c in dataset.column_names if c in columns]).to_list()


def row_lengths(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Each row's ``length`` if it has one, else its number of input ids (1 for rows without tokens)."""
    return [int(row["length"]) if "length" in row else len(row.get("input_ids", [0])) for row in rows]


def make_dataloader(
    dataset: datasets.Dataset | Sequence[dict[str, Any]],
    collator: Any,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    group_by_length: bool,
    columns: Sequence[str] = MODEL_COLUMNS,
) -> tuple[DataLoader, LengthGroupedBatchSampler]:
    """A DataLoader over ``dataset`` (tokenized, with a ``length`` column) batched by length.

    Only ``columns`` (model inputs and labels) reach the collator. ``dataset`` may also be a sequence of
    row dicts computed on demand; its ``lengths`` attribute (or each row's ``length``) then groups the batches, and
    a ``lengths`` attribute also makes the sampler stream its order (constant memory in the number of rows).
    """
    streaming = getattr(dataset, "lengths", None) is not None  # rows made on demand: never list every index
    if isinstance(dataset, datasets.Dataset):
        lengths: Sequence[int] = dataset["length"][:]  # a list: a Column read row by row is slow
    else:
        lengths = dataset.lengths if streaming else row_lengths(dataset)
    sampler = LengthGroupedBatchSampler(
        lengths, batch_size, shuffle=shuffle, seed=seed, group_by_length=group_by_length, streaming=streaming
    )
    # the DataLoader draws a seed for its iterator on every pass: from a private generator, so that neither a new
    # pass nor a resumed run's first (skipping) pass moves the global RNG that dropout draws from (exact resume)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(batch_rows(dataset, columns), batch_sampler=sampler, collate_fn=collator, generator=generator), sampler


#: padded tokens one inference forward takes on a CPU; a longer length-sorted batch is cut into smaller ones. On
#: 128-token reviews at batch 32 this labels 21-23 % more texts a second (torch and int8 ONNX alike; chosen among
#: 512-2,048 on Amazon books training reviews, BENCHMARKS.md): a smaller batch's activations stay in the cache
#: from one operator to the next. Contrastive pair training cuts its randomly paired batches into pieces of the same
#: size (on 32 kitchen reviews, forward and backward 4x faster than one batch padded to the longest: 512 and 1,024
#: did alike, 2,048 a little worse; BENCHMARKS.md, twentieth session).
CPU_BATCH_TOKENS = 1024


def inference_token_budget(device: torch.device | str | None) -> int | None:
    """The padded-token budget of one forward pass on ``device``: :data:`CPU_BATCH_TOKENS` on a CPU, none elsewhere.

    Inference batches are cut to it, and so are the pieces of a contrastive pair batch; training loops with
    length-grouped batches are not (measured: no gain at 128 tokens).
    """
    return CPU_BATCH_TOKENS if device is None or torch.device(device).type == "cpu" else None


def budgeted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Row indices by descending length, cut into batches of at most ``batch_size`` rows and ``max_tokens`` padded tokens.

    A batch's padded size is its row count times its first (longest) row's length; a row longer than the
    budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if current and len(current) < batch_size and (len(current) + 1) * lengths[current[0]] <= max_tokens:
            current.append(index)
        else:
            batches.append([index])
    return batches


@dataclass
class LengthSortedBatches:
    """Rows batched longest first, and the row index of each position in that order."""

    loader: Any
    order: list[int]

    @classmethod
    def build(
        cls,
        rows: Sequence[dict[str, Any]],
        collator: Any,
        batch_size: int,
        accelerator: Any = None,
        max_tokens: int | None = None,
    ) -> LengthSortedBatches:
        """Batches of ``rows`` (tokenized dicts) by descending length; ``accelerator`` shards them over processes.

        ``max_tokens`` (one process only) also caps each batch's padded tokens: see :func:`budgeted_batches`.
        """
        lengths = row_lengths(rows)
        if max_tokens and accelerator is None:
            sampler: Any = budgeted_batches(lengths, batch_size, max_tokens)
        else:
            sampler = LengthGroupedBatchSampler(lengths, batch_size, shuffle=False)
        # a private generator for the iterator's seed: evaluating mid-run leaves the global (dropout) RNG alone
        loader = DataLoader(list(rows), batch_sampler=sampler, collate_fn=collator, generator=torch.Generator().manual_seed(0))
        order = [index for batch in sampler for index in batch]
        return cls(accelerator.prepare(loader) if accelerator is not None else loader, order)

    @torch.inference_mode()
    def outputs(
        self, forward: Forward, *, accelerator: Any = None, device: torch.device | str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``forward``'s output for every row and the rows' ``labels`` (None without), in row order.

        Token-level outputs of different widths are padded with -100. With ``accelerator`` the batches
        are already on its device and every row is gathered once; otherwise they move to ``device``.
        """
        outputs, labels = [], []
        for batch in self.loader:
            gold = batch.pop("labels", None)
            if accelerator is None and device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            values = forward(batch).float()
            if accelerator is not None:
                values, gold = _gather(accelerator, values, gold)
            outputs.append(values.cpu().numpy())
            if gold is not None:
                labels.append(gold.cpu().numpy())
        restored = restore_order(concat_padded(outputs), self.order)
        return restored, (restore_order(concat_padded(labels), self.order) if labels else None)

    @torch.inference_mode()
    def labelled_token_outputs(
        self, forward: Forward, *, device: torch.device | str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token-level ``forward`` outputs of the labelled tokens only (label not -100), and those labels.

        Rows (width) and labels (one each) come in row order, each row's tokens in order: what :meth:`outputs`
        gives with the unlabelled positions dropped afterwards, without ever padding every batch to the longest
        row (rows x longest x width floats). One process only.
        """
        features: list[Any] = [None] * len(self.order)  # per row: (labelled tokens, width); the loader fills each once
        labels: list[Any] = [None] * len(self.order)
        done = 0
        for batch in self.loader:
            gold = batch.pop("labels").numpy()
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            values = forward(batch).float().cpu().numpy()
            for j, row in enumerate(self.order[done : done + len(gold)]):
                keep = gold[j] != IGNORE
                features[row], labels[row] = values[j, keep], gold[j, keep]
            done += len(gold)
        return np.concatenate(features, axis=0), np.concatenate(labels)


def _gather(accelerator: Any, values: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gather a batch's outputs and labels from every process, each row once (token-level: padded first)."""
    if values.dim() == 3:
        values = accelerator.pad_across_processes(values, dim=1, pad_index=IGNORE)
        if labels is not None:
            labels = accelerator.pad_across_processes(labels, dim=1, pad_index=IGNORE)
    values = accelerator.gather_for_metrics(values)
    return values, (accelerator.gather_for_metrics(labels) if labels is not None else None)


def concat_padded(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate batches; token-level arrays of different widths are padded with -100 first."""
    if not arrays:
        return np.zeros((0,), dtype=np.float32)
    if arrays[0].ndim >= 2 and len({a.shape[1] for a in arrays}) > 1:
        width = max(a.shape[1] for a in arrays)
        arrays = [np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2), constant_values=IGNORE) for a in arrays]
    return np.concatenate(arrays, axis=0)


def restore_order(values: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Rows in loader order back to row order."""
    if len(values) == 0:
        return values
    restored = np.empty_like(values)
    restored[np.asarray(order)] = values
    return restored
