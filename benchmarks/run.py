"""Run every scenario, variants interleaved round by round, and report medians.

These machines are noisy: each round runs every variant once (A B C, A B C...),
and a ratio is the median of the per-round ratios, never one timing over another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

README = Path(__file__).parent / "README.md"
LATENCY = 0.1  # seconds the server takes to answer in the service scenario
MARK_START, MARK_END = "<!-- results -->", "<!-- /results -->"

Runs = dict[str, list[dict[str, Any]]]


class Server:
    """The fake server process, driven by lines on its stdin."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.stdin, self.stdout = process.stdin, process.stdout
        self.url = self.stdout.readline().strip()

    def ask(self, line: str) -> str:
        self.stdin.write(line + "\n")
        self.stdin.flush()
        return self.stdout.readline().strip()


def _on_cpu(cpu: int) -> Callable[[], None] | None:
    """Pin a child process to one CPU, where there are two or more: the server on the
    first, the client variants on the second, so that no run is scheduled onto the
    server's CPU by chance. (Two CPUs may still be threads of one physical core.)"""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return None
    chosen = cpus[cpu]
    return lambda: os.sched_setaffinity(0, {chosen})


@contextmanager
def fake_server(env: dict[str, str]) -> Iterator[Server]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_on_cpu(0),  # noqa: PLW1509  # before any thread: the harness has none
    )
    try:
        yield Server(process)
    finally:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()


def run_variant(
    scenario: str, variant: str, url: str, params: dict[str, Any], env: dict[str, str]
) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.variants", scenario, variant, url]
    done = subprocess.run(
        [*command, json.dumps(params)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        preexec_fn=_on_cpu(1),  # before any thread: the harness has none
    )
    if done.returncode != 0:
        raise SystemExit(f"{scenario}/{variant} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def interleaved(
    rounds: int, variants: list[str], one: Callable[[str, int], dict[str, Any]]
) -> Runs:
    runs: Runs = {variant: [] for variant in variants}
    for number in range(rounds):
        for variant in variants:
            runs[variant].append(one(variant, number))
            print(f"  {variant} round {number + 1}: {_brief(runs[variant][-1])}", file=sys.stderr)
    return runs


def _brief(result: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
    )


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def runner(
    scenario: str, url: str, params: dict[str, Any], env: dict[str, str]
) -> Callable[[str, int], dict[str, Any]]:
    """Return what runs one variant of ``scenario`` in one round."""
    return lambda variant, _: run_variant(scenario, variant, url, params, env)


def fresh_runner(
    server: Server, scenario: str, params: dict[str, Any], env: dict[str, str]
) -> Callable[[str, int], dict[str, Any]]:
    """Like :func:`runner`, each run against an empty request log: the same server for all."""

    def one(variant: str, number: int) -> dict[str, Any]:
        assert server.ask("reset") == "ok"
        return run_variant(scenario, variant, server.url, params, env)

    return one


def ratio(runs: Runs, a: str, b: str, key: Callable[[dict[str, Any]], float]) -> float:
    """The median over rounds of ``key(a) / key(b)``."""
    return statistics.median(key(x) / key(y) for x, y in zip(runs[a], runs[b], strict=True))


def cpu_per_request(run: dict[str, Any]) -> float:
    return float(run["cpu"]) / int(run["requests"]) * 1e6


def summary(runs: Runs, figures: dict[str, Callable[[dict[str, Any]], float]]) -> dict[str, Any]:
    return {
        variant: {name: statistics.median(f(run) for run in results) for name, f in figures.items()}
        for variant, results in runs.items()
    }


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- scenarios ---------------------------------------------------------------------


def per_request(
    server: Server, env: dict[str, str], total: int, rounds: int, sdk_rounds: int
) -> tuple[str, dict[str, Any]]:
    """imagejobs against the floor over ``rounds``; the SDK, slower, over ``sdk_rounds``."""
    out, data = [f"### 1. Per-request cost: {total:,} GETs of the reference job\n"], {}
    for concurrency in (1, 64):
        print(f"per-request, concurrency {concurrency}", file=sys.stderr)
        params = {"total": total, "concurrency": concurrency}
        fresh = fresh_runner(server, "gets", params, env)
        runs = interleaved(rounds, ["imagejobs", "imagejobs_speedups", "floor"], fresh)
        # The SDK's own rounds, each beside an imagejobs run of the same round.
        beside = interleaved(sdk_rounds, ["imagejobs", "sdk_threads", "sdk_async"], fresh)
        runs |= {"sdk_threads": beside["sdk_threads"], "sdk_async": beside["sdk_async"]}
        figures = summary(
            runs,
            {
                "cpu_us_per_request": cpu_per_request,
                "user_us": lambda r: r["cpu_user"] / r["requests"] * 1e6,
                "system_us": lambda r: r["cpu_system"] / r["requests"] * 1e6,
                "requests_per_second": lambda r: r["requests"] / r["wall"],
                "peak_rss_mb": lambda r: r["rss_kb"] / 1024,
            },
        )
        rows = [
            [
                v,
                f"{f['cpu_us_per_request']:.0f}",
                f"{f['user_us']:.0f} + {f['system_us']:.0f}",
                f"{f['requests_per_second']:,.0f}",
                f"{f['peak_rss_mb']:.0f}",
            ]
            for v, f in figures.items()
        ]
        ratios = {
            "imagejobs/floor": ratio(runs, "imagejobs", "floor", cpu_per_request),
            "imagejobs_speedups/floor": ratio(runs, "imagejobs_speedups", "floor", cpu_per_request),
            "imagejobs/sdk_threads": ratio(beside, "imagejobs", "sdk_threads", cpu_per_request),
            "imagejobs/sdk_async": ratio(beside, "imagejobs", "sdk_async", cpu_per_request),
        }
        out.append(f"Concurrency {concurrency}:\n")
        header = [
            "variant",
            "client CPU µs/request",
            "user + system µs",
            "requests/s",
            "peak RSS MB",
        ]
        out.append(table(header, rows))
        out.append(
            "\nClient CPU per request, median of per-round ratios: "
            + ", ".join(f"{k} **{v:.2f}×**" for k, v in ratios.items())
            + f" (imagejobs, imagejobs_speedups and the floor over {rounds} rounds, each run "
            f"against a fresh request log; the SDK over {sdk_rounds}, each beside an imagejobs "
            "run of its round)\n"
        )
        data[f"per_request_c{concurrency}"] = {
            "imagejobs": figures["imagejobs"],
            "imagejobs_speedups": figures["imagejobs_speedups"],
            "floor": figures["floor"],
            "official_sdk": figures["sdk_threads"],
            "official_sdk_async": figures["sdk_async"],
            "ratios": ratios,
        }
    return "\n".join(out), data


def per_request_changing(
    server: Server, env: dict[str, str], total: int, rounds: int
) -> tuple[str, dict[str, Any]]:
    """Scenario 1 against a job whose every answer differs from the one before.

    Scenario 1 polls one job that does not change, as most polls of a running job
    find it, and a client reads an answer that is the job's last one no more. Here
    every answer is read: the decoding's whole cost, on every request.
    """
    out = [
        f"### 1b. Per-request cost when every answer is new: {total:,} GETs of a job "
        "that changes on every poll\n",
        "A copy of the reference job under another ID, running and done by turns, its "
        "`sub_jobs_total` counting the polls so that no snapshot is like any other: no "
        "answer is the job's last one, and imagejobs decodes every body (the floor "
        "parses every body in both scenarios).\n",
    ]
    rows, data = [], {}
    variants = ["imagejobs", "imagejobs_speedups", "floor"]
    for concurrency in (1, 64):
        print(f"per-request, every answer new, concurrency {concurrency}", file=sys.stderr)
        params = {"total": total, "concurrency": concurrency, "changing": True}
        runs = interleaved(rounds, variants, fresh_runner(server, "gets", params, env))
        figures = summary(runs, {"cpu_us_per_request": cpu_per_request})
        ratios = {
            "imagejobs/floor": ratio(runs, "imagejobs", "floor", cpu_per_request),
            "imagejobs_speedups/floor": ratio(runs, "imagejobs_speedups", "floor", cpu_per_request),
        }
        rows.append(
            [
                str(concurrency),
                *(f"{figures[v]['cpu_us_per_request']:.0f}" for v in variants),
                f"**{ratios['imagejobs/floor']:.2f}×**",
                f"**{ratios['imagejobs_speedups/floor']:.2f}×**",
            ]
        )
        data[f"per_request_changing_c{concurrency}"] = {**figures, "ratios": ratios}
    header = [
        "concurrency",
        "imagejobs µs/request",
        "imagejobs_speedups µs",
        "floor µs",
        "imagejobs/floor",
        "imagejobs_speedups/floor",
    ]
    out.append(table(header, rows))
    out.append(
        f"\nClient CPU per request; ratios are medians of per-round ratios over {rounds} "
        "rounds, each run against a fresh request log and the job's first step.\n"
    )
    return "\n".join(out), data


def _per_parse(run: dict[str, Any]) -> float:
    return float(run["us_per_parse"])


def parse_cost(env: dict[str, str], rounds: int, repeats: int) -> tuple[str, dict[str, Any]]:
    variants = ["imagejobs", "imagejobs_speedups", "floor", "sdk"]
    out, data = ["### 2. Parse cost: one body to a result\n"], {}
    rows = []
    for body, count in (("reference", repeats), ("200 sub-jobs", max(1, repeats // 20))):
        print(f"parse, {body}", file=sys.stderr)
        params = {"body": "reference" if body == "reference" else "big", "rounds": count}
        runs = interleaved(rounds, variants, runner("parse", "-", params, env))
        figures = summary(runs, {"us_per_parse": _per_parse})
        per = _per_parse
        ratios = {
            "imagejobs/floor": ratio(runs, "imagejobs", "floor", per),
            "imagejobs_speedups/floor": ratio(runs, "imagejobs_speedups", "floor", per),
            "imagejobs/sdk": ratio(runs, "imagejobs", "sdk", per),
        }
        rows.append(
            [
                body,
                *(f"{figures[v]['us_per_parse']:.1f}" for v in variants),
                f"{ratios['imagejobs/floor']:.2f}×",
                f"{ratios['imagejobs_speedups/floor']:.2f}×",
                f"{ratios['imagejobs/sdk']:.2f}×",
            ]
        )
        data[f"parse_{params['body']}"] = {
            "imagejobs": figures["imagejobs"],
            "imagejobs_speedups": figures["imagejobs_speedups"],
            "floor": figures["floor"],
            "official_sdk": figures["sdk"],
            "ratios": ratios,
        }
    out.append(
        table(
            [
                "body",
                "imagejobs µs",
                "with speedups µs",
                "json.loads µs",
                "official SDK µs",
                "imagejobs/floor",
                "with speedups/floor",
                "imagejobs/SDK",
            ],
            rows,
        )
    )
    out.append(
        "\nimagejobs builds frozen, typed models with aware datetimes (the core install "
        "parses with `json`, `imagejobs[speedups]` with orjson); the floor is "
        "`json.loads` alone; the SDK's figure is its own `json.loads` plus its deserializer.\n"
    )
    return "\n".join(out), data


def many_jobs(
    server: Server, env: dict[str, str], count: int, rounds: int
) -> tuple[str, dict[str, Any]]:
    print(f"{count} jobs to completion", file=sys.stderr)
    base = {"count": count, "delay": 0.05, "in_flight": 64, "rate": 2000.0, "threads": 32}

    def one(variant: str, number: int) -> dict[str, Any]:
        prefix = f"jobs{number}{variant[:3]}"
        server.ask(f"jobs {prefix} {count} 3")
        result = run_variant("jobs", variant, server.url, {**base, "prefix": prefix}, env)
        result["served"] = json.loads(server.ask(f"stats {prefix}"))["requests"]
        return result

    runs = interleaved(rounds, ["imagejobs", "sdk_threads"], one)
    figures = summary(
        runs,
        {
            "wall_s": lambda r: r["wall"],
            "cpu_s": lambda r: r["cpu"],
            "peak_rss_mb": lambda r: r["rss_kb"] / 1024,
            "requests": lambda r: r["served"],
            "succeeded": lambda r: r["requests"],
        },
    )
    ratios = {
        name: ratio(runs, "imagejobs", "sdk_threads", key)
        for name, key in (
            ("cpu", lambda r: r["cpu"]),
            ("wall", lambda r: r["wall"]),
            ("peak_rss", lambda r: r["rss_kb"]),
        )
    }
    rows = [
        [
            v,
            f"{f['wall_s']:.2f}",
            f"{f['cpu_s']:.2f}",
            f"{f['peak_rss_mb']:.0f}",
            f"{f['requests']:,.0f}",
            f"{f['succeeded']:,.0f}",
        ]
        for v, f in figures.items()
    ]
    text = "\n".join(
        [
            f"### 3. {count:,} concurrent jobs to completion "
            "(SUCCESS on the 3rd poll, 50 ms between polls)\n",
            table(
                ["variant", "wall s", "client CPU s", "peak RSS MB", "requests", "succeeded"], rows
            ),
            "\nimagejobs `wait_many` (64 in flight, a rate of "
            f"{base['rate']:g}/s) against the SDK with 32 threads, each polling "
            "one job at a time with a sleep. What sets imagejobs' wall time: each job's two "
            "poll delays (50 ms, then up to 200 ms) and the rate budget "
            f"({count * 3:,} requests at {base['rate']:g}/s take "
            f"{count * 3 / base['rate']:.1f} s at least); the scheduler's own cost per poll is "
            "measured apart in section 4. imagejobs/SDK, median of per-round ratios: "
            + ", ".join(f"{k} **{v:.2f}×**" for k, v in ratios.items())
            + "\n",
        ]
    )
    return text, {
        "jobs_1000": {
            "imagejobs": figures["imagejobs"],
            "official_sdk": figures["sdk_threads"],
            "ratios": ratios,
        }
    }


def many_waiters(
    server: Server, env: dict[str, str], count: int, rounds: int
) -> tuple[str, dict[str, Any]]:
    print(f"{count} waiters", file=sys.stderr)
    rate, in_flight = 1000.0, 64
    server.ask(f"jobs waiters {count} 2")
    params = {
        "prefix": "waiters",
        "count": count,
        "delay": 0.2,
        "in_flight": in_flight,
        "rate": rate,
    }
    result = run_variant("jobs", "imagejobs", server.url, params, env)
    stats = json.loads(server.ask("stats waiters"))
    held = stats["max_per_second"] <= rate + 10 + in_flight
    # The same waits with polls that answer at once, no HTTP: the scheduler alone.
    alone = interleaved(
        rounds, ["imagejobs"], runner("scheduler", "-", {**params, "prefix": "s"}, env)
    )["imagejobs"]
    scheduler_us = statistics.median(cpu_per_request(run) for run in alone)
    rate_bound = stats["requests"] / rate
    figures = {
        **result,
        **stats,
        "budget_held": held,
        "rate_bound_s": rate_bound,
        "scheduler_us_per_poll": scheduler_us,
        "client_us_per_request": result["cpu"] / stats["requests"] * 1e6,
    }
    text = "\n".join(
        [
            f"### 4. {count:,} concurrent waiters (imagejobs only)\n",
            table(
                [
                    "completed",
                    "wall s",
                    "set by the rate, s",
                    "client CPU s",
                    "CPU µs/request",
                    "scheduler alone µs/poll",
                    "peak RSS MB",
                    "requests",
                    "most in 1 s",
                    "rate held",
                ],
                [
                    [
                        f"{result['requests']:,}",
                        f"{result['wall']:.1f}",
                        f"{rate_bound:.1f}",
                        f"{result['cpu']:.1f}",
                        f"{figures['client_us_per_request']:.0f}",
                        f"{scheduler_us:.0f}",
                        f"{result['rss_kb'] / 1024:.0f}",
                        f"{stats['requests']:,}",
                        f"{stats['max_per_second']:,}",
                        "yes" if held else "**no**",
                    ]
                ],
            ),
            f"\nBudget: `max_in_flight={in_flight}`, `rate={rate:g}`/s. **The rate sets the "
            f"wall time**: {stats['requests']:,} requests at {rate:g} a second take "
            f'{rate_bound:.0f} s however fast the client is ("set by the rate"); the client '
            'uses a fraction of one core meanwhile. "Scheduler alone" is the same '
            f"`wait_many` over {count:,} jobs with polls that answer at once, without HTTP "
            "(`benchmarks/variants.py`, scenario `scheduler`; median of "
            f"{rounds} runs): the hub's, the waiter's and the outcomes' own cost per poll, apart "
            "from the request's (section 1). "
            '"most in 1 s" is the busiest one-second window of the server\'s request log, '
            "which may hold the rate, the small burst and what was in flight as the window "
            "opened. The SDK with threads is left out: "
            "at 1,000 jobs (above) it already needs a thread per job being polled, and 10,000 "
            "threads would not fit in a sane process.\n",
        ]
    )
    return text, {f"waiters_{count}": {"imagejobs": figures}}


def service(
    server: Server, env: dict[str, str], rounds: int, seconds: float
) -> tuple[str, dict[str, Any]]:
    from imagejobs import DEFAULT_MAX_IN_FLIGHT, DEFAULT_RATE

    print("service: 300 callers, 60 jobs", file=sys.stderr)
    scale = 30.0  # one second here is thirty in real life
    base = {
        "count": 60,
        "callers": 300,
        "scale": scale,
        "in_flight": DEFAULT_MAX_IN_FLIGHT,
        "rate": DEFAULT_RATE,
        "sdk_sleep": 30.0,
    }

    def one(variant: str, number: int) -> dict[str, Any]:
        prefix = f"service{number}{variant[:3]}"
        server.ask(f"timed {prefix} {base['count']} {seconds}")
        result = run_variant("service", variant, server.url, {**base, "prefix": prefix}, env)
        stats = json.loads(server.ask(f"stats {prefix}"))
        return {**result, "served": stats["requests"], "peak": stats["peak_in_flight"]}

    server.ask(f"latency {LATENCY}")
    try:
        runs = interleaved(rounds, ["imagejobs", "sdk_threads"], one)
    finally:
        server.ask("latency 0")
    figures = summary(
        runs,
        {
            "wall_s": lambda r: r["wall"],
            "requests": lambda r: r["served"],
            "requests_per_job": lambda r: r["served"] / base["count"],
            "peak_in_flight": lambda r: r["peak"],
            "cpu_s": lambda r: r["cpu"],
            "succeeded": lambda r: r["requests"],
        },
    )
    ratios = {
        name: ratio(runs, "imagejobs", "sdk_threads", key)
        for name, key in (("requests", lambda r: r["served"]), ("wall", lambda r: r["wall"]))
    }
    rows = [
        [
            v,
            f"{f['succeeded']:.0f}/{base['callers']}",
            f"{f['requests']:,.0f}",
            f"{f['requests_per_job']:.1f}",
            f"{f['peak_in_flight']:.0f}",
            f"{f['wall_s']:.1f}",
            f"{f['cpu_s']:.2f}",
        ]
        for v, f in figures.items()
    ]
    real = seconds * scale / 60
    text = "\n".join(
        [
            "### 6. A service: 300 concurrent `wait()` calls on 60 jobs\n",
            table(
                [
                    "variant",
                    "callers answered",
                    "requests",
                    "per job",
                    "peak in flight",
                    "wall s",
                    "client CPU s",
                ],
                [*rows],
            ),
            f"\nTime runs {scale:g}× fast: each job takes {seconds:g} s here ({real:g} minutes "
            "in real life) through three sub-job stages; the server answers in "
            f"{LATENCY * 1000:.0f} ms, a gateway's round trip. imagejobs: one `Client` with its "
            f"default budget (`max_in_flight={DEFAULT_MAX_IN_FLIGHT}`, `rate={DEFAULT_RATE:g}`/s, "
            f"scaled), every caller doing `await client.wait(job_id)` with the default policy "
            "(scaled). The SDK as used today: a thread per caller running "
            "`while True: show_image_job(); sleep(30)` (scaled). imagejobs/SDK, median of "
            "per-round ratios: " + ", ".join(f"{k} **{v:.2f}×**" for k, v in ratios.items()) + "\n",
        ]
    )
    return text, {"service": {"figures": figures, "ratios": ratios}}


def throttling(seeds: int) -> tuple[str, dict[str, Any]]:
    from benchmarks.throttling import GATEWAYS, LIMIT, LIMITERS, RATE, simulate

    print("adaptive rate against a throttling gateway", file=sys.stderr)
    rows, data = [], {}
    for gateway_name, gateway in GATEWAYS.items():
        results = {
            name: [simulate(limiter(RATE), gateway(LIMIT), seed=seed) for seed in range(seeds)]
            for name, limiter in LIMITERS.items()
        }
        for name, runs in results.items():
            figures = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            data[f"{gateway_name}/{name}"] = figures
            rows.append(
                [
                    gateway_name,
                    name,
                    f"{figures['requests']:,.0f}",
                    f"{figures['throttled_share'] * 100:.1f}%",
                    f"{figures['p95_late_s']:.1f}",
                ]
            )
        share = statistics.median(
            a["throttled_share"] / b["throttled_share"]
            for a, b in zip(results["imagejobs"], results["botocore-style"], strict=True)
        )
        data[f"{gateway_name}/ratio"] = {"throttled_share": share}
        rows.append([gateway_name, "**imagejobs/botocore-style**", "", f"**{share:.2f}×**", ""])
    text = "\n".join(
        [
            "### 7. Adaptive rate against a throttling gateway (simulated)\n",
            table(["gateway", "limiter", "requests", "throttled", "p95 seen late s"], rows),
            f"\n100 jobs (20 s to 5 min each) polled with the default policy by a client told "
            f"{RATE:g} requests a second, against a gateway that allows {LIMIT}; medians over "
            f"{seeds} seeds. A discrete-event simulation of the limiters alone (no HTTP): "
            "the same demand and gateway go through imagejobs' `RequestBudget` and through a "
            "limiter built on the published design of botocore's adaptive retry mode (CUBIC, "
            "C = 0.4, beta = 0.7, on a smoothed send rate; every 429 counted; no limit before "
            "the first). See `benchmarks/throttling.py`.\n",
        ]
    )
    return text, {"throttling": data}


def sweeps(seeds: int, jobs: int, old: int) -> tuple[str, dict[str, Any]]:
    from benchmarks.sweeps import GATEWAY_LIMIT, VARIANTS, simulate, simulate_watch

    print(f"sweeps: {jobs} jobs among {old} finished, gateway {GATEWAY_LIMIT}/s", file=sys.stderr)
    results = {
        variant: [simulate(variant, jobs, old, 60.0, seed) for seed in range(seeds)]
        for variant in VARIANTS
    }
    keys = ("p50_late_s", "p95_late_s", "requests_per_job", "lists", "throttled_share")
    figures = {
        variant: {key: statistics.median(run[key] for run in runs) for key in keys}
        | {
            "all_right": all(run["right"] == run["jobs"] for run in runs),
            "answered_400": max(run["answered_400"] for run in runs),
        }
        for variant, runs in results.items()
    }
    ratios = {
        key: statistics.median(
            a[key] / b[key] for a, b in zip(results["sweeps"], results["per-job GETs"], strict=True)
        )
        for key in ("p95_late_s", "requests_per_job")
    }
    rows = [
        [
            variant,
            "yes" if f["all_right"] else "**no**",
            f"{f['p50_late_s']:.1f}",
            f"{f['p95_late_s']:.1f}",
            f"{f['requests_per_job']:.2f}",
            f"{f['lists']:.0f}",
            f"{f['throttled_share'] * 100:.1f}%",
            f"{f['answered_400']:.0f}",
        ]
        for variant, f in figures.items()
    ]
    text = "\n".join(
        [
            f"### 8. Sweeps: {jobs} jobs behind a gateway of {GATEWAY_LIMIT} requests a second\n",
            table(
                [
                    "variant",
                    "outcomes right",
                    "p50 seen late s",
                    "p95 seen late s",
                    "requests per job",
                    "list pages",
                    "throttled",
                    "answered 400",
                ],
                rows,
            ),
            f"\n{jobs} jobs of three types end over a minute (5% FAILED, with a sub-job error "
            f"code), in a tenant that also holds {old:,} finished jobs; the fake throttles like "
            f"the gateway at {GATEWAY_LIMIT}/s (429, no `Retry-After`) and refuses a job list "
            "without `job_type`. One `Client(rate=10)` and `wait_many`, default policy; "
            "'per-job GETs' is the same client with `sweeps=False`. Seen late: from a job's "
            "end to its outcome. Medians over "
            f"{seeds} seeds, on virtual time (exact, no machine noise). Sweeps/GETs, median of "
            "per-seed ratios: " + ", ".join(f"{k} **{v:.2f}×**" for k, v in ratios.items()) + ".\n",
        ]
    )
    watched = {variant: simulate_watch(variant, jobs, old, 600.0, 0) for variant in VARIANTS}
    watch_rows = [
        [
            variant,
            f"{f['transitions']:,}",
            f"{f['p50_late_s']:.1f}",
            f"{f['p95_late_s']:.1f}",
            f"{f['requests_per_job']:.2f}",
            f"{f['lists']:,}",
        ]
        for variant, f in watched.items()
    ]
    text += "\n".join(
        [
            "",
            table(
                [
                    "`watch_many`, over 10 minutes",
                    "transitions",
                    "p50 end seen late s",
                    "p95 end seen late s",
                    "requests per job",
                    "list pages",
                ],
                watch_rows,
            ),
            f"\nThe same tenant, its {jobs} jobs ending over ten minutes, watched with "
            "`watch_many` (every sub-job transition wanted): a watched job is swept once a "
            "GET has shown its sub-jobs, with the sub-job lists of its active sub-jobs too, "
            "and each change those lists show gets a GET, so every transition comes from a "
            "GET's snapshot. One seed. See `benchmarks/sweeps.py`.\n",
        ]
    )
    return text, {"sweeps": {"figures": figures, "ratios": ratios, "watch": watched}}


def cadence(seeds: int, count: int) -> tuple[str, dict[str, Any]]:
    from benchmarks.cadence import ANCHORS, simulate

    print("cadence: our schedules against three anchors", file=sys.stderr)
    workloads = {
        "ten-minute": ("10-minute jobs, 3 stages", ["imagejobs default", *ANCHORS]),
        "mixed": ("mixed, 1 to 40 minutes", ["imagejobs default", *ANCHORS]),
        "learned": (
            "a learned history (4 types, 2.5 to 12 min, sigma 0.2)",
            ["imagejobs default", "imagejobs + history", *ANCHORS],
        ),
    }
    rows, data = [], {}
    for workload, (title, variants) in workloads.items():
        for variant in variants:
            runs = [simulate(workload, variant, count, seed) for seed in range(seeds)]
            figures = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            data[f"{workload}/{variant}"] = figures
            rows.append(
                [
                    title,
                    variant,
                    f"{figures['requests_per_job']:.1f}",
                    f"{figures['p50_late_s']:.1f}",
                    f"{figures['p95_late_s']:.1f}",
                ]
            )
    learned = [
        (
            simulate("learned", "imagejobs + history", count, seed),
            simulate("learned", "fixed 15 s", count, seed),
        )
        for seed in range(seeds)
    ]
    ratio = statistics.median(a["requests_per_job"] / b["requests_per_job"] for a, b in learned)
    no_later = sum(a["p95_late_s"] <= b["p95_late_s"] for a, b in learned)
    data["learned/ratio"] = {"requests": ratio, "p95_no_later_seeds": no_later}
    text = "\n".join(
        [
            "### 9. When to poll: our schedules against three anchors\n",
            table(["workload", "schedule", "requests per job", "p50 late s", "p95 late s"], rows),
            f"\n{count} jobs per workload, each waited on by itself (no budget in the way, no "
            "sweeps), through the real client and the fake on virtual time; medians over "
            f"{seeds} seeds. A wait starts 0 to 30 s after its job began. Anchors: a fixed "
            "15 s loop (botocore-style waiters), terraform's huaweicloud image-server waiter "
            "(10 s, then every 30 s), exponential 1..60 s with full jitter "
            "(google-api-core-style). 'imagejobs + history': 30 past durations per type. "
            f"With the history, requests against fixed 15 s: **{ratio:.2f}×** (median of "
            f"per-seed ratios), p95 lateness no later than fixed 15 s's in {no_later} of "
            f"{seeds} seeds. See `benchmarks/cadence.py`.\n",
        ]
    )
    return text, {"cadence": data}


def startup(env: dict[str, str], rounds: int) -> tuple[str, dict[str, Any]]:
    print("startup", file=sys.stderr)
    commands = {
        "import imagejobs": [sys.executable, "-c", "import imagejobs"],
        "imagejobs --help": [sys.executable, "-m", "imagejobs", "--help"],
        "import its dependencies": [
            sys.executable,
            "-c",
            "import aiohttp, attrs, cattrs, backoff",
        ],
        "import the official SDK": [sys.executable, "-c", "import huaweicloudsdkworkspaceapp.v1"],
        "bare python": [sys.executable, "-c", "pass"],
    }

    def one(name: str, _: int) -> dict[str, Any]:
        start = time.perf_counter()
        subprocess.run(commands[name], env=env, check=True, capture_output=True)
        return {"wall": time.perf_counter() - start}

    runs = interleaved(rounds, list(commands), one)
    rows = [[name, f"{median(r, 'wall') * 1000:.0f}"] for name, r in runs.items()]
    text = "\n".join(
        [
            "### 5. Startup (wall ms, including the interpreter)\n",
            table(["command", "ms"], rows),
            "",
        ]
    )
    return text, {
        "startup": {name: {"wall_ms": median(r, "wall") * 1000} for name, r in runs.items()}
    }


def fleet(processes: int, shared: int, own: int, seconds: float) -> tuple[str, dict[str, Any]]:
    from benchmarks.fleet import ALONE, GATEWAY_LIMIT, IN_FLIGHT, LATENCY, run

    print(f"fleet: {processes} processes on one account, with and without Redis", file=sys.stderr)
    results = run(processes, shared, own, seconds)
    alone = results[ALONE]["gets_shared"]
    rows = [
        [
            variant,
            f"{r['right']}/{r['waits']}",
            f"{r['requests']:,}",
            f"{r['gets_shared']} ({r['gets_shared'] / alone:.2f}×)",
            f"{r['throttled_share'] * 100:.1f}%",
            f"{r['busiest_second']}",
            f"{r['peak_in_flight']}",
            f"{r['p50_late_s']:.1f}",
            f"{r['p95_late_s']:.1f}",
            f"{r['redis_calls'] / max(1, r['requests']):.1f}" if r["redis_calls"] else "-",
        ]
        for variant, r in results.items()
    ]
    text = "\n".join(
        [
            f"### 10. A fleet: {processes} processes, one account, a gateway of "
            f"{GATEWAY_LIMIT} requests a second\n",
            table(
                [
                    "variant",
                    "outcomes right",
                    "requests",
                    f"GETs of the {shared} shared jobs (× one process)",
                    "throttled",
                    "busiest second",
                    "most in flight",
                    "p50 seen late s",
                    "p95 seen late s",
                    "Redis calls per request",
                ],
                rows,
            ),
            f"\nEach of {processes} processes waits (`wait_many`) on the same {shared} jobs "
            f"and {own} of its own with `Client(max_in_flight={IN_FLIGHT}, "
            f"rate={GATEWAY_LIMIT})`; the fake gateway allows {GATEWAY_LIMIT} requests in any "
            f"second (429, no `Retry-After`) and takes {LATENCY:g} s to answer. Jobs end 10 to "
            f"{seconds:g} s after the start (5% FAILED). 'fleet, Redis' adds "
            "`redis_url=` (a local `redis-server`); 'one process, shared jobs only' waits on "
            "the shared jobs alone, the baseline for what they cost; 'one process, every job' "
            f"waits on all {shared + processes * own} under the same budget, the baseline for "
            "the fleet's lateness. Real processes on real time, one run: "
            "see `benchmarks/fleet.py`.\n",
        ]
    )
    return text, {"fleet": results}


def callers(env: dict[str, str], sizes: tuple[int, ...], rounds: int) -> tuple[str, dict[str, Any]]:
    few, many = str(sizes[0]), str(sizes[1])
    print(f"callers: {', '.join(map(str, sizes))} concurrent wait() on one job", file=sys.stderr)
    runs = interleaved(
        rounds,
        [str(size) for size in sizes],
        lambda size, _: run_variant("callers", "imagejobs", "-", {"callers": int(size)}, env),
    )
    figures = summary(
        runs,
        {
            "subscribe_ms": lambda r: r["subscribe"] * 1000,
            "longest_stall_ms": lambda r: r["longest_stall"] * 1000,
            "succeeded": lambda r: r["succeeded"],
            "requests": lambda r: r["requests"],
        },
    )
    ratios = {
        "subscribe": ratio(runs, many, few, lambda r: r["subscribe"]),
        "longest stall": ratio(runs, many, few, lambda r: r["longest_stall"]),
    }
    rows = [
        [
            f"{int(size):,}",
            f"{f['succeeded']:,.0f}",
            f"{f['subscribe_ms']:.1f}",
            f"{f['subscribe_ms'] / int(size) * 1000:.2f}",
            f"{f['longest_stall_ms']:.1f}",
            f"{f['longest_stall_ms'] / int(size) * 1000:.2f}",
            f"{f['requests']:.0f}",
        ]
        for size, f in figures.items()
    ]
    text = "\n".join(
        [
            "### 11. Many callers on one job: N concurrent `wait()` calls\n",
            table(
                [
                    "callers",
                    "succeeded",
                    "subscribe ms",
                    "per 1,000",
                    "longest loop stall ms",
                    "per 1,000",
                    "requests",
                ],
                rows,
            ),
            f"\nThe README's service pattern at scale: one client (its default rate), N "
            "callers each doing `await client.wait(job_id)` on the same job, against the fake "
            "server in the same process, on the real clock; the job goes through three "
            "sub-job stages, one a poll, then SUCCESS. 'subscribe': the loop turn in which "
            "the N calls start and subscribe; 'longest loop stall': the most a probe sleeping "
            "1 ms at a time woke late from then on, while the job's answers were told to the "
            "N callers and its end ended them all. See `benchmarks/callers.py`. "
            f"{int(many):,} callers against {int(few):,}, median of per-round ratios: "
            + ", ".join(f"{k} **{v:.2f}×**" for k, v in ratios.items())
            + f" (median of {rounds} rounds).\n",
        ]
    )
    return text, {"callers": {"figures": figures, "ratios": ratios}}


def grid(seeds: int, quick: bool) -> tuple[str, dict[str, Any]]:
    from benchmarks.grid import CELLS, POLICIES, bound, simulate

    cells = CELLS[:1] if quick else CELLS
    print(f"grid: {len(cells)} cells, {seeds} seeds, sweeps on and off", file=sys.stderr)
    rows, data = [], {}
    sources = ("first", "sweep", "changed", "safety", "final", "poll", "retry")
    for jobs, seconds, rate in cells:
        limit = bound(jobs, seconds, rate)
        for max_delay in POLICIES[jobs]:
            on = [simulate(jobs, seconds, rate, max_delay, seed) for seed in range(seeds)]
            off = [
                simulate(jobs, seconds, rate, max_delay, seed, sweeps=False)
                for seed in range(seeds)
            ]
            name = f"{jobs}/{seconds:g}s/{rate:g}/s M={max_delay or 'default'}"
            spent = {
                source: statistics.median(run["by_source"].get(source, 0.0) for run in on)
                for source in sources
            }
            data[name] = {"sweeps": on, "sweeps_off": off, "bound": limit}
            rows.append(
                [
                    f"{jobs:,}, {seconds:g} s, {rate:g}/s",
                    "default" if max_delay is None else f"{max_delay:g} s",
                    f"{max(run['p95_late_s'] for run in on):.1f}",
                    f"{max(run['requests_per_job'] for run in on):.2f}",
                    " · ".join(f"{spent[source]:.2f}" for source in sources),
                    f"{limit['late_s']:.1f}, {limit['requests_per_job']:.2f}",
                    f"{max(run['p95_late_s'] for run in off):.1f}, "
                    f"{max(run['requests_per_job'] for run in off):.2f}",
                ]
            )
    header = [
        "jobs, window, rate",
        "max_delay",
        "p95 late s (worst seed)",
        "requests a job (worst)",
        "by source: " + " · ".join(sources),
        "bound: late s, requests",
        "sweeps off: p95, requests",
    ]
    text = "\n".join(
        [
            "### 12. One budget for every source: lateness and requests across a grid\n",
            table(header, rows),
            "\nJobs of three types (WAITING, RUNNING, then done, 5% FAILED), their ends "
            "spread over the window, among 2,000 old finished jobs; the gateway's limit is "
            "the client's rate; `wait_many(ids, PollPolicy(initial_delay=0.5, max_delay=M))`. "
            f"Virtual time through the real client and the fake, {seeds} seeds; the worst "
            "seed's p95 and requests, the median requests a job by source "
            "(`RequestCounter`). The bound: a sweep of every active list as often as the "
            "rate left by the ends' GETs allows (see `benchmarks/grid.py`).\n",
        ]
    )
    return text, {"grid": data}


def scale(quick: bool) -> tuple[str, dict[str, Any]]:
    from benchmarks.scale import (
        HEADER,
        QUICK_RUNS,
        RUNS,
        SERIES_HEADER,
        measure,
        rows,
        series_points,
        series_rows,
    )

    runs = QUICK_RUNS if quick else RUNS
    results = {}
    by_point = {}
    for number, (name, point) in enumerate(runs.items()):
        print(f"scale: {name}", file=sys.stderr)
        # The first run twice over: a second round of waits reuses what the first let go.
        results[name] = by_point[point] = measure(*point, again=number == 0)
    series = {}
    for point in series_points(quick):
        if point not in by_point:
            print(f"scale: series, {point}", file=sys.stderr)
            by_point[point] = measure(*point)
        series[point] = by_point[point]
    text = "\n".join(
        [
            "### 13. Scale: ten thousand and a hundred thousand jobs in one process\n",
            table(HEADER, list(rows(results))),
            "\nThe tenant of scenario 8 (three types, WAITING a third of their life, then "
            "RUNNING, 5% FAILED, among 2,000 finished jobs) behind a gateway of 20 requests a "
            "second, waited on with one `wait_many` (every wait with a deadline past the "
            "window), each run in a process of its own, on virtual time: lateness and "
            "requests are exact. The bound: a sweep of every active job (`jobs / 100` pages at "
            "first) at a third of the rate, and an end seen about that late. Client CPU is the "
            "process's less the fake gateway's handler, per second of waiting; the longest "
            "hub step is CPU time without the garbage collector's pauses (in brackets, the "
            "longest of those). RSS after close is the process's, collected: CPython keeps "
            "the arenas the waits used; in brackets, how many more memory blocks Python "
            "holds than before the waits (see docs/scheduling.md). See `benchmarks/scale.py`.\n",
            "#### Lateness against jobs, at 20 requests a second\n",
            table(SERIES_HEADER, list(series_rows(series))),
            "\nThe same tenant and gateway, the jobs ending at one pace (10,000 an hour) "
            "whatever their count, one run each (those above among them); per-job GETs up "
            "to 30,000 jobs. The bars are p95 lateness, all to one scale.\n",
        ]
    )
    return text, {"scale": results, "scale_series": [[*p, r] for p, r in series.items()]}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), "
        f"Python {platform.python_version()}"
    )


SCENARIOS = (
    "per_request",
    "per_request_changing",
    "parse_cost",
    "many_jobs",
    "many_waiters",
    "startup",
    "service",
    "throttling",
    "sweeps",
    "cadence",
    "fleet",
    "callers",
    "grid",
    "scale",
)
"""Every scenario, in the order of a full run (``--only`` picks some)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a scaled-down run, under a minute")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--write-readme", action="store_true", help="put the tables in benchmarks/README.md"
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"a comma-separated list of scenarios to run, of: {', '.join(SCENARIOS)}",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    chosen = SCENARIOS if args.only is None else args.only.split(",")
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"no scenario {', '.join(unknown)}; there are {', '.join(SCENARIOS)}")
    if args.only is not None and args.write_readme:
        parser.error("--write-readme needs the full run: the tables are replaced whole")
    with tempfile.TemporaryDirectory() as home:
        # The official SDK writes under HOME when imported.
        env = {**os.environ, "HOME": home}
        sections, data = [], {}
        with fake_server(env) as server:
            runs: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
                "per_request": lambda: per_request(
                    server,
                    env,
                    total=1000 if quick else 20_000,
                    rounds=1 if quick else 9,
                    sdk_rounds=1 if quick else 3,
                ),
                "per_request_changing": lambda: per_request_changing(
                    server, env, total=1000 if quick else 20_000, rounds=1 if quick else 7
                ),
                "parse_cost": lambda: parse_cost(
                    env, rounds=1 if quick else 5, repeats=500 if quick else 5000
                ),
                "many_jobs": lambda: many_jobs(
                    server, env, count=200 if quick else 1000, rounds=1 if quick else 3
                ),
                "many_waiters": lambda: many_waiters(
                    server, env, count=1000 if quick else 10_000, rounds=1 if quick else 5
                ),
                "startup": lambda: startup(env, rounds=3 if quick else 10),
                "service": lambda: service(
                    server, env, rounds=1 if quick else 3, seconds=10 if quick else 20
                ),
                "throttling": lambda: throttling(seeds=3 if quick else 9),
                "sweeps": lambda: sweeps(seeds=2 if quick else 5, jobs=400, old=2000),
                "cadence": lambda: cadence(seeds=2 if quick else 5, count=60 if quick else 200),
                "fleet": lambda: fleet(*((3, 20, 10, 20.0) if quick else (6, 100, 50, 60.0))),
                "grid": lambda: grid(seeds=1 if quick else 5, quick=quick),
                "scale": lambda: scale(quick),
                "callers": lambda: callers(
                    env,
                    sizes=(250, 2000) if quick else (1000, 8000, 16_000),
                    rounds=1 if quick else 3,
                ),
            }
            for name in SCENARIOS:
                if name in chosen:
                    text, figures = runs[name]()
                    sections.append(text)
                    data.update(figures)
    report = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on {machine()}"
            f"{' (--quick)' if quick else ''}.\n",
            *sections,
        ]
    )
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    if args.write_readme:
        text = README.read_text()
        head, _, rest = text.partition(MARK_START)
        _, _, tail = rest.partition(MARK_END)
        README.write_text(f"{head}{MARK_START}\n{report}\n{MARK_END}{tail}")
    return 0
