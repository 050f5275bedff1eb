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
