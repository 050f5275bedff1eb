"""training.fast_dropout_masks: the same dropout from a faster random stream, routed through every dropout of a model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from nlp_transfer.config import TrainingConfig
from nlp_transfer.training.dropout_masks import SOURCE_ATTRIBUTE, MaskSource, eager_attention, fast_dropout, keep_threshold
from nlp_transfer.training.first_position import first_position_only
from nlp_transfer.training.loop import dropout_mask_source
from tests.test_first_position import IDS, MASK, classifier, train

LABELS = torch.tensor([0, 2, 1])


def test_masks_keep_one_minus_p_and_scale_as_torch_does():
    """Each element kept with probability 1 - p (to 1/65,536), kept ones scaled by 1 / (1 - p), in the input's dtype."""
    source = MaskSource(seed=0)
    for p in (0.1, 0.5):
        noise = source.noise((1000, 1000), p, torch.float32)
        assert sorted(noise.unique().tolist()) == pytest.approx([0.0, 1 / (1 - p)])
        kept = (noise > 0).float().mean().item()
        assert abs(kept - keep_threshold(p) / 65536) < 0.002  # 1,000,000 draws: about 7 standard deviations
        assert abs(keep_threshold(p) / 65536 - (1 - p)) < 1 / 65536
    assert source.noise((3, 5), 0.1, torch.bfloat16).dtype == torch.bfloat16
    inputs = torch.randn(4, 4)
    assert source.dropout(inputs, 0.0) is inputs  # nothing drawn, nothing changed
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        keep_threshold(1.0)


def test_masks_are_the_draws_compared_with_the_threshold_element_for_element():
    """The byte view that speeds the conversion up leaves each element as the comparison of its own draw decides."""
    source = MaskSource(seed=4)
    source.start_batch(1, 2)
    state = source.generator.bit_generator.state
    noise = source.noise((7, 9, 11), 0.1, torch.float32)
    source.generator.bit_generator.state = state
    draws = source.generator.bit_generator.random_raw((7 * 9 * 11 + 3) // 4).view(np.uint16)[: 7 * 9 * 11]
    expected = torch.tensor((draws < keep_threshold(0.1)).tolist(), dtype=torch.float32).view(7, 9, 11) * (1 / (1 - 0.1))
    assert torch.equal(noise, expected)


def test_a_batch_s_masks_depend_on_the_seed_process_epoch_and_batch_alone():
    """Re-seeded per batch: whatever was drawn before, batch (epoch, index) gets the same masks (exact resume)."""

    def masks(seed: int, process: int, epoch: int, batch: int, drawn_before: int) -> torch.Tensor:
        source = MaskSource(seed, process)
        source.start_batch(0, 0)
        source.noise((drawn_before,), 0.1, torch.float32)
        source.start_batch(epoch, batch)
        return source.noise((64, 64), 0.1, torch.float32)

    reference = masks(1, 0, 2, 5, drawn_before=10)
    assert torch.equal(reference, masks(1, 0, 2, 5, drawn_before=999))
    for other in (masks(2, 0, 2, 5, 10), masks(1, 1, 2, 5, 10), masks(1, 0, 3, 5, 10), masks(1, 0, 2, 6, 10)):
        assert not torch.equal(reference, other)


def test_eager_attention_is_sdpa_s_attention_without_drops():
    """The attention computed in training with the source's masks is SDPA's, given a drop that keeps everything."""
    module = torch.nn.Module()
    module.is_causal = False
    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 3, 5, 8) for _ in range(3))
    keep = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    keep[1, :, :, 3:] = False  # the second text is padded after 3 tokens
    additive = torch.zeros(2, 1, 5, 5).masked_fill(~keep, torch.finfo(torch.float32).min)
    for mask in (None, keep, additive):
        ours = eager_attention(query, key, value, mask, 0.3, 0.1, lambda x, p: x)
        theirs, _ = sdpa_attention_forward(module, query, key, value, mask, dropout=0.0, scaling=0.3)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def forward_backward(model: torch.nn.Module, source: MaskSource | None, first_only: bool = False) -> tuple:
    """Logits, loss and gradients of one training-mode pass, the masks drawn from ``source`` (batch (0, 0))."""
    torch.manual_seed(3)
    model.zero_grad()
    if source is not None:
        source.start_batch(0, 0)
    with fast_dropout(model, source) as routed, first_position_only(model, enabled=first_only):
        output = model(input_ids=IDS, attention_mask=MASK, labels=LABELS)
        output.loss.backward()
    assert routed == (source is not None)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return output.logits.detach(), output.loss.detach(), grads, torch.rand(4)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "electra"])
def test_with_dropout_near_zero_it_is_torch_s_computation(model_type):
    """p = 1e-7: every module and the attention take the fast path, which keeps every element (as torch's draws do
    here), so the logits, loss and every gradient are torch's to float rounding: the routing computes what torch's
    dropout and SDPA compute."""
    model = classifier(model_type, "sdpa", dropout=1e-7).train()
    fast_logits, fast_loss, fast_grads, _ = forward_backward(model, MaskSource(0))
    torch_logits, torch_loss, torch_grads, _ = forward_backward(model, None)
    assert sorted(fast_grads) == sorted(torch_grads)
    torch.testing.assert_close(fast_logits, torch_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_loss, torch_loss, rtol=1e-5, atol=1e-6)
    for name, grad in torch_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_every_mask_comes_from_the_source_and_the_model_comes_back_as_it_was():
    """With dropout 0.3: torch's random stream is not touched by the pass (no mask drawn by torch), the pass is
    reproducible from the batch's key and differs from torch's; outside the block no trace is left."""
    model = classifier("bert", "sdpa", dropout=0.3).train()
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]
    logits, _, _, torch_next = forward_backward(model, MaskSource(0))
    again, _, _, _ = forward_backward(model, MaskSource(0))
    torch_logits, _, _, after_torch = forward_backward(model, None)
    torch.manual_seed(3)
    assert torch.equal(torch_next, torch.rand(4))  # the fast pass drew nothing from torch
    assert not torch.equal(after_torch, torch_next)  # torch's own pass did
    assert torch.equal(logits, again) and not torch.allclose(logits, torch_logits)
    assert ALL_ATTENTION_FUNCTIONS["sdpa"] is sdpa
    assert not any(hasattr(m, SOURCE_ATTRIBUTE) or "forward" in vars(m) for m in model.modules())


def test_the_first_position_layer_draws_the_full_layer_s_masks():
    """Under the fast masks too, computing the last layer at the first position alone is the same run."""
    model = classifier("bert", "sdpa", dropout=0.3).train()
    full_logits, full_loss, full_grads, _ = forward_backward(model, MaskSource(0), first_only=False)
    short_logits, short_loss, short_grads, _ = forward_backward(model, MaskSource(0), first_only=True)
    torch.testing.assert_close(short_logits, full_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(short_loss, full_loss, rtol=1e-5, atol=1e-6)
    for name, grad in full_grads.items():
        torch.testing.assert_close(short_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_masks_drawn_for_the_slice_alone_are_caught(monkeypatch):
    """Planted fault: the first-position layer drawing its fast masks for position 0 alone gives other logits."""

    def slice_only(first: torch.Tensor, whole: tuple, p: float, source: MaskSource) -> torch.Tensor:
        return source.dropout(first, p)

    model = classifier("bert", "sdpa", dropout=0.3).train()
    full_logits = forward_backward(model, MaskSource(0), first_only=False)[0]
    monkeypatch.setattr("nlp_transfer.training.first_position._dropout_drawn_whole", slice_only)
    short_logits = forward_backward(model, MaskSource(0), first_only=True)[0]
    assert not torch.allclose(short_logits, full_logits, rtol=1e-5, atol=1e-5)


def test_a_cpu_run_uses_it_and_learns_and_the_switch_turns_it_off(sentiment_files, tiny_model_dir, tmp_path):
    """On by default on a CPU (run_info says so) and the run learns; off when switched off."""
    config = "recipes/configs/sentiment/minilm_full.yaml"
    on = train(config, sentiment_files, tiny_model_dir, tmp_path / "on", **{"training.epochs": 3, "training.learning_rate": 1e-3})
    assert on["fast_dropout_masks"] is True
    assert on["best_metric"]["accuracy"] >= 0.75  # 100 held-out validation rows, two balanced classes
    off = train(config, sentiment_files, tiny_model_dir, tmp_path / "off", **{"training.fast_dropout_masks": "false"})
    assert off["fast_dropout_masks"] is False


def test_gpus_and_compiled_runs_keep_torch_s_dropout():
    """A source only for CPU runs that are not compiled (a GPU draws its masks inside fused kernels already)."""
    cpu, gpu = (SimpleNamespace(device=torch.device(kind), process_index=1) for kind in ("cpu", "cuda"))
    source = dropout_mask_source(TrainingConfig(), cpu, seed=5)
    assert isinstance(source, MaskSource) and (source.seed, source.process_index) == (5, 1)
    assert dropout_mask_source(TrainingConfig(), gpu, seed=5) is None
    assert dropout_mask_source(TrainingConfig(torch_compile=True), cpu, seed=5) is None
    assert dropout_mask_source(TrainingConfig(fast_dropout_masks=False), cpu, seed=5) is None
