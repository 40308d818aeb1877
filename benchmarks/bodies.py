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
CHANGING_ID = "702364883651395585"


def big_job(sub_jobs: int = 200) -> dict[str, Any]:
    """Return the reference job grown to ``sub_jobs`` sub-jobs."""
    template = REFERENCE["sub_jobs"][0]
    subs = [{**template, "id": f"{n:018d}"} for n in range(sub_jobs)]
    return {**REFERENCE, "id": BIG_ID, "sub_jobs_total": sub_jobs, "sub_jobs": subs}


def changing_job(steps: int) -> list[dict[str, Any]]:
    """Return a timeline of ``steps`` snapshots of the reference job, each unlike every
    other (running and done by turns, ``sub_jobs_total`` counting the steps): so no
    answer is the job's last one, whatever order answers come back in."""
    sub = {**REFERENCE["sub_jobs"][0], "job_id": CHANGING_ID}
    done = {**REFERENCE, "id": CHANGING_ID, "sub_jobs": [sub]}
    running_sub = {**sub, "status": "RUNNING", "end_time": ""}
    running = {**done, "status": "RUNNING", "end_time": "", "sub_jobs": [running_sub]}
    return [{**(running, done)[n % 2], "sub_jobs_total": n} for n in range(steps)]
