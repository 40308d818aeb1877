"""The GitHub Action: its steps' shell, run as a runner would, against the fake server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import yaml
from wire_data import snap, sub

from imagejobs.testing import FakeWorkspace

ROOT = Path(__file__).parent.parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


class Runner:
    """Runs the action's steps as a runner does: each step's env expanded, outputs per step."""

    def __init__(self, inputs: dict[str, str], env: dict[str, str], folder: Path) -> None:
        self.inputs = {"install": "false", **inputs}  # the suite's imagejobs, already installed
        self.env = env
        self.folder = folder
        self.outputs: dict[str, dict[str, str]] = {}

    def expand(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            scope, *path = match.group(1).split(".")
            if scope == "github":
                assert path == ["action_path"]
                return str(ROOT)
            if scope == "inputs":
                (name,) = path
                return str(self.inputs.get(name, ACTION["inputs"][name].get("default", "")))
            assert scope == "steps"
            step, kind, name = path
            assert kind == "outputs"
            return self.outputs.get(step, {}).get(name, "")

        return EXPRESSION.sub(value, text)

    async def start(self, step: dict[str, Any]) -> asyncio.subprocess.Process:
        assert step["shell"] == "bash"
        output = self.folder / f"output-{step['id']}"
        output.write_text("")
        step_env = {name: self.expand(value) for name, value in step.get("env", {}).items()}
        return await asyncio.create_subprocess_exec(
            "bash", "-e", "-c", step["run"],
            env={**self.env, **step_env, "GITHUB_OUTPUT": str(output)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip

    async def finish(self, step: dict[str, Any], process: asyncio.subprocess.Process) -> str:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        text = (self.folder / f"output-{step['id']}").read_text()
        self.outputs[step["id"]] = dict(line.split("=", 1) for line in text.splitlines())
        return out.decode()

    async def run(self) -> list[tuple[int | None, str]]:
        ran = []
        for step in ACTION["runs"]["steps"]:
            process = await self.start(step)
            out = await self.finish(step, process)
            ran.append((process.returncode, out))
            if process.returncode:
                break
        return ran

    def action_outputs(self) -> dict[str, str]:
        return {name: self.expand(spec["value"]) for name, spec in ACTION["outputs"].items()}


def _github(fake: FakeWorkspace, tmp_path: Path) -> dict[str, str]:
    assert fake.ak is not None
    assert fake.sk is not None
    (tmp_path / "home").mkdir()
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "RUNNER_TEMP": str(tmp_path),
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
            "job-ids": f"{first},\t{second}\n",
            "endpoint": fake.url,
            "project-id": fake.project_id,
            "max-delay": "2s",
        }
        runner = Runner(inputs, _github(fake, tmp_path), tmp_path)
        (installed, log), (code, out) = await runner.run()
    assert installed == 0, log
    assert code == 0, out
    outputs = runner.action_outputs()
    assert outputs["outcome"] == "success"
    assert outputs["resource-ids"] == "r2 r1"  # in the order the jobs ended
    assert [r["job_id"] for r in json.loads(outputs["results"])] == [second, first]
    assert "| `700000000000000001` | success |" in (tmp_path / "summary.md").read_text()


async def test_a_failed_job_fails_the_step_with_its_outputs(
    keys: dict[str, Any], tmp_path: Path
) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id = "700000000000000003"
        fake.add_job([_job(job_id, "FAILED", "r3")])
        inputs = {"job-ids": job_id, "endpoint": fake.url, "project-id": fake.project_id}
        runner = Runner(inputs, _github(fake, tmp_path), tmp_path)
        (_, _), (code, out) = await runner.run()
    assert code == 1
    assert f"::error title=Image job {job_id} failed::" in out
    assert runner.action_outputs()["outcome"] == "failed"


async def test_a_cancelled_workflow_still_gets_the_results_and_outputs(
    keys: dict[str, Any], tmp_path: Path
) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id = "700000000000000004"
        fake.add_job([_job(job_id, "RUNNING", "r4")])
        inputs = {"job-ids": job_id, "endpoint": fake.url, "project-id": fake.project_id}
        inputs["max-delay"] = "2s"  # the second look soon: the proof the first was read
        runner = Runner(inputs, _github(fake, tmp_path), tmp_path)
        install, wait = ACTION["runs"]["steps"]
        await runner.finish(install, await runner.start(install))
        process = await runner.start(wait)
        # A first request logged may not be answered yet; a second is only sent once it was.
        while len(fake.requests_for(job_id)) < 2:
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGTERM)  # to the step's shell, as the runner does
        out = await runner.finish(wait, process)
    assert process.returncode == 143, out
    assert "result 700000000000000004 interrupted status=RUNNING" in out
    assert runner.action_outputs()["outcome"] == "interrupted"
