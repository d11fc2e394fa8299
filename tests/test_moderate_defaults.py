"""`proguard moderate`: a guard-sized default completion budget and a start line before the model loads."""

from __future__ import annotations

import argparse

from proguard.commands import moderate


def test_moderate_defaults_to_a_guard_sized_budget():
    p = argparse.ArgumentParser()
    moderate.add_arguments(p)
    args = p.parse_args(["--model", "m", "--request", "hi"])
    assert args.max_new_tokens == moderate.MODERATE_MAX_NEW_TOKENS == 512
    assert p.parse_args(["--model", "m", "--request", "hi", "--max-new-tokens", "64"]).max_new_tokens == 64


def test_moderate_prints_a_start_line_before_loading(tmp_path, capsys):
    from proguard.cli import main

    assert main(["moderate", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                 "--request", "hi", "--max-retries", "0", "--timeout", "1"]) in (1, 2)
    err = capsys.readouterr().err
    assert "moderating 1 input(s) with http://127.0.0.1:9/v1 (openai, up to 512 new tokens) ..." in err
