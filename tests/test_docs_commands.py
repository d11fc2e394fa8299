"""Every shell command shown in README.md and docs/*.md runs as written, so the docs cannot rot.

The fenced ``bash`` / ``sh`` / ``shell`` / ``console`` blocks are read in reading order (README.md, then
docs/*.md by name) and each command runs with ``bash -c`` in ONE temporary copy of the git-tracked files,
so a later command sees what an earlier one wrote (``proguard tasks ... --out tasks/``, then
``--tasks tasks/``), exactly as for a user typing them one after another on a fresh clone. The venv's
``bin`` is first on ``PATH``. ``../shared/reference`` is reachable as from the checkout: the temp copy
sits in ``<tmp>/repo`` next to ``<tmp>/shared/reference``, a private copy of the reference data (never
a link: a documented command must not be able to write into the real one).

A command is skipped only when its doc says so, with an HTML comment on the lines right above the fence:

    <!-- docs-test: skip: REASON -->               every command of the block
    <!-- docs-test: skip "TEXT": REASON -->        the block's commands that contain TEXT
    <!-- docs-test: exit 1 "TEXT": REASON -->      runs them, and that exit status is the documented one

and every skip prints its reason (pytest ``-rs``). A marker whose TEXT matches no command is an error,
so markers cannot outlive the commands they excuse.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reference_data import REFERENCE_DIR

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
_MARKER = re.compile(
    r'<!--\s*docs-test:\s*(?:skip|exit\s+(?P<code>\d+))(?:\s+"(?P<text>[^"]+)")?\s*:\s*(?P<reason>.*?)\s*-->')
COMMAND_TIMEOUT_S = 300


@dataclass
class DocCommand:
    """One command of a doc: where it is, its text (continuations joined), and why it is skipped (if it is)."""

    doc: str
    line: int
    text: str
    skip: str | None = None
    exit_code: int = 0

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


@dataclass
class _Block:
    doc: str
    line: int
    lang: str
    body: list[tuple[int, str]] = field(default_factory=list)
    markers: list[tuple[str | None, str, int | None]] = field(default_factory=list)


def _blocks(path: Path) -> list[_Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    doc = str(path.relative_to(ROOT))
    blocks: list[_Block] = []
    current: _Block | None = None
    fence = re.compile(r"^\s*```\s*([\w-]*)")
    for i, line in enumerate(lines, start=1):
        m = fence.match(line)
        if current is None and m:
            block = _Block(doc, i, m.group(1).lower())
            j = i - 2  # the marker comments directly above the fence
            while j >= 0 and _MARKER.search(lines[j]):
                mm = _MARKER.search(lines[j])
                code = mm.group("code")
                block.markers.append((mm.group("text"), mm.group("reason"), None if code is None else int(code)))
                j -= 1
            current = block
        elif current is not None and m and not m.group(1):
            blocks.append(current)
            current = None
        elif current is not None:
            current.body.append((i, line))
    return [b for b in blocks if b.lang in SHELL_LANGS]


def doc_commands(path: Path) -> list[DocCommand]:
    """The commands of one doc's shell blocks, with the skips its markers give."""
    out: list[DocCommand] = []
    for block in _blocks(path):
        cmds: list[DocCommand] = []
        pending: list[str] = []
        start = 0
        for lineno, raw in block.body:
            line = raw.rstrip()
            if block.lang == "console":  # only `$ ` lines are commands; the rest is shown output
                if not pending:
                    if not line.lstrip().startswith("$ "):
                        continue
                    line = line.lstrip()[2:]
            if not pending:
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                start = lineno
            if line.endswith("\\"):
                pending.append(line[:-1])
                continue
            pending.append(line)
            cmds.append(DocCommand(block.doc, start, " ".join(p.strip() for p in pending)))
            pending = []
        for text, reason, code in block.markers:
            hit = [c for c in cmds if text is None or text in c.text]
            if not hit:
                raise AssertionError(f"{block.doc}:{block.line}: docs-test marker {text!r} matches no command")
            for c in hit:
                if code is None:
                    c.skip = c.skip or reason
                else:
                    c.exit_code = code
        out.extend(cmds)
    return out


ALL_COMMANDS = [c for doc in DOCS for c in doc_commands(doc)]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """``<tmp>/repo``: the git-tracked files; ``<tmp>/shared/reference``: a private copy of the reference data."""
    base = tmp_path_factory.mktemp("docs")
    repo = base / "repo"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            dst = repo / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    if REFERENCE_DIR.is_dir():
        shutil.copytree(REFERENCE_DIR, base / "shared" / "reference")
    return repo


def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PROGUARD_REFERENCE_DIR"] = str(repo.parent / "shared" / "reference")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


@pytest.mark.parametrize("cmd", ALL_COMMANDS, ids=[c.id for c in ALL_COMMANDS])
def test_documented_command_runs_as_written(cmd: DocCommand, fresh_clone: Path):
    if cmd.skip:
        pytest.skip(f"{cmd.id}: {cmd.text[:60]}...: {cmd.skip}")
    if "../shared/" in cmd.text and not (fresh_clone.parent / "shared" / "reference").is_dir():
        pytest.skip(f"{cmd.id}: reads ../shared/reference, which is absent here ({REFERENCE_DIR})")
    proc = subprocess.run(["bash", "-c", cmd.text], cwd=fresh_clone, env=_env(fresh_clone), capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT_S)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    assert proc.returncode == cmd.exit_code, f"{cmd.id}: exit {proc.returncode}: {cmd.text}\n{tail}"


def test_the_docs_have_commands_and_the_parser_reads_markers(tmp_path, monkeypatch):
    assert len(ALL_COMMANDS) > 20 and any(c.skip is None for c in ALL_COMMANDS)
    doc = tmp_path / "x.md"
    doc.write_text(
        "<!-- docs-test: exit 1 \"--c\": flags -->\n<!-- docs-test: skip \"serve\": needs a server -->\n```bash\nproguard a --b \\\n    --c   # note\n"
        "# a comment\nproguard serve\n```\n\n```console\n$ echo hi\nhi\n```\n\n```python\nprint()\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    cmds = doc_commands(doc)
    assert [(c.line, c.text, c.skip, c.exit_code) for c in cmds] == [
        (4, "proguard a --b --c   # note", None, 1), (7, "proguard serve", "needs a server", 0), (11, "echo hi", None, 0)]
    doc.write_text("<!-- docs-test: skip \"gone\": stale -->\n```bash\nproguard a\n```\n")
    with pytest.raises(AssertionError, match="matches no command"):
        doc_commands(doc)
