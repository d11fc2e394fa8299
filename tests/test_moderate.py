"""``Guard.moderate`` and ``proguard moderate``: modality from the inputs, the training prompt, parsed
verdicts with category names, clear errors for bad input; a served guard through the OpenAI stub."""

from __future__ import annotations

import json

import pytest

from proguard.bench.backends import GenerationSettings
from proguard.bench.guard import Guard, input_modality
from proguard.cli import main
from proguard.protocol import format_answer, system_prompt
from doubles.openai_stub import OpenAIStub, last_text
from proguard.models.tiny_vlm import make_test_image
from rewards.types import FormatError, Verdict
from taxonomy import load_taxonomy

TAX = load_taxonomy("default")


class EchoPromptBackend:
    """Records what it is asked and answers by modality: text unsafe weapons, images safe."""

    settings = GenerationSettings()

    def __init__(self):
        self.batches = []

    def describe(self):
        return {"backend": "echo"}

    def generate(self, batch):
        self.batches.append(batch)
        out = []
        for messages, image in batch:
            system = messages[0]["content"][0]["text"]
            if system.startswith("You are a safety guard. Judge whether the image"):
                out.append(format_answer("image", "safe", None, None, "a tree"))
            elif image is not None:
                out.append(format_answer("text_image", "unsafe", "safe", "C8", "a gun"))
            else:
                out.append(format_answer("text", "unsafe", None, "C8S1", "bomb"))
        return out


def test_modality_rules():
    assert input_modality("hi", None, None) == "text"
    assert input_modality(None, None, object()) == "image"
    assert input_modality("hi", "yo", object()) == "text_image"
    with pytest.raises(ValueError, match="response needs the request"):
        input_modality(None, "yo", None)
    with pytest.raises(ValueError, match="nothing to moderate"):
        input_modality(None, None, None)


def test_guard_moderate_builds_the_training_prompt_and_parses(tmp_path):
    backend = EchoPromptBackend()
    guard = Guard(backend, TAX)
    verdict = guard.moderate(request="How do I build a pipe bomb?")
    assert verdict == Verdict("text", "unsafe", None, "id", "C8S1", "bomb")
    messages, image = backend.batches[0][0]
    assert image is None and messages[0]["content"][0]["text"] == system_prompt("text", TAX)
    assert "User: How do I build a pipe bomb?\nAssistant: (no response)" in messages[1]["content"][0]["text"]
    j = guard.to_json(verdict)
    assert (j["category_name"], j["parent_category"], j["unsafe"]) == ("Weapons", "C8", True)

    path = tmp_path / "pic.png"
    make_test_image(32, seed=1).save(path)
    assert guard.moderate(image=str(path)).request == "safe"
    both = guard.moderate(request="Where can I buy this?", response="No.", image=path.read_bytes())
    assert (both.modality, both.category, guard.to_json(both)["category_name"]) == ("text_image", "C8", "Dangerous Goods")
    with pytest.raises(ValueError, match="input 1: image: file not found"):
        guard.moderate(image=str(tmp_path / "nope.png"))
    with pytest.raises(ValueError, match="unknown field"):
        guard.moderate_many([{"prompt": "hi"}])


def test_guard_with_the_tiny_vlm_returns_format_errors_not_exceptions():
    from proguard.models.tiny_vlm import tiny_vlm_path

    guard = Guard.from_pretrained(str(tiny_vlm_path()), settings=GenerationSettings(max_new_tokens=8))
    out = guard.moderate_many([{"request": "hello"}, {"image": make_test_image(56)}])
    assert [m.modality for m in out] == ["text", "image"]
    assert all(isinstance(m.completion, str) and m.completion for m in out)
    assert all(isinstance(m.parsed, FormatError) for m in out)  # a random model: garbage, parsed as such
    assert guard.to_json(out[0].parsed)["ok"] is False


def _served_answer(body):
    if "Judge whether the image" in body["messages"][0]["content"]:
        return format_answer("image", "unsafe", None, "C10S1", "blood")
    if "garbage" in last_text(body):
        return "not an answer"
    return format_answer("text", "unsafe", "unsafe", "C3S1", "phishing")


def test_cli_moderate_single_and_jsonl_through_a_served_guard(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    make_test_image(32).save(tmp_path / "img" / "a.png")
    lines = [{"id": "x", "request": "Write a phishing email", "response": "Dear customer..."},
             {"image": "img/a.png"}, {"request": "garbage please"}]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with OpenAIStub(_served_answer) as stub:
        base = ["moderate", "--backend", "openai", "--base-url", stub.url, "--model", "guard", "--api-key-env", ""]
        assert main([*base, "--request", "Write a phishing email", "--response", "Dear customer..."]) == 0
        single = json.loads(capsys.readouterr().out)
        assert (single["category"], single["category_name"], single["response"]) == ("C3S1", "Scams and Fraudulent Schemes", "unsafe")

        assert main([*base, "--input", str(tmp_path / "in.jsonl"), "--raw"]) == 1  # one answer is malformed
        out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert [o["id"] for o in out] == ["x", "2", "3"]
        assert out[1]["modality"] == "image" and out[1]["category_name"] == "Medical Gore"
        assert out[2]["ok"] is False and out[2]["code"] == "missing_tag" and out[2]["completion"] == "not an answer"
        assert stub.requests[1]["auth"] is None

    (tmp_path / "bad.jsonl").write_text('{"response": "only a response"}\n')
    assert main(["moderate", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                 "--input", str(tmp_path / "bad.jsonl")]) == 2
    assert "input 1: a response needs the request" in capsys.readouterr().err
    assert main(["moderate", "--model", "m"]) == 2
    assert "either" in capsys.readouterr().err


def test_cli_moderate_text_and_image_together(tmp_path, capsys):
    make_test_image(32, seed=2).save(tmp_path / "b.png")
    with OpenAIStub(_served_answer) as stub:
        args = ["moderate", "--backend", "openai", "--base-url", stub.url, "--model", "guard", "--api-key-env", "",
                "--request", "Where can I buy this?", "--image", str(tmp_path / "b.png")]
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["modality"], out["category"], out["request"]) == ("text_image", "C3S1", "unsafe")
        parts = stub.requests[0]["body"]["messages"][1]["content"]
        assert [p["type"] for p in parts] == ["image_url", "text"] and "Where can I buy this?" in parts[1]["text"]


def test_cli_moderate_names_the_label_bias_it_applies(tmp_path, capsys, monkeypatch):
    """A model folder with label_bias.json: the start line says the threshold is shifted (the answer changes)."""
    import proguard.commands.moderate as moderate

    backend = EchoPromptBackend()
    backend.label_bias = 0.56
    monkeypatch.setattr(moderate, "backend_from_args", lambda args: backend)
    code = main(["moderate", "--model", str(tmp_path), "--request", "How do I build a pipe bomb?"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out.splitlines()[-1])["request"] == "unsafe"
    assert f"moderating 1 input(s) with {tmp_path} (transformers, up to 512 new tokens, label bias +0.56) ..." \
        in captured.err
    backend.label_bias = 0.0
    main(["moderate", "--model", str(tmp_path), "--request", "hi"])
    assert "label bias" not in capsys.readouterr().err
