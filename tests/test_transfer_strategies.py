"""Transfer strategies beyond full/frozen: freeze_layers, layer-wise LR decay, gradual unfreezing, LoRA/DoRA/IA3."""

import json
import shutil

import pytest
import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForSequenceClassification

from nlp_transfer.config import TransferConfig, load_config
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.pipeline import run_training
from nlp_transfer.tasks import build_classification_task
from nlp_transfer.transfer import (
    STRATEGIES,
    apply_strategy,
    count_parameters,
    find_encoder_parts,
    prepare_model,
    save_adapter_model,
)
from nlp_transfer.transfer.full import FullFineTuning
from nlp_transfer.transfer.gradual_unfreezing import GradualUnfreezing, UnfreezeByEpoch, UnfreezeBySteps, unfrozen_blocks
from tests.conftest import tiny_overrides

LR = 1e-3
EMBEDDINGS = "bert.embeddings."
LAYER0 = "bert.encoder.layer.0."
LAYER1 = "bert.encoder.layer.1."
HEAD = ("bert.pooler.", "classifier.")


@pytest.fixture()
def task(tiny_model_dir):
    return build_classification_task(model=tiny_model_dir, labels=["negative", "positive"])


def fixed_batch(task):
    batch = task.tokenizer(["a great film", "an awful film", "lovely", "dreadful service"], padding=True, return_tensors="pt")
    return batch, torch.tensor([1, 0, 1, 0])


def train_steps(model, optimizer, task, steps=3):
    """A few optimizer steps on a fixed batch; returns the parameters before them."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch, labels = fixed_batch(task)
    model.train()
    for _ in range(steps):
        task.loss(model(**batch).logits, labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return before


def changed(model, before):
    """Names of the parameters that moved (ignoring embedding rows the batch never touches)."""
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


def block_of(name):
    if name.startswith(EMBEDDINGS):
        return "embeddings"
    if name.startswith(LAYER0):
        return "layer.0"
    if name.startswith(LAYER1):
        return "layer.1"
    assert name.startswith(HEAD), name
    return "head"


def lr_by_name(groups):
    return {n: g["lr"] for g in groups for n in g["names"]}


# --------------------------------------------------------------------------- layer-wise LR decay


def test_layer_lr_decay_exact_rates_for_full(task):
    model = task.build_model()
    groups = apply_strategy(model, "full", learning_rate=LR, weight_decay=0.01, options=TransferConfig(layer_lr_decay=0.5))
    expected = {"head": LR, "layer.1": LR * 0.5, "layer.0": LR * 0.25, "embeddings": LR * 0.125}
    rates = lr_by_name(groups)
    assert sorted(rates) == sorted(n for n, _ in model.named_parameters())  # every parameter exactly once
    for name, lr in rates.items():
        assert lr == pytest.approx(expected[block_of(name)], rel=1e-12), name
    # weight decay still only on weights, never on biases / LayerNorm
    for group in groups:
        assert group["weight_decay"] == (0.0 if all(n.endswith(("bias", "LayerNorm.weight")) for n in group["names"]) else 0.01)
    # the optimizer keeps each group's rate (the scheduler scales them all by the same factor)
    optimizer = torch.optim.AdamW(groups)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == sorted(expected.values())


def test_a_run_records_its_layer_wise_rates_in_run_info_and_tensorboard(sentiment_files, tiny_model_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "llrd"
    values = {"transfer.layer_lr_decay": 0.5, "training.learning_rate": LR, "training.logging_steps": 1}
    info = run_training(run_config(sentiment_files, tiny_model_dir, out, strategy="full", **values)).info
    expected = {"head": LR, "layer.1": LR * 0.5, "layer.0": LR * 0.25, "embeddings": LR * 0.125}
    assert info["learning_rates"] == pytest.approx(expected, rel=1e-12)
    events = EventAccumulator(str(next((out / "logs").rglob("events.out.tfevents*")).parent))
    events.Reload()
    first = {tag.rpartition("/")[2]: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"] if "learning_rate/" in tag}
    assert sorted(first) == sorted(expected)
    for block, peak in expected.items():  # each block's scheduled rate keeps its share of the head's
        assert first[block] == pytest.approx(first["head"] * peak / LR, rel=1e-5)
    # one rate for every group: run_info says so once, and TensorBoard keeps its single curve
    plain = run_training(
        run_config(
            sentiment_files, tiny_model_dir, tmp_path / "plain", strategy="full", **values | {"transfer.layer_lr_decay": 1}
        )
    ).info
    assert plain["learning_rates"] == {"all": LR}
    events = EventAccumulator(str(next((tmp_path / "plain" / "logs").rglob("events.out.tfevents*")).parent))
    events.Reload()
    assert "train/learning_rate" in events.Tags()["scalars"]
    assert not [tag for tag in events.Tags()["scalars"] if "learning_rate/" in tag]


def test_no_decay_is_the_same_as_before(task):
    model = task.build_model()
    groups = apply_strategy(model, "full", learning_rate=LR, weight_decay=0.01, options=TransferConfig(layer_lr_decay=1.0))
    assert {g["lr"] for g in groups} == {LR}
    assert len(groups) == 2
    with pytest.raises(ConfigError, match="layer_lr_decay"):
        apply_strategy(model, "full", learning_rate=LR, weight_decay=0.01, options=TransferConfig(layer_lr_decay=1.5))


# --------------------------------------------------------------------------- freeze_layers


def test_freeze_layers_freezes_embeddings_and_bottom_layers(task):
    model = task.build_model()
    options = TransferConfig(freeze_layers=1, layer_lr_decay=0.8)
    groups = apply_strategy(model, "freeze_layers", learning_rate=LR, weight_decay=0.0, options=options)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith((LAYER1, *HEAD))}
    assert {n for g in groups for n in g["names"]} == trainable
    rates = lr_by_name(groups)
    assert {block_of(n) for n in rates} == {"head", "layer.1"}
    assert all(rates[n] == pytest.approx(LR if block_of(n) == "head" else LR * 0.8) for n in rates)
    before = train_steps(model, torch.optim.AdamW(groups), task)
    moved = changed(model, before)
    for name, param in model.named_parameters():
        if name in trainable:
            assert name in moved, f"{name} did not train"
        else:
            assert torch.equal(param, before[name]) and param.grad is None, f"{name} changed although frozen"


def test_freeze_layers_bounds(task):
    model = task.build_model()
    apply_strategy(model, "freeze_layers", learning_rate=LR, weight_decay=0.0, options=TransferConfig(freeze_layers=2))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(find_encoder_parts(model).head)
    with pytest.raises(ConfigError, match=r"freeze_layers=3: this model has 2 encoder layers"):
        apply_strategy(model, "freeze_layers", learning_rate=LR, weight_decay=0.0, options=TransferConfig(freeze_layers=3))


# --------------------------------------------------------------------------- gradual unfreezing


def test_unfreezing_schedule():
    parts = find_encoder_parts_stub(layers=3)
    assert unfrozen_blocks(parts, 0, 1) == ["head"]
    assert unfrozen_blocks(parts, 1, 1) == ["head", "layer.2"]
    assert unfrozen_blocks(parts, 3, 1) == ["head", "layer.2", "layer.1", "layer.0"]
    assert unfrozen_blocks(parts, 4, 1) == ["head", "layer.2", "layer.1", "layer.0", "embeddings"]
    assert unfrozen_blocks(parts, 9, 1) == unfrozen_blocks(parts, 4, 1)
    assert [len(unfrozen_blocks(parts, e, 2)) for e in range(6)] == [1, 1, 2, 2, 3, 3]


def find_encoder_parts_stub(layers):
    from nlp_transfer.transfer.layers import EncoderParts

    return EncoderParts(embeddings=["e"], layers=[[f"l{i}"] for i in range(layers)], other=[], head=["h"])


def test_gradual_unfreezing_trains_one_more_block_each_epoch(task):
    model = task.build_model()
    options = TransferConfig(layer_lr_decay=0.5)
    groups = apply_strategy(model, "gradual_unfreezing", learning_rate=LR, weight_decay=0.01, options=options)
    # the optimizer holds every parameter from the start, at its layer's decayed rate
    assert sorted(n for g in groups for n in g["names"]) == sorted(n for n, _ in model.named_parameters())
    rates = lr_by_name(groups)
    assert rates["bert.encoder.layer.0.output.dense.weight"] == pytest.approx(LR * 0.25)
    optimizer = torch.optim.AdamW(groups)
    [callback] = GradualUnfreezing(options).callbacks(model)
    assert isinstance(callback, UnfreezeByEpoch) and FullFineTuning().callbacks(model) == []
    schedule = {
        0: {"head"},
        1: {"head", "layer.1"},
        2: {"head", "layer.1", "layer.0"},
        3: {"head", "layer.1", "layer.0", "embeddings"},
    }
    for epoch, blocks in schedule.items():
        callback.on_epoch_start(model, optimizer, epoch)
        assert {block_of(n) for n, p in model.named_parameters() if p.requires_grad} == blocks
        before = train_steps(model, optimizer, task, steps=2)
        moved = changed(model, before)
        for name, param in model.named_parameters():
            if block_of(name) in blocks:
                if "token_type" not in name:  # only row 0 of a 2-row table is used; it still moves
                    assert name in moved, f"epoch {epoch}: {name} did not train"
            else:
                assert torch.equal(param, before[name]) and param.grad is None, f"epoch {epoch}: {name} changed"
                assert param not in optimizer.state or not optimizer.state[param], f"{name} has AdamW state while frozen"


def test_gradual_unfreezing_every_two_epochs(task):
    model = task.build_model()
    options = TransferConfig(unfreeze_every=2)
    apply_strategy(model, "gradual_unfreezing", learning_rate=LR, weight_decay=0.0, options=options)
    [callback] = GradualUnfreezing(options).callbacks(model)
    trained = []
    for epoch in range(6):
        callback.on_epoch_start(model, None, epoch)
        trained.append({block_of(n) for n, p in model.named_parameters() if p.requires_grad})
    assert trained[0] == trained[1] == {"head"}
    assert trained[2] == trained[3] == {"head", "layer.1"}
    assert trained[4] == {"head", "layer.1", "layer.0"}


def test_gradual_unfreezing_in_step_phases(task):
    """unfreeze_every_steps: one more block every N optimizer steps; no epoch callback then."""
    model = task.build_model()
    options = TransferConfig(unfreeze_every_steps=3)
    groups = apply_strategy(model, "gradual_unfreezing", learning_rate=LR, weight_decay=0.0, options=options)
    assert [type(c) for c in GradualUnfreezing(TransferConfig()).callbacks(model)] == [UnfreezeByEpoch]  # by epoch
    [callback] = GradualUnfreezing(options).callbacks(model)
    assert isinstance(callback, UnfreezeBySteps)
    optimizer = torch.optim.AdamW(groups)
    expected = {0: {"head"}, 2: {"head"}, 3: {"head", "layer.1"}, 6: {"head", "layer.1", "layer.0"}}
    expected[9] = expected[6] | {"embeddings"}
    for step, blocks in expected.items():
        callback.on_step_end(model, optimizer, step)
        assert {block_of(n) for n, p in model.named_parameters() if p.requires_grad} == blocks, f"step {step}"
        before = train_steps(model, optimizer, task, steps=1)
        for name, param in model.named_parameters():
            if block_of(name) not in blocks:
                assert torch.equal(param, before[name]) and param.grad is None, f"step {step}: {name} changed"
    with pytest.raises(ConfigError, match="unfreeze_every_steps must be at least 1"):
        apply_strategy(task.build_model(), "gradual_unfreezing", learning_rate=LR, weight_decay=0.0,
                       options=TransferConfig(unfreeze_every_steps=0))  # fmt: skip


def test_gradual_unfreezing_step_phases_run_and_resume_exactly(sentiment_files, tiny_model_dir, tmp_path):
    """Through run_training: 25 steps with a phase of 10 unfreeze layer 1 at step 10 and layer 0 at step 20, never
    the embeddings (read from the kept checkpoints); a run resumed from step 16 (mid-phase) ends byte-identical."""
    from safetensors.torch import load_file

    extra = {"transfer.unfreeze_every_steps": 10, "training.eval_strategy": "steps", "training.eval_steps": 8}
    full = run_training(run_config(sentiment_files, tiny_model_dir, tmp_path / "full", strategy="gradual_unfreezing", **extra))
    assert full.info["global_steps"] == 25
    assert full.info["trainable_parameters_last_epoch"] > full.info["trainable_parameters"]
    config, checkpoints = gradual_run_keeping_checkpoints(sentiment_files, tiny_model_dir, tmp_path / "part", 5, **extra)
    assert [int(c.name.split("-")[1]) for c in checkpoints] == [8, 16, 24, 25]

    tiny = load_file(f"{tiny_model_dir}/model.safetensors")
    prefix = next(k for k in tiny if k.endswith("embeddings.word_embeddings.weight")).removesuffix(
        "embeddings.word_embeddings.weight"
    )

    def moved(checkpoint, name):
        weights = load_file(str(checkpoint / "model.safetensors"))
        return not torch.equal(weights["bert." + name], tiny[prefix + name])

    layer0, layer1 = "encoder.layer.0.output.dense.weight", "encoder.layer.1.output.dense.weight"
    embeddings = "embeddings.word_embeddings.weight"
    step8, step16, _, step25 = checkpoints
    assert not moved(step8, layer1) and not moved(step8, layer0)  # steps 1-8: the head alone
    assert moved(step16, layer1) and not moved(step16, layer0)  # layer 1 from step 10
    assert moved(step25, layer1) and moved(step25, layer0)  # layer 0 from step 20
    assert not any(moved(c, embeddings) for c in checkpoints)  # the embeddings would unfreeze at step 30

    for checkpoint in checkpoints[2:]:
        shutil.rmtree(checkpoint)  # as if killed at step 17: layer 0 unfreezes after the resume, at step 20
    resumed = run_training(config, resume=True)
    assert resumed.metrics == full.metrics
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()


# --------------------------------------------------------------------------- LoRA / DoRA / IA3


def lora_model(task, **options):
    options = TransferConfig(**options)
    model = prepare_model(task.build_model(), "lora", options)
    groups = apply_strategy(model, "lora", learning_rate=1e-2, weight_decay=0.0, options=options)
    return model, groups, options


def test_lora_trainable_parameter_count_is_analytic(task):
    model, groups, _ = lora_model(task, lora_r=4)
    assert isinstance(model, PeftModel)
    hidden, layers, r, labels = 64, 2, 4, 2
    lora = layers * 2 * r * (hidden + hidden)  # query and value: A (r x in) + B (out x r)
    head = (hidden * hidden + hidden) + (hidden * labels + labels)  # pooler dense + classifier
    trainable, total = count_parameters(model)
    assert trainable == lora + head
    _, base_total = count_parameters(task.build_model())
    assert total == base_total + lora  # peft's frozen spare copy of the head is not counted twice
    assert sum(p.numel() for g in groups for p in g["params"]) == trainable
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(".lora_" in n or ".modules_to_save." in n for n in names)


def test_lora_trains_adapters_and_head_only(task):
    model, groups, _ = lora_model(task)
    before = train_steps(model, torch.optim.AdamW(groups), task)
    moved = changed(model, before)
    for name, param in model.named_parameters():
        if param.requires_grad:
            # lora_A only moves once lora_B (zero at init) has moved; after 3 steps both must have
            assert name in moved, f"{name} did not train"
        else:
            assert torch.equal(param, before[name]) and param.grad is None, f"{name} changed although frozen"


@pytest.mark.parametrize("method", ["lora", "dora", "ia3"])
def test_adapter_and_merged_reload_give_the_same_logits(task, tmp_path, method):
    model, groups, options = lora_model(task, peft_method=method)
    train_steps(model, torch.optim.AdamW(groups), task, steps=5)
    batch, _ = fixed_batch(task)
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
    trained_head = {k: v.clone() for k, v in model.base_model.model.classifier.modules_to_save["default"].state_dict().items()}
    fresh_head = model.base_model.model.classifier.original_module.weight.detach().clone()
    assert not torch.equal(trained_head["weight"], fresh_head)

    assert save_adapter_model(model, tmp_path, options)
    assert {p.name for p in (tmp_path / "adapter").iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["modules_to_save"] is not None

    # merged: a plain transformers model, no peft involved
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert not any("lora" in n or "ia3" in n or "modules_to_save" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        assert torch.allclose(merged(**batch).logits, expected, atol=1e-5)
    assert torch.equal(merged.classifier.weight, trained_head["weight"])

    # adapter: peft on a freshly built base (whose classifier is random) restores the trained head
    reloaded = PeftModel.from_pretrained(task.build_model(), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)
    head = reloaded.base_model.model.classifier.modules_to_save["default"]
    assert torch.equal(head.weight, trained_head["weight"]) and torch.equal(head.bias, trained_head["bias"])


def test_lora_pooler_adapt_gives_the_pooler_a_low_rank_update(task, tmp_path):
    model, groups, options = lora_model(task, lora_r=4, lora_pooler="adapt")
    hidden, layers, r, labels = 64, 2, 4, 2
    lora = (layers * 2 + 1) * r * (hidden + hidden)  # query and value of each layer, and the pooler's dense
    trainable, _ = count_parameters(model)
    assert trainable == lora + hidden * labels + labels  # the classifier is the only module trained whole
    assert "pooler" not in model.peft_config["default"].modules_to_save

    base_pooler = model.base_model.model.bert.pooler.dense.base_layer.weight.detach().clone()
    before = train_steps(model, torch.optim.AdamW(groups), task, steps=5)
    moved = changed(model, before)
    assert {n for n in moved if "pooler" in n} == {n for n, _ in model.named_parameters() if "pooler.dense.lora_" in n}, (
        "only the pooler's LoRA matrices may move"
    )
    assert torch.equal(model.base_model.model.bert.pooler.dense.base_layer.weight, base_pooler)

    batch, _ = fixed_batch(task)
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
    assert save_adapter_model(model, tmp_path, options)
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert not torch.equal(merged.bert.pooler.dense.weight, base_pooler)  # the update is merged into the pooler
    reloaded = PeftModel.from_pretrained(task.build_model(), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(merged(**batch).logits, expected, atol=1e-5)
        assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)
    with pytest.raises(ConfigError, match="lora_pooler=adapt is for LoRA and DoRA"):
        prepare_model(task.build_model(), "lora", TransferConfig(peft_method="ia3", lora_pooler="adapt"))


def test_lora_in_place_on_a_plain_model(task):
    model = task.build_model()
    groups = apply_strategy(model, "lora", learning_rate=1e-2, weight_decay=0.0)
    assert not isinstance(model, PeftModel)
    assert {n for g in groups for n in g["names"]} == {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".lora_A." in n for g in groups for n in g["names"])


def test_lora_unknown_architecture_needs_target_modules():
    config = AutoConfig.for_model(
        "bert",
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=100,
        max_position_embeddings=64,
    )
    model = AutoModelForSequenceClassification.from_config(config)
    model.config.model_type = "mystery"
    with pytest.raises(UserError, match="no default target modules for model type 'mystery'"):
        prepare_model(model, "lora", TransferConfig())
    with pytest.raises(UserError, match=r"'qeury' names no encoder module of this model; its linear layers are named .*query"):
        prepare_model(model, "lora", TransferConfig(lora_target_modules=["qeury", "key"]))  # peft dropped it silently
    with pytest.raises(UserError, match=r"'classifier' is part of the head, .*classifier, which trains in full"):
        prepare_model(model, "lora", TransferConfig(lora_target_modules=["classifier"]))  # peft's own words before
    with pytest.raises(UserError, match=r"'pooler\.dense' .*is part of the head.*lora_pooler=adapt puts adapters"):
        prepare_model(model, "lora", TransferConfig(lora_target_modules=["query", "pooler.dense"]))
    wrapped = prepare_model(model, "lora", TransferConfig(lora_target_modules=["query", "key"]))
    assert any(".key.lora_A." in n for n, _ in wrapped.named_parameters())
    with pytest.raises(UserError, match="cannot find the pretrained encoder"):
        apply_strategy(torch.nn.Linear(2, 2), "freeze_layers", learning_rate=LR, weight_decay=0.0)


# --------------------------------------------------------------------------- layer discovery on 5 architectures

SMALL = {
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "vocab_size": 100,
    "max_position_embeddings": 64,
}
ARCHITECTURES = {
    "bert": (SMALL, "bert", ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"], []),
    "roberta": (
        SMALL,
        "roberta",
        ["classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"],
        [],
    ),
    "distilbert": (
        {"dim": 32, "n_layers": 3, "n_heads": 2, "hidden_dim": 37, "vocab_size": 100, "max_position_embeddings": 64},
        "distilbert",
        ["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"],
        [],
    ),
    "deberta-v2": (
        {**SMALL, "relative_attention": True, "position_buckets": 8, "norm_rel_ebd": "layer_norm"},
        "deberta",
        ["pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias"],
        ["deberta.encoder.rel_embeddings.weight", "deberta.encoder.LayerNorm.weight", "deberta.encoder.LayerNorm.bias"],
    ),
    "electra": (
        {**SMALL, "embedding_size": 16},
        "electra",
        ["classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"],
        ["electra.embeddings_project.weight", "electra.embeddings_project.bias"],
    ),
}


@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_layer_discovery_on_five_architectures(model_type):
    sizes, prefix, head, other = ARCHITECTURES[model_type]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, num_labels=3, **sizes))
    parts = find_encoder_parts(model)
    assert len(parts.layers) == 3
    for i, layer in enumerate(parts.layers):
        assert layer and all(n.startswith(prefix + ".") and f".{i}." in n for n in layer)
    assert parts.embeddings and all(n.startswith(f"{prefix}.embeddings.") for n in parts.embeddings)
    assert parts.head == head
    assert sorted(parts.other) == sorted(other)
    listed = parts.embeddings + [n for layer in parts.layers for n in layer] + parts.other + parts.head
    assert sorted(listed) == sorted(n for n, _ in model.named_parameters())
    # the strategies run on each of them: layer decay reaches the embeddings, LoRA finds its default targets
    groups = apply_strategy(model, "full", learning_rate=LR, weight_decay=0.0, options=TransferConfig(layer_lr_decay=0.5))
    assert min(g["lr"] for g in groups) == pytest.approx(LR * 0.5**4)
    wrapped = prepare_model(model, "lora", TransferConfig(lora_r=2))
    lora = sum(p.numel() for n, p in wrapped.named_parameters() if ".lora_" in n)
    assert lora == 3 * 2 * 2 * (32 + 32)  # 3 layers x (query, value) x r=2 x (in + out)
    # lora_pooler=adapt: a low-rank pooler where the architecture has one (BERT inside the encoder, DeBERTa beside it)
    fresh = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, num_labels=3, **sizes))
    if any(".dense." in n and "pooler" in n for n in head):
        adapted = prepare_model(fresh, "lora", TransferConfig(lora_r=2, lora_pooler="adapt"))
        pooler = [n for n, p in adapted.named_parameters() if "pooler" in n and p.requires_grad]
        assert pooler and all(".dense.lora_" in n for n in pooler), pooler
    else:
        with pytest.raises(ConfigError, match="has no pooler with a linear layer"):
            prepare_model(fresh, "lora", TransferConfig(lora_r=2, lora_pooler="adapt"))


# --------------------------------------------------------------------------- end to end


def run_config(files, model_dir, out, **extra):
    values = {
        "data.train_file": files["train"],
        "data.validation_file": files["validation"],
        "data.test_file": files["test"],
        "training.learning_rate": 5e-3,
        **extra,
    }
    return load_config(None, tiny_overrides(model_dir, out, **values))


def gradual_run_keeping_checkpoints(files, model_dir, out, limit, **extra):
    """A gradual-unfreezing run that keeps its newest ``limit`` checkpoints; returns its config and them, oldest first."""
    config = run_config(
        files,
        model_dir,
        out,
        strategy="gradual_unfreezing",
        **{**extra, "training.keep_checkpoints": True, "training.save_total_limit": limit},
    )
    run_training(config)
    return config, sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))


def test_run_training_with_lora_saves_merged_model_and_adapter(sentiment_files, tiny_model_dir, tmp_path):
    from nlp_transfer.inference import load_run, text_logits

    out = tmp_path / "lora"
    result = run_training(run_config(sentiment_files, tiny_model_dir, out, strategy="lora", **{"training.epochs": 2}))
    assert result.info["strategy"] == "lora"
    assert result.info["trainable_parameters"] < result.info["total_parameters"] / 10
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    # the run dir is a plain model: nlp-transfer's own inference loads it and reproduces the test metrics
    model, task = load_run(out, device="cpu")
    assert not isinstance(model, PeftModel)
    texts = ["lovely superb film", "awful boring plot"]
    merged_logits = torch.from_numpy(text_logits(model, task, texts))
    # the adapter on the base model gives the same logits
    base = build_classification_task(model=tiny_model_dir, labels=task.labels).build_model()
    adapted = PeftModel.from_pretrained(base, out / "adapter").eval()
    assert torch.allclose(torch.from_numpy(text_logits(adapted, task, texts)), merged_logits, atol=1e-5)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"]["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])


def test_adapter_only_run_predicts_like_the_merged_run(sentiment_files, tiny_model_dir, tmp_path):
    """save_merged=false writes no weights but the adapter; load_run rebuilds the same model through peft."""
    from nlp_transfer.inference import load_run, text_logits

    merged_run = run_training(run_config(sentiment_files, tiny_model_dir, tmp_path / "merged", strategy="lora"))
    adapter_run = run_training(
        run_config(sentiment_files, tiny_model_dir, tmp_path / "adapter", strategy="lora", **{"transfer.save_merged": False})
    )
    assert adapter_run.metrics == merged_run.metrics
    out = tmp_path / "adapter"
    assert not list(out.glob("*.safetensors")) and (out / "adapter" / "adapter_model.safetensors").is_file()
    texts = ["lovely superb film", "awful boring plot", "the staff were great"]
    model_a, task_a = load_run(out, device="cpu")
    model_m, task_m = load_run(tmp_path / "merged", device="cpu")
    assert not isinstance(model_a, PeftModel) and task_a.labels == task_m.labels
    assert torch.allclose(
        torch.from_numpy(text_logits(model_a, task_a, texts)), torch.from_numpy(text_logits(model_m, task_m, texts)), atol=1e-5
    )


def test_lora_resume_equals_uninterrupted(sentiment_files, tiny_model_dir, tmp_path):
    """Checkpoints of a PeftModel (full state dict through safetensors) resume exactly."""
    full = run_training(run_config(sentiment_files, tiny_model_dir, tmp_path / "full", strategy="lora", **{"training.epochs": 2}))
    config = run_config(
        sentiment_files,
        tiny_model_dir,
        tmp_path / "part",
        strategy="lora",
        **{"training.epochs": 2, "training.keep_checkpoints": True},
    )
    run_training(config)
    checkpoints = sorted((tmp_path / "part" / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 2
    shutil.rmtree(checkpoints[-1])
    resumed = run_training(config, resume=True)
    assert resumed.metrics == full.metrics
    for name in ("model.safetensors", "adapter/adapter_model.safetensors"):
        assert (tmp_path / "part" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_gradual_unfreezing_run_resumes_exactly(sentiment_files, tiny_model_dir, tmp_path):
    """Gradual unfreezing through run_training: the callback re-derives requires_grad from the epoch on resume."""
    extra = {"training.epochs": 3, "transfer.layer_lr_decay": 0.8}
    full = run_training(run_config(sentiment_files, tiny_model_dir, tmp_path / "full", strategy="gradual_unfreezing", **extra))
    config, checkpoints = gradual_run_keeping_checkpoints(sentiment_files, tiny_model_dir, tmp_path / "part", 3, **extra)
    assert len(checkpoints) == 3
    shutil.rmtree(checkpoints[-1])  # as if killed during epoch 3, when layer 0 had just been unfrozen
    resumed = run_training(config, resume=True)
    assert resumed.metrics == full.metrics
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == (tmp_path / "full" / "model.safetensors").read_bytes()
    # run info counts the head alone in epoch 1 and head + both layers in the last epoch
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "full")
    parts = find_encoder_parts(model)
    sizes = dict((n, p.numel()) for n, p in model.named_parameters())
    head = sum(sizes[n] for n in parts.head)
    layers = sum(sizes[n] for layer in parts.layers for n in layer)
    assert full.info["trainable_parameters"] == head
    assert full.info["trainable_parameters_last_epoch"] == head + layers
    # the embeddings never trained (they would unfreeze in epoch 4)
    from safetensors.torch import load_file

    tiny = load_file(f"{tiny_model_dir}/model.safetensors")
    final = load_file(str(tmp_path / "full" / "model.safetensors"))
    word = next(k for k in tiny if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(final["bert.embeddings.word_embeddings.weight"], tiny[word])
    assert not torch.equal(
        final["bert.encoder.layer.1.output.dense.weight"],
        tiny[word.replace("embeddings.word_embeddings", "encoder.layer.1.output.dense")],
    )


def test_layer_decay_is_refused_where_it_does_not_apply():
    """At config time, before any model loads: the strategy owns the check."""
    for strategy in ("frozen", "lora"):
        with pytest.raises(ConfigError, match=f"layer_lr_decay applies to .*not to strategy={strategy}"):
            load_config(None, ["data.train_file=x.csv", f"strategy={strategy}", "transfer.layer_lr_decay=0.9"])
    # freeze_pooler was accepted by every strategy (and listed on the card) while only frozen reads it
    for strategy in ("full", "lora", "gradual_unfreezing"):
        with pytest.raises(ConfigError, match=f"freeze_pooler applies to frozen, not to strategy={strategy}"):
            load_config(None, ["data.train_file=x.csv", f"strategy={strategy}", "transfer.freeze_pooler=true"])
    assert load_config(None, ["data.train_file=x.csv", "strategy=frozen", "transfer.freeze_pooler=true"]).transfer.freeze_pooler
    with pytest.raises(ConfigError, match="both set the pace of unfreezing"):  # unfreeze_every was ignored
        load_config(
            None,
            [
                "data.train_file=x.csv",
                "strategy=gradual_unfreezing",
                "transfer.unfreeze_every=3",
                "transfer.unfreeze_every_steps=5",
            ],
        )


#: a valid value other than the default for each strategy's own option
OWN_OPTION_VALUES = {
    "cache_features": "false",
    "head_fit": "logistic",
    "head_c": "2.0",
    "freeze_layers": "1",
    "unfreeze_every": "2",
    "unfreeze_every_steps": "5",
    "peft_method": "ia3",
    "lora_r": "4",
    "lora_alpha": "8",
    "lora_dropout": "0.0",
    "lora_target_modules": "[query]",
    "lora_pooler": "adapt",
    "save_merged": "false",
    "contrastive_pairs": "4",
    "contrastive_epochs": "2",
    "contrastive_learning_rate": "1e-4",
    "contrastive_batch_size": "8",
    "contrastive_loss": "supcon",
    "contrastive_temperature": "0.3",
    "contrastive_encode_once": "false",
    "contrastive_end_to_end_epochs": "1",
    "contrastive_end_to_end_learning_rate": "1e-4",
}


def test_an_option_only_other_strategies_read_is_refused():
    """transfer.lora_r under strategy=full trained a run that ignored it (and recorded it in config and card)."""
    owned = set().union(*(cls.own_options for cls in STRATEGIES.values()))
    assert owned == set(OWN_OPTION_VALUES)  # a new option of a strategy gets a value here, so it is tested too
    for strategy, cls in STRATEGIES.items():
        for key in sorted(owned - cls.own_options):
            value = OWN_OPTION_VALUES[key]
            with pytest.raises(ConfigError, match=rf"transfer\.{key} applies to strategy=.*not to strategy={strategy}"):
                load_config(None, ["data.train_file=x.csv", f"strategy={strategy}", f"transfer.{key}={value}"])
        for key in sorted(cls.own_options - {"head_c", "contrastive_end_to_end_learning_rate", "unfreeze_every"}):
            config = load_config(
                None, ["data.train_file=x.csv", f"strategy={strategy}", f"transfer.{key}={OWN_OPTION_VALUES[key]}"]
            )
            assert getattr(config.transfer, key) != getattr(TransferConfig(), key)
    # the options that only mean something beside another one
    with pytest.raises(ConfigError, match=r"transfer\.head_c sets the penalty of transfer\.head_fit=logistic"):
        load_config(None, ["data.train_file=x.csv", "strategy=frozen", "transfer.head_c=2.0"])
    with pytest.raises(ConfigError, match=r"contrastive_end_to_end_learning_rate is the rate of phase 3, which is off"):
        load_config(None, ["data.train_file=x.csv", "strategy=contrastive", "transfer.contrastive_end_to_end_learning_rate=1e-4"])
    both = ["transfer.head_fit=logistic", "transfer.head_c=2.0", "transfer.contrastive_end_to_end_epochs=1"]
    assert load_config(None, ["data.train_file=x.csv", "strategy=contrastive", *both]).transfer.head_c == 2.0


def test_unknown_architecture_is_a_clear_error():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64))
    for strategy in ("freeze_layers", "gradual_unfreezing", "lora"):
        with pytest.raises(UserError, match=r"unknown architecture.*use strategy=full"):
            apply_strategy(prepare_model(model, "full"), strategy, learning_rate=LR, weight_decay=0.0)
    assert apply_strategy(model, "full", learning_rate=LR, weight_decay=0.0)  # full needs no layer discovery


def test_lora_on_a_token_classifier_merges_and_reloads(tmp_path):
    from transformers import AutoModelForTokenClassification

    config = AutoConfig.for_model("bert", num_labels=5, **SMALL)
    torch.manual_seed(0)
    model = prepare_model(AutoModelForTokenClassification.from_config(config), "lora", TransferConfig())
    assert {n.split(".modules_to_save")[0] for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n} == {
        "base_model.model.classifier"  # a token classifier has no pooler in its head
    }
    groups = apply_strategy(model, "lora", learning_rate=1e-2, weight_decay=0.0)
    ids = torch.randint(0, 100, (2, 7))
    optimizer = torch.optim.AdamW(groups)
    for _ in range(3):
        torch.nn.functional.cross_entropy(model(input_ids=ids).logits.reshape(-1, 5), torch.randint(0, 5, (14,))).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    save_adapter_model(model, tmp_path)
    merged = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-5)


def test_gradual_unfreezing_refuses_multiple_processes(task, monkeypatch):
    """DDP only syncs parameters that required grad when it wrapped the model: refuse rather than drift."""
    model = task.build_model()
    apply_strategy(model, "gradual_unfreezing", learning_rate=LR, weight_decay=0.0)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *args: 2)
    with pytest.raises(UserError, match="gradual_unfreezing runs in one process"):
        GradualUnfreezing().callbacks(model)


def test_gradual_unfreezing_under_several_processes_is_refused_before_anything_loads(monkeypatch):
    """It was refused once the data and model had loaded (about 45 s) and the run folder was started."""
    from nlp_transfer.transfer import build_strategy

    config = load_config(None, ["data.train_file=x.csv", "strategy=gradual_unfreezing"])
    build_strategy(config)  # one process: fine
    monkeypatch.setenv("WORLD_SIZE", "2")  # as accelerate launch --num_processes 2 sets it in each process
    with pytest.raises(UserError, match="strategy=gradual_unfreezing runs in one process"):
        build_strategy(config)
