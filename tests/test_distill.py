"""``proguard distill``: the template teacher, model teachers through the OpenAI backend against the local stub
server (a teacher that contradicts the label, malformed answers, failed requests), rejection counts, the report,
and a run that fails mid-way and resumes from the generation cache."""

from __future__ import annotations

import json

import datasets
import pytest

from doubles.openai_stub import OpenAIStub
from proguard.bench.backends import GenerationSettings, OpenAIBackend
from proguard.cli import main as cli_main
from proguard.data import BUNDLED_SAMPLES, load_samples
from proguard.distill.gold import DistillError, Gold, check_answer
from proguard.distill.runner import DistillConfig, run_distill
from proguard.distill.teachers import BackendTeacher, TeacherPrompt, TemplateTeacher
from proguard.protocol import parse_completion
from proguard.tasks.config import TaskConfig
from proguard.tasks.generator import build_tasks, default_tasks
from taxonomy import load_taxonomy

TAX = load_taxonomy("default")


@pytest.fixture(scope="module")
def tasks():
    """Shuffled-ID training tasks of the bundled samples, some with their own category hidden (OOD)."""
    samples = load_samples(BUNDLED_SAMPLES, TAX)
    samples = samples.filter(lambda r: r["modality"] in ("text", "image", "text_image"))  # the tiny VL's three
    cfg = TaskConfig(shuffle_ids=True, own_category_hide_prob=0.5, seed=1)
    return build_tasks(samples, TAX, cfg)["train"]


def test_template_teacher_answers_pass_their_own_gold_check(tasks):
    """Every modality, shuffled IDs, OOD rows: the template critique parses and matches the gold; kept = rows."""
    teacher = TemplateTeacher()
    assert any(tasks["ood"]) and len(set(tasks["modality"])) == 3
    for i, row in enumerate(tasks):
        gold = Gold.from_row(row, TAX, f"row {i + 1}")
        text = teacher.critique(gold)
        parsed, reason = check_answer(text, gold)
        assert reason is None, (row["task_id"], text)
        assert parsed.reasoning and (gold.category_name or "safe" in parsed.reasoning)
        if row["ood"]:
            assert parsed.category_kind == "free_text"


def test_check_rejects_each_kind_of_disagreement(tasks):
    """A wrong label, a wrong ID, an ID on an OOD task and a format error each name their reason."""
    teacher = TemplateTeacher()
    rows = {("unsafe" if Gold.from_row(r, TAX, "r").target.unsafe else "safe", bool(r["ood"])): r for r in tasks}
    unsafe = Gold.from_row(rows[("unsafe", False)], TAX, "r")
    text = teacher.critique(unsafe)
    assert check_answer(text.replace("Request: unsafe", "Request: safe").replace(f"Category: {unsafe.category_shown}",
                                                                                  "Category: None"), unsafe)[1] in (
        "request_label", "format")
    other = "C1" if unsafe.category_shown != "C1" else "C2"
    assert check_answer(text.replace(f"Category: {unsafe.category_shown}", f"Category: {other}"), unsafe)[1] == "category"
    ood = Gold.from_row(rows[("unsafe", True)], TAX, "r")
    assert check_answer(teacher.critique(ood).replace(f"Category: {ood.category_shown}", "Category: C1"), ood)[1] == (
        "ood_needs_free_text")
    assert check_answer("Request: unsafe", unsafe)[1] == "format"


def test_template_distill_writes_dataset_and_report_then_resumes_from_cache(tasks, tmp_path):
    """All rows kept; messages end in the assistant answer; images travel; a rerun answers nothing anew."""
    out = tmp_path / "d"
    first = run_distill(tasks, TemplateTeacher(), out, TAX, config=DistillConfig(progress=False))
    assert (first.kept, first.generated, first.cached) == (len(tasks), len(tasks), 0)
    ds = datasets.load_from_disk(str(first.dataset_path))
    assert len(ds) == len(tasks) and {"messages", "images", "task_id", "request_label"} <= set(ds.column_names)
    for row in ds:
        last = row["messages"][-1]
        assert last["role"] == "assistant"
        assert parse_completion(last["content"][0]["text"], row["modality"]).ok
        n_parts = sum(1 for m in row["messages"] for p in m["content"] if p["type"] == "image")
        assert n_parts == len(row["images"]) == (row["modality"] != "text")
    report = first.report_path.read_text()
    assert "## By modality" in report and "| text_image |" in report and "## By category" in report
    again = run_distill(tasks, TemplateTeacher(), out, TAX, config=DistillConfig(progress=False))
    assert (again.kept, again.generated, again.cached) == (len(tasks), 0, len(tasks))


def _stub_answer(body):
    """A model teacher: echoes the gold answer block it was shown, except where the request says otherwise."""
    system = body["messages"][0]["content"]
    shape = system.index("(your reasoning)\n</think>\n") + len("(your reasoning)\n</think>\n")
    block = system[shape: system.index("</answer>", shape) + len("</answer>")]
    user = body["messages"][-1]["content"]
    user = user if isinstance(user, str) else " ".join(p.get("text", "") for p in user if p.get("type") == "text")
    if "contradict" in user:  # a well-formed answer that calls the unsafe request safe
        return "<think>\nLooks harmless.\n</think>\n<answer>\nRequest: safe\nResponse: None\nCategory: None\n</answer>"
    if "malformed" in user:
        return "I think it is fine. Request: safe"
    return "<think>\nThe conversation asks for it plainly.\n</think>\n" + block


def _write_samples(path, requests):
    rows = [
        {"id": f"s{i}", "modality": "text", "request": req, "request_label": label,
         **({"category": "C8S1"} if label == "unsafe" else {})}
        for i, (req, label) in enumerate(requests)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return default_tasks(load_samples(path, TAX), TAX)


def test_openai_teacher_rejections_are_counted_and_failed_rows_resume(tmp_path):
    """Contradicting and malformed answers are rejected and counted; requests that fail are retried on the rerun."""
    tasks = _write_samples(tmp_path / "s.jsonl", [
        ("how do I bake bread", "safe"), ("build a weapon", "unsafe"), ("contradict me please", "unsafe"),
        ("malformed one", "safe"), ("this one 500-always fails", "safe"), ("another safe one", "safe"),
    ])
    out = tmp_path / "d"
    with OpenAIStub(_stub_answer) as stub:
        backend = OpenAIBackend(stub.url, "teacher", GenerationSettings(max_new_tokens=64), timeout=2.0,
                                max_retries=1, backoff_s=0.01, concurrency=3)
        first = run_distill(tasks, BackendTeacher(backend), out, TAX, config=DistillConfig(batch_size=4, progress=False))
        assert first.kept == 3
        assert dict(first.rejected) == {"request_label": 1, "format": 1, "generation_failed": 1}
        summary = json.loads((out / "distill.json").read_text())
        assert summary["by_modality"]["text"] == {"rows": 6, "kept": 3, "rejected": 3}
        assert summary["format_codes"] == {"missing_tag": 1}
        rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
        assert {r["reason"] for r in rejected} == {"request_label", "format", "generation_failed"}
        assert "rejected 3" in first.report_path.read_text()

        stub.healthy = True
        n_before = len(stub.requests)
        second = run_distill(tasks, BackendTeacher(backend), out, TAX, config=DistillConfig(batch_size=4, progress=False))
        assert len(stub.requests) - n_before == 1  # only the failed request is asked again
        assert (second.kept, second.generated, second.cached) == (4, 1, 5)
        assert dict(second.rejected) == {"request_label": 1, "format": 1}
    assert len(datasets.load_from_disk(str(second.dataset_path))) == 4


class _Crashing:
    """A teacher whose second batch raises (a crash mid-run), then behaves."""

    def __init__(self, crash: bool):
        self.inner, self.crash, self.calls, self.answered = TemplateTeacher(), crash, 0, 0

    def describe(self):
        return self.inner.describe()

    def answer(self, items):
        self.calls += 1
        if self.crash and self.calls == 2:
            raise RuntimeError("teacher died")
        self.answered += len(items)
        return self.inner.answer(items)


def test_a_teacher_that_fails_mid_run_resumes_where_it_stopped(tasks, tmp_path):
    """The batch answered before the crash is cached; the rerun asks only for the rest."""
    cfg = DistillConfig(batch_size=4, progress=False)
    with pytest.raises(RuntimeError, match="teacher died"):
        run_distill(tasks, _Crashing(True), tmp_path / "d", TAX, config=cfg)
    teacher = _Crashing(False)
    result = run_distill(tasks, teacher, tmp_path / "d", TAX, config=cfg)
    assert (result.cached, result.generated, teacher.answered) == (4, len(tasks) - 4, len(tasks) - 4)
    assert result.kept == len(tasks)


def test_teacher_template_is_checked_and_overridable(tmp_path):
    """An unknown placeholder or a template without the answer is an error naming the file; a custom one is used."""
    bad = tmp_path / "bad.md"
    bad.write_text("Policy: $policy\nAnswer: $answr\n")
    with pytest.raises(DistillError, match=r"bad.md: unknown placeholder \$answr"):
        TeacherPrompt(bad)
    bad.write_text("Policy: $policy\n")
    with pytest.raises(DistillError, match=r"must show the gold answer"):
        TeacherPrompt(bad)
    good = tmp_path / "good.md"
    good.write_text("Explain ($labels, $category_name). End with:\n$answer\n")
    samples = load_samples(BUNDLED_SAMPLES, TAX)
    row = default_tasks(samples, TAX)[3]
    messages = TeacherPrompt(good).messages(row["prompt"], Gold.from_row(row, TAX, "row 4"))
    system = messages[0]["content"][0]["text"]
    assert system.startswith("Explain (request unsafe") and "<answer>\nRequest: unsafe" in system
    assert messages[1]["role"] == "user"


def test_cli_distill_template_and_errors(tmp_path, capsys):
    """The command writes dataset + report; a model teacher without --model is a one-line error."""
    assert cli_main(["distill", "--out", str(tmp_path / "o"), "--no-progress", "--limit", "5"]) == 0
    assert "kept 5, rejected 0" in capsys.readouterr().out
    assert (tmp_path / "o" / "report.md").is_file()
    assert cli_main(["distill", "--teacher", "openai", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--teacher openai needs --model" in capsys.readouterr().err
