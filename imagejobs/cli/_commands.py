"""The subcommands. Each is a user of the public API; aiohttp loads only when one runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
from collections.abc import Coroutine, Iterable, Iterator
from pathlib import Path
from signal import SIGINT, SIGTERM
from typing import TYPE_CHECKING, Any, TextIO

from imagejobs import (
    MAX_PAGE_SIZE,
    ConfigurationError,
    DurationHistory,
    ImageJob,
    ImageJobsError,
    JobFailed,
    JobStatus,
    Outcome,
    PollPolicy,
    Transition,
    TransportError,
    WaitTimeout,
    to_wire,
)

from ._demo import STEP_SECONDS, demo_scenario
from ._report import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Reporter,
    format_duration,
    json_text,
    visible,
)

if TYPE_CHECKING:
    from imagejobs import Client

__all__ = ["run"]

_LIVE_REFRESH = 1.0


def read_job_ids(given: Iterable[str], stdin: TextIO) -> list[str]:
    """Return the job IDs given, with ``-`` replaced by the lines of stdin."""
    ids: list[str] = []
    for item in given:
        if item != "-":
            ids.append(item)
            continue
        for line in stdin:
            text = line.strip()
            if text and not text.startswith("#"):
                ids.append(text)
    return ids


def _named_history(args: argparse.Namespace) -> str | None:
    return getattr(args, "history", None) or os.environ.get("IMAGEJOBS_HISTORY")


def history_path(args: argparse.Namespace) -> Path | None:
    """Return where the duration history is kept: --history, $IMAGEJOBS_HISTORY, the cache.

    None with --no-history, or when there is no cache directory to find.
    """
    if getattr(args, "no_history", False):
        return None
    given = _named_history(args)
    if given:
        return Path(given).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    if not cache:
        try:
            cache = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME, and no user entry to find one in
            return None
    return Path(cache) / "imagejobs" / "durations.json"


def load_history(args: argparse.Namespace) -> DurationHistory | None:
    """Return the history the options name (empty if its file does not exist yet).

    A history named on purpose that cannot be read is an error; the default one in
    the cache is only a help, so a bad one there is a warning and a fresh start.
    """
    path = history_path(args)
    if path is None:
        return None
    try:
        return DurationHistory.load(path)
    except ConfigurationError as error:
        if _named_history(args):
            raise
        sys.stderr.write(f"imagejobs: warning: {error}; starting a new one\n")
        return DurationHistory()


def keep_history(args: argparse.Namespace, history: DurationHistory | None) -> None:
    """Save the history where the options say; a failure is a warning, not the run's end."""
    path = history_path(args)
    if history is None or path is None:
        return
    try:
        history.save(path)
    except OSError as exc:
        sys.stderr.write(f"imagejobs: warning: cannot keep the history in {path}: {exc}\n")


def make_client(args: argparse.Namespace, history: DurationHistory | None = None) -> Client:
    """Return a client from the options, then the environment and credentials file."""
    from imagejobs import Client  # noqa: PLC0415 - aiohttp is imported only when needed

    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("project_id", "region", "endpoint")
        if getattr(args, name, None) is not None
    }
    if getattr(args, "allow_insecure", False):
        overrides["allow_insecure"] = True
    for budget in ("max_in_flight", "rate"):
        if getattr(args, budget, None) is not None:
            overrides[budget] = getattr(args, budget)
    if getattr(args, "redis", None):
        overrides["redis_url"] = args.redis
    if getattr(args, "no_sweeps", False):
        overrides["sweeps"] = False
    if history is not None:
        overrides["history"] = history
    return Client.from_env(**overrides)


def make_reporter(args: argparse.Namespace) -> Reporter:
    """Return a reporter for the output options and the surroundings (TTY, GitHub)."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    outputs = os.environ.get("GITHUB_OUTPUT")
    return Reporter(
        stdout=sys.stdout,
        stderr=sys.stderr,
        json_lines=getattr(args, "json", False),
        quiet=getattr(args, "quiet", False),
        github=os.environ.get("GITHUB_ACTIONS") == "true",
        step_summary=Path(summary) if summary else None,
        github_output=Path(outputs) if outputs else None,
        live=sys.stderr.isatty(),
        heartbeat=getattr(args, "heartbeat", 0.0),
    )


def make_policy(args: argparse.Namespace) -> PollPolicy:
    """Return the poll policy the options describe."""
    return PollPolicy(
        initial_delay=args.initial_delay,
        max_delay=args.max_delay,
        timeout=args.timeout,
        not_found_grace=args.not_found_grace,
    )


async def _keep_status_fresh(reporter: Reporter) -> None:
    while True:
        await asyncio.sleep(min(_LIVE_REFRESH, reporter.heartbeat or _LIVE_REFRESH))
        reporter.tick()


async def wait_jobs(
    client: Client,
    job_ids: list[str],
    policy: PollPolicy,
    reporter: Reporter,
    stop: Stop | None = None,
) -> int:
    """Wait on every job, reporting as they go; return the exit code. Shared by demo.

    SIGINT and SIGTERM (what a cancelled CI job gets) end the wait early, but the
    jobs that ended are reported, the others as stopped, and the step summary and
    outputs are written: the exit code is then 130 or 143. ``stop`` is the
    caller's, when it listens for the signals from before the wait began.
    """
    if stop is None:
        with stop_on_signals() as own:
            return await wait_jobs(client, job_ids, policy, reporter, own)
    unique = list(dict.fromkeys(job_ids))
    reporter.start(len(unique))
    ticker = asyncio.create_task(_keep_status_fresh(reporter))
    # Quiet, no transition is shown: without a listener the jobs may be swept.
    listener = reporter.transition if reporter.shows_transitions else None
    ended: set[str] = set()
    last: dict[str, ImageJob] = {}

    def seen(transition: Transition) -> None:
        last[transition.job_id] = transition.job
        if listener is not None:
            listener(transition)

    async def wait_all() -> None:
        async for outcome in client.wait_many(unique, policy, on_transition=seen):
            ended.add(outcome.job_id)
            reporter.result(outcome)

    try:
        stopped = await stop.run(wait_all())
    finally:
        ticker.cancel()
    if not stopped:
        return reporter.finish()
    for job_id in unique:
        if job_id not in ended:
            reporter.result(Outcome(job_id, last.get(job_id), stop.error()))
    return stop.finish(reporter)


_SIGNALS: dict[int, tuple[str, int, str]] = {
    SIGINT: ("SIGINT", EXIT_INTERRUPTED, "interrupted"),
    SIGTERM: ("SIGTERM", EXIT_TERMINATED, "terminated"),
}


class Stop:
    """Which signal, if any, asked the command to stop; it cancels the work it runs.

    A signal before the work starts stops it at once; a second one, or one once
    the work is over, changes nothing: the results are being written.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._task: asyncio.Future[None] | None = None

    def received(self, signum: int) -> None:
        """Note the first signal, and cancel the work if it is running."""
        if self.signal is not None or (self._task is not None and self._task.done()):
            return
        self.signal = signum
        if self._task is not None:
            self._task.cancel()

    async def run(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run ``work``; return whether a signal stopped it."""
        if self.signal is not None:
            work.close()
            return True
        self._task = asyncio.ensure_future(work)
        try:
            await self._task
        except asyncio.CancelledError:
            if self.signal is None:
                raise
        return self.signal is not None

    def error(self) -> ImageJobsError:
        """Return the error an unfinished wait ends in."""
        name = _SIGNALS[self.signal or SIGINT][0]
        return ImageJobsError(f"the wait was stopped by {name}")

    def finish(self, reporter: Reporter) -> int:
        """Write what the reporter holds, say why it stopped; return the exit code."""
        _, code, word = _SIGNALS[self.signal or SIGINT]
        verdict = reporter.finish(code)
        reporter.error(word)
        return verdict


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """Listen for SIGINT and SIGTERM while inside: they stop, they do not kill."""
    loop = asyncio.get_running_loop()
    stop = Stop()
    installed = []
    for signum in _SIGNALS:
        try:
            loop.add_signal_handler(signum, stop.received, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no such support
            pass
    try:
        yield stop
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
            if stop.signal is not None:
                # Stopping, the results written: one more signal must not kill the exit.
                signal.signal(signum, signal.SIG_IGN)


async def _wait(args: argparse.Namespace) -> int:
    job_ids = args.job_ids
    if not job_ids:
        raise ConfigurationError("no job IDs given (stdin was empty)")
    policy = make_policy(args)
    reporter = make_reporter(args)
    history = load_history(args)
    try:
        with stop_on_signals() as stop:
            async with make_client(args, history) as client:
                return await wait_jobs(client, job_ids, policy, reporter, stop)
    finally:
        keep_history(args, history)


async def _watch(args: argparse.Namespace) -> int:
    policy = make_policy(args)
    reporter = make_reporter(args)
    reporter.start(1)
    last: list[Transition] = []
    outcome: list[Outcome] = []
    history = load_history(args)

    async def watch(client: Client) -> None:
        try:
            async for transition in client.watch(args.job_id, policy):
                reporter.transition(transition)
                last[:] = [transition]
        except WaitTimeout as timeout:
            outcome.append(Outcome(args.job_id, timeout.job, timeout))
        except ImageJobsError as error:
            outcome.append(Outcome(args.job_id, last[0].job if last else None, error))
        else:
            job = last[0].job if last else await client.get_job(args.job_id)
            failed = JobFailed(job) if job.status is JobStatus.FAILED else None
            outcome.append(Outcome(args.job_id, job, failed))

    with stop_on_signals() as stop:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(keep_history, args, history)
            client = await stack.enter_async_context(make_client(args, history))
            ticker = asyncio.create_task(_keep_status_fresh(reporter))
            stack.callback(ticker.cancel)
            stopped = await stop.run(watch(client))
        if stopped:
            reporter.result(Outcome(args.job_id, last[0].job if last else None, stop.error()))
            return stop.finish(reporter)
    reporter.result(outcome[0])
    return reporter.finish()


async def _get(args: argparse.Namespace) -> int:
    deadline = asyncio.timeout(args.timeout)
    async with make_client(args) as client:
        try:
            async with deadline:
                wire = await client.get_job_json(args.job_id)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TransportError(f"job {args.job_id}: no answer within {args.timeout:g}s") from None
    sys.stdout.write(json_text(wire, indent=2) + "\n")
    return 0


async def _history(args: argparse.Namespace) -> int:
    history = load_history(args) or DurationHistory()
    if args.learn:
        async with make_client(args, history) as client:
            await client.learn_history()
        keep_history(args, history)
    summary: dict[str, dict[str, object]] = {}
    lines = []
    for job_type in history.job_types:
        durations = history.durations(job_type)
        median = statistics.median(durations)
        fit = history.fit(job_type)
        low, high = (fit.quantile(0.1), fit.quantile(0.9)) if fit else (None, None)
        summary[job_type] = {
            "jobs": len(durations),
            "median_s": round(median, 1),
            "p10_s": None if low is None else round(low, 1),
            "p90_s": None if high is None else round(high, 1),
            "places_polls": fit is not None,
        }
        line = f"{job_type}  {len(durations)} jobs  median {format_duration(median)}"
        if low is None or high is None:
            line += "  (too few to place polls)"
        else:
            line += f"  p10 {format_duration(low)}  p90 {format_duration(high)}"
        lines.append(line)
    if args.json:
        sys.stdout.write(json_text(summary) + "\n")
        return 0
    if not lines:
        sys.stderr.write(f"imagejobs: the history at {history_path(args)} is empty\n")
    for line in lines:
        sys.stdout.write(visible(line) + "\n")
    return 0


async def _list(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        shown = 0
        page_size = MAX_PAGE_SIZE if args.limit is None else min(args.limit, MAX_PAGE_SIZE)
        async for info in client.list_jobs(args.status, args.job_type, page_size=page_size):
            wire = to_wire(info)
            if args.json:
                line = json_text(wire)
            else:
                line = "  ".join(
                    visible(part)
                    for part in (
                        info.id,
                        _text(info.job_type),
                        info.status,
                        f"{_text(info.sub_jobs_total)} sub-jobs",
                        _text(wire.get("begin_time")),
                        _text(wire.get("end_time")),
                    )
                )
            sys.stdout.write(line + "\n")
            shown += 1
            if args.limit is not None and shown >= args.limit:
                break
    sys.stdout.flush()
    if not shown and not args.json:
        sys.stderr.write("imagejobs: no job matches\n")
    return 0


def _text(value: object) -> str:
    return "-" if value is None else str(value)


async def _demo(args: argparse.Namespace) -> int:
    from imagejobs.testing import load_scenario  # noqa: PLC0415 - pulls in aiohttp

    scenario = demo_scenario(with_failure=args.with_failure)
    reporter = make_reporter(args)
    async with load_scenario(scenario) as fake, fake.client(max_in_flight=8, rate=20) as client:
        reporter.note(
            f"demo: a fake Workspace server at {fake.url} runs {len(scenario['jobs'])} "
            f"scripted jobs, one step every {STEP_SECONDS:g}s; waiting on all of them:"
        )
        policy = PollPolicy(initial_delay=0.5, max_delay=STEP_SECONDS, timeout=120)
        ids = [job["id"] for job in scenario["jobs"]]
        return await wait_jobs(client, ids, policy, reporter)


def _load_scenario_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read scenario {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"scenario {path} is not JSON: {exc}") from None
    except RecursionError:
        raise ConfigurationError(f"scenario {path}: nested too deeply to read") from None
    except ValueError as exc:
        # Python's own limits, such as the digits of an integer.
        raise ConfigurationError(f"scenario {path} is not usable JSON: {exc}") from None


async def _fake_server(args: argparse.Namespace) -> int:
    from imagejobs.testing import control_api, load_scenario  # noqa: PLC0415 - pulls in aiohttp

    if args.scenario:
        scenario = _load_scenario_file(args.scenario)
    else:
        # The demo's jobs, open to any credentials, so any client can be pointed at it.
        scenario = {"jobs": demo_scenario()["jobs"]}
    fake = load_scenario(scenario)
    fake.control = control_api(fake)
    try:
        await fake.start(args.host, args.port)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    try:
        sys.stdout.write(fake.url + "\n")
        sys.stdout.flush()
        auth = "none (any credentials are accepted)"
        if fake.ak is not None:
            auth = "AK/SK signatures"
        elif fake.token is not None:
            auth = "X-Auth-Token"
        sys.stderr.write(
            f"fake Workspace server at {fake.url}: project {visible(fake.project_id)}, "
            f"{len(scenario.get('jobs', []))} jobs, auth {auth}; its request log at "
            f"{fake.url}/_fake/requests, new jobs POSTed to {fake.url}/_fake/jobs; "
            "Ctrl-C stops it\n"
        )
        sys.stderr.flush()
        await asyncio.Event().wait()
    finally:
        await fake.close()
    return 0


_COMMANDS = {
    "wait": _wait,
    "watch": _watch,
    "get": _get,
    "list": _list,
    "history": _history,
    "demo": _demo,
    "fake-server": _fake_server,
}


async def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand and return its exit code."""
    return await _COMMANDS[args.command](args)
