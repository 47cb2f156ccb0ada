"""The generated gRPC code that is checked in matches protos/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "protos"))

from generate import generate  # noqa: E402


def test_checked_in_generated_code_matches_the_protos(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    assert fresh, "no protos were compiled"
    stale = [
        str(path.relative_to(tmp_path))
        for path in fresh
        if (ROOT / "lib" / path.relative_to(tmp_path)).read_bytes() != path.read_bytes()
    ]
    if stale:
        pytest.fail(f"generated code is stale, run `make protos`: {stale}")
