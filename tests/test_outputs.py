"""Output directories: --overwrite removes only what proguard wrote, never an input's folder or a user's files."""

from __future__ import annotations

import shutil

import pytest

from proguard.cli import main as cli_main
from proguard.data import BUNDLED_SAMPLES
from proguard.outputs import MARKER, OutputError, check_output_dir, ensure_output_dir, output_kind, replace_output_dir


def tasks_args(data, out, *extra):
    return ["tasks", "--data", str(data), "--taxonomy", "default", "--out", str(out), *extra]


def test_overwrite_refuses_a_folder_proguard_did_not_write(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    assert cli_main(tasks_args(BUNDLED_SAMPLES, home, "--overwrite")) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "not written by proguard" in err and "Traceback" not in err
    assert (home / "thesis.tex").read_text() == "years of work"


def test_overwrite_never_removes_the_folder_holding_the_input_samples(tmp_path, capsys):
    data_dir = tmp_path / "data"
    shutil.copytree(BUNDLED_SAMPLES.parent, data_dir)
    out = data_dir  # --out points at the samples' own folder, even if it was once a tasks output
    (out / MARKER).write_text('{"kind": "tasks"}')
    assert cli_main(tasks_args(data_dir / BUNDLED_SAMPLES.name, out, "--overwrite")) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (data_dir / BUNDLED_SAMPLES.name).is_file()
    parent_out = tmp_path  # a parent of the input
    (parent_out / MARKER).write_text('{"kind": "tasks"}')
    assert cli_main(tasks_args(data_dir / BUNDLED_SAMPLES.name, parent_out, "--overwrite")) == 2
    assert (data_dir / BUNDLED_SAMPLES.name).is_file()


def test_overwrite_replaces_a_tasks_output_and_an_existing_file_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "tasks"
    assert cli_main(tasks_args(BUNDLED_SAMPLES, out)) == 0
    assert output_kind(out) == "tasks"
    (out / "stale.txt").write_text("old")
    assert cli_main(tasks_args(BUNDLED_SAMPLES, out, "--overwrite")) == 0
    assert not (out / "stale.txt").exists() and output_kind(out) == "tasks"
    capsys.readouterr()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    assert cli_main(tasks_args(BUNDLED_SAMPLES, a_file)) == 2
    assert "is not a directory" in capsys.readouterr().err and a_file.read_text() == "keep"


def test_a_marker_of_another_kind_is_refused_and_a_failed_write_keeps_the_old_output(tmp_path):
    out = ensure_output_dir(tmp_path / "bench", "bench")
    (out / "generations.jsonl").write_text("{}\n")
    with pytest.raises(OutputError, match="it is a 'bench' output, not a 'tasks' output"):
        check_output_dir(out, "tasks", overwrite=True)

    tasks = tmp_path / "tasks"
    replace_output_dir(tasks, "tasks", lambda d: (d / "a.txt").write_text("1"))

    def broken(d):
        (d / "a.txt").write_text("2")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        replace_output_dir(tasks, "tasks", broken, overwrite=True)
    assert (tasks / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch left behind
    with pytest.raises(OutputError, match="is a file"):
        ensure_output_dir(tasks / "a.txt", "bench")


def test_a_policy_dir_is_replaced_only_when_proguard_wrote_it(tmp_path):
    from proguard.train.policy import prepare_policy_dir

    class Proc:
        def save_pretrained(self, d):
            (d / "preprocessor_config.json").write_text("{}")

    src = tmp_path / "model"
    src.mkdir()
    (src / "model.safetensors").write_text("w")
    user = tmp_path / "run" / "policy-init"
    user.mkdir(parents=True)
    (user / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="refusing to overwrite"):
        prepare_policy_dir(str(src), Proc(), user)
    (user / "mine.txt").unlink()
    prepare_policy_dir(str(src), Proc(), user)
    prepare_policy_dir(str(src), Proc(), user)  # an earlier run's own dir is replaced
    assert (user / "model.safetensors").is_symlink() and output_kind(user) == "policy-init"
