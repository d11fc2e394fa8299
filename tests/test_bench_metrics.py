"""Benchmark metrics on hand-built predictions whose every count was worked out by hand."""

from __future__ import annotations

import pytest

from proguard.bench.metrics import (
    PRED_FREE,
    PRED_MALFORMED,
    PRED_SAFE,
    PRED_UNLISTED,
    Record,
    binary_counts,
    compute_metrics,
    predicted_parent,
)
from rewards.types import FormatError, Target, Verdict

BAD = FormatError("missing_tag", "missing <answer>")


def V(mod, req, resp, kind="none", cat=None, why="think words here"):
    return Verdict(mod, req, resp, kind, cat, why)


def rec(n, target, parsed, sim=None):
    # latency n seconds, each sample half a second of the run: mean 6.5, p50 6, p95 12, 2 samples/s
    return Record(f"t{n}", target, parsed, similarity=sim, latency_s=float(n), time_share_s=0.5)


SHUFFLED = {"C8": "C3", "C3": "C8", "C1": "C1"}

RECORDS = [
    # 1 text: all right                                   req TP  resp TP  cat exact+parent  ood TN
    rec(1, Target("text", "unsafe", "unsafe", "C8S1"), V("text", "unsafe", "unsafe", "id", "C8S1", "a b c d e")),
    # 2 text: sibling subcategory                         req TP  resp TN  cat parent only   ood TN
    rec(2, Target("text", "unsafe", "safe", "C8S1"), V("text", "unsafe", "safe", "id", "C8S3")),
    # 3 text: safe sample called unsafe, Response: None   req FP  resp FP (None is wrong)
    rec(3, Target("text", "safe", "safe"), V("text", "unsafe", None, "id", "C1S1")),
    # 4 text: unsafe response missed                      req TN  resp FN  cat wrong  ood FP (neither)
    rec(4, Target("text", "safe", "unsafe", "C3S1"), V("text", "safe", "safe")),
    # 5 text, no response: malformed                      req FN  resp n/a cat wrong  ood FP (malformed)
    rec(5, Target("text", "unsafe", None, "C4S2"), BAD),
    # 6 image: right                                      req TP           cat right  ood TN
    rec(6, Target("image", "unsafe", None, "C8S1"), V("image", "unsafe", None, "id", "C8S1")),
    # 7 image: safe, no reasoning block (0 words)         req TN
    rec(7, Target("image", "safe"), V("image", "safe", None, why=None)),
    # 8 image OOD, described in free text                 req TP           ood TP  sim 0.8
    rec(8, Target("image", "unsafe", None, "C10S1", ood=True, ood_name="Medical Gore"),
        V("image", "unsafe", None, "free_text", "bloody wound"), sim=0.8),
    # 9 text OOD answered with an ID                      req TP  resp TN  ood FN  sim 0
    rec(9, Target("text", "unsafe", "safe", "C9S1", ood=True, ood_name="Self-Harm and Suicide"),
        V("text", "unsafe", "safe", "id", "C9S3"), sim=0.0),
    # 10 text+image, top level asked, shuffled IDs (C3 shown = C8)  req TP resp TP cat right ood TN
    rec(10, Target("text_image", "unsafe", "unsafe", "C8", "category", SHUFFLED),
        V("text_image", "unsafe", "unsafe", "id", "C3")),
    # 11 text OOD, malformed                              req FN           ood FN  sim 0
    rec(11, Target("text", "unsafe", None, "C7S2", ood=True, ood_name="Extremism and Terrorism"), BAD, sim=0.0),
    # 12 text+image in-taxonomy answered in free text     req TP  resp TN  cat wrong  ood FP
    rec(12, Target("text_image", "unsafe", "safe", "C11", "category"), V("text_image", "unsafe", "safe", "free_text", "nudity")),
]


@pytest.fixture(scope="module")
def metrics():
    return compute_metrics(RECORDS, threshold=0.7, names={"C8": "Dangerous Goods"})


def test_binary_counts_and_undefined_ratios():
    c = binary_counts([True, True, False, False], [True, False, True, False])
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (1, 1, 1, 1)
    assert c["precision"] == c["recall"] == c["f1"] == c["accuracy"] == c["balanced_accuracy"] == 0.5
    none = binary_counts([False, False], [False, False])
    assert none["precision"] is None and none["recall"] is None and none["f1"] is None
    assert none["accuracy"] == 1.0 and none["balanced_accuracy"] is None  # one label: undefined
    # 3 positives all caught, 1 of 2 negatives kept: (1 + 0.5) / 2; constant "positive" on any mix: 0.5
    assert binary_counts([True] * 3 + [False] * 2, [True] * 4 + [False])["balanced_accuracy"] == 0.75
    assert binary_counts([True] * 9 + [False], [True] * 10)["balanced_accuracy"] == 0.5


def test_request_f1_per_modality(metrics):
    req = metrics["binary"]["request"]
    assert (req["text"]["tp"], req["text"]["fp"], req["text"]["fn"], req["text"]["tn"]) == (3, 1, 2, 1)
    assert req["text"]["precision"] == pytest.approx(3 / 4)
    assert req["text"]["recall"] == pytest.approx(3 / 5)
    assert req["text"]["f1"] == pytest.approx(2 / 3)
    assert (req["image"]["tp"], req["image"]["tn"], req["image"]["f1"]) == (2, 1, 1.0)
    assert (req["text_image"]["n"], req["text_image"]["f1"]) == (2, 1.0)
    assert (req["all"]["n"], req["all"]["tp"], req["all"]["fp"], req["all"]["fn"], req["all"]["tn"]) == (12, 7, 1, 2, 2)
    assert req["all"]["f1"] == pytest.approx(14 / 17)


def test_response_f1_only_where_a_response_exists(metrics):
    resp = metrics["binary"]["response"]
    assert "image" not in resp
    assert resp["text"]["n"] == 5  # samples 5 and 11 have no response; image samples none at all
    assert (resp["text"]["tp"], resp["text"]["fp"], resp["text"]["fn"], resp["text"]["tn"]) == (1, 1, 1, 2)
    assert resp["text"]["f1"] == pytest.approx(0.5)
    assert resp["text_image"]["f1"] == 1.0
    assert (resp["all"]["n"], resp["all"]["f1"]) == (7, pytest.approx(2 / 3))


def test_category_accuracy(metrics):
    cat = metrics["category"]
    assert cat["n"] == 7  # in-taxonomy unsafe: 1 2 4 5 6 10 12
    assert cat["exact"] == pytest.approx(3 / 7)
    assert cat["parent"] == pytest.approx(4 / 7)
    assert (cat["subcategory_n"], cat["subcategory"]) == (5, pytest.approx(2 / 5))
    assert cat["per_category"]["C8"] == {"name": "Dangerous Goods", "n": 4, "exact": 0.75, "parent": 1.0}
    assert cat["per_category"]["C11"] == {"name": "C11", "n": 1, "exact": 0.0, "parent": 0.0}
    assert list(cat["per_category"]) == ["C3", "C4", "C8", "C11"]  # numeric ID order
    assert cat["per_modality"]["text_image"] == {"n": 2, "exact": 0.5, "parent": 0.5}


def test_confusion_of_parent_categories(metrics):
    assert metrics["confusion_parent"] == {
        "C3": {PRED_SAFE: 1},
        "C4": {PRED_MALFORMED: 1},
        "C8": {"C8": 4},  # sample 10's shown "C3" maps back to C8
        "C11": {PRED_FREE: 1},
    }


def test_ood_detection(metrics):
    od = metrics["ood_detection"]
    assert (od["n"], od["tp"], od["fp"], od["fn"], od["tn"]) == (10, 1, 3, 2, 4)
    assert od["precision"] == pytest.approx(1 / 4)
    assert od["recall"] == pytest.approx(1 / 3)
    assert od["f1"] == pytest.approx(2 / 7)


def test_ood_description(metrics):
    ds = metrics["ood_description"]
    assert ds["n"] == 3
    assert ds["mean_similarity"] == pytest.approx(0.8 / 3)
    assert ds["share_above_threshold"] == pytest.approx(1 / 3)
    assert (ds["answered_free_text"], ds["mean_similarity_answered"]) == (1, pytest.approx(0.8))
    assert ds["per_category"]["Medical Gore"]["mean_similarity"] == pytest.approx(0.8)


def test_format_reasoning_and_timing(metrics):
    fm = metrics["format"]
    assert fm["valid_rate"] == pytest.approx(10 / 12)
    assert fm["error_codes"] == {"missing_tag": 2}
    assert fm["mean_reasoning_words"] == pytest.approx((5 + 8 * 3 + 0) / 10)
    tm = metrics["timing"]
    assert tm["latency_mean_s"] == pytest.approx(6.5)
    assert (tm["latency_p50_s"], tm["latency_p95_s"]) == (6.0, 12.0)
    assert tm["throughput_samples_per_s"] == pytest.approx(2.0)


def test_counts(metrics):
    assert (metrics["n"], metrics["n_unsafe"], metrics["n_ood"]) == (12, 10, 3)
    assert metrics["n_per_modality"] == {"image": 3, "text": 7, "text_image": 2}


def test_predicted_parent_maps_ids_back_and_flags_unlisted():
    t = Target("text", "unsafe", None, "C8S1", id_map={"C8": "C2", "C8S1": "C2S1", "C1": "C1"})
    ok = lambda cat: Record("x", t, V("text", "unsafe", None, "id", cat))  # noqa: E731
    assert predicted_parent(ok("C2S1")) == "C8"
    assert predicted_parent(ok("C2S7")) == "C8"  # unknown subcategory of a listed parent
    assert predicted_parent(ok("C5")) == PRED_UNLISTED
    assert predicted_parent(Record("x", t, BAD)) == PRED_MALFORMED


def test_a_malformed_answer_is_never_skipped():
    """Replacing right answers by format errors lowers every metric instead of shrinking n."""
    good = compute_metrics(RECORDS[:2], threshold=0.7)
    bad = compute_metrics([Record(r.task_id, r.target, BAD) for r in RECORDS[:2]], threshold=0.7)
    assert bad["binary"]["request"]["all"]["n"] == good["binary"]["request"]["all"]["n"] == 2
    assert good["binary"]["request"]["all"]["f1"] == 1.0 and bad["binary"]["request"]["all"]["f1"] == 0.0
    assert bad["category"]["n"] == 2 and bad["category"]["parent"] == 0.0
    assert bad["format"]["valid_rate"] == 0.0
