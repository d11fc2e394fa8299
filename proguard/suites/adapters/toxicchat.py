"""ToxicChat (Lin et al., 2023; CC-BY-NC-4.0; hf lmsys/toxic-chat, config ``toxicchat0124``): real user
prompts from the Vicuna demo, released as ``data/0124/toxic-chat_annotation_test.csv``.

Columns as released: ``conv_id, user_input, model_output, human_annotation, toxicity, jailbreaking,
openai_moderation``. ``toxicity`` (0/1) is the prompt label; binary only. ``model_output`` is not
labelled, so it is not shown to the guard (ProGuard and GuardReasoner score ToxicChat on the prompt).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, SuiteDataError, flag, group_of, read_csv, text


class ToxicChat(Adapter):
    """ToxicChat 0124 test split (prompt level, binary)."""

    name = "toxicchat"
    title = "ToxicChat"
    folder = "toxicchat"
    files = ("toxic-chat_annotation_test.csv", "data/0124/toxic-chat_annotation_test.csv")
    hub_id = "lmsys/toxic-chat"
    hub_config = "toxicchat0124"
    hub_split = "test"
    published = "huggingface.co/datasets/lmsys/toxic-chat (data/0124/), CC-BY-NC-4.0"
    levels = ("prompt",)

    def read(self, path: Path) -> Iterator[BenchSample]:
        for i, rec in read_csv(path, ("conv_id", "user_input", "toxicity")):
            yield from self.from_record(rec, i, str(path), path.parent)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: row {row}"
        prompt = text(rec, "user_input", where)
        tox = flag(rec.get("toxicity"), where, "toxicity")
        if tox is None:
            raise SuiteDataError(f"{where}: toxicity: empty")
        yield BenchSample(f"toxicchat-{text(rec, 'conv_id', where)}", "text", prompt, None,
                          "unsafe" if tox else "safe", None, group_of(prompt))
