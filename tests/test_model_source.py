"""A model path that looks local and does not exist fails at once, in one line, for moderate, bench and train."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from proguard.errors import UsageError
from proguard.hub import check_model_source, looks_local


@pytest.mark.parametrize("name", ["./m", "/abs/m", "~/m", "runs/my-guard", "a/b/c", "does/not/exist/"])
def test_path_shaped_names_are_local(name):
    assert looks_local(name)


@pytest.mark.parametrize("name", ["Qwen/Qwen2.5-VL-7B-Instruct", "gpt2", "tiny"])
def test_hub_ids_and_tiny_pass_through(name):
    assert check_model_source(name) == name


def test_missing_local_dir_is_a_usage_error_naming_it(tmp_path):
    with pytest.raises(UsageError, match=r"^no such model directory: runs/nope$"):
        check_model_source("runs/nope")
    f = tmp_path / "weights.bin"
    f.write_text("x")
    with pytest.raises(UsageError, match="a file, not a model directory"):
        check_model_source(str(f))
    assert check_model_source(str(tmp_path)) == str(tmp_path)


def test_moderate_missing_model_answers_in_one_line_under_two_seconds(tmp_path):
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "proguard.cli", "moderate", "--model", "does/not/exist", "--request", "hi"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["proguard moderate: error: no such model directory: does/not/exist"], proc.stderr
    assert elapsed < 2.0, f"took {elapsed:.2f} s"


def test_bench_and_the_python_api_share_the_check():
    from proguard.bench.backends import make_backend

    with pytest.raises(UsageError, match="no such model directory: runs/none"):
        make_backend("transformers", "runs/none")
    proc = subprocess.run(
        [sys.executable, "-m", "proguard.cli", "bench", "--model", "./absent", "--out", "x"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "no such model directory: ./absent" in proc.stderr, proc.stderr


def test_train_resolves_through_the_same_check():
    from types import SimpleNamespace

    from proguard.train.policy import resolve_model_path

    r = SimpleNamespace(model=SimpleNamespace(name_or_path="runs/missing-policy"))
    with pytest.raises(UsageError, match="no such model directory: runs/missing-policy"):
        resolve_model_path(r)
