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
