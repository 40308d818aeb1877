"""The command line as a CI engineer meets it: piped IDs, durations, loud failures, the fake.

Pure parts (reading IDs, durations) are tested directly; the rest runs the
command as a subprocess against the fake server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pty
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from cli_run import FAST, LINE, cli, environment, fake_env, job, start_cli
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import ConfigurationError, DurationHistory
from imagejobs.cli._args import parse_duration
from imagejobs.cli._ids import ids_from_text
from imagejobs.testing import FakeWorkspace, Reply

# --- job IDs on stdin -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ('{"job_id": "100"}', ["100"]),
        ('{"job_id":"100"}', ["100"]),
        ('{\n  "job_id": "100",\n  "other": [1, 2]\n}\n', ["100"]),  # KooCLI, pretty-printed
        ('[{"job_id": "1"}, {"job_id": "2"}]', ["1", "2"]),
        ('["1", 2]', ["1", "2"]),
        ('{"job_id": "1"}\n{"job_id": "2"}\n', ["1", "2"]),  # JSON Lines
        ("1\n2 3,4\n# a comment\n\n", ["1", "2", "3", "4"]),
        ("  702364883651395584  ", ["702364883651395584"]),
    ],
)
def test_stdin_holds_bare_ids_or_the_json_kooclis_prints(text: str, ids: list[str]) -> None:
    assert ids_from_text(text) == ids


@pytest.mark.parametrize(
    "text", ['{"id": "1"}', "{oops", 'a"b', '[1, {"x": 2}]', '{"job_id": null}', "{'job_id': 1}"]
)
def test_anything_else_on_stdin_is_refused_saying_what_and_how(text: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        ids_from_text(text)
    message = str(refused.value)
    assert "\n" not in message
    assert "--cli-query=job_id" in message
    assert "jq -r .job_id" in message


@given(st.lists(st.from_regex(r"[0-9]{1,18}", fullmatch=True), min_size=1, max_size=8))
def test_ids_read_back_in_every_form(ids: list[str]) -> None:
    records = [{"job_id": job_id} for job_id in ids]
    assert ids_from_text("\n".join(ids)) == ids
    assert ids_from_text(json.dumps(records)) == ids
    assert ids_from_text(json.dumps(records, indent=2)) == ids
    assert ids_from_text("\n".join(json.dumps(r) for r in records)) == ids


@pytest.mark.parametrize(
    "piped",
    [
        '{"job_id": "ok"}',
        '{\n  "job_id": "ok"\n}\n',
        '[{"job_id": "ok"}, {"job_id": "ok2"}]',
        '{"job_id": "ok"}\n{"job_id": "ok2"}\n',
    ],
)
async def test_wait_dash_waits_on_the_jobs_piped_in(
    fake: FakeWorkspace, home: Path, piped: str
) -> None:
    for job_id in ("ok", "ok2"):
        fake.add_job([job(job_id, "RUNNING", ("RUNNING", "")), job(job_id, "SUCCESS")])
    run = await cli("wait", "-", *FAST, env=fake_env(fake, home), stdin=piped)
    assert run.code == 0, run.stderr
    asked = {r.job_id for r in fake.requests}
    assert asked == ({"ok", "ok2"} if "ok2" in piped else {"ok"})  # no job named '{' or '}'


async def test_garbage_on_stdin_exits_2_with_one_line(fake: FakeWorkspace, home: Path) -> None:
    run = await cli("wait", "-", *FAST, env=fake_env(fake, home), stdin='{"id": 1')
    assert run.code == 2
    assert len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("imagejobs: error: stdin is not JSON nor job IDs")
    assert not fake.requests


async def test_watch_and_get_read_their_one_id_from_stdin(fake: FakeWorkspace, home: Path) -> None:
    job_id = fake.add_job([job("w", "SUCCESS", ("SUCCESS", ""))], job_id="w")
    env = fake_env(fake, home)
    got = await cli("get", "-", env=env, stdin=f'{{"job_id": "{job_id}"}}')
    assert got.code == 0, got.stderr
    assert json.loads(got.stdout)["id"] == "w"
    watched = await cli("watch", "-", *FAST, env=env, stdin="w\n")
    assert watched.code == 0, watched.stderr
    assert "result w success" in watched.stderr
    two = await cli("get", "-", env=env, stdin="a b")
    assert two.code == 2
    assert "stdin holds 2 job IDs; this command takes one" in two.stderr


# --- durations --------------------------------------------------------------------------


def test_durations_read_as_people_write_them() -> None:
    written = ["90s", "5m", "5min", "1h30m", "2h", "250ms", "0.5", "1h 30m 15s", "2 hours"]
    assert [parse_duration(text) for text in written] == [
        90, 300, 300, 5400, 7200, 0.25, 0.5, 5415, 7200,
    ]  # fmt: skip
    assert parse_duration("0", zero=True) == 0
    for bad in ["0", "1h30", "30m1", "1hh", "1d", "-1m", "9" * 400]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)


async def test_a_zero_grace_ends_an_unknown_job_at_once_and_long_timeouts_read(
    fake: FakeWorkspace, home: Path
) -> None:
    env = fake_env(fake, home)
    run = await cli("wait", "nosuchjob", *FAST, "--not-found-grace", "0", env=env)
    assert run.code == 4, run.stderr
    assert len(fake.requests) == 1  # no second look: zero grace
    fake.add_job([job("quick", "SUCCESS")], job_id="quick")
    long = await cli("wait", "quick", *FAST, "--timeout", "1h30m", env=env)
    assert long.code == 0, long.stderr


# --- a service nobody answers for ---------------------------------------------------------


async def test_an_endpoint_that_never_answers_exits_4_naming_why(home: Path) -> None:
    env = environment(
        home,
        HUAWEICLOUD_SDK_AK="AKTESTFIXTURE0000001",
        HUAWEICLOUD_SDK_SK="SKtestfixture000000000000000000000000001",
        HUAWEICLOUD_SDK_PROJECT_ID="p",
        IMAGEJOBS_ENDPOINT="http://127.0.0.1:1",
    )
    args = ["--unreachable-timeout", "2s", "--heartbeat", "500ms"]
    run = await cli("wait", "100", *FAST, *args, env=env)
    assert run.code == 4, run.stderr
    beats = [line for line in run.stderr.splitlines() if " heartbeat: " in line]
    assert any("no answer from the service for" in b for b in beats), run.stderr
    assert any("cannot connect to 127.0.0.1:1: connection refused" in b for b in beats)
    assert "ssl:" not in run.stderr  # the connection error in words, not aiohttp's repr
    result = next(line for line in run.stderr.splitlines() if line.startswith("result 100 "))
    assert "no request reached the service for" in result
    assert "see --unreachable-timeout" in result


async def test_a_sigterm_names_the_last_error_of_each_job_still_waiting(
    fake: FakeWorkspace, home: Path
) -> None:
    busy = Reply.error(503, "WKS.0503", "Service unavailable")
    fake.add_job([job("flaky", "RUNNING"), busy], job_id="flaky")
    process = await start_cli("wait", "flaky", *FAST, env=fake_env(fake, home))
    while len(fake.requests_for("flaky")) < 3:
        await asyncio.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 143
    result = next(line for line in err.decode().splitlines() if line.startswith("result flaky"))
    assert "stopped by SIGTERM; its last error: 503 WKS.0503: Service unavailable" in result


# --- CI logs and terminals ------------------------------------------------------------------


async def test_under_github_actions_each_transition_shows_while_the_job_runs(
    fake: FakeWorkspace, home: Path
) -> None:
    steps = [job("long", "RUNNING", ("RUNNING", "")), job("long", "RUNNING", ("SUCCESS", ""))]
    fake.add_job([*steps, job("long", "RUNNING", ("SUCCESS", ""))], job_id="long")
    env = fake_env(fake, home, GITHUB_ACTIONS="true")
    process = await start_cli("wait", "long", *FAST, "--heartbeat", "1s", env=env)
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while not any("long-0 BUILD_IMAGE RUNNING -> SUCCESS" in line for line in seen):
        assert time.monotonic() < deadline, seen
        line = await asyncio.wait_for(process.stderr.readline(), timeout=10)
        seen.append(line.decode())
    assert process.returncode is None  # the job still runs: the line came as it happened
    assert all(LINE.match(line) for line in seen), seen
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.communicate(), timeout=30)


async def test_watch_on_a_terminal_redraws_a_line_per_job_with_an_estimate(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    began = "2026-12-01T10:00:00Z"
    running = {**job("tty", "RUNNING", ("SUCCESS", ""), ("RUNNING", "")), "begin_time": began}
    fake.add_job([running], job_id="tty")
    history = tmp_path / "durations.json"
    DurationHistory({"CREATE_SERVER_IMAGE": [600.0 + n for n in range(10)]}).save(history)
    env = fake_env(fake, home, TERM="xterm")
    args = ["watch", "tty", *FAST, "--timeout", "2s", "--history", str(history)]
    screen = await _in_a_terminal(args, env)
    assert "\x1b[" in screen  # drawn in place
    line = next(line for line in screen.split("\n") if line.startswith("tty  CREATE_SERVER_IMAGE"))
    assert "RUNNING  1/2 sub-jobs  elapsed " in line
    assert "to the deadline" in line
    assert re.search(r"ends in ~\S+ \(90%: \S+\)", line) or "past every duration" in line
    piped = await cli(*args, env=env)
    assert "\x1b" not in piped.stderr  # no terminal: plain lines


async def _in_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the command with stderr on a pseudo-terminal; return what it drew there."""
    controller, terminal = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imagejobs",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.run_in_executor(None, os.read, controller, 65536)
        except OSError:  # the terminal closed: the command has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    await process.wait()
    os.close(controller)
    return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


# --- first contact with the fake server ----------------------------------------------------


async def test_the_fake_servers_banner_is_all_a_newcomer_needs(home: Path) -> None:
    process = await start_cli("fake-server", env=environment(home))
    assert process.stdout is not None
    assert process.stderr is not None
    url = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode().strip()
    banner = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), timeout=20)).decode()
        banner.append(line.rstrip("\n"))
        if line.startswith("  imagejobs watch ") and len(banner) > 5:
            break
    try:
        export = next(line for line in banner if line.strip().startswith("export "))
        settings = dict(word.split("=", 1) for word in export.split()[1:])
        assert settings["IMAGEJOBS_ENDPOINT"] == url
        assert "HUAWEICLOUD_SDK_SK=any" in export  # no secret to show
        ids = [line.split()[2] for line in banner if line.startswith("  imagejobs watch ")]
        assert len(ids) == 3
        assert all(", 7 steps" in b or ", 6 steps" in b or ", 3 steps" in b for b in banner[-3:])
        # With nothing but what the banner says, the command line gets a job.
        got = await cli("get", ids[0], env=environment(home, **settings))
        assert got.code == 0, got.stderr
        assert json.loads(got.stdout)["id"] == ids[0]
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), timeout=20)


# --- the smaller points ------------------------------------------------------------------


async def test_help_and_usage_errors_read_right(home: Path) -> None:
    helped = await cli("wait", "--help", env=environment(home))
    assert "143  terminated" in helped.stdout
    assert "130  interrupted" in helped.stdout
    wrong = await cli("--bogus", env=environment(home))
    assert wrong.code == 2
    assert wrong.stderr.startswith("imagejobs: error: ")
    assert "imagejobs: error: imagejobs:" not in wrong.stderr
    missing = await cli("wait", "1", env=environment(home, IMAGEJOBS_REGION="cn-north-4"))
    assert missing.code == 2
    assert "--project-id" in missing.stderr
    assert "project_id=" not in missing.stderr
    settings = {"IMAGEJOBS_REGION": "cn-north-4", "HUAWEICLOUD_SDK_PROJECT_ID": "p"}
    keys = {"HUAWEICLOUD_SDK_AK": "AKEXAMPLE", "HUAWEICLOUD_SDK_SK": "SKEXAMPLE"}
    redis = await cli("wait", "1", "--redis", "http://x", env=environment(home, **settings, **keys))
    assert redis.code == 2
    assert redis.stderr.startswith("imagejobs: error: --redis (or IMAGEJOBS_REDIS_URL) must be")


async def test_history_learn_says_what_it_learned_and_what_is_needed(
    fake: FakeWorkspace, home: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "durations.json"
    env = fake_env(fake, home)
    nothing = await cli("history", "--learn", "--history", str(kept), env=env)
    assert nothing.code == 0, nothing.stderr
    assert "learned nothing" in nothing.stderr
    assert "needs 8 durations" in nothing.stderr
    done = {
        "status": "SUCCESS",
        "job_type": "CREATE_SERVER",
        "begin_time": "2026-12-01T10:00:00Z",
        "end_time": "2026-12-01T10:05:00Z",
    }
    for n in range(3):
        fake.add_job([{"id": f"done-{n}", **done, "sub_jobs": []}])
    few = await cli("history", "--learn", "--history", str(kept), env=env)
    assert "learned 3 durations of CREATE_SERVER (a type needs 8 to place polls)" in few.stderr


async def test_an_error_is_printed_once_under_github_actions(
    fake: FakeWorkspace, home: Path
) -> None:
    env = fake_env(fake, home, GITHUB_ACTIONS="true")
    run = await cli("wait", "nosuchjob", *FAST, "--not-found-grace", "0", env=env)
    assert run.code == 4
    lines = [line for line in run.stderr.splitlines() if "does not exist" in line]
    # The result line, and the annotation that stands for the error line.
    assert [line.split()[0] for line in lines] == ["result", "::error"], lines


async def test_a_fake_server_with_keys_names_none_of_them(home: Path, tmp_path: Path) -> None:
    ak, sk = "AKBANNERKEY000000001", "SKbannersecret000000000000000000000001"
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"ak": ak, "sk": sk, "jobs": []}))
    process = await start_cli("fake-server", "--scenario", str(scenario), env=environment(home))
    assert process.stderr is not None
    banner = ""
    while "export " not in banner:
        banner += (await asyncio.wait_for(process.stderr.readline(), timeout=20)).decode()
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.communicate(), timeout=20)
    assert "auth AK/SK signatures" in banner
    assert ak not in banner
    assert sk not in banner
