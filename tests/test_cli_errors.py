"""Every CLI command turns bad input into one error line and exit code 2 (usage) or 1 (run failure),
never a traceback; ``--debug`` shows the traceback instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from proguard.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml")
URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
OPENAI = ["--backend", "openai", "--base-url", URL, "--model", "m", "--max-retries", "0", "--timeout", "1"]


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, str]:
    """Malformed inputs of every kind a command reads."""
    d = tmp_path_factory.mktemp("bad")
    (d / "latin1.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    (d / "broken.jsonl").write_text('{"id": 1\n')
    (d / "empty.parquet").write_bytes(b"")
    (d / "junk.parquet").write_text("not parquet")
    (d / "notds").mkdir()
    (d / "notds" / "x.txt").write_text("x")
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "a_file").write_text("keep")
    cache = d / "cache"
    cache.mkdir()
    (cache / "generations.jsonl").write_text('{"oops": 1}\n{"more": 2}\n')
    return {k: str(d / k) for k in ("latin1.jsonl", "broken.jsonl", "empty.parquet", "junk.parquet", "notds",
                                    "list.yaml", "a_file", "cache")} | {"missing": str(d / "missing"), "dir": str(d)}


def cases(b: dict[str, str]) -> dict[str, list[list[str]]]:
    out = b["dir"] + "/out"
    return {
        "demo": [["--sample", "nope"], ["--data", b["missing"]], ["--data", b["latin1.jsonl"]], ["--taxonomy", "nope"]],
        "bench": [
            ["--backend", "openai", "--model", "m", "--out", out],
            ["--backend", "openai", "--base-url", "nope", "--model", "m", "--out", out],
            [*OPENAI, "--tasks", b["missing"], "--out", out],
            [*OPENAI, "--tasks", b["notds"], "--out", out],
            [*OPENAI, "--tasks", b["empty.parquet"], "--out", out],
            [*OPENAI, "--data", b["broken.jsonl"], "--out", out],
            [*OPENAI, "--data", b["latin1.jsonl"], "--out", out],
            [*OPENAI, "--holdout", "C99", "--out", out],
            [*OPENAI, "--concurrency", "0", "--out", out],
            [*OPENAI, "--taxonomy", "nope", "--out", out],
            [*OPENAI, "--limit", "2", "--out", b["cache"]],
            [*OPENAI, "--out", b["a_file"]],
            [*OPENAI, "--allow-failures", "lots", "--out", out],
            [*OPENAI, "--limit", "2", "--no-plots", "--no-progress", "--out", out + "-down"],  # nothing listening
            ["--model", "proguard-tests/no-such-model", "--out", out],
            ["--model", "m"],  # argparse: --out missing
            ["compare", b["missing"]],  # `bench compare`: its own command line, the same error path
            ["compare", b["dir"], "--out", b["a_file"]],
        ],
        "moderate": [
            ["--model", "m"],
            [*OPENAI, "--input", b["missing"]],
            [*OPENAI, "--input", b["latin1.jsonl"]],
            [*OPENAI, "--input", b["broken.jsonl"]],
            ["--backend", "openai", "--model", "m", "--request", "hi"],
        ],
        "rewards": [
            ["score", "--input", b["missing"]],
            ["score", "--input", b["latin1.jsonl"]],
            ["score", "--input", b["broken.jsonl"]],
            ["score", "--preset", "nope", "--input", b["broken.jsonl"]],
            ["score", "--recipe", b["missing"], "--input", b["broken.jsonl"]],
            ["nope"],
        ],
        "suites": [
            ["map", "nope", "--taxonomy", "default"],
            ["map", "xstest", "--taxonomy", "nope"],
            ["export", "nope", "--data-root", b["dir"], "--out", out],
            ["export", "xstest", "--data-root", b["missing"], "--out", out],
            ["nope"],
        ],
        "synonyms": [["build", "--taxonomy", "nope"], ["check", "--taxonomy", "nope"], ["check", "--bank", b["missing"]]],
        "tasks": [
            ["--data", b["latin1.jsonl"], "--taxonomy", "default", "--out", out],
            ["--data", b["empty.parquet"], "--taxonomy", "default", "--out", out],
            ["--data", b["junk.parquet"], "--taxonomy", "default", "--out", out],
            ["--data", b["notds"], "--taxonomy", "default", "--out", out],
            ["--data", b["missing"], "--taxonomy", "default", "--out", out],
            ["--data", b["broken.jsonl"], "--taxonomy", "nope", "--out", out],
            ["--data", b["broken.jsonl"], "--taxonomy", "default", "--out", b["a_file"]],
            ["--data", b["broken.jsonl"], "--taxonomy", "default", "--out", b["dir"], "--overwrite"],
        ],
        "train": [
            [b["missing"]],
            [b["list.yaml"]],
            [TINY, "grpo.learning_rat=1"],
            [TINY, "grpo.learning_rate=nan", "--check"],
            [TINY, "logging.run_name=${oc.env:HOME}", "--check"],
            [TINY, "rewards=[{name: 'os:system'}]", "--check"],
            [TINY, f"data.samples={b['latin1.jsonl']}", f"output_dir={out}"],
            [TINY, f"data.samples={b['broken.jsonl']}", f"output_dir={out}"],
            [TINY, f"data.samples={b['missing']}", f"output_dir={out}"],
            [TINY, f"output_dir={b['a_file']}"],
            [TINY, "--chek"],
        ],
        "distill": [
            ["--out", out, "--data", b["missing"]],
            ["--out", out, "--data", b["latin1.jsonl"]],
            ["--out", out, "--tasks", b["notds"]],
            ["--out", out, "--taxonomy", "nope"],
            ["--out", out, "--teacher", "openai", "--model", "m", "--base-url", "nope"],
        ],
        "sft": [[b["missing"]], [b["list.yaml"]], [TINY, "--check"]],
        "quickstart": [["--sft", "nope"], ["--sft-recipe", b["missing"]]],
        "vllm-serve": [[b["missing"]], [TINY, "rollout.server_port=0"], [TINY, "--print"]],
    }


def registered_commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return list(sub.choices)


def test_every_registered_command_has_bad_argument_cases(bad):
    assert registered_commands() == COMMANDS
    assert set(cases(bad)) == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_arguments_give_one_error_line_and_exit_1_or_2(command, bad, capsys):
    for args in cases(bad)[command]:
        try:
            code = main([command, *args])
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        err = capsys.readouterr().err
        assert code in (1, 2), (args, code, err[-500:])
        assert "Traceback" not in err, (args, err[-2000:])
        last = [line for line in err.splitlines() if line.strip() and "warn" not in line.lower()]
        assert last and (f"proguard {command}: error: " in err or "error:" in last[-1]), (args, err[-500:])


def test_debug_shows_the_traceback(bad):
    from proguard.errors import UsageError

    args = ["tasks", "--data", bad["notds"], "--taxonomy", "default", "--out", bad["dir"] + "/dbg"]
    assert main(args) == 2
    with pytest.raises(UsageError, match="not a saved datasets"):
        main(["--debug", *args])


def test_a_bug_keeps_its_traceback(monkeypatch):
    import proguard.commands.demo as demo

    def boom(args):
        raise KeyError("a bug")

    monkeypatch.setattr(demo, "run", boom)
    with pytest.raises(KeyError):
        main(["demo"])


# ---------------------------------------------------------------------------------------------
# Hostile inputs (issue 25): each class below made a command print a traceback. The files are
# generated here: a real PNG where text is expected, JSON nested 100,000 deep, a 5,000-digit integer.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, str]:
    from PIL import Image

    d = tmp_path_factory.mktemp("hostile")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(d / "picture.png")
    deep = "[" * 100_000 + "]" * 100_000
    (d / "deep.jsonl").write_text(deep + "\n")
    (d / "deep_field.jsonl").write_text('{"completion": "x", "request": ' + "[" * 5000 + "]" * 5000 + "}\n")
    big = "9" * 5000
    (d / "bigint.jsonl").write_text('{"completion": "x", "id": ' + big + "}\n")
    (d / "deep.json").write_text(deep)
    (d / "bigint.json").write_text('{"name": "x", "nodes": {"C1": {"name": ' + big + "}}}")
    (d / "ok.jsonl").write_text('{"completion": "<answer>Request: safe</answer>", "modality": "text", '
                                '"request_label": "safe"}\n')
    (d / "a_dir").mkdir()
    (d / "a_file").write_text("keep")
    return {p.name: str(p) for p in d.iterdir()} | {"dir": str(d)}


def hostile_cases(h: dict[str, str]) -> dict[str, list[list[str]]]:
    out = h["dir"] + "/out"
    deep_jsonl = [h["deep.jsonl"], h["deep_field.jsonl"], h["bigint.jsonl"]]
    return {
        "out-in-proc": [
            ["bench", *OPENAI, "--out", "/proc/self/x"],
            ["tasks", "--data", str(ROOT / "proguard" / "assets" / "sample" / "samples.jsonl"), "--taxonomy",
             "default", "--out", "/proc/self/x"],
            ["distill", "--limit", "2", "--no-progress", "--out", "/proc/self/x"],
            ["synonyms", "build", "--no-wordnet", "--out", "/proc/self/x"],
            ["rewards", "score", "--input", h["ok.jsonl"], "--output", "/proc/self/x"],
        ],
        "text-file-is-a-png": [
            ["distill", "--template", h["picture.png"], "--limit", "2", "--no-progress", "--out", out + "-png"],
            ["synonyms", "check", "--bank", h["picture.png"]],
            ["demo", "--taxonomy", h["picture.png"]],
            ["tasks", "--data", h["ok.jsonl"], "--taxonomy", h["picture.png"], "--out", out + "-png"],
        ],
        "output-of-the-wrong-type": [
            ["distill", "--limit", "2", "--no-progress", "--out", h["a_file"]],
            ["rewards", "score", "--input", h["ok.jsonl"], "--output", h["a_dir"]],
            ["synonyms", "build", "--no-wordnet", "--out", h["a_dir"]],
        ],
        "malformed-base-url": [
            ["bench", "--backend", "openai", "--model", "m", "--base-url", "http://[::1", "--out", out + "-url"],
            ["moderate", "--backend", "openai", "--model", "m", "--base-url", "http://[::1", "--request", "hi"],
            ["distill", "--teacher", "openai", "--model", "m", "--base-url", "http://[::1", "--out", out + "-url2"],
            ["bench", "--backend", "openai", "--model", "m", "--base-url", "http://h:99999/v1", "--out", out + "-url3"],
        ],
        "deep-or-huge-json": [
            *[["rewards", "score", "--input", f] for f in deep_jsonl],
            *[["moderate", *OPENAI, "--input", f] for f in deep_jsonl],
            *[["tasks", "--data", f, "--taxonomy", "default", "--out", out + "-deep"] for f in deep_jsonl],
            ["synonyms", "check", "--bank", h["deep.json"]],
            ["synonyms", "check", "--bank", h["bigint.json"]],
        ],
        "non-finite-or-zero-numbers": [
            ["bench", *OPENAI, "--temperature", "nan", "--out", out + "-nan"],
            ["bench", *OPENAI, "--top-p", "nan", "--out", out + "-nan"],
            ["moderate", *OPENAI, "--batch-size", "0", "--request", "hi"],
            ["moderate", *OPENAI[:-2], "--timeout", "inf", "--request", "hi"],
            ["distill", "--teacher", "openai", "--model", "m", "--base-url", URL, "--temperature", "nan",
             "--out", out + "-nan2"],
            ["synonyms", "check", "--min-margin", "nan"],
            ["suites", "map", "xstest", "--min-score", "nan"],
            ["synonyms", "build", "--no-wordnet", "--max-per-node", "-1", "--out", out + "-bank.yaml"],
        ],
    }


@pytest.mark.parametrize("kind", ["out-in-proc", "text-file-is-a-png", "output-of-the-wrong-type", "malformed-base-url",
                                  "deep-or-huge-json", "non-finite-or-zero-numbers"])
def test_hostile_inputs_give_one_error_line(kind, hostile, capsys):
    for args in hostile_cases(hostile)[kind]:
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code in (1, 2), (args, code, err[-800:])
        assert "Traceback" not in err, (args, err[-2000:])
        last = [line for line in err.splitlines() if line.strip()][-1]
        assert "error:" in last, (args, err[-500:])
    assert Path(hostile["a_file"]).read_text() == "keep" and Path(hostile["a_dir"]).is_dir()


def test_non_finite_or_zero_numbers_are_refused_naming_the_option(hostile, capsys):
    """Not just one line: the line says which number is wrong (``moderate --batch-size 0`` gave a range() message)."""
    named = ["temperature", "top_p", "batch_size", "--timeout", "temperature", "--min-margin", "--min-score",
             "--max-per-node"]
    for args, word in zip(hostile_cases(hostile)["non-finite-or-zero-numbers"], named, strict=True):
        code = main(args)
        last = [line for line in capsys.readouterr().err.splitlines() if line.strip()][-1]
        assert code == 2 and word in last, (args, last)

