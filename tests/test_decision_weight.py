"""``sft.decision_token_weight``: the SFT loss with the safe/unsafe decision tokens weighted up, on a real collated
batch of the tiny recipe (text and image rows) against cross-entropy computed here from the model's full logits."""

from __future__ import annotations

from pathlib import Path

import pytest

from proguard.train.recipe import RecipeError, load_sft_recipe

ROOT = Path(__file__).resolve().parents[1]
SFT = str(ROOT / "recipes" / "tiny" / "sft_cpu.yaml")
FAST = ["data.prompt.examples=false", "data.max_samples=8", "sft.per_device_train_batch_size=2", "sft.max_steps=1",
        "logging.report_to=[none]", "lengths.max_length=1536"]


def test_weight_must_be_positive_and_stays_out_of_trl_config(tmp_path):
    from proguard.train.recipe.sft import sft_config_kwargs

    with pytest.raises(RecipeError, match="sft.decision_token_weight"):
        load_sft_recipe(SFT, ["sft.decision_token_weight=0"])
    r = load_sft_recipe(SFT, ["sft.decision_token_weight=4", f"output_dir={tmp_path}"])
    assert r.sft.decision_token_weight == 4.0
    assert "decision_token_weight" not in sft_config_kwargs(r)


@pytest.mark.slow
def test_weighted_loss_adds_the_decision_tokens_cross_entropy(tmp_path):
    """loss(w) - loss(1) == (w - 1) * sum of CE at the decision positions / label tokens, from the full logits; the
    decision positions are exactly the label tokens that begin ' safe' / ' unsafe'; gradients reach the weights."""
    import torch
    import torch.nn.functional as F

    from proguard.train.decision_weight import decision_positions, decision_token_ids
    from proguard.train.sft import build_sft_trainer

    r = load_sft_recipe(SFT, [*FAST, f"output_dir={tmp_path / 'run'}"])
    setup = build_sft_trainer(r)
    trainer, tok = setup.trainer, setup.processor.tokenizer
    ids = decision_token_ids(setup.processor)
    rows = [dict(setup.dataset[i]) for i in range(4)]
    batch = trainer._prepare_inputs(trainer.data_collator(rows))
    labels = batch["labels"]
    mask = decision_positions(labels, ids)
    # each critique decides the request twice (<think> and <answer>); safe rows write ' safe', unsafe ' unsafe'
    assert int(mask.sum()) >= 2 * len(rows)
    for row_labels, row_mask in zip(labels[:, 1:], mask, strict=True):
        words = tok.decode(row_labels[row_mask].tolist()).split()
        assert words and set(words) <= {"safe", "unsafe"}

    model = trainer.model
    model.train()
    n = (labels[:, 1:] != -100).sum()
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
    ce = F.cross_entropy(logits[:, :-1][mask], labels[:, 1:][mask], reduction="sum") / n

    trainer.decision_token_weight = 1.0
    with torch.no_grad():
        base = trainer.compute_loss(model, dict(batch))
    trainer.decision_token_weight = 5.0
    weighted = trainer.compute_loss(model, dict(batch))
    assert float(ce) > 0
    assert float((weighted - base).detach()) == pytest.approx(4.0 * float(ce), rel=1e-3)
    weighted.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_a_tokenizer_whose_decision_words_share_a_first_token_is_a_one_line_error():
    """The weight needs ' safe' and ' unsafe' to start with different tokens (read through a processor too)."""
    from types import SimpleNamespace

    from proguard.train.decision_weight import decision_token_ids
    from proguard.train.errors import TrainError

    same = SimpleNamespace(encode=lambda text, add_special_tokens=False: [7, len(text)])
    with pytest.raises(TrainError, match="set sft.decision_token_weight: 1.0"):
        decision_token_ids(SimpleNamespace(tokenizer=same))
    split = SimpleNamespace(encode=lambda text, add_special_tokens=False: [len(text)])
    assert decision_token_ids(SimpleNamespace(tokenizer=split)) == [5, 7]
