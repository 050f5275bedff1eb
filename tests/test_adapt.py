"""nlp-transfer adapt: whole-word masking, the masked-LM model and its folder, learning, exact resume, bad input."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nlp_transfer.adapt.command import run_adapt
from tests.conftest import REPO, shared_dataset

CONFIG = "recipes/configs/adapt/minilm_tapt.yaml"
ROWS_PER_EPOCH = 17  # 270 training lines (300, 10 % held out), batch 16
LAST_STEP = 2 * ROWS_PER_EPOCH
WORDS = "the kettle boils water quickly and our toaster browns sourdough evenly every unbelievably cold morning".split()


def repetitive_corpus(path: Path, lines: int = 300) -> Path:
    """Lines that repeat one small vocabulary in one order with a few words left out: quick to learn."""
    rng = random.Random(0)
    texts = [" ".join(w for w in WORDS if rng.random() > 0.2) for _ in range(lines)]
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def adapt_args(model_dir: str, texts: Path, output_dir: Path, **extra: object) -> list[str]:
    """The recipe's config with the tiny model, the given texts and a short, checkpointed run."""
    values = {
        "model": model_dir,
        "data.train_file": texts,
        "output_dir": output_dir,
        "training.epochs": 2,
        "training.batch_size": 16,
        "training.learning_rate": 2e-3,
        "training.warmup_ratio": 0.0,
        "training.torch_threads": 1,
        "training.save_steps": 5,
        "training.save_total_limit": 20,
        "training.keep_checkpoints": "true",
        **extra,
    }
    return [CONFIG, *(f"{k}={v}" for k, v in values.items())]


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return repetitive_corpus(tmp_path_factory.mktemp("adapt-texts") / "texts.txt")


@pytest.fixture(scope="module")
def adapted(tiny_model_dir: str, texts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted adaptation run with every checkpoint kept."""
    output_dir = tmp_path_factory.mktemp("adapt") / "run"
    assert run_adapt(adapt_args(tiny_model_dir, texts, output_dir)) == 0
    return output_dir


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


# ----------------------------------------------------------------------------- masking


def masked_rows(tokenizer, texts: list[str], epoch: int = 0):
    """Each text as a training row, masked by the collator for ``epoch``: (rows, batch)."""
    from nlp_transfer.adapt.masking import check_maskable
    from nlp_transfer.adapt.task import MaskedLMTask

    task = MaskedLMTask(tokenizer, check_maskable(tokenizer, "tiny"), seed=3, max_length=64)
    rows = task.preprocess(texts, "train").to_list()
    collator = task.collator()
    collator.epoch = epoch
    return rows, collator(rows)


def test_whole_words_about_15_percent_all_pieces_together_specials_never(tokenizer):
    rng = random.Random(1)
    vocabulary = ["unbelievably", "sourdough", "kitchenaid", "whisk", "the", "dishwasher", "non-stick", "pans", "it's"]
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(4, 12))) for _ in range(1500)]
    rows, batch = masked_rows(tokenizer, texts)
    words_total = words_masked = mask_tokens = masked_positions = 0
    multi_piece_masked = 0
    for i, row in enumerate(rows):
        word_ids = np.array(row["word_ids"])
        labels = batch["labels"][i, : len(word_ids)].numpy()
        inputs = batch["input_ids"][i, : len(word_ids)].numpy()
        special = word_ids == -1
        assert (labels[special] == -100).all() and (inputs[special] == np.array(row["input_ids"])[special]).all()
        for word in np.unique(word_ids[~special]):
            pieces = labels[word_ids == word] != -100
            assert pieces.all() or not pieces.any(), f"row {i}: word {word} partly masked"
            words_total += 1
            words_masked += int(pieces.all())
            multi_piece_masked += int(pieces.all() and len(pieces) > 1)
        masked_positions += int((labels != -100).sum())
        mask_tokens += int((inputs[labels != -100] == tokenizer.mask_token_id).sum())
    assert 0.14 < words_masked / words_total < 0.16
    assert multi_piece_masked > 100  # words of several pieces were masked, and always whole
    assert 0.77 < mask_tokens / masked_positions < 0.83  # the rest: random tokens or unchanged
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()  # padding is never a target


def test_wordpiece_words_are_the_fast_tokenizers_words(tokenizer):
    from nlp_transfer.adapt.masking import encode

    texts = ["Unbelievably, the KitchenAid's whisk isn't non-stick!", "tokenization of sourdough"]
    ours = encode(tokenizer, texts, 64, "wordpiece")["word_ids"]
    theirs = encode(tokenizer, texts, 64, "word_ids")["word_ids"]
    assert ours == theirs


def test_masks_change_every_epoch_and_repeat_for_the_same_epoch(tokenizer):
    texts = [" ".join(WORDS)] * 50
    _, first = masked_rows(tokenizer, texts, epoch=0)
    _, again = masked_rows(tokenizer, texts, epoch=0)
    _, second = masked_rows(tokenizer, texts, epoch=1)
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(first["labels"], again["labels"])
    assert not torch.equal(first["labels"], second["labels"])
    assert len({tuple(row.tolist()) for row in first["labels"]}) > 10  # rows of the same text get different masks
    assert torch.equal(first["targets"], first["labels"])


def test_several_files_of_several_formats_and_a_seeded_hold_out(tmp_path):
    from nlp_transfer.adapt.texts import read_texts
    from nlp_transfer.config import DataConfig

    lines = tmp_path / "notes.txt"
    lines.write_text("first note\n\n  second note  \n", encoding="utf-8")
    table = tmp_path / "reviews.tsv"
    table.write_text("review\tstars\ngreat pan\t5\n\t1\nslow kettle\t2\n", encoding="utf-8")
    tagged = tmp_path / "news.conll"
    tagged.write_text("Paris B-LOC\nis O\nbig O\n\nRain O\n", encoding="utf-8")
    data = DataConfig(train_file=f"{lines}, {table},{tagged}", text_column="review", validation_split=0.4)
    found = read_texts(data, seed=7)
    everything = ["first note", "second note", "great pan", "slow kettle", "Paris is big", "Rain"]
    assert sorted(found.train + found.heldout) == sorted(everything) and len(found.heldout) == 2
    assert found.formats == {str(lines): "lines", str(table): "tsv", str(tagged): "conll"}
    assert read_texts(data, seed=7).heldout == found.heldout  # the same seed holds out the same texts


# ----------------------------------------------------------------------------- the adapted model


def test_the_adapted_folder_loads_as_a_plain_automodel_with_new_weights(adapted, tiny_model_dir):
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(adapted, output_loading_info=True)
    start = AutoModel.from_pretrained(tiny_model_dir)
    assert not info["missing_keys"]  # the whole encoder, the original pooler included, comes from the folder
    assert set(info["unexpected_keys"]) <= {k for k in info["unexpected_keys"] if k.startswith("cls.")}
    ours, theirs = model.state_dict(), start.state_dict()
    changed = [k for k in theirs if not k.startswith("pooler.") and not torch.equal(ours[k], theirs[k])]
    assert len(changed) > 0.9 * len([k for k in theirs if not k.startswith("pooler.")])
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k.startswith("pooler."))  # no random pooler
    assert (adapted / "tokenizer.json").is_file() and (adapted / "model.safetensors").is_file()
    assert not list(adapted.glob("*.bin"))


def test_the_decoder_is_tied_to_the_word_embeddings(adapted, tiny_model_dir):
    from transformers import AutoModelForMaskedLM

    from nlp_transfer.adapt.model import build_masked_lm, tied

    built, new_head = build_masked_lm(tiny_model_dir, "tiny", allow_pickle=False, trust_remote_code=False)
    assert tied(built) and all(key.startswith("cls.predictions.") for key in new_head)
    assert tied(AutoModelForMaskedLM.from_pretrained(adapted))
    stored = load_file(str(adapted / "model.safetensors"))
    assert "bert.embeddings.word_embeddings.weight" in stored and "cls.predictions.decoder.weight" not in stored


def test_held_out_masked_lm_loss_falls_and_is_reported(adapted):
    metrics = json.loads((adapted / "metrics.json").read_text())
    info = json.loads((adapted / "run_info.json").read_text())
    before, after = metrics["before"]["loss"], metrics["after"]["loss"]
    assert after < before - 1.0, (before, after)
    assert info["masked_lm"]["heldout_before"]["loss"] == before and info["masked_lm"]["heldout_after"]["loss"] == after
    assert info["examples"] == {"train": 270, "validation": 30} and info["task"] == "masked-lm"
    assert info["masked_lm"]["whole_words"] == "wordpiece" and info["global_steps"] == LAST_STEP


def test_resume_from_a_mid_epoch_checkpoint_is_exact(adapted, tiny_model_dir, texts, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(adapted, cut)
    for name in ("model.safetensors", "metrics.json", "run_info.json", "config.json"):
        (cut / name).unlink()
    for checkpoint in (cut / "checkpoints").glob("step-*"):
        if int(checkpoint.name.removeprefix("step-")) > 25:  # 8 batches into epoch 2
            shutil.rmtree(checkpoint)
    assert run_adapt([*adapt_args(tiny_model_dir, texts, cut), "--resume"]) == 0
    final = f"checkpoints/step-{LAST_STEP:08d}/model.safetensors"
    assert (cut / final).read_bytes() == (adapted / final).read_bytes(), "the final weights differ"
    assert (cut / "model.safetensors").read_bytes() == (adapted / "model.safetensors").read_bytes()
    assert json.loads((cut / "metrics.json").read_text()) == json.loads((adapted / "metrics.json").read_text())


def test_the_shipped_config_runs_on_a_slice_of_its_own_data(tiny_model_dir, tmp_path, monkeypatch):
    """What tests/test_cli.py does for the train configs: the config as written, the tiny model, 64 reviews."""
    monkeypatch.chdir(REPO)  # the config names its data relative to the repository
    shared_dataset("amazon_multidomain", "kitchen", "train.tsv")
    out = tmp_path / "run"
    args = [CONFIG, f"model={tiny_model_dir}", f"output_dir={out}", "data.max_train_samples=64", "training.epochs=1"]
    assert run_adapt([*args, "training.torch_threads=1"]) == 0
    info = json.loads((out / "run_info.json").read_text())
    assert info["examples"] == {"train": 58, "validation": 6} and info["truncated_texts"]["train"] > 0
    assert {"before", "after"} <= set(json.loads((out / "metrics.json").read_text()))
    assert not (out / "checkpoints").exists()


# ----------------------------------------------------------------------------- bad input


def refused(capsys, args: list[str], message: str) -> None:
    """``args`` exit with code 2 and one line naming ``message``."""
    assert run_adapt(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_bad_texts_exit_2_with_one_line_and_nothing_written(capsys, tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    binary = tmp_path / "texts.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    table = tmp_path / "reviews.csv"
    table.write_text("review,stars\ngreat pan,5\n", encoding="utf-8")
    out = tmp_path / "out"
    refused(capsys, adapt_args(tiny_model_dir, empty, out), f"{empty}: the file is empty")
    refused(capsys, adapt_args(tiny_model_dir, binary, out), f"{binary}: looks like a binary file")
    refused(capsys, adapt_args(tiny_model_dir, table, out), f"{table}:2: no column 'sentence' (columns: review, stars)")
    refused(
        capsys,
        adapt_args(tiny_model_dir, f"{table},{tmp_path / 'nope.txt'}", out, **{"data.text_column": "review"}),
        "nope.txt: no such file",
    )
    tokens = tmp_path / "tokens.jsonl"  # a list where the text goes was trained on as "['great', 'pan']"
    tokens.write_text('{"sentence": ["great", "pan"]}\n', encoding="utf-8")
    refused(capsys, adapt_args(tiny_model_dir, tokens, out), f"{tokens}:1: the text is a JSON list, not a string")
    assert not out.exists()


def test_a_tokenizer_without_mask_token_is_refused(capsys, tiny_model_dir, texts, tmp_path):
    from transformers import AutoTokenizer

    folder = tmp_path / "no-mask"
    shutil.copytree(tiny_model_dir, folder)
    AutoTokenizer.from_pretrained(tiny_model_dir, mask_token=None).save_pretrained(folder)
    out = tmp_path / "out"
    refused(capsys, adapt_args(str(folder), texts, out), "its tokenizer has no mask token")
    assert not out.exists()


def test_an_output_dir_of_another_run_is_refused(capsys, adapted, tiny_model_dir, texts, tmp_path):
    other = tmp_path / "train-run"
    other.mkdir()
    (other / "config.yaml").write_text("task: classification\n", encoding="utf-8")
    refused(capsys, adapt_args(tiny_model_dir, texts, other), "output directory exists and is not empty")
    refused(capsys, [*adapt_args(tiny_model_dir, texts, other), "--resume"], "not an adapt run")
    assert sorted(p.name for p in other.iterdir()) == ["config.yaml"]


def test_a_config_error_answers_before_torch_loads():
    probe = (
        "import sys\n"
        "from nlp_transfer.cli import main\n"
        f"code = main(['adapt', '{CONFIG}', 'training.epoch=2'])\n"
        "print(code, sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "[]"], done.stdout + done.stderr
    assert "unknown config key 'training.epoch'" in done.stderr


def test_the_hub_card_of_an_adapted_encoder_says_fill_mask_and_how_to_fine_tune_it(adapted):
    from nlp_transfer.hub import build_model_card, check_card_metadata, collect_files, resolve_mode

    card = build_model_card(adapted, repo_id="alice/kitchen-minilm", license="apache-2.0")
    check_card_metadata(card)
    text = str(card)
    assert "pipeline_tag: fill-mask" in text and "nlp-transfer adapt" in text
    assert 'pipeline("fill-mask", model="alice/kitchen-minilm")' in text and "model: alice/kitchen-minilm" in text
    assert "## Labels" not in text and "`transfer." not in text  # no labels, and adapt ignores the transfer section
    assert "### before" in text and "### after" in text  # held-out masked-LM figures before and after
    files = collect_files(adapted, resolve_mode(adapted, "auto"))
    assert "model.safetensors" in files and "adapt.json" not in files
    # it said `nlp-transfer train` trains it again (that refuses its config), named labels, and a selection metric
    assert "`nlp-transfer adapt config.yaml` trains the run again" in text and "labels above" not in text
    assert "metric_for_best_model" not in text
    published = files["run_info.json"].decode() + files["config.yaml"].decode() + text
    assert str(adapted.parent.parent) not in published and str(REPO) not in published  # no local path, keys included


def test_a_list_of_files_is_published_by_their_names():
    from nlp_transfer.hub.files import public_name

    assert public_name("/home/me/fmt/a.tsv,/home/me/texts.txt") == "a.tsv,texts.txt"  # was "texts.txt" alone
    assert public_name("data/fmt/a.tsv,data/fmt/b.txt") == "a.tsv,b.txt" and public_name("a.tsv,b.txt") == "a.tsv,b.txt"
    # one path with a comma in it is one path (regression, same day: "exp,v2/train.csv" leaked a folder name)
    assert public_name("/home/me/exp,v2/train.csv") == "train.csv" and public_name("reviews,2024.csv") == "reviews,2024.csv"


def test_a_new_masked_lm_head_is_announced_with_what_it_cost(tiny_model_dir):
    """The run's description warns when the head is new (the default model's case), and only then."""
    from types import SimpleNamespace

    from nlp_transfer.adapt.run import NEW_HEAD_NOTE, describe

    model = torch.nn.Linear(2, 2)
    prepared = SimpleNamespace(
        model_name="tiny",
        model_source="local",
        model_path=tiny_model_dir,
        train=[0] * 9,
        heldout=[0],
        texts=SimpleNamespace(files=["texts.txt"]),
        task=SimpleNamespace(words="wordpiece"),
    )
    before = {"loss": 10.8, "perplexity": 49000.0}
    fresh = describe(prepared, model, ["cls.predictions.bias"], before)
    kept = describe(prepared, model, [], before)
    assert fresh.endswith(NEW_HEAD_NOTE) and "masked-LM head: new (1 tensors initialised)" in fresh
    assert NEW_HEAD_NOTE not in kept and "masked-LM head: from the checkpoint" in kept
    assert "lowered downstream accuracy" in NEW_HEAD_NOTE and "docs/adapt.md" in NEW_HEAD_NOTE


def test_strategy_frozen_trains_the_head_alone_and_a_later_run_starts_from_it(tiny_model_dir, texts, tmp_path):
    """strategy=frozen: the encoder (and the decoder tied to its embeddings) stays bit for bit, the new head learns,
    and the folder it writes is a model whose head the next adaptation loads instead of initialising one."""
    from transformers import AutoModel, AutoModelForMaskedLM

    from nlp_transfer.adapt.model import build_masked_lm

    head_run = tmp_path / "head"
    assert run_adapt(adapt_args(tiny_model_dir, texts, head_run, strategy="frozen", **{"training.epochs": 1})) == 0
    start, after = AutoModel.from_pretrained(tiny_model_dir).state_dict(), AutoModel.from_pretrained(head_run).state_dict()
    assert all(torch.equal(start[k], after[k]) for k in start)  # the whole encoder, embeddings included
    built, new_head = build_masked_lm(tiny_model_dir, "tiny", allow_pickle=False, trust_remote_code=False)
    trained = AutoModelForMaskedLM.from_pretrained(head_run).state_dict()
    initial = built.state_dict()
    assert new_head and all(not torch.equal(initial[k], trained[k]) for k in new_head if k.endswith(".weight"))
    metrics = json.loads((head_run / "metrics.json").read_text())
    info = json.loads((head_run / "run_info.json").read_text())
    assert metrics["after"]["loss"] < metrics["before"]["loss"] - 0.2  # the head alone learns (10.4 -> 10.0 here)
    assert info["strategy"] == "frozen" and info["trainable_parameters"] < info["total_parameters"] / 2
    _, second_new = build_masked_lm(str(head_run), "head", allow_pickle=False, trust_remote_code=False)
    assert second_new == []  # the whole-model run that follows starts from the trained head


def test_an_adapt_run_as_shift_source_reads_its_texts_and_embeds_with_the_adapted_encoder(adapted, tmp_path, capsys):
    """`nlp-transfer shift ADAPT_RUN TARGET`: the run's training lines, its encoder, and no label shift (no task head)."""
    from nlp_transfer.cli import main

    target = tmp_path / "target.txt"
    target.write_text("\n".join(f"a question about topic {i} and its many answers" for i in range(40)) + "\n")
    code = main(["shift", str(adapted), str(target), "--json", "--output", str(tmp_path / "report")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["model"] == str(adapted) and report["label_shift"] is None
    assert report["texts"]["source"] == 270  # the training lines: 300 less the 10 % held out
    assert report["domain_classifier_accuracy"] > 0.9  # a kettle corpus against questions: far apart


def test_predict_on_an_adapted_encoder_says_it_has_no_task_head(adapted, capsys):
    """It loaded as a classifier with a random head and printed LABEL_0 / LABEL_1 with exit 0."""
    from nlp_transfer.cli import main

    for args in (["predict", str(adapted), "a kettle"], ["check", str(adapted)]):
        code = main(args)
        err = capsys.readouterr().err
        assert code == 2 and "an adapted encoder (nlp-transfer adapt) with no task head" in err and err.count("\n") == 1, err


def test_overwrite_gives_the_earlier_run_back_when_adaptation_fails_and_replaces_it_when_it_finishes(
    adapted, tiny_model_dir, texts, tmp_path, capsys, monkeypatch
):
    """--overwrite moves an earlier adapt run aside only while the new one trains; a failure before a checkpoint restores it."""
    from nlp_transfer.errors import UserError
    from nlp_transfer.output_dir import replaced_path

    run = tmp_path / "run"
    shutil.copytree(adapted, run, ignore=shutil.ignore_patterns("checkpoints"))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    args = [*adapt_args(tiny_model_dir, texts, run, **{"training.epochs": 1, "training.save_steps": "null"}), "--overwrite"]

    def planted(**kwargs):
        raise UserError("planted failure")

    with monkeypatch.context() as patch:
        patch.setattr("nlp_transfer.adapt.run.fit", planted)
        assert run_adapt(args) == 2
    assert "planted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before and not replaced_path(run).exists()
    assert run_adapt(args) == 0
    assert (run / "model.safetensors").read_bytes() != before["model.safetensors"] and not replaced_path(run).exists()


def test_special_tokens_written_in_a_text_belong_to_no_word_and_are_never_masked(tokenizer):
    """ "[MASK]", "[SEP]" or "[UNK]" in a text are special tokens all the same: masking them taught the head to predict
    its own mask token (95 such positions masked over three epochs of a helper's 210 texts)."""
    from nlp_transfer.adapt.masking import NO_WORD, encode

    ids_and_words = encode(tokenizer, ["I love [MASK] and [SEP] and [UNK] tokens ok"], 64, "wordpiece")
    ids, words = ids_and_words["input_ids"][0], ids_and_words["word_ids"][0]
    specials = set(tokenizer.all_special_ids)
    assert sum(token in specials for token in ids) == 5  # [CLS] and [SEP] added, three written in the text
    assert all(word == NO_WORD for token, word in zip(ids, words, strict=True) if token in specials)
    assert sorted({w for w in words if w != NO_WORD}) == list(range(6))  # I love and and tokens ok


def test_a_list_of_files_is_fingerprinted_so_a_resume_sees_a_change_in_any(tmp_path):
    """adapt's data.train_file=a.txt,b.txt was recorded as one name without a hash: --resume trained on an edited b."""
    from nlp_transfer.run_info import data_provenance

    (tmp_path / "a.txt").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("three\n", encoding="utf-8")
    listed = f"{tmp_path / 'a.txt'},{tmp_path / 'b.txt'}"
    before = data_provenance({"train_file": listed})["train_file"]
    assert before["bytes"] == 14 and len(before["sha256"]) == 64
    (tmp_path / "b.txt").write_text("THREE\n", encoding="utf-8")
    assert data_provenance({"train_file": listed})["train_file"]["sha256"] != before["sha256"]


def test_run_adaptation_from_python_checks_the_config_as_a_file_is_checked(tiny_model_dir, texts, tmp_path):
    """Planted fault: a RunConfig built in Python with training.batch_size=0 reached the loop (ZeroDivisionError) and
    epochs=0 wrote an "adapted" model that never trained; run_training already checked such a config."""
    from nlp_transfer import RunConfig, run_adaptation
    from nlp_transfer.config import DataConfig, TrainingConfig
    from nlp_transfer.errors import ConfigError

    for bad, message in [({"batch_size": 0}, "batch_size must be at least 1"), ({"epochs": 0}, "epochs must be at least 1")]:
        config = RunConfig(
            model=tiny_model_dir,
            output_dir=str(tmp_path / "out"),
            data=DataConfig(train_file=str(texts)),
            training=TrainingConfig(torch_threads=1, **bad),
        )
        with pytest.raises(ConfigError, match=message):
            run_adaptation(config)
    assert not (tmp_path / "out").exists()


def test_long_text_windows_cut_a_long_text_into_windows_instead_of_truncating_it(tiny_model_dir, tmp_path):
    """training.long_text=windows was ignored by adapt (every text cut at max_length, silently), though the
    max_length refusal names it: a long text becomes windows of max_length tokens that together hold all of it."""
    from transformers import AutoTokenizer

    from nlp_transfer.adapt.task import MaskedLMTask

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    long_text, short = " ".join(WORDS * 6), "the kettle boils"
    pieces = len(tokenizer(long_text, add_special_tokens=False)["input_ids"])
    task = MaskedLMTask(tokenizer, "wordpiece", 0, max_length=32, window_stride=0)
    rows = task.preprocess([long_text, short], "train")
    windows = [ids for ids in rows["input_ids"] if ids != tokenizer(short)["input_ids"]]
    assert len(windows) == -(-pieces // 30) and all(len(ids) <= 32 for ids in windows)
    assert sum(len(ids) - 2 for ids in windows) == pieces  # every token once, none cut off
    assert task.truncated == {"train": 0, "train_windows": len(rows)} and rows["row"] == list(range(len(rows)))
    cut = MaskedLMTask(tokenizer, "wordpiece", 0, max_length=32)
    assert len(cut.preprocess([long_text, short], "train")) == 2 and cut.truncated == {"train": 1}

    texts = tmp_path / "long.txt"
    texts.write_text("\n".join([long_text] * 20 + [short] * 20) + "\n", encoding="utf-8")
    extra = {"training.long_text": "windows", "training.max_length": 32, "training.epochs": 1}
    assert run_adapt(adapt_args(tiny_model_dir, texts, tmp_path / "run", **extra)) == 0
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info["truncated_texts"]["train"] == 0 and info["truncated_texts"]["train_windows"] > 36
    # adapt reads no task or strategy of a config: the NER and few-shot recipes' own limits on windows do not apply
    for recipe in ("recipes/configs/ner/minilm_full.yaml", "recipes/configs/sentiment/minilm_few_shot.yaml"):
        args = adapt_args(tiny_model_dir, texts, tmp_path / recipe.split("/")[-1], **extra, **{"data.format": "null"})
        assert run_adapt([str(REPO / recipe), *args[1:], "training.save_steps=null"]) == 0, recipe
