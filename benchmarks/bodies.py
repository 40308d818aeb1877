"""The bodies the benchmarks serve and parse; no imagejobs import, so a variant can
choose how imagejobs is installed (with or without its speedups) before loading it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REFERENCE = json.loads(
    (Path(__file__).parent.parent / "tests" / "data" / "reference_job.json").read_text()
)
REFERENCE_ID = REFERENCE["id"]
BIG_ID = "big"


def big_job(sub_jobs: int = 200) -> dict[str, Any]:
    """Return the reference job grown to ``sub_jobs`` sub-jobs."""
    template = REFERENCE["sub_jobs"][0]
    subs = [{**template, "id": f"{n:018d}"} for n in range(sub_jobs)]
    return {**REFERENCE, "id": BIG_ID, "sub_jobs_total": sub_jobs, "sub_jobs": subs}
