"""The decision threshold fitted on a dev split (``proguard.bench.label_bias``): the fit, the logits processor at the
decision point, the ``label_bias.json`` file, the transformers backend applying it, and a real pretrained model
whose stated label flips with the bias."""

from __future__ import annotations

import json
import math

import pytest
import torch

from proguard.bench.backends import GenerationSettings, TransformersBackend
from proguard.bench.errors import BenchError
from proguard.bench.label_bias import (
    LABEL_BIAS_FILE,
    LabelBias,
    anchor_label_bias,
    balanced_accuracy,
    fit_label_bias,
    label_bias_processor,
    load_label_bias,
)

SAFE, UNSAFE, OTHER = 3, 5, 7


class WordTokenizer:
    """The two label words as single tokens, like SmolLM2's ' safe' (2991) and ' unsafe' (20408)."""

    def encode(self, text, add_special_tokens=False):
        return {" safe": [SAFE], " unsafe": [UNSAFE]}[text]


def test_the_fit_puts_the_threshold_between_the_labels():
    # the model ranks right (unsafe margins above safe ones) but calls everything safe: margins all below 0
    pairs = [("unsafe", -0.5), ("unsafe", -1.0), ("unsafe", -1.2), ("safe", -2.0), ("safe", -2.5), ("safe", -3.0)]
    fit = fit_label_bias(pairs)
    assert fit.balanced_accuracy_unbiased == 0.5 and fit.balanced_accuracy == 1.0
    assert fit.bias == pytest.approx(1.6)  # the threshold halfway between -1.2 and -2.0
    assert (fit.n_unsafe, fit.n_safe, fit.undecided) == (3, 3, 0)


def test_the_fit_keeps_the_models_own_threshold_when_nothing_beats_it():
    pairs = [("unsafe", 1.0), ("unsafe", 2.0), ("safe", -1.0), ("safe", -0.5)]
    assert fit_label_bias(pairs).bias == 0.0  # every cut in (-0.5, 1.0) is perfect: the one nearest 0 wins


def test_the_fit_counts_undecided_prompts_and_needs_both_labels():
    fit = fit_label_bias([("unsafe", 0.3), ("safe", -0.2), ("safe", None)])
    assert fit.undecided == 1 and fit.n_safe == 1
    with pytest.raises(BenchError, match=r"both labels; got 2 unsafe, 0 safe \(1 undecided\)"):
        fit_label_bias([("unsafe", 0.3), ("unsafe", 1.0), ("safe", None)])


def test_anchoring_moves_the_margins_back_by_their_mean_shift_without_the_labels():
    # the trained model moved every margin by about -1.5 (+-0.1): the bias brings its mean back onto the reference
    reference = [1.0, 2.0, -1.0, -0.2, None]
    pairs = [("unsafe", -0.4), ("unsafe", 0.6), ("safe", -2.6), ("safe", -1.8), ("safe", -3.0)]
    fit = anchor_label_bias(reference, pairs, fitted_on="dev")
    assert fit.bias == pytest.approx(1.5)  # the fifth prompt: undecided by the reference, not used
    assert fit.undecided == 1 and (fit.n_unsafe, fit.n_safe) == (2, 2)
    assert fit.balanced_accuracy_unbiased == 0.75 and fit.balanced_accuracy == 1.0
    # the labels only fill the report: the same margins under other labels give the same bias
    flipped = [("safe" if lab == "unsafe" else "unsafe", m) for lab, m in pairs]
    assert anchor_label_bias(reference, flipped).bias == fit.bias


def test_anchoring_needs_the_same_prompts_and_a_prompt_both_decided():
    with pytest.raises(BenchError, match="the same prompts: 2 reference margins, 1 margins"):
        anchor_label_bias([1.0, 2.0], [("safe", 0.0)])
    with pytest.raises(BenchError, match="none of 2 were"):
        anchor_label_bias([None, 1.0], [("safe", 0.0), ("unsafe", None)])


def test_balanced_accuracy_weighs_both_labels_alike():
    pairs = [("unsafe", 1.0)] * 9 + [("safe", 1.0)]
    assert balanced_accuracy(pairs, 0.0) == 0.5  # plain accuracy would say 0.9


def test_the_processor_acts_once_per_row_at_its_decision_point():
    proc = label_bias_processor(WordTokenizer(), 3, bias=2.0, record=True)
    scores = torch.zeros(3, 10)
    scores[0, SAFE], scores[0, UNSAFE] = 3.0, 2.0  # decides "safe" by 1 nat: the bias flips it
    scores[1, OTHER] = 5.0  # not at a label yet
    scores[2, UNSAFE], scores[2, SAFE] = 4.0, 1.0  # decides "unsafe" either way
    out = proc(torch.zeros(3, 1, dtype=torch.long), scores.clone())
    assert out[0].argmax() == UNSAFE and torch.isinf(out[0, SAFE]) and out[0, UNSAFE] == 2.0
    assert torch.equal(out[1], scores[1])
    assert out[2].argmax() == UNSAFE and torch.isinf(out[2, SAFE])
    assert proc.margins == [-1.0, None, 3.0] and proc.decided == [True, False, True]
    later = torch.zeros(3, 10)
    later[0, SAFE] = later[1, SAFE] = 9.0  # row 0 has decided: left alone; row 1 reaches its decision now
    out = proc(torch.zeros(3, 2, dtype=torch.long), later.clone())
    assert torch.equal(out[0], later[0])
    assert out[1].argmax() == SAFE and torch.isinf(out[1, UNSAFE])  # margin -9 + bias 2 < 0: still "safe"
    assert proc.margins == [-1.0, -9.0, 3.0] and proc.all_decided()


def test_a_zero_bias_only_records():
    proc = label_bias_processor(WordTokenizer(), 1, record=True)
    scores = torch.zeros(1, 10)
    scores[0, SAFE] = 1.0
    assert torch.equal(proc(torch.zeros(1, 1, dtype=torch.long), scores.clone()), scores)
    assert proc.margins == [-1.0]


def test_the_file_round_trips_and_bad_files_are_one_line_errors(tmp_path):
    fit = LabelBias(bias=1.25, n_safe=12, n_unsafe=16, undecided=0, balanced_accuracy=0.8,
                    balanced_accuracy_unbiased=0.6, fitted_on="dev")
    path = fit.save(tmp_path)
    assert path.name == LABEL_BIAS_FILE and load_label_bias(tmp_path) == fit
    assert load_label_bias(tmp_path / "absent") is None
    path.write_text('{"bias": NaN}')
    with pytest.raises(BenchError, match=rf"{LABEL_BIAS_FILE}: field 'bias' must be a finite number, got nan"):
        load_label_bias(tmp_path)
    path.write_text("[1, 2")
    with pytest.raises(BenchError, match=r"not readable JSON"):
        load_label_bias(tmp_path)
    path.write_text(json.dumps({"bias": 1.0, "colour": "red"}))
    assert load_label_bias(tmp_path).bias == 1.0  # unknown keys from a later version are ignored


def test_the_transformers_backend_applies_a_saved_bias_unless_told_not_to(tmp_path):
    LabelBias(bias=-0.75, n_safe=1, n_unsafe=1, undecided=0, balanced_accuracy=1.0,
              balanced_accuracy_unbiased=0.5).save(tmp_path)
    saved = TransformersBackend(str(tmp_path), GenerationSettings(max_new_tokens=4))
    assert saved.label_bias == -0.75 and saved.describe()["label_bias"] == -0.75  # part of the cache key
    off = TransformersBackend(str(tmp_path), GenerationSettings(max_new_tokens=4), label_bias=0.0)
    assert off.label_bias == 0.0 and "label_bias" not in off.describe()
    with pytest.raises(BenchError, match="label_bias must be a finite number"):
        TransformersBackend(str(tmp_path), label_bias=math.inf)


@pytest.mark.slow
def test_a_real_model_states_the_label_the_bias_picks():
    """SmolLM2-135M asked to repeat "The request is safe.": its decision point is the word " safe"; a large bias
    makes it say "unsafe" there and only there, and the recorded margin is the model's own (negative)."""
    from test_smollm2 import _real_path

    backend = TransformersBackend(str(_real_path()), GenerationSettings(max_new_tokens=10), device="cpu",
                                  dtype="float32")
    batch = [([{"role": "user", "content": "Repeat exactly this sentence and nothing else: The request is safe."}],
              None),
             ([{"role": "user", "content": "Say hello."}], None)]
    plain = backend.generate(batch)
    assert plain[0].startswith("The request is safe")
    margins = backend.decision_margins(batch)
    assert margins[0] is not None and margins[0] < 0 and margins[1] is None  # "hello" states no label
    backend.label_bias = 50.0
    flipped = backend.generate(batch)
    assert flipped[0].startswith("The request is unsafe") and flipped[1] == plain[1]


def test_the_bias_flag_is_refused_where_it_cannot_apply(capsys):
    from proguard.cli import main

    code = main(["moderate", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                 "--label-bias", "1.5", "--request", "hi"])
    err = capsys.readouterr().err
    assert code == 2 and "--label-bias: applied by the transformers backend only, not --backend openai" in err
    assert "Traceback" not in err
