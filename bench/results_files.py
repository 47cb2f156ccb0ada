"""Where every bench script leaves its figures: bench/results/<name>-<UTC time>.json
(everything measured) and .txt (the summary it printed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_results(results_dir: Path, name: str, document: Any, summary: str) -> Path:
    """Write both files; the path they share, without its suffix."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    stem.with_suffix(".txt").write_text(summary + "\n")
    print(f"\nwritten to {stem}.json and .txt")
    return stem
