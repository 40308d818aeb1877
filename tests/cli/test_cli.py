"""The command line, run as a subprocess against the fake server on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cli_run import FAST, LINE, cli, environment, fake_env, job, start_cli

from imagejobs import DurationHistory, from_wire
from imagejobs.cli._args import parse_duration
from imagejobs.cli._format import most_severe
from imagejobs.testing import FakeWorkspace, Reply, Step


def script(fake: FakeWorkspace) -> None:
    fake.add_job([job("ok", "RUNNING", ("RUNNING", "")), job("ok", "SUCCESS", ("SUCCESS", ""))])
    fake.add_job(
        [job("bad", "RUNNING", ("RUNNING", "")), job("bad", "FAILED", ("FAILED", "WKS.9"))]
    )
    fake.add_job([job("stuck", "RUNNING")])
    fake.add_job([Reply.error(403, "WKS.0003", "no permission")], job_id="denied")


async def test_success_exits_0_with_grep_able_lines(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    run = await cli("wait", "ok", *FAST, env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert run.stdout == "res-ok-0\n"  # what the job made, for $(imagejobs wait ...)
    lines = run.stderr.splitlines()
    transitions = [line for line in lines if not line.startswith("result ")]
    assert transitions
    assert all(LINE.match(line) for line in transitions), transitions
    assert transitions[-1].endswith(" ok job CREATE_SERVER_IMAGE RUNNING -> SUCCESS")
    assert any(
        "sub ok-0 BUILD_IMAGE RUNNING -> SUCCESS resource=res-ok-0 name=img" in t for t in lines
    )
    assert lines[-1].startswith("result ok success status=SUCCESS duration=")
    assert lines[-1].endswith(" result=res-ok-0 resources=BUILD_IMAGE:res-ok-0")


async def test_an_outage_during_a_wait_does_not_fail_the_step(
    fake: FakeWorkspace, home: Path
) -> None:
    busy = Reply.error(503, "WKS.0503", "Service unavailable")
    steps: list[Step] = [job("flaky", "RUNNING"), busy, busy, busy, busy]
    fake.add_job([*steps, job("flaky", "SUCCESS")], job_id="flaky")
    run = await cli("wait", "flaky", *FAST, env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert run.stderr.splitlines()[-1].startswith("result flaky success status=SUCCESS")


async def test_polls_failing_at_the_deadline_exit_4_saying_so(
    fake: FakeWorkspace, home: Path
) -> None:
    busy = Reply.error(503, "WKS.0503", "Service unavailable")
    fake.add_job([job("down", "RUNNING"), busy], job_id="down")
    run = await cli("wait", "down", *FAST, "--timeout", "300ms", env=fake_env(fake, home))
    assert run.code == 4, run.stderr
    assert "503 WKS.0503: Service unavailable" in run.stderr
    assert "polls failing for" in run.stderr


async def test_a_failed_job_exits_1_and_prints_its_error(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    run = await cli("wait", "bad", *FAST, env=fake_env(fake, home))
    assert run.code == 1
    failure = "sub bad-0 BUILD_IMAGE RUNNING -> FAILED resource=res-bad-0 name=img"
    assert f'{failure} error=WKS.9 message="WKS.9 happened"' in run.stderr


async def test_the_timeout_exits_3(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    run = await cli("wait", "stuck", *FAST, "--timeout", "300ms", env=fake_env(fake, home))
    assert run.code == 3
    assert "result stuck timeout status=RUNNING" in run.stderr
    assert "still RUNNING after" in run.stderr


async def test_an_api_error_exits_4_with_one_line(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    run = await cli("wait", "denied", *FAST, env=fake_env(fake, home))
    assert run.code == 4
    errors = [line for line in run.stderr.splitlines() if line.startswith("imagejobs: error:")]
    assert len(errors) == 1
    assert re.match(
        r"imagejobs: error: job denied: 403 WKS\.0003: no permission \(request id \w+\)", errors[0]
    )
    assert "Traceback" not in run.stderr


async def test_a_wrong_secret_exits_4(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    env = fake_env(fake, home, HUAWEICLOUD_SDK_SK="not-the-secret-at-all-000")
    run = await cli("wait", "ok", *FAST, env=env)
    assert run.code == 4
    assert (
        "401 APIGW.0301: Incorrect IAM authentication information: signature mismatch" in run.stderr
    )


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["ok", "stuck"], 3),
        (["ok", "stuck", "bad"], 1),
        (["ok", "stuck", "bad", "denied"], 4),
        (["ok", "stuck", "bad", "denied", "no/slash"], 2),
        (["ok", "ok"], 0),
    ],
)
async def test_the_most_severe_exit_code_wins(
    fake: FakeWorkspace, home: Path, ids: list[str], expected: int
) -> None:
    script(fake)
    run = await cli("wait", *ids, *FAST, "--timeout", "500ms", env=fake_env(fake, home))
    assert run.code == expected, run.stderr


async def test_ids_come_from_stdin_too(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    run = await cli(
        "wait", "-", *FAST, "--json", env=fake_env(fake, home), stdin="ok\n\n# a comment\nbad\n"
    )
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert {r["job_id"]: r["outcome"] for r in results if r["event"] == "result"} == {
        "ok": "success",
        "bad": "failed",
    }
    assert run.code == 1


TRANSITION_KEYS = {
    "event", "job_id", "sub_job_id", "job_type", "previous", "current", "at",
    "resource_id", "error_code", "error_message",
}  # fmt: skip
RESULT_KEYS = {
    "event",
    "job_id",
    "outcome",
    "status",
    "error",
    "result_id",
    "resources",
    "resource_ids",
}


async def test_json_is_ndjson_on_stdout_and_nothing_else(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    run = await cli(
        "wait",
        "ok",
        "bad",
        "stuck",
        *FAST,
        "--timeout",
        "300ms",
        "--json",
        env=fake_env(fake, home),
    )
    records = [json.loads(line) for line in run.stdout.splitlines()]
    transitions = [r for r in records if r["event"] == "transition"]
    results = {r["job_id"]: r for r in records if r["event"] == "result"}
    assert len(records) == len(transitions) + len(results)
    assert all(set(r) == TRANSITION_KEYS for r in transitions)
    assert all(set(r) == RESULT_KEYS for r in results.values())
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["at"]) for r in transitions)
    failure = next(r for r in transitions if r["current"] == "FAILED" and r["sub_job_id"])
    assert (failure["error_code"], failure["error_message"]) == ("WKS.9", "WKS.9 happened")
    assert failure["resource_id"] == "res-bad-0"
    assert results["ok"] == {
        "event": "result",
        "job_id": "ok",
        "outcome": "success",
        "status": "SUCCESS",
        "error": None,
        "result_id": "res-ok-0",
        "resources": [
            {
                "sub_job_id": "ok-0",
                "job_type": "BUILD_IMAGE",
                "resource_id": "res-ok-0",
                "resource_name": "img",
            }
        ],
        "resource_ids": ["res-ok-0"],
    }
    assert results["bad"]["outcome"] == "failed"
    assert "WKS.9" in results["bad"]["error"]
    assert results["stuck"]["outcome"] == "timeout"
    assert run.code == 1
    assert not LINE.search(run.stderr)  # no human lines beside the JSON


async def test_quiet_prints_only_why_a_job_did_not_succeed(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    quiet = await cli("wait", "ok", "denied", "bad", *FAST, "--quiet", env=fake_env(fake, home))
    assert quiet.code == 4
    assert quiet.stdout == "res-ok-0\n"  # what the successful job made
    lines = quiet.stderr.splitlines()
    assert sorted(line.split()[1] for line in lines) == ["bad", "denied"], lines
    assert all(line.startswith("result ") for line in lines)
    assert any("failed" in line and "WKS.9" in line for line in lines)  # the reason
    assert any("403 WKS.0003: no permission" in line for line in lines)


async def test_github_actions_get_annotations_and_a_summary(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    script(fake)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = fake_env(fake, home, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    run = await cli("wait", "ok", "bad", *FAST, env=env)
    assert run.code == 1
    annotations = [line for line in run.stderr.splitlines() if line.startswith("::error ")]
    title = "::error title=Image job bad failed::"
    assert annotations == [f"{title}sub-job bad-0 (BUILD_IMAGE) FAILED: WKS.9: WKS.9 happened"]
    text = summary.read_text()
    assert text.startswith("earlier step\n### Image jobs\n")
    assert "| `ok` | success | SUCCESS |" in text
    assert "| `bad` | failed | FAILED |" in text


async def test_watch_streams_one_job(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    run = await cli("watch", "bad", *FAST, "--json", env=fake_env(fake, home))
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["sub_job_id"], r["previous"], r["current"]) for r in records[:-1]] == [
        ("bad-0", None, "RUNNING"),
        (None, None, "RUNNING"),
        ("bad-0", "RUNNING", "FAILED"),
        (None, "RUNNING", "FAILED"),
    ]
    assert records[-1]["outcome"] == "failed"
    assert run.code == 1


async def test_get_prints_the_job_as_the_service_sent_it(
    fake: FakeWorkspace, home: Path, reference_wire: dict[str, Any]
) -> None:
    job_id = fake.add_job([reference_wire])
    run = await cli("get", job_id, env=fake_env(fake, home))
    assert run.code == 0
    assert json.loads(run.stdout) == reference_wire
    newer = {**reference_wire, "region_hint": {"az": "az1"}, "sub_jobs_total": 1}
    newer["sub_jobs"] = [{**reference_wire["sub_jobs"][0], "progress": 40}]
    fake.add_job([newer])
    run = await cli("get", job_id, env=fake_env(fake, home))
    shown = json.loads(run.stdout)
    assert shown == newer  # fields the models do not know are kept
    assert list(shown) == list(newer)  # in the order sent
    assert from_wire(shown) == from_wire(reference_wire)
    broken = await cli("get", fake.add_job([{"id": "77", "status": 5}]), env=fake_env(fake, home))
    assert broken.code == 4
    assert "$.status" in broken.stderr


async def test_get_of_a_missing_job_exits_4(fake: FakeWorkspace, home: Path) -> None:
    run = await cli("get", "404404", env=fake_env(fake, home))
    assert run.code == 4
    assert run.stderr.startswith("imagejobs: error: 404 WKS.00081104: The job does not exist.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wait", "1", "--timeout", "banana"], "'banana' is not a duration"),
        (["wait"], "the following arguments are required: JOB_ID"),
        (["wait", "1", "--region", "mars-1"], "unknown region 'mars-1'; known regions: af-north-1"),
        (["wait", "1", "--max-in-flight", "0"], "'0' must be at least 1"),
        (["wait", "a/b", "--region", "cn-north-4", "--project-id", "p"], "job_id 'a/b' contains"),
        (
            ["wait", "1", "--initial-delay", "1m", "--max-delay", "1s"],
            "--max-delay (1s) must not be below --initial-delay",
        ),
        (
            ["wait", "1", "--region", "cn-north-4", "--project-id", "p"],
            "no credentials: set HUAWEICLOUD_SDK_AK",
        ),
        (["launch"], "invalid choice: 'launch'"),
        ([], "the following arguments are required: COMMAND"),
        (["fake-server", "--scenario", "/nonexistent.json"], "cannot read scenario"),
        (["fake-server", "--host", ""], "'' is not an IP address or host name"),
        (["fake-server", "--host", "a b"], "'a b' is not an IP address or host name"),
        (["fake-server", "--host", "[::1]"], "'[::1]' is not an IP address or host name"),
        (["fake-server", "--host", "host:80"], "'host:80' is not an IP address or host name"),
        (["get", "1", "--timeout", "0"], "'0' must be a duration of more than 0"),
    ],
)
async def test_bad_usage_is_one_line_and_exit_2(home: Path, args: list[str], message: str) -> None:
    token = {"IMAGEJOBS_AUTH_TOKEN": "t"} if "a/b" in args else {}
    run = await cli(*args, env=environment(home, **token))
    assert run.code == 2, run.stderr
    assert run.stdout == ""
    assert len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("imagejobs: error: ")
    assert message in run.stderr


def test_durations_take_units() -> None:
    assert [parse_duration(t) for t in ["0.5", "90s", "250ms", "30m", "2h", " 1 s "]] == [
        0.5, 90, 0.25, 1800, 7200, 1,
    ]  # fmt: skip
    for bad in ["", "s", "-1", "0", "1d", "1e3", "one"]:
        with pytest.raises(argparse.ArgumentTypeError, match="duration"):
            parse_duration(bad)


def test_the_most_severe_rule() -> None:
    assert most_severe([]) == 0
    assert most_severe([0, 3]) == 3
    assert most_severe([3, 1, 0]) == 1
    assert most_severe([1, 4, 3]) == 4
    assert most_severe([4, 2, 1]) == 2


async def test_help_answers_without_importing_aiohttp(home: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys\nfrom imagejobs.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('aiohttp' in sys.modules, code)",
        env=environment(home),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    lines = out.decode().splitlines()
    assert lines[-1] == "False 0"
    assert any("exit codes:" in line for line in lines)
    assert any("2 > 4 > 1 > 3 > 0" in line for line in lines)


SENTINEL_SK = "SKSENTINELCLISECRET000000000000000000009"
SENTINEL_TOKEN = "TKSENTINELCLITOKEN9"


async def test_secrets_never_reach_the_output(home: Path) -> None:
    async with FakeWorkspace(ak="AKSENTINELCLIACCESS9", sk=SENTINEL_SK) as fake:
        script(fake)
        runs = [
            await cli("wait", "ok", "bad", "denied", *FAST, flags, env=fake_env(fake, home))
            for flags in ("--debug", "--json")
        ]
        wrong = fake_env(fake, home, HUAWEICLOUD_SDK_SK=SENTINEL_SK[::-1])
        runs.append(await cli("wait", "ok", *FAST, "--debug", env=wrong))
        runs.append(await cli("get", "ok", "--debug", env=fake_env(fake, home)))
        both = fake_env(fake, home, IMAGEJOBS_AUTH_TOKEN=SENTINEL_TOKEN)
        runs.append(await cli("get", "ok", "--debug", env=both))
    assert [r.code for r in runs] == [4, 4, 4, 0, 2]
    assert "GET http://127.0.0.1" in runs[0].stderr  # --debug did log the requests
    for run in runs:
        for secret in ("AKSENTINELCLIACCESS9", SENTINEL_SK, SENTINEL_SK[::-1], SENTINEL_TOKEN):
            assert secret not in run.stdout + run.stderr


async def test_standalone_fake_server_and_wait_against_it(home: Path, tmp_path: Path) -> None:
    scenario = {
        "token": "scenario-token",
        "jobs": [
            {
                "id": "1",
                "timeline": [job("1", "RUNNING"), {"reply": {"status": 503}}, job("1", "SUCCESS")],
            },
            {"id": "2", "every": 0.05, "timeline": [job("2", "RUNNING"), job("2", "SUCCESS")]},
        ],
    }
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imagejobs",
        "fake-server",
        "--scenario",
        str(path),
        env=environment(home),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        url = (await asyncio.wait_for(server.stdout.readline(), timeout=30)).decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        env = environment(
            home,
            IMAGEJOBS_AUTH_TOKEN="scenario-token",
            HUAWEICLOUD_SDK_PROJECT_ID="0123456789abcdef0123456789abcdef",
            IMAGEJOBS_ENDPOINT=url,
        )
        run = await cli("wait", "1", "2", *FAST, "--json", env=env)
        outcomes = [json.loads(line) for line in run.stdout.splitlines()]
        assert {(r["job_id"], r["outcome"]) for r in outcomes if r["event"] == "result"} == {
            ("1", "success"),  # through the scripted 503, retried
            ("2", "success"),
        }
        assert run.code == 0
    finally:
        server.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(server.communicate(), timeout=30)
    assert server.returncode == 130
    assert "auth X-Auth-Token" in err.decode()
    assert "scenario-token" not in err.decode()


DEEP = json.loads("[" * 40 + "]" * 40)


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ([], "scenario file: must hold a JSON object"),
        (
            {"jobs": [{"timeline": [{"status": "RUNNING"}]}]},
            "jobs[0].timeline[0]: not a job snapshot",
        ),
        (
            {"jobs": [{"id": "1", "timeline": [{"reply": {"status": 999}}]}]},
            ".reply.status: must be an HTTP status",
        ),
        (
            {"jobs": [{"id": "1", "every": -1, "timeline": []}]},
            "jobs[0].every: must be a finite positive number, got -1",
        ),
        (
            {"jobs": [{"id": "1", "timeline": [{"reply": {"status": 503, "delay": math.nan}}]}]},
            "timeline[0].reply.delay: must be a finite non-negative number, got nan",
        ),
        (
            {"faults": {"latency": "0.05"}},
            "scenario faults.latency: must be a finite non-negative number, got '0.05'",
        ),
        (
            {"jobs": [{"id": "1", "timeline": [{"id": "1", "status": "X", "x": DEEP}]}]},
            "jobs[0].timeline[0].x" + "[0]" * 27 + ": nested more than 32 levels deep",
        ),
        ({"ak": "only-half"}, "pass both ak and sk"),
        ({"colour": "blue"}, "unknown keys ['colour']"),
    ],
)
async def test_a_bad_scenario_is_named(
    home: Path, tmp_path: Path, scenario: object, message: str
) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    run = await cli("fake-server", "--scenario", str(path), env=environment(home))
    assert run.code == 2
    assert message in run.stderr
    assert len(run.stderr.splitlines()) == 1


async def test_the_demo_runs_and_with_failure_exits_1(home: Path) -> None:
    # The README's first command; both variants run at once (about 15 s of scripted time).
    plain, failing = await asyncio.gather(
        cli("demo", env=environment(home)), cli("demo", "--with-failure", env=environment(home))
    )
    assert plain.code == 0, plain.stderr
    assert failing.code == 1, failing.stderr
    assert "BUILD_IMAGE ABNORMAL -> ROLLBACK" in plain.stderr
    assert "BUILD_IMAGE ROLLBACK -> RUNNING" in plain.stderr
    assert len([line for line in plain.stderr.splitlines() if line.startswith("result ")]) == 3
    assert 'error=WKS.00081208 message="The image instance is not stopped."' in failing.stderr
    assert "result 702364887302930432 failed status=FAILED" in failing.stderr
    assert "demo-secret-key" not in plain.stderr + failing.stderr


async def test_ctrl_c_during_a_wait_exits_130(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    process = await start_cli("wait", "stuck", *FAST, env=fake_env(fake, home))
    while not fake.requests_for("stuck"):
        await asyncio.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 130
    assert err.decode().splitlines()[-1] == "imagejobs: error: interrupted"


async def test_a_closed_stdout_ends_quietly(fake: FakeWorkspace, home: Path) -> None:
    ids = [f"many{n}" for n in range(300)]
    for job_id in ids:
        fake.add_job([job(job_id, "RUNNING"), job(job_id, "SUCCESS")])
    command = " ".join([sys.executable, "-m", "imagejobs", "wait", *ids, "--json", *FAST])
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", f'{command} | head -n 1; echo "exit=${{PIPESTATUS[0]}}" >&2',
        env=fake_env(fake, home), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert json.loads(out)["event"] == "transition"
    assert err.decode().splitlines() == ["exit=141"]


async def test_watch_and_get_exit_codes(fake: FakeWorkspace, home: Path) -> None:
    script(fake)
    env = fake_env(fake, home)
    timeout = await cli("watch", "stuck", *FAST, "--timeout", "200ms", env=env)
    denied = await cli("watch", "denied", *FAST, env=env)
    bad_id = await cli("get", "a/b", env=env)
    assert (timeout.code, denied.code, bad_id.code) == (3, 4, 2)
    assert "result stuck timeout status=RUNNING" in timeout.stderr
    assert bad_id.stderr == "imagejobs: error: job_id 'a/b' contains '/', not allowed in an ID\n"


async def test_a_credentials_file_without_a_section_is_exit_2_and_quoted_nowhere(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"sk = {SENTINEL_SK}\nak = AKSENTINELCLIACCESS9\n")
    env = environment(
        home,
        HUAWEICLOUD_SDK_CREDENTIALS_FILE=str(path),
        HUAWEICLOUD_SDK_PROJECT_ID=fake.project_id,
        IMAGEJOBS_ENDPOINT=fake.url,
    )
    for flags in ([], ["--debug"]):
        run = await cli("wait", "1", *flags, env=env)
        assert run.code == 2
        assert "is not valid INI (line 1); it needs a [basic] section" in run.stderr
        assert SENTINEL_SK not in run.stderr + run.stdout


async def test_an_unwritable_step_summary_keeps_the_verdict(
    fake: FakeWorkspace, home: Path
) -> None:
    script(fake)
    env = fake_env(
        fake, home, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(home / "missing" / "s.md")
    )
    run = await cli("wait", "ok", *FAST, env=env)
    assert run.code == 0
    assert "imagejobs: warning: cannot write the step summary" in run.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000, "nested too deeply to read"),
        ('{"jobs": [{"id": "1", "every": ' + "9" * 5000 + "}]}", "is not usable JSON"),
    ],
)
async def test_a_scenario_python_cannot_read_is_one_line(
    home: Path, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(text)
    run = await cli("fake-server", "--scenario", str(path), env=environment(home))
    assert run.code == 2, run.stderr
    assert run.stderr.startswith(f"imagejobs: error: scenario {path}")
    assert message in run.stderr
    assert len(run.stderr.splitlines()) == 1


async def test_get_gives_up_at_its_timeout_with_exit_4(fake: FakeWorkspace, home: Path) -> None:
    fake.add_job([Reply(body=b"{}", delay=30)], job_id="slow")
    run = await cli("get", "slow", "--timeout", "300ms", env=fake_env(fake, home))
    assert run.code == 4, run.stderr
    assert run.stdout == ""
    assert run.stderr == "imagejobs: error: job slow: no answer within 0.3s\n"


FORGED_NAME = "img\nresult forged success status=SUCCESS duration=0.0s"
FORGED_MESSAGE = "boom\r\n::warning::forged\x1b[2J\x9b31m\u2028##[error]forged\ud800 | `x`"


def forged_job(status: str) -> dict[str, Any]:
    return {
        "id": "forged",
        "status": status,
        "sub_jobs": [
            {
                "id": "forged-0\x1b]0;title\x07",
                "job_type": "BUILD\u2029IMAGE",
                "status": status,
                "job_resource_info": {"resource_id": "res\x85", "resource_name": FORGED_NAME},
                "job_execute_info": {"error_code": "WKS.9\n", "error_message": FORGED_MESSAGE},
            }
        ],
    }


def assert_plain(text: str) -> None:
    lines = text.split("\n")
    assert lines.pop() == ""
    assert text.splitlines() == lines
    assert all(line.isprintable() for line in lines), lines
    assert "##[" not in text


async def test_server_text_cannot_forge_lines_or_workflow_commands(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    fake.add_job([forged_job("RUNNING"), forged_job("FAILED")])
    summary = tmp_path / "summary.md"
    env = fake_env(fake, home, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    run = await cli("wait", "forged", *FAST, env=env)
    assert run.code == 1, run.stderr
    assert_plain(run.stderr)
    lines = run.stderr.splitlines()
    assert [line[:9] for line in lines if line.lstrip().startswith(("::", "result "))] == [
        "result fo",
        "::error t",
    ]
    assert 'name="img\\nresult forged success status=SUCCESS duration=0.0s"' in run.stderr
    assert_plain(summary.read_text())
    assert len(summary.read_text().splitlines()) == 5

    ndjson = await cli("wait", "forged", *FAST, "--json", env=env)
    assert_plain(ndjson.stdout)
    records = [json.loads(line) for line in ndjson.stdout.splitlines()]
    failure = next(r for r in records if r["current"] == "FAILED" and r["sub_job_id"])
    assert failure["error_message"] == FORGED_MESSAGE
    assert failure["sub_job_id"] == "forged-0\x1b]0;title\x07"

    shown = await cli("get", "forged", env=fake_env(fake, home))
    assert shown.code == 0, shown.stderr
    assert_plain(shown.stdout)
    assert json.loads(shown.stdout) == forged_job("FAILED")


async def test_an_error_message_from_the_server_stays_one_plain_line(
    fake: FakeWorkspace, home: Path
) -> None:
    fake.add_job([Reply.error(403, "WKS.0003", FORGED_MESSAGE)], job_id="denied")
    for command in ("get", "wait", "watch"):
        run = await cli(
            command, "denied", *([] if command == "get" else FAST), env=fake_env(fake, home)
        )
        assert run.code == 4, run.stderr
        assert_plain(run.stderr)
        errors = run.stderr.splitlines()
        assert [line for line in errors if line.startswith("imagejobs: error: ")] == errors[:1]
        assert "403 WKS.0003: boom\\r\\n::warning::forged\\x1b[2J" in errors[0]
        assert not any(line.lstrip().startswith("::") for line in errors)


# --- imagejobs list -------------------------------------------------------------

LIST_FIELDS = {"id", "job_type", "begin_time", "end_time", "status", "sub_jobs_total"}


def listed_job(job_id: str, status: str, job_type: str = "CREATE_SERVER_IMAGE") -> dict[str, Any]:
    return {
        **job(job_id, status, ("RUNNING", ""), ("SUCCESS", "")),
        "job_type": job_type,
        "begin_time": "2024-05-20T10:39:49.61Z",
        "sub_jobs_total": 2,
    }


def script_list(fake: FakeWorkspace) -> None:
    fake.add_job([listed_job("run-image", "RUNNING")])
    fake.add_job([listed_job("run-server", "RUNNING", "CREATE_SERVER")])
    fake.add_job([{**listed_job("done-image", "SUCCESS"), "end_time": "2024-05-20T11:03:24.206Z"}])
    fake.add_job([listed_job("odd", "PAUSED", "MAKE_COFFEE")])


def list_queries(fake: FakeWorkspace) -> list[dict[str, str]]:
    return [dict(r.query) for r in fake.requests if r.path.endswith("/image-server-jobs")]


async def test_list_prints_one_line_per_job(fake: FakeWorkspace, home: Path) -> None:
    script_list(fake)
    run = await cli("list", env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    rows = {line.split("  ")[0]: line.split("  ") for line in run.stdout.splitlines()}
    assert sorted(rows) == ["done-image", "odd", "run-image", "run-server"]
    assert rows["run-image"][:4] == ["run-image", "CREATE_SERVER_IMAGE", "RUNNING", "2 sub-jobs"]
    assert rows["run-server"][1:3] == ["CREATE_SERVER", "RUNNING"]
    assert rows["odd"][1:3] == ["MAKE_COFFEE", "PAUSED"]  # unknown values shown as sent
    assert rows["done-image"] == [
        "done-image",
        "CREATE_SERVER_IMAGE",
        "SUCCESS",
        "2 sub-jobs",
        "2024-05-20T10:39:49.61Z",  # as the service writes them
        "2024-05-20T11:03:24.206Z",
    ]
    assert rows["run-image"][-1] == "-"  # no end time yet
    assert list_queries(fake) == [{"limit": "100", "offset": "0"}]


async def test_list_json_is_one_job_a_line(fake: FakeWorkspace, home: Path) -> None:
    script_list(fake)
    run = await cli("list", "--json", env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    records = {r["id"]: r for r in map(json.loads, run.stdout.splitlines())}
    assert sorted(records) == ["done-image", "odd", "run-image", "run-server"]
    assert all(set(r) <= LIST_FIELDS for r in records.values())
    assert records["done-image"] == {
        "id": "done-image",
        "job_type": "CREATE_SERVER_IMAGE",
        "begin_time": "2024-05-20T10:39:49.61Z",
        "end_time": "2024-05-20T11:03:24.206Z",
        "status": "SUCCESS",
        "sub_jobs_total": 2,
    }
    assert (records["odd"]["status"], records["odd"]["job_type"]) == ("PAUSED", "MAKE_COFFEE")
    assert "sub_jobs" not in records["run-image"]


async def test_list_stops_at_its_limit(fake: FakeWorkspace, home: Path) -> None:
    script_list(fake)
    run = await cli("list", "--limit", "2", env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert len(run.stdout.splitlines()) == 2
    ndjson = await cli("list", "--limit", "3", "--json", env=fake_env(fake, home))
    assert ndjson.code == 0, ndjson.stderr
    assert len({json.loads(line)["id"] for line in ndjson.stdout.splitlines()}) == 3
    assert len(list_queries(fake)) == 2


async def test_list_passes_its_filters_to_the_service(fake: FakeWorkspace, home: Path) -> None:
    script_list(fake)
    run = await cli(
        "list", "--status", "RUNNING", "--job-type", "CREATE_SERVER", env=fake_env(fake, home)
    )
    assert run.code == 0, run.stderr
    assert [line.split("  ")[0] for line in run.stdout.splitlines()] == ["run-server"]
    assert list_queries(fake) == [
        {"status": "RUNNING", "job_type": "CREATE_SERVER", "limit": "100", "offset": "0"}
    ]
    running = await cli("list", "--status", "RUNNING", "--json", env=fake_env(fake, home))
    ids = sorted(json.loads(line)["id"] for line in running.stdout.splitlines())
    assert ids == ["run-image", "run-server"]


async def test_list_with_no_match_says_so_on_stderr(fake: FakeWorkspace, home: Path) -> None:
    script_list(fake)
    run = await cli("list", "--status", "FAILED", env=fake_env(fake, home))
    assert (run.code, run.stdout) == (0, "")
    assert run.stderr == "imagejobs: no job matches\n"
    quiet = await cli("list", "--status", "FAILED", "--json", env=fake_env(fake, home))
    assert (quiet.code, quiet.stdout, quiet.stderr) == (0, "", "")


async def test_list_without_job_type_where_the_service_demands_it_exits_4(
    keys: dict[str, Any], home: Path
) -> None:
    async with FakeWorkspace(require_job_type=True, **keys) as fake:
        script_list(fake)
        run = await cli("list", env=fake_env(fake, home))
        assert run.code == 4, run.stderr
        assert run.stdout == ""
        assert len(run.stderr.splitlines()) == 1
        assert run.stderr.startswith("imagejobs: error: 400 WKS.00211102: ")
        assert "job_type is required" in run.stderr
        assert "Traceback" not in run.stderr
        assert len(fake.requests) == 1  # a 400 is not retried

        typed = await cli("list", "--job-type", "CREATE_SERVER_IMAGE", env=fake_env(fake, home))
        assert typed.code == 0, typed.stderr
        assert sorted(line.split("  ")[0] for line in typed.stdout.splitlines()) == [
            "done-image",
            "run-image",
        ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "RUN NING"], "status 'RUN NING' is not a status or job type"),
        (["--job-type", "a;b"], "job_type 'a;b' is not a status or job type"),
        (["--limit", "0"], "'0' must be at least 1"),
        (["--no-sweeps"], "unrecognized arguments: --no-sweeps"),
    ],
)
async def test_list_refuses_bad_options_before_any_request(
    fake: FakeWorkspace, home: Path, args: list[str], message: str
) -> None:
    script_list(fake)
    run = await cli("list", *args, env=fake_env(fake, home))
    assert run.code == 2, run.stderr
    assert run.stdout == ""
    assert len(run.stderr.splitlines()) == 1
    assert message in run.stderr
    assert fake.requests == []


async def test_wait_accepts_no_sweeps_and_polls_by_get_only(
    fake: FakeWorkspace, home: Path
) -> None:
    script(fake)
    run = await cli("wait", "ok", "bad", *FAST, "--no-sweeps", env=fake_env(fake, home))
    assert run.code == 1, run.stderr
    assert "result ok success" in run.stderr
    assert "result bad failed" in run.stderr
    assert fake.requests
    assert all(r.job_id in {"ok", "bad"} for r in fake.requests)


def timed_job(job_id: str, job_type: str, minutes: float) -> dict[str, Any]:
    return {
        "id": job_id,
        "job_type": job_type,
        "status": "SUCCESS",
        "begin_time": "2026-11-27T10:00:00Z",
        "end_time": f"2026-11-27T10:{int(minutes):02d}:{round(minutes % 1 * 60):02d}Z",
        "sub_jobs": [],
    }


def ran(job_id: str, job_type: str, minutes: float) -> list[dict[str, Any]]:
    """A timeline a wait sees run, then succeed: only such a job adds its duration."""
    done = timed_job(job_id, job_type, minutes)
    return [{**done, "status": "RUNNING", "end_time": None}, done]


async def test_wait_keeps_a_history_that_history_prints(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    fake.add_job(ran("done", "CREATE_SERVER", 5.5))
    kept = tmp_path / "durations.json"
    run = await cli("wait", "done", *FAST, "--history", str(kept), env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert DurationHistory.load(kept).durations("CREATE_SERVER") == (330.0,)
    shown = await cli("history", "--history", str(kept), env=environment(home))
    assert shown.code == 0, shown.stderr
    assert shown.stdout.startswith("CREATE_SERVER  1 jobs  median 5m30s")
    assert "too few to place polls" in shown.stdout
    as_json = await cli("history", "--history", str(kept), "--json", env=environment(home))
    assert json.loads(as_json.stdout)["CREATE_SERVER"]["jobs"] == 1


async def test_the_history_lives_in_the_cache_directory_unless_told_otherwise(
    fake: FakeWorkspace, home: Path
) -> None:
    fake.add_job(ran("done", "DELETE_SERVER", 2))
    run = await cli("wait", "done", *FAST, "--no-history", env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    cached = home / ".cache" / "imagejobs" / "durations.json"
    assert not cached.exists()
    fake.add_job(ran("done", "DELETE_SERVER", 2))  # from the start again
    run = await cli("wait", "done", *FAST, env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert DurationHistory.load(cached).durations("DELETE_SERVER") == (120.0,)


async def test_history_learn_fills_it_from_the_projects_finished_jobs(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    for n in range(12):
        fake.add_job([timed_job(f"old{n}", "CREATE_SERVER_IMAGE", 10 + n / 2)])
    kept = tmp_path / "learned.json"
    learn = ["history", "--learn", "--history", str(kept), "--rate", "10000"]
    run = await cli(*learn, env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("CREATE_SERVER_IMAGE  12 jobs  median ")
    assert "p10" in run.stdout  # enough to place polls
    assert len(DurationHistory.load(kept).durations("CREATE_SERVER_IMAGE")) == 12
    asked = {r.query.get("job_type") for r in fake.requests if r.job_id is None}
    assert "CREATE_SERVER_IMAGE" in asked
    assert all(r.query.get("status") == "SUCCESS" for r in fake.requests if r.job_id is None)


async def test_a_history_file_that_is_not_one_is_a_one_line_error(
    home: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "durations.json"
    broken.write_text("{not json")
    run = await cli("history", "--history", str(broken), env=environment(home))
    assert run.code == 2
    assert run.stderr.count("\n") == 1
    assert str(broken) in run.stderr


async def test_a_broken_history_in_the_cache_is_a_warning_and_a_fresh_start(
    fake: FakeWorkspace, home: Path
) -> None:
    fake.add_job(ran("done", "CREATE_SERVER", 3))
    cached = home / ".cache" / "imagejobs" / "durations.json"
    cached.parent.mkdir(parents=True)
    cached.write_text("{broken")
    run = await cli("wait", "done", *FAST, env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert "warning" in run.stderr
    assert str(cached) in run.stderr
    assert DurationHistory.load(cached).durations("CREATE_SERVER") == (180.0,)


async def test_watch_keeps_the_history_too(fake: FakeWorkspace, home: Path, tmp_path: Path) -> None:
    fake.add_job(ran("done", "CREATE_SERVER", 4))
    kept = tmp_path / "durations.json"
    run = await cli("watch", "done", *FAST, "--history", str(kept), env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    assert DurationHistory.load(kept).durations("CREATE_SERVER") == (240.0,)


# --- CI output ------------------------------------------------------------------------


async def test_outside_a_terminal_a_heartbeat_says_the_step_is_alive(
    fake: FakeWorkspace, home: Path
) -> None:
    script(fake)
    env = fake_env(fake, home)
    run = await cli("wait", "stuck", *FAST, "--timeout", "1s", "--heartbeat", "200ms", env=env)
    assert run.code == 3
    beats = [line for line in run.stderr.splitlines() if " heartbeat: " in line]
    assert beats
    # One stable format, timestamped.
    beat = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ heartbeat: "
    beat += r"0 ok, 0 failed, 0 other, 1 waiting, elapsed [0-9.]+s"
    assert all(re.fullmatch(beat, b) for b in beats), beats
    quiet = await cli("wait", "stuck", *FAST, "--timeout", "1s", "--heartbeat", "0", env=env)
    assert not [line for line in quiet.stderr.splitlines() if " heartbeat: " in line]


async def test_each_result_line_comes_as_soon_as_its_job_ends(
    fake: FakeWorkspace, home: Path
) -> None:
    fake.add_job([job("quick", "SUCCESS", ("SUCCESS", ""))])
    slow = [job("slow", "RUNNING", ("RUNNING", ""))] * 20 + [
        job("slow", "SUCCESS", ("SUCCESS", ""))
    ]
    fake.add_job(slow)
    run = await cli("wait", "quick", "slow", *FAST, env=fake_env(fake, home))
    assert run.code == 0, run.stderr
    lines = run.stderr.splitlines()
    quick = lines.index(next(line for line in lines if line.startswith("result quick ")))
    slow_end = lines.index(
        next(line for line in lines if " slow job " in line and "SUCCESS" in line)
    )
    assert quick < slow_end


async def test_github_actions_get_outputs_and_transitions_as_they_happen(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    script(fake)
    outputs = tmp_path / "github_output"
    env = fake_env(fake, home, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(outputs))
    run = await cli("wait", "ok", "bad", *FAST, env=env)
    assert run.code == 1, run.stderr
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert written["outcome"] == "failed"
    assert written["result-ids"] == "res-ok-0"  # what the successful job made
    assert sorted(written["resource-ids"].split()) == ["res-bad-0", "res-ok-0"]  # as they end
    results = json.loads(written["results"])
    assert {r["job_id"]: r["outcome"] for r in results} == {"ok": "success", "bad": "failed"}
    assert all(r["event"] == "result" for r in results)
    assert results[0]["resources"][0]["job_type"] == "BUILD_IMAGE"
    lines = run.stderr.splitlines()
    # Each transition shows as it is seen, not folded until its job ends.
    assert not [line for line in lines if line.startswith(("::group::", "::endgroup::"))]
    for job_id in ("ok", "bad"):
        moves = [n for n, line in enumerate(lines) if LINE.match(line) and f" {job_id} " in line]
        end = next(n for n, line in enumerate(lines) if line.startswith(f"result {job_id} "))
        assert len(moves) == 4
        assert max(moves) < end


async def test_sigterm_still_writes_the_results_summary_and_outputs(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    script(fake)
    summary, outputs = tmp_path / "summary.md", tmp_path / "output"
    env = fake_env(
        fake,
        home,
        GITHUB_ACTIONS="true",
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_OUTPUT=str(outputs),
    )
    process = await start_cli("wait", "ok", "stuck", *FAST, env=env)
    while len(fake.requests_for("ok")) < 2 or len(fake.requests_for("stuck")) < 3:
        await asyncio.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 143
    lines = err.decode().splitlines()
    assert lines[-1] == "imagejobs: error: terminated"
    # Every job has its result line: "ok" ended (or, on a slow machine, was stopped too).
    assert any(line.startswith(("result ok success", "result ok error")) for line in lines)
    assert any(
        line.startswith("result stuck interrupted status=RUNNING") and "stopped by SIGTERM" in line
        for line in lines
    )
    assert not [line for line in lines if line.startswith("::error") and "stuck" in line]
    assert "| `stuck` | interrupted |" in summary.read_text()
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert written["outcome"] == "interrupted"
    kinds = {r["job_id"]: r["outcome"] for r in json.loads(written["results"])}
    assert kinds["stuck"] == "interrupted"  # as the outcome output says


async def test_the_not_found_grace_is_set_from_the_command_line(
    fake: FakeWorkspace, home: Path
) -> None:
    run = await cli(
        "wait", "nosuchjob", *FAST, "--not-found-grace", "100ms", env=fake_env(fake, home)
    )
    assert run.code == 4
    assert "404" in run.stderr
    assert len(fake.requests) < 40  # given up after a tenth of a second, not ten


async def test_a_running_fake_server_is_inspected_and_fed_over_http(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"token": "scenario-token", "jobs": []}))
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imagejobs", "fake-server", "--scenario", str(path),
        env=environment(home), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = (await asyncio.wait_for(server.stdout.readline(), timeout=30)).decode().strip()
        async with aiohttp.ClientSession() as http:
            timeline = [job("fed", "RUNNING"), job("fed", "SUCCESS")]
            async with http.post(f"{url}/_fake/jobs", json={"timeline": timeline}) as added:
                assert added.status == 201
                assert await added.json() == {"id": "fed"}
            async with http.post(f"{url}/_fake/jobs", json={"timeline": [5]}) as bad:
                assert bad.status == 400
                assert "timeline[0]" in (await bad.json())["error"]
            env = environment(
                home,
                IMAGEJOBS_AUTH_TOKEN="scenario-token",
                HUAWEICLOUD_SDK_PROJECT_ID="0123456789abcdef0123456789abcdef",
                IMAGEJOBS_ENDPOINT=url,
            )
            run = await cli("wait", "fed", *FAST, env=env)
            assert run.code == 0, run.stderr
            async with http.get(f"{url}/_fake/requests") as log:
                requests = await log.json()
            assert [r["job_id"] for r in requests] == ["fed", "fed"]  # the API's, not the control's
            assert [r["status"] for r in requests] == [200, 200]
            assert "scenario-token" not in json.dumps(requests)
            async with http.delete(f"{url}/_fake/requests") as cleared:
                assert cleared.status == 200
            async with http.get(f"{url}/_fake/requests") as log:
                assert await log.json() == []
            async with http.get(f"{url}/_fake/nothing") as unknown:
                assert unknown.status == 404
    finally:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.communicate(), timeout=30)


async def test_watch_handles_sigterm_too_and_a_second_signal_changes_nothing(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    script(fake)
    outputs = tmp_path / "output"
    env = fake_env(fake, home, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(outputs))
    watch = await start_cli("watch", "stuck", *FAST, env=env)
    while len(fake.requests_for("stuck")) < 2:
        await asyncio.sleep(0.01)
    watch.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(watch.communicate(), timeout=30)
    assert watch.returncode == 143
    assert err.decode().splitlines()[-1] == "imagejobs: error: terminated"
    assert "outcome=interrupted" in outputs.read_text().splitlines()

    outputs.unlink()
    wait = await start_cli("wait", "stuck", *FAST, env=env)
    while len(fake.requests_for("stuck")) < 4:
        await asyncio.sleep(0.01)
    wait.send_signal(signal.SIGINT)
    wait.send_signal(signal.SIGTERM)  # a runner that loses patience at once
    _, err = await asyncio.wait_for(wait.communicate(), timeout=30)
    assert wait.returncode in (130, 143)  # whichever came first decides; neither kills
    assert "outcome=interrupted" in outputs.read_text().splitlines()
    assert err.decode().splitlines()[-1] in (
        "imagejobs: error: interrupted",
        "imagejobs: error: terminated",
    )
