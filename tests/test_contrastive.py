"""strategy=contrastive: pairs drawn on demand and balanced, what each phase trains, exact resume, a real few-shot run."""

import csv
import math
import random
import re
import shutil
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from nlp_transfer.config import load_config
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.hub import build_model_card
from nlp_transfer.inference import predict
from nlp_transfer.pipeline import run_training
from nlp_transfer.training import loop as loop_module
from nlp_transfer.transfer import contrastive
from nlp_transfer.transfer.pairs import (
    PairCollator,
    PairRows,
    PairTask,
    check_pairable,
    label_sets,
    pair_labels,
    setfit_pairs_per_example,
    supervised_contrastive_loss,
)
from tests.conftest import good_bad_rows, shared_dataset, synthetic_sentiment, tiny_overrides, write_csv

ROWS = [{"input_ids": [101, i, 102], "attention_mask": [1, 1, 1]} for i in range(12)]
LABELS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]


# ----------------------------------------------------------------------------------------- pairs


def test_pairs_are_balanced_correct_and_reproducible():
    pairs = PairRows(ROWS, LABELS, pairs_per_example=6, seed=3)
    assert len(pairs) == 72
    items = [pairs[j] for j in range(len(pairs))]
    targets = [item["labels"] for item in items]
    assert targets.count(1.0) == targets.count(0.0) == 36  # exactly half similar
    for j, item in enumerate(items):
        anchor, partner = j % 12, item["second"]["input_ids"][1]
        assert item["first"]["input_ids"][1] == anchor  # every example is an anchor equally often
        assert partner != anchor
        assert (LABELS[partner] == LABELS[anchor]) == (item["labels"] == 1.0)
    again = PairRows(ROWS, LABELS, pairs_per_example=6, seed=3)
    assert [again[j]["second"]["input_ids"] for j in range(72)] == [item["second"]["input_ids"] for item in items]
    other = PairRows(ROWS, LABELS, pairs_per_example=6, seed=4)
    assert [other[j]["second"]["input_ids"] for j in range(72)] != [item["second"]["input_ids"] for item in items]
    with pytest.raises(IndexError):
        pairs[72]


def brute_force_setfit_count(labels):
    """SetFit's oversampled pair count by enumerating every pair of rows (a row with itself included)."""
    sets = label_sets(labels)
    similar = sum(1 for i in range(len(sets)) for j in range(i, len(sets)) if sets[i] & sets[j])
    dissimilar = sum(1 for i in range(len(sets)) for j in range(i + 1, len(sets)) if not sets[i] & sets[j])
    return 2 * max(similar, dissimilar)


@pytest.mark.parametrize(
    ("labels", "per_example"),
    [
        ([0] * 32 + [1] * 32, 33),  # SST-2 at 32 per class: 2,112 pairs (setfit's own figure)
        ([0] * 8 + [1] * 8, 9),  # 144 pairs, as SetFit 1.2.0 reported at 8 per class
        ([0] * 8 + [1] * 8 + [2] * 8, 16),  # dissimilar is larger from 3 classes on: 2 x 192 / 24
        ([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 1]], None),  # multi-label sets
    ],
)
def test_setfit_pair_count_matches_enumerating_every_pair(labels, per_example):
    expected = -(-brute_force_setfit_count(labels) // len(labels))
    assert setfit_pairs_per_example(label_sets(labels)) == expected
    if per_example is not None:
        assert expected == per_example


def test_contrastive_pairs_setfit_is_a_valid_setting_and_a_typo_is_not(tmp_path, tiny_model_dir):
    def pairs(value):
        extra = {"strategy": "contrastive", "transfer.contrastive_pairs": value, "data.train_file": "train.csv"}
        return load_config(None, tiny_overrides(tiny_model_dir, tmp_path, **extra)).transfer.contrastive_pairs

    assert pairs("setfit") == "setfit" and pairs(7) == 7
    with pytest.raises(ConfigError, match="contrastive_pairs='sefit' is not one of 'setfit'"):
        pairs("sefit")
    with pytest.raises(ConfigError, match="contrastive_pairs must be at least 1, or setfit"):
        pairs(0)


def test_multilabel_pairs_share_a_label_or_none():
    vectors = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]]
    rows = ROWS[: len(vectors)]
    sets = label_sets(vectors)
    pairs = PairRows(rows, vectors, pairs_per_example=10, seed=0)
    for j in range(len(pairs)):
        item = pairs[j]
        a, b = item["first"]["input_ids"][1], item["second"]["input_ids"][1]
        if item["labels"] == 1.0:
            assert sets[a] & sets[b]
        else:  # a partner sharing no label when one exists, else one lacking the drawn label
            assert not (sets[a] & sets[b]) or sets[b] != sets[a]


def test_pairs_are_drawn_on_demand_so_memory_does_not_grow_with_their_number():
    rows = [{"input_ids": [101, i % 500, 102]} for i in range(10_000)]
    labels = [i % 4 for i in range(10_000)]
    peaks = []
    for per_example in (2, 2_000):  # 20 thousand pairs against 20 million
        tracemalloc.start()
        pairs = PairRows(rows, labels, per_example, seed=0)
        _ = [pairs[j] for j in range(0, len(pairs), len(pairs) // 50)]
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert len(pairs) == 20_000_000
    assert peaks[1] < 1.5 * peaks[0] + 100_000


def test_the_pair_loader_streams_its_order_so_memory_does_not_grow_with_the_pairs():
    """An epoch's batch order is made group by group: the first batch reads one group's lengths, not all 200,000."""
    from nlp_transfer.training.batches import make_dataloader

    class CountedLengths:
        def __init__(self, lengths):
            self.lengths, self.reads = lengths, 0

        def __len__(self):
            return len(self.lengths)

        def __getitem__(self, index):
            self.reads += 1
            return self.lengths[index]

    rows = [{"input_ids": [101] + [7] * (i % 30) + [102]} for i in range(10_000)]
    labels = [i % 4 for i in range(10_000)]
    pairs = PairRows(rows, labels, 20, seed=0)
    counted = CountedLengths(pairs.lengths)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PairRows, "lengths", property(lambda self: counted))
        _loader, sampler = make_dataloader(pairs, lambda batch: batch, batch_size=16, shuffle=True, seed=0, group_by_length=True)
        first = next(iter(sampler))
    assert len(pairs) == 200_000 and len(sampler) == len(pairs) // 16
    assert len(first) == 16 and counted.reads <= 16 * 50  # one group of 50 batches sorted by length
    lengths = [counted.lengths[i] for i in first]
    assert lengths == sorted(lengths, reverse=True)


def test_unpairable_training_rows_are_refused_by_name():
    with pytest.raises(UserError, match="class 'b' has 1 training example"):
        check_pairable(label_sets([0, 0, 1]), ["a", "b"])
    with pytest.raises(UserError, match="training row 2: the row has no label"):
        check_pairable(label_sets([[1, 0], [0, 0], [1, 1]]), ["a", "b"])
    with pytest.raises(UserError, match="one class only"):
        check_pairable(label_sets([0, 0, 0]), ["a", "b"])


@pytest.mark.parametrize(
    ("task", "bad_row", "message"),
    [
        ("multilabel", ("a plain text", ""), "rows.csv:4: the row has no label"),
        ("classification", ("lonely", "c"), "rows.csv:4 is the only one)"),
    ],
)
def test_unpairable_rows_are_refused_naming_file_and_line_before_anything_is_written(
    tmp_path, capsys, monkeypatch, task, bad_row, message
):
    from tests.conftest import assert_train_refuses

    rows = [("good words here", "a"), ("bad words there", "b")] * 5
    rows.insert(2, bad_row)  # the file's line 4 (header on line 1)
    path = write_csv(tmp_path / "rows.csv", rows)
    overrides = [f"task={task}", "strategy=contrastive", f"data.train_file={path}", f"data.validation_file={path}"]
    assert_train_refuses(overrides, message, tmp_path, capsys, monkeypatch)


def unit_pairs(cosines):
    """Pairs of 2-d unit vectors at the given cosines, as PairEncoder's logits (B, 2, 2)."""
    angles = torch.arccos(torch.tensor(cosines, dtype=torch.float64))
    first = torch.tensor([[1.0, 0.0]] * len(cosines), dtype=torch.float64)
    return torch.stack([first, torch.stack([angles.cos(), angles.sin()], dim=1)], dim=1)


def test_pair_losses_and_auc():
    same, apart = (frozenset({0}), frozenset({0})), (frozenset({0}), frozenset({1}))
    labels = pair_labels([1.0, 0.0, 1.0], [same, apart, same], 2)
    task = PairTask(text_collator=None, classes=2, loss="cosine")
    assert task.loss(unit_pairs([1.0, 0.0, 0.5]), labels).item() == pytest.approx(0.25 / 3)
    margin = PairTask(text_collator=None, classes=2, loss="contrastive")
    # similar at cosine 0.5: (0.5)^2; dissimilar at 0.9 over the 0.5 margin: (0.4)^2; dissimilar at 0.2: nothing
    value = margin.loss(unit_pairs([0.5, 0.9, 0.2]), pair_labels([1.0, 0.0, 0.0], [(frozenset({0}),) * 2] * 3, 2)).item()
    assert value == pytest.approx((0.25 + 0.16) / 3 / 2)
    targets = pair_labels([1.0, 1.0, 0.0, 0.0], [(frozenset({0}),) * 2] * 4, 2)
    metrics = task.compute_metrics(unit_pairs([0.9, 0.8, 0.1, 0.2]).numpy(), targets.numpy())
    assert metrics["pair_auc"] == pytest.approx(1.0)
    assert labels.tolist() == [[1, 1, 0, 1, 0], [0, 1, 0, 0, 1], [1, 1, 0, 1, 0]]  # target, first's flags, second's


def brute_force_supcon(embeddings, labels, temperature):
    """Khosla et al.'s L_out written as loops: for each text with a positive, minus the mean log-probability of them."""
    terms = []
    for i in range(len(embeddings)):
        others = [a for a in range(len(embeddings)) if a != i]
        positives = [p for p in others if (labels[i] * labels[p]).sum() > 0]
        if not positives:
            continue
        scale = sum(math.exp(float(embeddings[i] @ embeddings[a]) / temperature) for a in others)
        terms.append(
            -sum(float(embeddings[i] @ embeddings[p]) / temperature - math.log(scale) for p in positives) / len(positives)
        )
    return sum(terms) / len(terms)


def test_supervised_contrastive_loss_on_known_cases():
    one, two = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    # two texts of one class: the only other text is the positive, probability 1
    assert supervised_contrastive_loss(torch.stack([one, one]), torch.tensor([[1.0], [1.0]]), 0.5).item() == 0.0
    # a and b alike (class 0), c orthogonal (class 1, no positive: adds nothing): log(1 + e^(-1/T)) for a and b
    value = supervised_contrastive_loss(torch.stack([one, one, two]), torch.tensor([[1.0, 0], [1, 0], [0, 1]]), 0.5)
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2.0)))
    # random unit vectors with multi-label flags: equal to the loops
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(9, 5, generator=generator, dtype=torch.float64), dim=-1)
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 0]])
    value = supervised_contrastive_loss(embeddings, labels.double(), 0.1).item()
    assert value == pytest.approx(brute_force_supcon(embeddings, labels, 0.1))


def test_supcon_pulls_a_class_together_and_pushes_the_others_apart():
    generator = torch.Generator().manual_seed(1)
    points = torch.randn(8, 4, generator=generator, requires_grad=True)
    labels = torch.tensor([[1.0, 0]] * 4 + [[0, 1.0]] * 4)
    optimizer = torch.optim.SGD([points], lr=0.05)

    def margin():
        unit = torch.nn.functional.normalize(points.detach(), dim=-1)
        cosines, same = unit @ unit.T, (labels @ labels.T).bool() & ~torch.eye(8, dtype=torch.bool)
        return (cosines[same].mean() - cosines[~(labels @ labels.T).bool()].mean()).item()

    before = margin()
    for _ in range(150):
        optimizer.zero_grad()
        loss = supervised_contrastive_loss(torch.nn.functional.normalize(points, dim=-1), labels, 0.1)
        loss.backward()
        optimizer.step()
    # from no structure to same-class cosines 0.8 above the other class's, the loss near its floor log(3) (3 positives)
    assert before < 0.2 and margin() > 0.8 and loss.item() < math.log(3) + 0.02


def test_supcon_batches_carry_each_texts_labels():
    pairs = PairRows(ROWS, LABELS, 2, seed=0)
    collator = PairCollator(lambda rows: {"input_ids": torch.tensor([r["input_ids"] for r in rows])}, classes=3)
    batch = collator([pairs[j] for j in range(len(pairs))])
    first, second = batch["labels"][:, 1:4], batch["labels"][:, 4:]
    anchors = [j % len(ROWS) for j in range(len(pairs))]
    assert first.argmax(1).tolist() == [LABELS[a] for a in anchors]
    assert ((first * second).sum(1) > 0).float().tolist() == batch["labels"][:, 0].tolist()  # the pair's own target


def test_pieces_of_a_pair_batch_give_the_same_embeddings_and_gradients_with_less_padding(tiny_model_dir):
    """A CPU run encodes the 2B texts in length-sorted pieces under a token budget: same result, fewer padded tokens."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nlp_transfer.transfer.pairs import PairEncoder

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).eval()  # no dropout
    words = "good bad film plot great awful story fine dull superb".split()
    texts = [" ".join(random.Random(i).choices(words, k=n)) for i, n in enumerate([2, 30, 5, 3, 25, 4, 2, 6])]
    batch = dict(AutoTokenizer.from_pretrained(tiny_model_dir)(texts, padding=True, return_tensors="pt"))
    widths = []
    model.base_model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape), with_kwargs=True
    )

    def embed(encoder):
        model.zero_grad()
        widths.clear()
        logits = encoder(**batch).logits
        (logits[:, 0] * logits[:, 1]).sum().backward()  # the pairs' cosines
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, list(widths)

    whole, whole_grads, whole_calls = embed(PairEncoder(model))
    pieced, pieced_grads, pieced_calls = embed(PairEncoder(model, max_tokens=64))
    assert whole.shape == (4, 2, model.config.hidden_size) and torch.allclose(pieced, whole, atol=1e-5)
    assert whole_grads.keys() == pieced_grads.keys()
    assert all(torch.allclose(pieced_grads[n], whole_grads[n], atol=1e-5) for n in whole_grads)
    assert len(whole_calls) == 1 and len(pieced_calls) > 1
    assert sum(rows * width for rows, width in pieced_calls) < 0.6 * whole_calls[0].numel()  # padding cut
    assert all(rows * width <= 64 or rows == 1 for rows, width in pieced_calls)
    left = {key: value.flip(1) for key, value in batch.items()}  # left padding: never cut into pieces
    assert PairEncoder(model, max_tokens=64).pieces(left["attention_mask"]) is None


def test_encode_once_encodes_each_distinct_text_once_with_the_same_embeddings_and_gradients(tiny_model_dir):
    """Pairs drawn from a few examples repeat texts: encoding each once gives the same result without dropout."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nlp_transfer.transfer.pairs import PairEncoder

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).eval()  # no dropout
    texts = ["good film", "awful plot", "good film", "a fine story", "awful plot", "good film", "dull", "a fine story"]
    batch = dict(AutoTokenizer.from_pretrained(tiny_model_dir)(texts, padding=True, return_tensors="pt"))
    rows = []
    model.base_model.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(len(kwargs["input_ids"])), with_kwargs=True
    )

    def embed(encoder):
        model.zero_grad()
        rows.clear()
        logits = encoder(**batch).logits
        (logits[:, 0] * logits[:, 1]).sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, sum(rows)

    every, every_grads, every_rows = embed(PairEncoder(model))
    once, once_grads, once_rows = embed(PairEncoder(model, encode_once=True))
    assert (every_rows, once_rows) == (8, 4)  # four distinct texts
    torch.testing.assert_close(once, every)
    assert once_grads.keys() == every_grads.keys()
    for name, grad in every_grads.items():
        torch.testing.assert_close(once_grads[name], grad, atol=1e-6, rtol=1e-5)
    # with dropout on, each occurrence gets its own mask unless it is encoded once
    model.train()
    for encode_once in (False, True):
        logits = PairEncoder(model, encode_once=encode_once)(**batch).logits.detach()
        embeddings = torch.cat([logits[:, 0], logits[:, 1]])  # the texts in order: first texts, then partners
        assert torch.equal(embeddings[0], embeddings[2]) is encode_once  # "good film" twice


def test_encode_once_applies_to_the_pair_losses_and_never_to_supcon(tiny_model_dir, tmp_path):
    options = contrastive_config(dict.fromkeys(("train", "validation", "test"), "x.csv"), tiny_model_dir, tmp_path).transfer
    run = SimpleNamespace(accelerator=SimpleNamespace(device=torch.device("cpu")))
    for loss in ("cosine", "contrastive", "supcon"):
        for setting in (True, False):
            strategy = contrastive.ContrastiveFewShot(replace(options, contrastive_loss=loss, contrastive_encode_once=setting))
            expected = setting and loss != "supcon"
            encoder = strategy.pair_encoder(run, torch.nn.Linear(1, 1))
            assert encoder.encode_once is strategy.options.contrastive_encodes_once() is expected


def test_contrastive_is_refused_for_ner(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="strategy=contrastive"):
        load_config(
            None, tiny_overrides(tiny_model_dir, tmp_path, task="ner", strategy="contrastive", **{"data.train_file": "x.conll"})
        )


# ----------------------------------------------------------------------------------------- mechanics


def contrastive_config(files, model_dir, out, **extra):
    values = {
        "strategy": "contrastive",
        "data.train_file": files["train"],
        "data.validation_file": files["validation"],
        "data.test_file": files["test"],
        "training.learning_rate": 5e-3,
        "training.epochs": 3,
        "transfer.contrastive_pairs": 4,
        "transfer.contrastive_learning_rate": 1e-3,
        "transfer.contrastive_batch_size": 32,
        **extra,
    }
    return load_config(None, tiny_overrides(model_dir, out, **values))


@pytest.mark.parametrize("loss", ["cosine", "supcon"])
def test_phase_one_trains_the_encoder_only_and_phase_two_the_head_only(
    loss, sentiment_files, tiny_model_dir, tmp_path, monkeypatch
):
    snapshots = {}
    original = contrastive.train_head_on_features

    def spy(run, pooling, seconds):
        snapshots["after_pairs"] = {n: p.detach().clone() for n, p in run.model.named_parameters()}
        return original(run, pooling, seconds)

    monkeypatch.setattr(contrastive, "train_head_on_features", spy)
    config = contrastive_config(sentiment_files, tiny_model_dir, tmp_path / "run", **{"transfer.contrastive_loss": loss})
    result = run_training(config)
    start = load_file(f"{tiny_model_dir}/model.safetensors")
    after_pairs = {n.removeprefix("model."): t for n, t in snapshots["after_pairs"].items()}
    final = load_file(str(tmp_path / "run" / "model.safetensors"))
    head = ("bert.pooler.", "classifier.")
    encoder = [n for n in after_pairs if not n.startswith(head)]
    # phase 1: the encoder moved, the pooler did not (the classifier is new: compare it with phase 2's end below)
    assert all(
        not torch.equal(after_pairs[n], start[n.removeprefix("bert.")]) for n in encoder if "layer.1." in n and "weight" in n
    )
    assert all(torch.equal(after_pairs[n], start[n.removeprefix("bert.")]) for n in after_pairs if n.startswith("bert.pooler."))
    # phase 2: the head moved, the encoder did not
    assert all(torch.equal(final[n], after_pairs[n]) for n in encoder)
    assert all(not torch.equal(final[n], after_pairs[n]) for n in after_pairs if n.startswith(head))
    phase = result.info["phases"]["contrastive"]
    assert phase["pairs"] == 400 * 4 and phase["steps"] == 50 and phase["best_pair_auc"] > 0.5
    assert phase["loss"] == loss and phase.get("temperature") == (0.1 if loss == "supcon" else None)
    assert phase["encode_once"] is (loss == "cosine")
    assert result.info["pooling"] == "mean"
    assert result.metrics["test"]["accuracy"] > 0.75  # the tiny model learned the polarity words (chance 0.5)


def test_a_run_with_setfit_pairs_draws_setfits_count(tmp_path, tiny_model_dir):
    files = {
        "train": write_csv(tmp_path / "train.csv", synthetic_sentiment(20, 1)),
        "validation": write_csv(tmp_path / "validation.csv", synthetic_sentiment(20, 2)),
        "test": write_csv(tmp_path / "test.csv", synthetic_sentiment(20, 3)),
    }
    config = contrastive_config(
        files, tiny_model_dir, tmp_path / "run", **{"transfer.contrastive_pairs": "setfit", "training.epochs": 1}
    )
    phase = run_training(config).info["phases"]["contrastive"]
    # 10 rows a class: 2 x max(2 x 55 similar, 100 dissimilar) = 220 pairs, 11 a row
    assert (phase["pairs"], phase["pairs_per_example"], phase["pairs_rule"]) == (220, 11, "setfit")


def test_a_contrastive_run_resumes_exactly_in_either_phase(sentiment_files, tiny_model_dir, tmp_path):
    extra = {"transfer.contrastive_epochs": 2, "training.epochs": 2}
    full = run_training(contrastive_config(sentiment_files, tiny_model_dir, tmp_path / "full", **extra))
    config = contrastive_config(
        sentiment_files, tiny_model_dir, tmp_path / "part", **extra, **{"training.keep_checkpoints": True}
    )
    run_training(config)
    head_checkpoints = sorted((tmp_path / "part" / "checkpoints").glob("step-*"))
    pair_checkpoints = sorted((tmp_path / "part" / "checkpoints" / "contrastive" / "checkpoints").glob("step-*"))
    assert len(head_checkpoints) == 2 and len(pair_checkpoints) == 2
    # phase 2 checkpoints its own head and optimizer only, not phase 1's encoder and its AdamW state again
    assert sorted(p.name for p in head_checkpoints[0].glob("optimizer*")) == ["optimizer.bin"]
    assert [p.name for p in head_checkpoints[0].glob("model*.safetensors")] == ["model.safetensors"]
    for checkpoint in head_checkpoints:  # killed before phase 2 checkpointed
        shutil.rmtree(checkpoint)
    assert run_training(config, resume=True).metrics == full.metrics
    for checkpoint in sorted((tmp_path / "part" / "checkpoints").glob("step-*")) + pair_checkpoints[-1:]:
        shutil.rmtree(checkpoint)  # killed in phase 1's second epoch
    resumed = run_training(config, resume=True)
    assert resumed.metrics == full.metrics
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()


def test_phase_two_resumed_after_phase_one_s_last_checkpoint_matches_the_uninterrupted_run(
    sentiment_files, tiny_model_dir, tmp_path, monkeypatch
):
    """Without kept checkpoints phase 1's last one holds no model or optimizer state; phase 2 still resumes exactly."""
    from nlp_transfer.training.checkpoints import TRAINING_OVER_FILE
    from tests.test_training import killed_while_saving

    extra = {"transfer.contrastive_epochs": 2, "training.epochs": 2}
    full = run_training(contrastive_config(sentiment_files, tiny_model_dir, tmp_path / "full", **extra))
    config = contrastive_config(sentiment_files, tiny_model_dir, tmp_path / "part", **extra)
    killed_while_saving(config, monkeypatch)
    pair_checkpoints = sorted((tmp_path / "part" / "checkpoints" / "contrastive" / "checkpoints").glob("step-*"))
    assert (pair_checkpoints[-1] / TRAINING_OVER_FILE).is_file()
    assert not list(pair_checkpoints[-1].glob("optimizer*")) and not list(pair_checkpoints[-1].glob("model*"))
    for checkpoint in (tmp_path / "part" / "checkpoints").glob("step-*"):
        shutil.rmtree(checkpoint)  # killed before phase 2 checkpointed
    resumed = run_training(config, resume=True)
    assert resumed.metrics == full.metrics
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()


def spy_on_phase_three(monkeypatch, head_metric=None):
    """Record the weights phase 2 left (and optionally claim its validation score was ``head_metric``)."""
    seen = {}
    original = contrastive.ContrastiveFewShot.train_end_to_end

    def spy(self, run, inner, head_result):
        seen["after_head"] = {n: t.detach().clone() for n, t in inner.state_dict().items()}
        if head_metric is not None:
            head_result.best_metric = head_metric
        return original(self, run, inner, head_result)

    monkeypatch.setattr(contrastive.ContrastiveFewShot, "train_end_to_end", spy)
    return seen


END_TO_END = {"transfer.contrastive_end_to_end_epochs": 2, "transfer.contrastive_end_to_end_learning_rate": 1e-3}


def test_phase_three_trains_encoder_and_head_together_and_is_kept_when_validation_improves(
    sentiment_files, tiny_model_dir, tmp_path, monkeypatch
):
    seen = spy_on_phase_three(monkeypatch, head_metric=0.0)  # any validation accuracy beats 0: phase 3 is kept
    result = run_training(contrastive_config(sentiment_files, tiny_model_dir, tmp_path / "run", **END_TO_END))
    final = load_file(str(tmp_path / "run" / "model.safetensors"))
    after_head = seen["after_head"]
    moved = [n for n in after_head if n in final and not torch.equal(final[n], after_head[n])]
    assert any(n.startswith("classifier.") for n in moved)
    assert any(".encoder.layer.0." in n for n in moved) and any("word_embeddings" in n for n in moved)
    phase = result.info["phases"]["end_to_end"]
    assert phase["kept"] is True and phase["epochs"] == 2 and phase["learning_rate"] == 1e-3
    assert phase["steps"] == 2 * 25 and phase["head_metric"] == 0.0  # 400 rows in batches of 16, two epochs
    assert result.metrics["validation"]["accuracy"] == phase["best_metric"]


def test_phase_three_that_does_not_beat_the_fitted_head_leaves_phase_two_weights(
    sentiment_files, tiny_model_dir, tmp_path, monkeypatch
):
    seen = spy_on_phase_three(monkeypatch, head_metric=1.0)  # nothing beats a perfect head: a tie keeps phase 2
    result = run_training(contrastive_config(sentiment_files, tiny_model_dir, tmp_path / "run", **END_TO_END))
    final = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert result.info["phases"]["end_to_end"]["kept"] is False
    assert result.info["phases"]["end_to_end"]["steps"] == 2 * 25  # it trained, then was set aside
    assert all(torch.equal(final[n], t) for n, t in seen["after_head"].items() if n in final)


def test_a_contrastive_run_resumes_exactly_in_phase_three(sentiment_files, tiny_model_dir, tmp_path, monkeypatch):
    full = run_training(contrastive_config(sentiment_files, tiny_model_dir, tmp_path / "full", **END_TO_END))
    config = contrastive_config(
        sentiment_files, tiny_model_dir, tmp_path / "part", **END_TO_END, **{"training.keep_checkpoints": True}
    )
    run_training(config)
    checkpoints = sorted((tmp_path / "part" / "checkpoints" / "end_to_end" / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 2
    shutil.rmtree(checkpoints[-1])  # killed in phase 3's second epoch
    resumed_from = []
    original = loop_module.resume_loop
    monkeypatch.setattr(loop_module, "resume_loop", lambda loop: resumed_from.append(loop.output_dir) or original(loop))
    resumed = run_training(config, resume=True)
    assert resumed_from[-1] == tmp_path / "part" / "checkpoints" / "end_to_end"  # phase 3 continued from its checkpoint
    assert resumed.metrics == full.metrics
    assert resumed.info["phases"]["end_to_end"] == full.info["phases"]["end_to_end"] | {
        "train_seconds": resumed.info["phases"]["end_to_end"]["train_seconds"]
    }
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()


# ----------------------------------------------------------------------------------------- the real model, few shots


def sst2_rows(name):
    with shared_dataset("sst2", name).open(encoding="utf-8", newline="") as handle:
        return [(r["sentence"].strip(), r["label"]) for r in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def write(path, rows):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def few_shot_run(tmp_path_factory):
    """The default model, 16 SST-2 examples per class (validation: 16 more per class), scored on 300 dev sentences.

    Phase 1 draws 12 pairs per example (384 pairs, 24 steps) rather than the default 20 (640, 40 steps): measured test
    accuracy 0.67 with either (seed 42), 0.647 with 12 at seed 7; 8 pairs per example gave 0.653 (seed 42).
    """
    folder = tmp_path_factory.mktemp("few-shot")
    train = sst2_rows("train.tsv")
    by_class = {}
    for index, (_, label) in enumerate(train):
        by_class.setdefault(label, []).append(index)
    chosen = {label: random.Random(0).sample(indices, 32) for label, indices in sorted(by_class.items())}
    files = {
        "data.train_file": write(folder / "train.csv", [train[i] for c in chosen.values() for i in c[:16]]),
        "data.validation_file": write(folder / "validation.csv", [train[i] for c in chosen.values() for i in c[16:]]),
        "data.test_file": write(folder / "test.csv", sst2_rows("dev.tsv")[:300]),
    }
    overrides = [f"{k}={v}" for k, v in files.items()] + [
        f"output_dir={folder / 'run'}",
        "strategy=contrastive",
        "transfer.contrastive_pairs=12",
        "training.epochs=40",
        "training.learning_rate=1e-3",
        "training.max_length=64",
        "training.torch_threads=2",
    ]
    return run_training(load_config(None, overrides))


def test_few_shot_contrastive_run_beats_chance_on_held_out_sentences(few_shot_run):
    assert few_shot_run.info["examples"]["train"] == 32
    assert few_shot_run.metrics["test"]["accuracy"] > 0.62  # chance is 0.51 on these 300 dev sentences


def test_the_card_snippet_loads_the_run_without_nlp_transfer(few_shot_run, tmp_path):
    run_dir = few_shot_run.output_dir
    card = str(build_model_card(run_dir, repo_id="someone/few-shot"))
    snippet = re.search(r"```python\n(import torch\n.*?)```", card, re.S).group(1)
    assert "mean of the token states" in card and "pipeline(" not in snippet
    texts = ["a gorgeous, witty, seductive movie .", "the plot is nothing but boilerplate clichés .", "it 's fine ."]
    script = snippet.replace('"someone/few-shot"', repr(str(run_dir))).replace(
        'print(classify(["The room was spotless and the staff were lovely."]))', f"print(classify({texts!r}))"
    )
    script = "import sys\nsys.modules['nlp_transfer'] = None\n" + script  # the snippet must not need nlp-transfer
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    expected = [row["label"] for row in predict(run_dir, texts)]
    assert out.strip() == repr(expected)


def test_a_multilabel_supcon_run_learns_each_label(tmp_path, tiny_model_dir):
    """Rows with 'good', 'bad' or both: texts sharing any label are positives of each other in phase 1."""
    rows = good_bad_rows()  # every training row has a label (pairs need one)
    header = ("text", "labels")
    unlabelled = [("the parcel came on a tuesday", ""), ("it is a chair", "")]  # allowed in validation: a crash before
    files = {
        "train": write_csv(tmp_path / "train.csv", rows[:200], header=header),
        "validation": write_csv(tmp_path / "validation.csv", unlabelled + rows[200:250], header=header),
        "test": write_csv(tmp_path / "test.csv", rows[250:], header=header),
    }
    extra = {"task": "multilabel", "data.label_column": "labels", "transfer.contrastive_loss": "supcon", "training.epochs": 8}
    result = run_training(contrastive_config(files, tiny_model_dir, tmp_path / "run", **extra))
    # predicting both labels on every row scores micro-F1 0.77 here (good on 3/4 of the rows, bad on 1/2)
    assert result.metrics["test"]["f1_micro"] > 0.9
