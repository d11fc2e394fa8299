"""A guard's safe/unsafe decision threshold, set on labelled prompts it did not train on (a *label bias*).

A small guard can learn to rank requests (unsafe ones get a higher ``unsafe`` margin than safe ones) long before
its greedy answer puts the threshold between them: on CPU-sized runs the ranking is learnt (label AUC 0.78-0.92)
and the threshold lands wherever the last few updates leave it (BENCHMARKS.md, "Quick start, round 3"). Guards
that score ``P(unsafe)`` (Llama Guard) set that threshold on a validation split; this module does the same for a
generative guard:

- the *decision point* of a completion is the first step at which the model's own top token is one of the two
  label words (``" safe"`` / ``" unsafe"``, first token of each): the model decides *when* it states a label;
- there, ``LabelBiasProcessor`` adds ``bias`` to the ``unsafe`` - ``safe`` logit margin and emits whichever label
  wins; later steps are left alone (the rest of the answer follows the stated label as the model learnt to);
- ``fit_label_bias`` picks the bias that maximises balanced accuracy on a labelled dev split from the margins
  recorded at that point (``TransformersBackend.decision_margins``);
- the bias is saved beside the weights as ``label_bias.json``; the transformers backend applies it by default
  (``bench``, ``moderate``); the vllm and openai backends do not and say so.

Balanced accuracy (mean of the unsafe and the safe recall) weighs both errors alike whatever the dev split's
label mix; ties go to the bias nearest 0 (the model's own threshold).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from proguard.bench.errors import BenchError

LABEL_BIAS_FILE = "label_bias.json"
LABEL_WORDS = (" safe", " unsafe")


@dataclass(frozen=True)
class LabelBias:
    """A fitted decision threshold: ``unsafe`` wins at the decision point when ``margin + bias > 0``."""

    bias: float
    n_safe: int = 0
    """Dev prompts labelled safe that reached a decision point."""
    n_unsafe: int = 0
    """Dev prompts labelled unsafe that reached a decision point."""
    undecided: int = 0
    """Dev prompts whose completion never reached a decision point (not used for the fit)."""
    balanced_accuracy: float = math.nan
    """On the dev prompts, with the bias."""
    balanced_accuracy_unbiased: float = math.nan
    """On the dev prompts, the model's own threshold (bias 0)."""
    fitted_on: str = ""
    """What the dev prompts were (free text, for the reader)."""

    def save(self, folder: str | Path) -> Path:
        """Write ``label_bias.json`` into a model folder."""
        path = Path(folder) / LABEL_BIAS_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path


def load_label_bias(folder: str | Path) -> LabelBias | None:
    """The ``label_bias.json`` of a model folder, or ``None`` when it has none; one-line errors when malformed."""
    path = Path(folder) / LABEL_BIAS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise BenchError(f"{path}: not readable JSON ({type(exc).__name__}); refit it or delete it") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: expected a JSON object, got {type(data).__name__}")
    bias = data.get("bias")
    if not isinstance(bias, (int, float)) or isinstance(bias, bool) or not math.isfinite(bias):
        raise BenchError(f"{path}: field 'bias' must be a finite number, got {bias!r}")
    fields = {k: data[k] for k in LabelBias.__dataclass_fields__ if k in data}
    try:
        return LabelBias(**fields)
    except TypeError as exc:
        raise BenchError(f"{path}: {exc}") from None


def label_token_ids(tokenizer: Any) -> tuple[int, int]:
    """The first token of ``" safe"`` and of ``" unsafe"`` (the two words compared at the decision point)."""
    safe, unsafe = (tokenizer.encode(w, add_special_tokens=False) for w in LABEL_WORDS)
    if not safe or not unsafe or safe[0] == unsafe[0]:
        raise BenchError("the tokenizer does not tell ' safe' and ' unsafe' apart by their first token; a label "
                         "bias cannot be applied to this model")
    return safe[0], unsafe[0]


def balanced_accuracy(pairs: Sequence[tuple[str, float]], bias: float) -> float:
    """Mean of unsafe recall and safe recall when ``unsafe`` is called for ``margin + bias > 0``."""
    pos = [m for label, m in pairs if label == "unsafe"]
    neg = [m for label, m in pairs if label == "safe"]
    if not pos or not neg:
        return math.nan  # undefined without both labels
    return (sum(m + bias > 0 for m in pos) / len(pos) + sum(m + bias <= 0 for m in neg) / len(neg)) / 2


def fit_label_bias(pairs: Sequence[tuple[str, float | None]], fitted_on: str = "") -> LabelBias:
    """The bias maximising balanced accuracy on ``(request label, decision margin)`` pairs (``None``: undecided).

    Candidates put the threshold halfway between neighbouring margins (and outside both ends); ties go to the
    candidate nearest 0. Needs at least one decided prompt of each label."""
    decided = [(label, float(m)) for label, m in pairs if m is not None and label in ("safe", "unsafe")]
    n_unsafe = sum(label == "unsafe" for label, _ in decided)
    n_safe = len(decided) - n_unsafe
    if not n_unsafe or not n_safe:
        raise BenchError(f"fitting a label bias needs decided dev prompts of both labels; got {n_unsafe} unsafe, "
                         f"{n_safe} safe ({sum(m is None for _, m in pairs)} undecided)")
    cuts = sorted({m for _, m in decided})
    thresholds = [cuts[0] - 1.0, *((a + b) / 2 for a, b in zip(cuts, cuts[1:])), cuts[-1] + 1.0]
    best = max(((balanced_accuracy(decided, -t), -abs(t), -t) for t in [0.0, *thresholds]))
    bias = best[2]
    return LabelBias(bias=round(bias, 6), n_safe=n_safe, n_unsafe=n_unsafe,
                     undecided=sum(m is None for _, m in pairs), balanced_accuracy=best[0],
                     balanced_accuracy_unbiased=balanced_accuracy(decided, 0.0), fitted_on=fitted_on)


def anchor_label_bias(reference: Sequence[float | None], pairs: Sequence[tuple[str, float | None]],
                      fitted_on: str = "") -> LabelBias:
    """The bias that moves a model's decision margins back onto a reference model's on the same prompts: the mean of
    ``reference - margin`` over the prompts both decided. For a model trained on from the reference (GRPO from
    SFT), whose margins moved by nearly the same amount on every prompt (BENCHMARKS.md, "GRPO run longer"): the
    reference's threshold with the trained model's ranking. The labels in ``pairs`` only fill the reported
    balanced accuracies; the bias does not use them."""
    if len(reference) != len(pairs):
        raise BenchError(f"anchoring a label bias needs the same prompts: {len(reference)} reference margins, "
                         f"{len(pairs)} margins")
    both = [(r, label, float(m)) for r, (label, m) in zip(reference, pairs, strict=True) if r is not None and m is not None]
    if not both:
        raise BenchError(f"anchoring a label bias needs prompts both models decided; none of {len(pairs)} were")
    bias = sum(r - m for r, _, m in both) / len(both)
    decided = [(label, m) for _, label, m in both if label in ("safe", "unsafe")]
    return LabelBias(bias=round(bias, 6), n_safe=sum(label == "safe" for label, _ in decided),
                     n_unsafe=sum(label == "unsafe" for label, _ in decided), undecided=len(pairs) - len(both),
                     balanced_accuracy=balanced_accuracy(decided, bias),
                     balanced_accuracy_unbiased=balanced_accuracy(decided, 0.0), fitted_on=fitted_on)


def label_bias_processor(tokenizer: Any, batch_size: int, bias: float = 0.0, record: bool = False):
    """A transformers ``LogitsProcessor`` for one ``generate`` call: at each row's decision point it emits the label
    that wins with ``bias`` added (and, with ``record``, keeps the unbiased margin in ``.margins``)."""
    import torch
    from transformers import LogitsProcessor

    safe, unsafe = label_token_ids(tokenizer)

    class LabelBiasProcessor(LogitsProcessor):
        def __init__(self) -> None:
            self.margins: list[float | None] = [None] * batch_size
            self.decided = [False] * batch_size

        def all_decided(self) -> bool:
            return all(self.decided)

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            top = scores.argmax(-1)
            for row in range(scores.shape[0]):
                if self.decided[row] or int(top[row]) not in (safe, unsafe):
                    continue
                self.decided[row] = True
                margin = float(scores[row, unsafe] - scores[row, safe])
                if record:
                    self.margins[row] = margin
                if bias:
                    win, lose = (unsafe, safe) if margin + bias > 0 else (safe, unsafe)
                    keep = scores[row, win].clone()
                    scores[row] = -math.inf  # the winner is this step's only token, greedy or sampled
                    scores[row, win] = keep
            return scores

    return LabelBiasProcessor()
