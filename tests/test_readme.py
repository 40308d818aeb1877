"""README examples run as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagejobs.testing import load_scenario

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def promised_output(code: str) -> list[str] | None:
    """Return the lines a block's trailing ``# Output:`` comment promises, if any."""
    _, marker, tail = code.partition("\n# Output:\n")
    if not marker:
        return None
    return [line.removeprefix("# ") for line in tail.splitlines()]


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,  # an example that writes a file writes it there
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    promised = promised_output(code)
    if promised is not None:
        assert result.stdout.splitlines() == promised


def test_the_waiting_examples_promise_their_output() -> None:
    assert sum(promised_output(code) is not None for code in BLOCKS) >= 3


def test_first_example_prints_the_running_job() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKS[0]], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.split() == ["702364883651395584", "RUNNING", "False"]


def test_the_scenario_example_loads() -> None:
    scenarios = re.findall(r"```json\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(scenarios) == 1
    fake = load_scenario(json.loads(scenarios[0]))
    assert fake.token == "a-token-to-demand"
    assert fake.project_id == "0123456789abcdef0123456789abcdef"


def test_both_set_up_commands_are_there() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README.read_text(), re.DOTALL)
    assert commands[0].endswith("&& .venv/bin/imagejobs demo")
    assert commands[1].endswith("&& .venv/bin/python -m pytest")
