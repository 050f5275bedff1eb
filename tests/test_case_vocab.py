"""transfer.case_vocab: a cased vocabulary for an uncased model, trained factored, saved plain."""

import copy
import random

import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from nlp_transfer.config import load_config
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.transfer.case_vocab import (
    ALL_CAPITALS,
    CAPITALISED,
    LOWER,
    CaseAwareEmbedding,
    add_case_embeddings,
    case_aware_tokenizer,
    materialize_case_embeddings,
)
from tests.conftest import tiny_overrides

WORDS = ["Angela", "Merkel", "met", "EU", "leaders", "in", "Brussels", "with", "Zoë", "and", "NASA", "'s", "3rd", "UEFA-backed"]


@pytest.fixture(scope="module")
def uncased(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_cased_ids_map_to_the_uncased_pieces_they_grow_from(uncased):
    cased, case_map = case_aware_tokenizer(uncased)
    old = uncased.get_vocab()
    new = cased.get_vocab()
    assert len(case_map) == len(new) > 2 * len(old)  # most pieces gain a capitalised and an all-capitals form
    assert all(new[piece] == index for piece, index in old.items())  # old ids keep their meaning
    for piece, case in (("Paris", CAPITALISED), ("PARIS", ALL_CAPITALS), ("##Don", CAPITALISED), ("paris", LOWER)):
        index = new[piece]
        assert case_map.base_ids[index] == old[piece.lower()] and case_map.case_ids[index] == case
    for piece in (",", "1990", "##9"):  # nothing to capitalise: no new form
        assert case_map.base_ids.count(old[piece]) == 1
    assert [cased.convert_ids_to_tokens(i) for i, b in enumerate(case_map.base_ids) if b == old["3rd"]] == ["3rd", "3RD"]
    assert all(case == LOWER for case in case_map.case_ids[: len(old)])


def test_words_split_into_the_same_pieces_only_the_ids_say_how_they_were_written(uncased):
    cased, case_map = case_aware_tokenizer(uncased)
    plain = uncased(WORDS, is_split_into_words=True)
    read = cased(WORDS, is_split_into_words=True)
    assert read.word_ids() == plain.word_ids()
    assert [case_map.base_ids[i] for i in read["input_ids"]] == plain["input_ids"]
    pieces = cased.convert_ids_to_tokens(read["input_ids"])
    assert {"Angela", "EU", "NASA", "Brussels", "Zoe"} <= set(pieces)  # accents are still stripped
    assert [case_map.case_ids[cased.convert_tokens_to_ids(p)] for p in ("met", "Angela", "NASA")] == [
        LOWER,
        CAPITALISED,
        ALL_CAPITALS,
    ]
    # a capital inside a word starts a capitalised continuation piece (the split may then differ)
    pieces = cased.convert_ids_to_tokens(cased("McDonald", add_special_tokens=False)["input_ids"])
    assert pieces[0] == "Mc" and any(p.startswith("##D") for p in pieces) and "[UNK]" not in pieces


def test_a_cased_tokenizer_is_refused(uncased, tmp_path):
    cased, _ = case_aware_tokenizer(uncased)
    cased.save_pretrained(tmp_path)
    with pytest.raises(UserError, match="already cased"):
        case_aware_tokenizer(AutoTokenizer.from_pretrained(tmp_path))


def test_the_model_starts_as_the_uncased_one_and_saves_as_a_plain_embedding(tiny_model_dir, uncased, tmp_path):
    cased, case_map = case_aware_tokenizer(uncased)
    original = AutoModelForTokenClassification.from_pretrained(tiny_model_dir, num_labels=3).eval()
    model = add_case_embeddings(copy.deepcopy(original), case_map)
    assert isinstance(model.get_input_embeddings(), CaseAwareEmbedding)
    text = " ".join(WORDS)
    with torch.no_grad():
        before = original(**uncased(text, return_tensors="pt")).logits
        factored = model(**cased(text, return_tensors="pt")).logits
    torch.testing.assert_close(factored, before)  # zero case vectors: exactly the uncased model

    with torch.no_grad():
        model.get_input_embeddings().case.weight.normal_()
        trained = model(**cased(text, return_tensors="pt")).logits
    assert not torch.allclose(trained, before)
    factored_state = {k: v.clone() for k, v in model.state_dict().items()}
    gathered = materialize_case_embeddings(model, factored_state)
    embedding = model.get_input_embeddings()
    assert type(embedding) is torch.nn.Embedding and embedding.num_embeddings == len(case_map)
    assert set(gathered) == set(model.state_dict())
    torch.testing.assert_close(gathered["bert.embeddings.word_embeddings.weight"], embedding.weight)
    with torch.no_grad():
        torch.testing.assert_close(model(**cased(text, return_tensors="pt")).logits, trained)

    model.save_pretrained(tmp_path)
    cased.save_pretrained(tmp_path)
    reloaded = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**AutoTokenizer.from_pretrained(tmp_path)(text, return_tensors="pt")).logits, trained)


def test_case_vocab_is_refused_where_the_embeddings_do_not_train(tmp_path):
    base = [f"output_dir={tmp_path}", "data.train_file=x.conll", "task=ner", "transfer.case_vocab=true"]
    for strategy in ("frozen", "freeze_layers", "lora"):
        with pytest.raises(ConfigError, match=f"strategy={strategy} freezes them"):
            load_config(None, [*base, f"strategy={strategy}"])
    with pytest.raises(ConfigError, match="for task=ner"):
        load_config(None, [*base[:2], "task=classification", "transfer.case_vocab=true"])


def _capitals_only_sentences(rng, entity_words, n):
    """Sentences whose only entity cue is a capital letter: the same words also appear lowercase, as O."""
    filler = ["we", "saw", "near", "the", "old", "a", "by", "then", "garden", "road"]
    sentences = []
    for _ in range(n):
        words, tags = [], []
        for word in rng.sample(filler, 4) + rng.sample(entity_words, 2):
            capital = word in entity_words and rng.random() < 0.5
            words.append(word.capitalize() if capital else word)
            tags.append("B-PER" if capital else "O")
        order = list(range(len(words)))
        rng.shuffle(order)
        sentences.append("\n".join(f"{words[i]} {tags[i]}" for i in order))
    return "\n\n".join(sentences) + "\n"


def test_the_model_learns_capitals_and_carries_them_to_words_it_never_saw_capitalised(tiny_model_dir, tmp_path):
    """Names that are also common words (Rose/rose): only the capital tells them apart.

    Validation uses other such words than training, so a learned per-id embedding of "Rose" cannot help:
    only the shared case vector can.
    """
    from transformers import pipeline

    from nlp_transfer.pipeline import run_training

    rng = random.Random(0)
    train_words = ["rose", "bush", "grant", "hope", "joy", "mark", "bill", "frank", "dean", "rich"]
    held_out = ["faith", "iris", "ivy", "pearl", "ruby", "violet", "jack", "penny"]
    (tmp_path / "train.conll").write_text(_capitals_only_sentences(rng, train_words, 400), encoding="utf-8")
    (tmp_path / "val.conll").write_text(_capitals_only_sentences(rng, held_out, 80), encoding="utf-8")
    scores = {}
    for case_vocab in (False, True):
        config = load_config(
            None,
            tiny_overrides(
                tiny_model_dir,
                tmp_path / f"run-{case_vocab}",
                **{
                    "task": "ner",
                    "data.train_file": tmp_path / "train.conll",
                    "data.validation_file": tmp_path / "val.conll",
                    "training.epochs": 6,
                    "training.learning_rate": 3e-3,
                    "transfer.case_vocab": case_vocab,
                },
            ),
        )
        scores[case_vocab] = run_training(config).metrics["validation"]["f1"]
    # uncased, "Iris" and "iris" are one input: half the occurrences are names, F1 stays near chance (~0.5)
    assert scores[False] < 0.7
    assert scores[True] >= 0.9, scores

    tagger = pipeline("token-classification", model=str(tmp_path / "run-True"), aggregation_strategy="first")
    found = [(e["word"], e["entity_group"]) for e in tagger("then we saw Violet near the violet garden")]
    assert found == [("Violet", "PER")]


def test_a_case_vocab_run_resumes_exactly_from_its_factored_checkpoint(tiny_model_dir, tmp_path):
    """Checkpoints hold the factored embedding (pieces + case vectors); the resumed run saves the same plain model."""
    import shutil

    from nlp_transfer.pipeline import run_training

    rng = random.Random(1)
    (tmp_path / "train.conll").write_text(_capitals_only_sentences(rng, ["rose", "bush", "grant", "hope"], 96), encoding="utf-8")
    (tmp_path / "val.conll").write_text(_capitals_only_sentences(rng, ["iris", "ivy"], 16), encoding="utf-8")

    def config(name):
        overrides = {
            "task": "ner",
            "data.train_file": tmp_path / "train.conll",
            "data.validation_file": tmp_path / "val.conll",
            "training.epochs": 2,
            "training.keep_checkpoints": True,
            "transfer.case_vocab": True,
        }
        return load_config(None, tiny_overrides(tiny_model_dir, tmp_path / name, **overrides))

    full = run_training(config("full"))
    part = config("part")
    run_training(part)
    checkpoints = sorted((tmp_path / "part" / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 2
    shutil.rmtree(checkpoints[-1])  # as if killed during epoch 2
    resumed = run_training(part, resume=True)
    assert resumed.metrics == full.metrics
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()
