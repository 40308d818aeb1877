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
from collections.abc import Coroutine, Iterator
from pathlib import Path
from signal import SIGINT, SIGTERM
from typing import TYPE_CHECKING, Any

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

from ._demo import FAKE_SERVER_STEP_SECONDS, STEP_SECONDS, demo_scenario
from ._format import EXIT_INTERRUPTED, EXIT_TERMINATED, format_duration, json_text, visible
from ._reach import Reach
from ._report import Reporter

if TYPE_CHECKING:
    from imagejobs import Client

__all__ = ["run"]

_LIVE_REFRESH = 1.0


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


def make_client(
    args: argparse.Namespace, history: DurationHistory | None = None, reach: Reach | None = None
) -> Client:
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
    if reach is not None:
        overrides["hooks"] = [reach]
    return Client.from_env(**overrides)


def make_reporter(
    args: argparse.Namespace, history: DurationHistory | None = None, deadline: float | None = None
) -> Reporter:
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
        live=sys.stderr.isatty() and not getattr(args, "no_progress", False),
        heartbeat=getattr(args, "heartbeat", 0.0),
        history=history,
        deadline=deadline,
    )


def make_policy(args: argparse.Namespace) -> PollPolicy:
    """Return the poll policy the options describe."""
    return PollPolicy(
        initial_delay=args.initial_delay,
        max_delay=args.max_delay,
        timeout=args.timeout,
        not_found_grace=args.not_found_grace,
    )


async def _keep_status_fresh(
    reporter: Reporter, reach: Reach | None, give_up_after: float, stop: Stop
) -> None:
    """Redraw and beat about once a second; give up once the service answered nothing for long."""
    while True:
        await asyncio.sleep(min(_LIVE_REFRESH, reporter.heartbeat or _LIVE_REFRESH))
        reporter.tick()
        silent = 0.0 if reach is None else reach.unreachable_for()
        if give_up_after > 0 and silent >= give_up_after and reach is not None:
            stop.give_up(
                TransportError(
                    f"no request reached the service for {format_duration(silent)}: "
                    f"{reach.last_error} (see --unreachable-timeout)"
                )
            )


async def wait_jobs(
    client: Client,
    job_ids: list[str],
    policy: PollPolicy,
    reporter: Reporter,
    stop: Stop | None = None,
    *,
    reach: Reach | None = None,
    give_up_after: float = 0.0,
) -> int:
    """Wait on every job, reporting as they go; return the exit code. Shared by demo.

    SIGINT and SIGTERM (what a cancelled CI job gets) end the wait early, but the
    jobs that ended are reported, the others as interrupted (with the last error
    each met), and the step summary and outputs are written: the exit code is
    then 130 or 143. ``stop`` is the caller's, when it listens for the signals
    from before the wait began. With ``reach`` (the client's hook) and
    ``give_up_after``, a wait during which no request reached the service for that
    long ends every job with that error (exit 4).
    """
    if stop is None:
        with stop_on_signals() as own:
            return await wait_jobs(
                client, job_ids, policy, reporter, own, reach=reach, give_up_after=give_up_after
            )
    unique = list(dict.fromkeys(job_ids))
    reporter.reach = reach
    reporter.start(unique)
    ticker = asyncio.create_task(_keep_status_fresh(reporter, reach, give_up_after, stop))
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
            stop.report(reporter, job_id, last.get(job_id), reach)
    return stop.finish(reporter)


_SIGNALS: dict[int, tuple[str, int, str]] = {
    SIGINT: ("SIGINT", EXIT_INTERRUPTED, "interrupted"),
    SIGTERM: ("SIGTERM", EXIT_TERMINATED, "terminated"),
}


class Stop:
    """Why, if at all, the command stops before its work is done; it cancels the work it runs.

    A signal (SIGINT, SIGTERM), or the command giving up (:meth:`give_up`: the
    service unreachable for too long). A signal before the work starts stops it at
    once; a second one, or one once the work is over, changes nothing: the results
    are being written.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.gave_up: ImageJobsError | None = None
        self._task: asyncio.Future[None] | None = None

    def received(self, signum: int) -> None:
        """Note the first signal, and cancel the work if it is running."""
        if self._stopping() or (self._task is not None and self._task.done()):
            return
        self.signal = signum
        if self._task is not None:
            self._task.cancel()

    def give_up(self, error: ImageJobsError) -> None:
        """End the work with ``error`` for every job still waiting."""
        if self._stopping() or (self._task is not None and self._task.done()):
            return
        self.gave_up = error
        if self._task is not None:
            self._task.cancel()

    def _stopping(self) -> bool:
        return self.signal is not None or self.gave_up is not None

    async def run(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run ``work``; return whether it was stopped before its end."""
        if self._stopping():
            work.close()
            return True
        self._task = asyncio.ensure_future(work)
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._stopping():
                raise
        return self._stopping()

    def report(
        self, reporter: Reporter, job_id: str, job: ImageJob | None, reach: Reach | None
    ) -> None:
        """Report a job still waiting when the work stopped, with the last error it met."""
        if self.gave_up is not None:
            reporter.result(Outcome(job_id, job, self.gave_up))
            return
        name = _SIGNALS[self.signal or SIGINT][0]
        last = None if reach is None else reach.errors.get(job_id)
        text = f"the wait was stopped by {name}" + (f"; its last error: {last}" if last else "")
        reporter.result(Outcome(job_id, job, ImageJobsError(text)), interrupted=True)

    def finish(self, reporter: Reporter) -> int:
        """Write what the reporter holds, say why it stopped; return the exit code."""
        if self.gave_up is not None:
            return reporter.finish()
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
    history = load_history(args)
    reporter = make_reporter(args, history, policy.timeout)
    reach = Reach()
    try:
        with stop_on_signals() as stop:
            async with make_client(args, history, reach) as client:
                return await wait_jobs(
                    client,
                    job_ids,
                    policy,
                    reporter,
                    stop,
                    reach=reach,
                    give_up_after=args.unreachable_timeout,
                )
    finally:
        keep_history(args, history)


async def _watch(args: argparse.Namespace) -> int:
    policy = make_policy(args)
    history = load_history(args)
    reporter = make_reporter(args, history, policy.timeout)
    reach = Reach()
    reporter.reach = reach
    reporter.start([args.job_id])
    last: list[Transition] = []
    outcome: list[Outcome] = []

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
            client = await stack.enter_async_context(make_client(args, history, reach))
            beats = _keep_status_fresh(reporter, reach, args.unreachable_timeout, stop)
            ticker = asyncio.create_task(beats)
            stack.callback(ticker.cancel)
            stopped = await stop.run(watch(client))
        if stopped:
            stop.report(reporter, args.job_id, last[0].job if last else None, reach)
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
            learned = await client.learn_history()
        keep_history(args, history)
        needed = DurationHistory.MIN_SAMPLES
        if not learned:
            sys.stderr.write(
                "imagejobs: learned nothing: the project lists no SUCCESS job with both "
                f"times of any known type (a type needs {needed} durations to place polls)\n"
            )
        for job_type, count in sorted(learned.items()):
            few = f" (a type needs {needed} to place polls)" if count < needed else ""
            sys.stderr.write(f"imagejobs: learned {count} durations of {visible(job_type)}{few}\n")
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
    reporter = make_reporter(args, deadline=120)
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
        # The demo's jobs, slower, open to any credentials: any client can be pointed at it.
        scenario = {"jobs": demo_scenario(every=FAKE_SERVER_STEP_SECONDS)["jobs"]}
    fake = load_scenario(scenario)
    fake.control = control_api(fake)
    try:
        await fake.start(args.host, args.port)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    try:
        sys.stdout.write(fake.url + "\n")
        sys.stdout.flush()
        sys.stderr.write(_fake_banner(fake, scenario) + "\n")
        sys.stderr.flush()
        await asyncio.Event().wait()
    finally:
        await fake.close()
    return 0


def _describe(job: dict[str, Any]) -> str:
    """Return a scenario job's type and pace, for the banner."""
    timeline = job.get("timeline") or [{}]
    last = timeline[-1] if isinstance(timeline[-1], dict) else {}
    text = str(last.get("job_type") or "a job")
    every = job.get("every")
    if isinstance(every, (int, float)) and every > 0:
        text += f", {len(timeline)} steps of {every:g}s from its first look"
    return visible(text)


def _fake_banner(fake: Any, scenario: Any) -> str:
    """Return what a newcomer needs to point the command line at a fake server."""
    if fake.ak is not None:
        auth = "AK/SK signatures"
        keys = "HUAWEICLOUD_SDK_AK=<the scenario's ak> HUAWEICLOUD_SDK_SK=<the scenario's sk>"
    elif fake.token is not None:
        auth = "X-Auth-Token"
        keys = "IMAGEJOBS_AUTH_TOKEN=<the scenario's token>"
    else:
        auth = "none: any credentials are accepted"
        keys = "HUAWEICLOUD_SDK_AK=any HUAWEICLOUD_SDK_SK=any"
    jobs = scenario.get("jobs", []) if isinstance(scenario, dict) else []
    lines = [
        f"fake Workspace server at {fake.url}: project {visible(fake.project_id)}, "
        f"{len(jobs)} jobs, auth {auth}; its request log at {fake.url}/_fake/requests, "
        f"new jobs POSTed to {fake.url}/_fake/jobs; Ctrl-C stops it",
        "point the command line at it, in another shell:",
        f"  export IMAGEJOBS_ENDPOINT={fake.url} "
        f"HUAWEICLOUD_SDK_PROJECT_ID={visible(fake.project_id)} {keys}",
    ]
    for job in jobs:
        if isinstance(job, dict) and "id" in job:
            lines.append(f"  imagejobs watch {visible(str(job['id']))}   # {_describe(job)}")
    return "\n".join(lines)


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
