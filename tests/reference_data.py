"""Where the externally written reference data lives (ProGuard's taxonomy, Do-Not-Answer, XSTest).

Default: ``../shared/reference`` next to the checkout; ``PROGUARD_REFERENCE_DIR`` points elsewhere (a CI
checkout in another place). Tests that need it skip with the path in the reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

REFERENCE_DIR = Path(
    os.environ.get("PROGUARD_REFERENCE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "reference"
)
PROGUARD_TAXONOMY = REFERENCE_DIR / "proguard_taxonomy.yaml"
DO_NOT_ANSWER = REFERENCE_DIR / "donotanswer"


_COPIES: dict[Path, Path] = {}


def private_copy(path: Path) -> Path:
    """A copy of one reference file or folder in a fresh temp dir, made once per test session.

    Tests read reference data through this, never in place: a documented command (``proguard synonyms
    build --taxonomy ../shared/reference/...``) may have written files beside it, and the suite must
    not depend on what the user ran before.
    """
    import atexit
    import shutil
    import tempfile

    path = Path(path)
    if path not in _COPIES:
        scratch = tempfile.mkdtemp(prefix="proguard-reference-")
        # the copy is this session's own: removed when the test process ends (one was left per run before)
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        target = Path(scratch) / path.name
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)
        _COPIES[path] = target
    return _COPIES[path]
