"""Scenario files: every mistake is one ConfigurationError naming its place. No server."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from imagejobs import ConfigurationError
from imagejobs.testing import FakeWorkspace, load_scenario


def timeline_of(**reply: Any) -> dict[str, Any]:
    return {"jobs": [{"id": "1", "timeline": [{"id": "1", "status": "RUNNING"}, {"reply": reply}]}]}


def with_faults(**faults: Any) -> dict[str, Any]:
    return {"faults": faults, "jobs": []}


def nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = {"a": [value]}
    return value


REPLY = "scenario jobs[0].timeline[1].reply"
FINITE = "must be a finite non-negative number, got"


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        (timeline_of(status=503, delay=math.nan), f"{REPLY}.delay: {FINITE} nan"),
        (timeline_of(status=503, delay=math.inf), f"{REPLY}.delay: {FINITE} inf"),
        (timeline_of(status=503, delay="1"), f"{REPLY}.delay: {FINITE} '1'"),
        (timeline_of(status=503, delay=True), f"{REPLY}.delay: {FINITE} True"),
        (timeline_of(status=503, delay=10**400), f"{REPLY}.delay: {FINITE} 1000000"),
        (timeline_of(status=503, delay=-0.5), f"{REPLY}.delay: {FINITE} -0.5"),
        (timeline_of(status=503, delay=1e9), f"{REPLY}.delay: must be at most 86400 seconds"),
        (timeline_of(status=429, retry_after=math.nan), f"{REPLY}.retry_after: {FINITE} nan"),
        (timeline_of(status=100), f"{REPLY}.status: must be an HTTP status from 200 to 599"),
        (timeline_of(status=503.0), f"{REPLY}.status: must be an HTTP status"),
        (timeline_of(status=503, error_msg=["busy"]), f"{REPLY}.error_msg: must be a string"),
        (timeline_of(status=503, error_code=7), f"{REPLY}.error_code: must be a string"),
        (timeline_of(status=503, colour=1), f"{REPLY}: unknown keys ['colour']"),
        (
            {"jobs": [{"id": "1", "every": math.nan, "timeline": [{"id": "1", "status": "X"}]}]},
            "scenario jobs[0].every: must be a finite positive number, got nan",
        ),
        (
            {"jobs": [{"id": "1", "every": 0, "timeline": [{"id": "1", "status": "X"}]}]},
            "scenario jobs[0].every: must be a finite positive number, got 0",
        ),
        (
            {"jobs": [{"id": "", "timeline": [{"id": "1", "status": "X"}]}]},
            "scenario jobs[0].id: must be a non-empty string",
        ),
        (with_faults(latency="0.05"), f"scenario faults.latency: {FINITE} '0.05'"),
        (with_faults(latency=math.inf), f"scenario faults.latency: {FINITE} inf"),
        (with_faults(retry_after=-1), f"scenario faults.retry_after: {FINITE} -1"),
        (with_faults(rate=math.nan), "scenario faults.rate: must be a finite number from 0 to 1"),
        (with_faults(rate="0.5"), "scenario faults.rate: must be a finite number from 0 to 1"),
        (with_faults(rate=1.5), "scenario faults.rate: must be a finite number from 0 to 1"),
        (with_faults(seed=1.5), "scenario faults.seed: must be a non-negative whole number"),
        (with_faults(seed="1"), "scenario faults.seed: must be a non-negative whole number"),
        (with_faults(kinds="503"), "scenario faults.kinds: must be a non-empty list"),
        (with_faults(kinds=[]), "scenario faults.kinds: must be a non-empty list"),
        (with_faults(kinds=["503", 7]), "scenario faults.kinds[1]: unknown fault kind 7"),
        (with_faults(at={"x": "503"}), "scenario faults.at['x']: a key must be a request number"),
        (with_faults(at={"0": "503"}), "scenario faults.at['0']: a key must be a request number"),
        (with_faults(at={"1": "boom"}), "scenario faults.at['1']: unknown fault kind 'boom'"),
        (with_faults(at=[1]), "scenario faults.at: must be an object"),
        (with_faults(chance=1), "scenario faults: unknown keys ['chance']"),
        (
            {"jobs": [{"id": "1", "timeline": [{"id": "1", "status": "X", "x": nested(40)}]}]},
            "scenario jobs[0].timeline[0].x.a[0].a[0]",
        ),
        ({"jobs": [], "x\n::error::": nested(100)}, "nested more than 32 levels deep"),
        ({1: 2, "b": 3}, "scenario file: unknown keys ['b', 1]"),
        ({"project_id": "p\n::error::x"}, "project_id: project_id 'p\\n::error::x' contains"),
        ({"token": "t\r\nX-Evil: 1"}, "scenario token: token contains a control character"),
    ],
)
def test_a_mistake_is_named_in_one_line(scenario: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_scenario(scenario)
    text = str(raised.value)
    assert message in text
    assert text.isprintable()


def test_job_faults_are_checked_too() -> None:
    job = {"id": "1", "faults": {"latency": "slow"}, "timeline": [{"id": "1", "status": "X"}]}
    with pytest.raises(ConfigurationError, match=r"jobs\[0\]\.faults\.latency: must be a finite"):
        load_scenario({"jobs": [job]})


def test_every_setting_in_range_still_loads() -> None:
    faults = {
        "rate": 1,
        "seed": 7,
        "kinds": ["503", "drop", "oversized"],
        "at": {"2": "truncated", "10": "429"},
        "latency": 0,
        "retry_after": 0.01,
    }
    scenario = {
        "faults": faults,
        "jobs": [
            {
                "id": "1",
                "every": 0.5,
                "faults": {"rate": 0.5, "latency": 86400},
                "timeline": [
                    {"id": "1", "status": "RUNNING", "sub_jobs": []},
                    {"reply": {"status": 204, "delay": 0, "retry_after": None}},
                    {"reply": {"status": 429, "error_msg": "slow down", "retry_after": 2}},
                    {"id": "1", "status": "SUCCESS", "sub_jobs": []},
                ],
            }
        ],
    }
    assert isinstance(load_scenario(scenario), FakeWorkspace)


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            {"id": "1", "timeline": [{"id": "999", "status": "RUNNING"}]},
            "jobs[0].timeline[0].id: is '999', but the job is '1'",
        ),
        (
            {"id": "a/b", "timeline": [{"id": "a/b", "status": "RUNNING"}]},
            "jobs[0].id: job ID 'a/b' contains",
        ),
        ({"id": "1", "faults": [], "timeline": [{"id": "1", "status": "RUNNING"}]}, "faults"),
    ],
)
def test_a_job_no_client_could_read_is_refused(job: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_scenario({"jobs": [job]})
