"""Inference batches under a padded-token budget: every row once, longest first, within the budget."""

import random

import pytest
import torch

from nlp_transfer.training.batches import CPU_BATCH_TOKENS, LengthSortedBatches, budgeted_batches, inference_token_budget


def test_budgeted_batches_keep_length_order_and_stay_within_both_caps():
    draw = random.Random(3)
    lengths = [draw.randint(1, 300) for _ in range(500)]
    batches = budgeted_batches(lengths, batch_size=32, max_tokens=1024)
    flat = [i for batch in batches for i in batch]
    assert flat == sorted(range(len(lengths)), key=lambda i: -lengths[i])  # every row once, longest first
    for batch in batches:
        assert len(batch) <= 32
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 1024 or len(batch) == 1  # only a row longer than the budget may exceed it, alone
    assert len(batches[0]) == 1024 // lengths[batches[0][0]] < 32  # the longest rows fill the budget, no more
    assert max(len(b) for b in batches) == 32  # short rows still fill whole batches


def test_a_row_longer_than_the_budget_gets_a_batch_of_its_own():
    assert budgeted_batches([2000, 10, 10, 900], batch_size=8, max_tokens=1024) == [[0], [3], [1, 2]]


def test_the_budget_applies_on_a_cpu_only():
    assert inference_token_budget("cpu") == CPU_BATCH_TOKENS
    assert inference_token_budget(torch.device("cpu")) == CPU_BATCH_TOKENS
    assert inference_token_budget("cuda:0") is None
    assert inference_token_budget("mps") is None


@pytest.mark.parametrize("max_tokens", [None, 12])
def test_length_sorted_batches_give_outputs_in_row_order(max_tokens):
    rows = [{"input_ids": list(range(n))} for n in (3, 9, 1, 7, 5)]

    def collate(items):
        width = max(len(item["input_ids"]) for item in items)
        return {"input_ids": torch.tensor([item["input_ids"] + [0] * (width - len(item["input_ids"])) for item in items])}

    batches = LengthSortedBatches.build(rows, collate, batch_size=4, max_tokens=max_tokens)
    outputs, labels = batches.outputs(lambda batch: batch["input_ids"].sum(dim=1, keepdim=True))
    assert labels is None
    assert outputs[:, 0].tolist() == [sum(range(n)) for n in (3, 9, 1, 7, 5)]
    assert len(list(batches.loader)) == (2 if max_tokens is None else 4)  # 12 tokens: [9], [7], [5, 3], [1]


@pytest.mark.parametrize("max_tokens", [None, 12])
def test_labelled_token_outputs_equal_padded_outputs_with_the_unlabelled_positions_dropped(max_tokens):
    """Rank's NER path keeps only labelled tokens batch by batch; it must give exactly what padding every batch
    to the longest row, restoring the row order and then dropping label -100 gives, in the same order."""
    draw = random.Random(5)
    rows = []
    for n in (3, 9, 1, 7, 5, 2):
        ids = [draw.randint(1, 50) for _ in range(n)]
        rows.append({"input_ids": ids, "labels": [draw.choice([-100, 0, 1, 2]) for _ in range(n)]})

    def collate(items):
        width = max(len(item["input_ids"]) for item in items)
        pad = lambda values, fill: values + [fill] * (width - len(values))  # noqa: E731
        return {
            "input_ids": torch.tensor([pad(item["input_ids"], 0) for item in items]),
            "labels": torch.tensor([pad(item["labels"], -100) for item in items]),
        }

    def forward(batch):  # (rows, tokens, 2): each token's id and its id squared
        ids = batch["input_ids"].float()
        return torch.stack([ids, ids**2], dim=-1)

    batches = LengthSortedBatches.build(rows, collate, batch_size=4, max_tokens=max_tokens)
    padded, labels = batches.outputs(forward)
    keep = labels != -100
    features, kept_labels = batches.labelled_token_outputs(forward)
    assert features.shape == (int(keep.sum()), 2)
    assert features.tolist() == padded[keep].tolist() and kept_labels.tolist() == labels[keep].tolist()
    assert kept_labels.tolist() == [t for row in rows for t in row["labels"] if t != -100]  # row order, token order
