"""One output rule for every writing command (issue 25): a folder is written only if it is new or the
project's output of the same kind; a file is replaced only if the command wrote it (or --overwrite);
an output is never an input; a run holds its output folder's lock, so two runs never both succeed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from proguard.cli import main
from proguard.data import BUNDLED_SAMPLES
from proguard.outputs import (
    LOCK,
    OutputError,
    OutputLocked,
    lock_path,
    output_kind,
    output_lock,
    replace_output_dir,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml")
URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
OPENAI = ["--backend", "openai", "--base-url", URL, "--model", "m", "--max-retries", "0", "--timeout", "1"]
SCORED_ROW = {"completion": "<think>x</think><answer>Request: safe</answer>", "modality": "text",
              "request_label": "safe"}


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def user_folder(path: Path) -> dict[str, str]:
    """A folder of the user's holding files with the names the commands write."""
    path.mkdir(parents=True)
    files = {"report.md": "my notes", "results.json": '{"mine": 1}', "rejected.jsonl": '{"mine": 1}\n'}
    for name, text in files.items():
        (path / name).write_text(text)
    return files


@pytest.mark.parametrize("command", ["bench", "distill"])
def test_a_folder_proguard_did_not_write_is_never_written_into(command, tmp_path, capsys):
    out = tmp_path / "mine"
    files = user_folder(out)
    args = ["bench", *OPENAI, "--limit", "1", "--no-plots", "--no-progress", "--out", str(out)] if command == "bench" \
        else ["distill", "--limit", "2", "--no-progress", "--out", str(out)]
    code, err = run_cli(args, capsys)
    assert code == 2 and "proguard did not write" in err and "Traceback" not in err
    assert {p.name: p.read_text() for p in out.iterdir()} == files  # nothing replaced, nothing added


def test_distill_resumes_its_own_folder_and_refuses_another_kind(tmp_path, capsys):
    out = tmp_path / "d"
    assert run_cli(["distill", "--limit", "2", "--no-progress", "--out", str(out)], capsys)[0] == 0
    assert output_kind(out) == "distill"
    assert run_cli(["distill", "--limit", "2", "--no-progress", "--out", str(out)], capsys)[0] == 0  # resumed
    tasks = tmp_path / "t"
    assert run_cli(["tasks", "--data", str(BUNDLED_SAMPLES), "--taxonomy", "default", "--out", str(tasks)], capsys)[0] == 0
    code, err = run_cli(["distill", "--limit", "2", "--no-progress", "--out", str(tasks)], capsys)
    assert code == 2 and "a 'tasks' output, not a 'distill' output" in err


def test_suites_export_never_replaces_its_own_release_file(tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(ROOT / "tests" / "fixtures" / "suites" / "wildguardtest", root / "wildguardtest")
    release = root / "wildguardtest" / "wildguard_test.parquet"
    before = release.read_bytes()
    code, err = run_cli(["suites", "export", "wildguardtest", "--data-root", str(root), "--out", str(release),
                         "--overwrite"], capsys)
    assert code == 2 and "is one of this command's inputs" in err
    assert release.read_bytes() == before
    other = tmp_path / "notes.parquet"
    other.write_bytes(b"PAR1 not an export")
    code, err = run_cli(["suites", "export", "wildguardtest", "--data-root", str(root), "--out", str(other)], capsys)
    assert code == 2 and "not written by this command" in err and other.read_bytes() == b"PAR1 not an export"
    out = tmp_path / "export.parquet"
    for _ in range(2):  # its own export is replaced on a rerun
        code, err = run_cli(["suites", "export", "wildguardtest", "--data-root", str(root), "--out", str(out)], capsys)
        assert code == 0, err


def test_synonyms_build_replaces_a_bank_but_not_an_unrelated_file(tmp_path, capsys):
    unrelated = tmp_path / "notes.yaml"
    unrelated.write_text("shopping: [milk, eggs]\n")
    code, err = run_cli(["synonyms", "build", "--no-wordnet", "--out", str(unrelated)], capsys)
    assert code == 2 and "not written by this command" in err
    assert unrelated.read_text() == "shopping: [milk, eggs]\n"
    bank = tmp_path / "bank.yaml"
    for _ in range(2):
        assert run_cli(["synonyms", "build", "--no-wordnet", "--out", str(bank)], capsys)[0] == 0
    assert run_cli(["synonyms", "build", "--no-wordnet", "--out", str(unrelated), "--overwrite"], capsys)[0] == 0
    assert "nodes" in unrelated.read_text()
    taxonomy = tmp_path / "policy.yaml"
    shutil.copy(ROOT / "taxonomy" / "data" / "default.yaml", taxonomy)
    before = taxonomy.read_text()
    code, err = run_cli(["synonyms", "build", "--no-wordnet", "--taxonomy", str(taxonomy), "--out", str(taxonomy),
                         "--overwrite"], capsys)
    assert code == 2 and "is one of this command's inputs" in err and taxonomy.read_text() == before


def test_rewards_output_is_never_the_input_nor_a_foreign_file(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(SCORED_ROW) + "\n")
    before = rows.read_text()
    code, err = run_cli(["rewards", "score", "--input", str(rows), "--output", str(rows), "--overwrite"], capsys)
    assert code == 2 and "is one of this command's inputs" in err and rows.read_text() == before
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"mine": 1}\n')
    code, err = run_cli(["rewards", "score", "--input", str(rows), "--output", str(foreign)], capsys)
    assert code == 2 and foreign.read_text() == '{"mine": 1}\n'
    scored = tmp_path / "scored.jsonl"
    for _ in range(2):  # its own scored rows are replaced
        assert run_cli(["rewards", "score", "--input", str(rows), "--output", str(scored)], capsys)[0] == 0
    assert "reward_components" in scored.read_text()


def test_rewards_recipe_is_a_file_whatever_its_name(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(SCORED_ROW) + "\n")
    recipe = tmp_path / "my.recipe"
    recipe.write_text("rewards:\n  - name: format\n")
    code, err = run_cli(["rewards", "score", "--recipe", str(recipe), "--input", str(rows)], capsys)
    assert code == 0, err
    assert "unknown preset" not in err


def test_training_never_writes_into_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    code, err = run_cli(["train", TINY, f"output_dir={out}", "grpo.max_steps=1"], capsys)
    assert code == 2 and "proguard did not write" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_a_run_folder_from_before_markers_is_recognised(tmp_path):
    from proguard.outputs import ensure_output_dir
    from proguard.train.runner import TRAIN_LEGACY

    old = tmp_path / "run"
    (old / "checkpoint-2").mkdir(parents=True)
    (old / "metrics.jsonl").write_text("{}\n")
    assert ensure_output_dir(old, "train", legacy=TRAIN_LEGACY) == old and output_kind(old) == "train"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="proguard did not write"):
        ensure_output_dir(mine, "train", legacy=TRAIN_LEGACY)


# ---------------------------------------------------------------------------------------------
# The replace race and locks
# ---------------------------------------------------------------------------------------------
def test_replace_never_removes_an_output_that_appeared_while_writing(tmp_path):
    out = tmp_path / "tasks"

    def write(scratch: Path) -> None:
        (scratch / "mine.txt").write_text("second")
        out.mkdir()  # another run finished first (it did not take the lock: the re-check must still hold)
        (out / ".proguard-output.json").write_text('{"kind": "tasks"}')
        (out / "theirs.txt").write_text("first")

    with pytest.raises(OutputError, match="appeared while this run was writing"):
        replace_output_dir(out, "tasks", write)
    assert (out / "theirs.txt").read_text() == "first" and not (out / "mine.txt").exists()


HOLD = textwrap.dedent("""
    import sys, time
    from proguard.outputs import output_lock
    with output_lock(sys.argv[1], command="holder-run", beside=sys.argv[2] == "beside"):
        print("held", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def hold_lock():
    """Hold the lock of a folder in another process; yields a starter, kills the process afterwards."""
    procs = []

    def start(path: Path, beside: bool = False) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "beside" if beside else "inside"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_run_on_a_locked_folder_fails_at_once_naming_the_holder(tmp_path, hold_lock, capsys):
    out = tmp_path / "bench"
    holder = hold_lock(out)
    code, err = run_cli(["bench", *OPENAI, "--limit", "1", "--no-plots", "--no-progress", "--out", str(out)], capsys)
    assert code == 1 and f"in use by holder-run (pid {holder.pid} on " in err and "Traceback" not in err
    assert not (out / "results.json").exists()
    tasks = tmp_path / "tasks"
    holder = hold_lock(tasks, beside=True)
    code, err = run_cli(["tasks", "--data", str(BUNDLED_SAMPLES), "--taxonomy", "default", "--out", str(tasks)], capsys)
    assert code == 1 and f"pid {holder.pid}" in err and not tasks.exists()
    distill = tmp_path / "distill"
    hold_lock(distill)
    code, err = run_cli(["distill", "--limit", "2", "--no-progress", "--out", str(distill)], capsys)
    assert code == 1 and "in use by holder-run" in err


def test_a_training_run_on_a_locked_output_dir_fails_before_loading_anything(tmp_path, hold_lock, capsys):
    out = tmp_path / "run"
    holder = hold_lock(out)
    code, err = run_cli(["train", TINY, f"output_dir={out}", "grpo.max_steps=1"], capsys)
    assert code == 1 and f"in use by holder-run (pid {holder.pid}" in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK]  # no metrics.jsonl, recipe.yaml or checkpoint


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path, capsys):
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": "h", "command": "bench", "started": "then"}))
    with output_lock(out, command="test") as lock:
        held = json.loads(lock.read_text())
        assert held["pid"] == os.getpid() and held["command"] == "test"
    err = capsys.readouterr().err
    assert f"taking over a lock left by bench (pid {dead.pid} on h" in err
    assert not (out / LOCK).exists()  # released


LOCK_THEN_WRITE = textwrap.dedent("""
    import fcntl, json, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("locked", flush=True)
    time.sleep(0.3)  # the window between taking the lock and writing who holds it
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": "h", "command": "slow-writer"}).encode(), 0)
    time.sleep(120)
""")


def test_a_refusal_in_the_holders_first_moment_still_names_the_holder(tmp_path):
    # CI once refused a concurrent `tasks` run while its rival had the lock but had not yet written its
    # record, so the error said "another process"; the refused side now waits briefly for the record
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", LOCK_THEN_WRITE, str(out / LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLocked, match=rf"in use by slow-writer \(pid {proc.pid} on h"):
            with output_lock(out, command="test"):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_is_refused_to_another_thread_and_nests_in_one(tmp_path):
    out = tmp_path / "out"
    errors = []
    with output_lock(out, command="a"):
        with output_lock(out, command="a-again"):  # a command and the library call it makes
            pass

        def other():
            try:
                with output_lock(out, command="b"):
                    pass
            except OutputLocked as exc:
                errors.append(str(exc))

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert errors and "in use" in errors[0]
    assert not lock_path(out).exists()


CONCURRENT_TASKS = textwrap.dedent("""
    import sys
    from proguard.cli import main
    sys.exit(main(["tasks", "--data", sys.argv[1], "--taxonomy", "default", "--out", sys.argv[2]]))
""")


def test_two_concurrent_tasks_runs_on_one_out_never_both_succeed(tmp_path):
    out = tmp_path / "tasks"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_TASKS, str(BUNDLED_SAMPLES), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    loser = next(err for code, _, err in results if code != 0)
    assert "in use by tasks (pid" in loser or "exists and is not empty" in loser
    assert output_kind(out) == "tasks" and (out / "summary.json").is_file()
