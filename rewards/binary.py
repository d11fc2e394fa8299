"""The ``binary`` reward: is the request label right, is the response label right.

Image-only samples have no response label, so their request (image) label carries both weights:
the best binary score is the same for every modality (ProGuard gives an image's label 2 points).
A conversation without a response must answer ``Response: None``. A format error scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewards import _checks
from rewards.api import Scored
from rewards.types import Parsed, Target, has_response


class BinaryReward:
    """Weighted correctness of the safe/unsafe labels.

    Args:
        request_weight: points for a correct request label (text and text+image).
        response_weight: points for a correct response label; image samples give these points to the
            image label too, so an image's label is worth ``request_weight + response_weight``.

    Returns:
        ``Scored``: the weighted total plus the parts ``request`` and ``response`` (1.0 right, 0.0
        wrong; ``response`` is ``None`` for media-only samples: image, video, audio).

    Example:
        >>> from rewards.types import Target, Verdict
        >>> v = Verdict("text", "unsafe", "safe", "id", "C1S1", "...")
        >>> BinaryReward()([v], [Target("text", "unsafe", "unsafe", "C1S1")]).total
        [1.0]
        >>> BinaryReward()([Verdict("image", "unsafe", None, "id", "C1S1", "")], [Target("image", "unsafe", None, "C1S1")]).total
        [2.0]
    """

    def __init__(self, request_weight: float = 1.0, response_weight: float = 1.0):
        self.request_weight = _checks.number("request_weight", request_weight, low=0.0)
        self.response_weight = _checks.number("response_weight", response_weight, low=0.0)

    def __call__(self, parsed: Sequence[Parsed], targets: Sequence[Target]) -> Scored:
        """Score each completion."""
        total: list[float | None] = []
        request: list[float | None] = []
        response: list[float | None] = []
        for p, t in zip(parsed, targets, strict=True):
            image = not has_response(t.modality)  # media-only: the request label is the whole answer
            if not p.ok or p.modality != t.modality:
                total.append(0.0)
                request.append(0.0)
                response.append(None if image else 0.0)
                continue
            req_ok = 1.0 if p.request == t.request_label else 0.0
            request.append(req_ok)
            if image:
                response.append(None)
                total.append(req_ok * (self.request_weight + self.response_weight))
            else:
                # A conversation without a response is right only with "Response: None" (None == None).
                resp_ok = 1.0 if p.response == t.response_label else 0.0
                response.append(resp_ok)
                total.append(req_ok * self.request_weight + resp_ok * self.response_weight)
        return Scored(total, {"request": request, "response": response})
