"""The GitHub Action: its steps' shell, run as a runner would, against the fake server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from wire_data import snap, sub

from imagejobs.testing import FakeWorkspace

ROOT = Path(__file__).parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(inputs|github)\.([\w-]+)\s*\}\}")


def _expand(text: str, inputs: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        scope, name = match.groups()
        if scope == "github":
            assert name == "action_path"
            return str(ROOT)
        given = inputs.get(name, ACTION["inputs"][name].get("default", ""))
        return str(given)

    return EXPRESSION.sub(value, text)


async def _run_steps(inputs: dict[str, str], env: dict[str, str]) -> list[tuple[int, str]]:
    ran = []
    for step in ACTION["runs"]["steps"]:
        assert step["shell"] == "bash"
        step_env = {name: _expand(value, inputs) for name, value in step.get("env", {}).items()}
        process = await asyncio.create_subprocess_exec(
            "bash", "-e", "-c", step["run"],
            env={**env, **step_env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        ran.append((process.returncode, out.decode()))
        if process.returncode:
            break
    return ran


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _github(fake: FakeWorkspace, tmp_path: Path) -> dict[str, str]:
    assert fake.ak is not None
    assert fake.sk is not None
    (tmp_path / "home").mkdir()
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "HUAWEICLOUD_SDK_AK": fake.ak,
        "HUAWEICLOUD_SDK_SK": fake.sk,
    }


def _job(job_id: str, status: str, resource: str) -> dict[str, Any]:
    done = sub(f"9{job_id[1:]}", status)
    done["job_resource_info"] = {"resource_id": resource, "resource_name": "img"}
    return snap(job_id, status, sub_jobs=[done])


async def test_the_action_waits_and_hands_the_resource_ids_to_the_next_step(
    keys: dict[str, Any], tmp_path: Path
) -> None:
    async with FakeWorkspace(**keys) as fake:
        first, second = "700000000000000001", "700000000000000002"
        fake.add_job([_job(first, "RUNNING", "r1"), _job(first, "SUCCESS", "r1")])
        fake.add_job([_job(second, "SUCCESS", "r2")])
        inputs = {
            "job-ids": f"{first}, {second}\n",
            "endpoint": fake.url,
            "project-id": fake.project_id,
            "max-delay": "2s",
        }
        env = _github(fake, tmp_path)
        (installed, log), (code, out) = await _run_steps(inputs, env)
    assert installed == 0, log
    assert code == 0, out
    written = _outputs(tmp_path / "output")
    declared = {name: EXPRESSION.sub("", spec["value"]) for name, spec in ACTION["outputs"].items()}
    for name in ACTION["outputs"]:
        # Each output of the action is the wait step's output of that name.
        assert ACTION["outputs"][name]["value"] == f"${{{{ steps.wait.outputs.{name} }}}}"
        assert name in written, declared
    assert written["outcome"] == "success"
    assert written["resource-ids"] == "r2 r1"  # in the order the jobs ended
    assert [r["job_id"] for r in json.loads(written["results"])] == [second, first]
    assert "| `700000000000000001` | success |" in (tmp_path / "summary.md").read_text()


async def test_a_failed_job_fails_the_step_with_its_outputs(
    keys: dict[str, Any], tmp_path: Path
) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id = "700000000000000003"
        fake.add_job([_job(job_id, "FAILED", "r3")])
        inputs = {"job-ids": job_id, "endpoint": fake.url, "project-id": fake.project_id}
        (_, _), (code, out) = await _run_steps(inputs, _github(fake, tmp_path))
    assert code == 1
    assert f"::error title=Image job {job_id} failed::" in out
    assert _outputs(tmp_path / "output")["outcome"] == "failed"
