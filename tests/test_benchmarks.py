"""The benchmark harness still runs: every variant once, at a tiny scale (no timing checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import cadence, fleet, grid, rss, scale, sweeps
from benchmarks.bodies import CHANGING_ID, REFERENCE_ID, changing_job
from benchmarks.run import fake_server, run_variant
from benchmarks.throttling import GATEWAYS, LIMITERS, simulate


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(tmp_path)}


def test_every_variant_of_every_scenario_runs(env: dict[str, str]) -> None:
    with fake_server(env) as server:
        for variant in ("imagejobs", "imagejobs_speedups", "floor", "sdk_threads", "sdk_async"):
            result = run_variant("gets", variant, server.url, {"total": 4, "concurrency": 2}, env)
            assert result["requests"] == 4
            assert result["cpu"] == pytest.approx(result["cpu_user"] + result["cpu_system"])
            assert result["cpu"] > 0
        assert '"requests": 0' not in server.ask("stats 7")  # the GETs of the reference job
        assert server.ask("reset") == "ok"
        assert '"requests": 0' in server.ask("stats 7")  # an empty log for the next scenario
        for variant in ("imagejobs", "sdk_threads"):
            prefix = f"smoke{variant}"
            assert server.ask(f"jobs {prefix} 5 2") == "ok"
            params = {"prefix": prefix, "count": 5, "delay": 0.01, "in_flight": 4, "rate": 100.0}
            result = run_variant("jobs", variant, server.url, {**params, "threads": 2}, env)
            assert result["requests"] == 5  # every job succeeded
            assert '"requests": 10' in server.ask(f"stats {prefix}")
        for variant in ("imagejobs", "sdk_threads"):
            prefix = f"service{variant}"
            assert server.ask(f"timed {prefix} 3 0.3") == "ok"
            params = {"prefix": prefix, "count": 3, "callers": 9, "scale": 100.0}
            params |= {"in_flight": 4, "rate": 1.5, "sdk_sleep": 5.0}
            result = run_variant("service", variant, server.url, params, env)
            assert result["requests"] == 9  # every caller saw its job succeed
            assert '"requests": 0' not in server.ask(f"stats {prefix}")
    for variant in ("imagejobs", "imagejobs_speedups", "floor", "sdk"):
        result = run_variant("parse", variant, "-", {"body": "big", "rounds": 2}, env)
        assert result["us_per_parse"] > 0
    params = {"count": 20, "delay": 0.001, "in_flight": 4}
    alone = run_variant("scheduler", "imagejobs", "-", params, env)
    assert alone["ended"] == 20  # every job seen to SUCCESS
    assert alone["requests"] == 40  # two looks each: RUNNING, then SUCCESS
    callers = run_variant("callers", "imagejobs", "-", {"callers": 20}, env)
    assert callers["succeeded"] == 20  # every caller saw the job succeed
    assert callers["requests"] == 4  # one look at a time for all of them, a stage a look


def test_a_variant_loads_imagejobs_with_or_without_orjson_as_it_says(env: dict[str, str]) -> None:
    probe = "import sys; from benchmarks.variants import _install; _install(sys.argv[1]); "
    probe += "from imagejobs.core import codec; print(codec._orjson_loads is not None)"
    for variant, has in (("imagejobs", "False"), ("imagejobs_speedups", "True")):
        done = subprocess.run(
            [sys.executable, "-c", probe, variant],
            check=False,
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.stdout.strip() == has, done.stderr


def test_the_throttling_simulation_ends_every_job_under_each_limiter() -> None:
    for gateway in GATEWAYS.values():
        for limiter in LIMITERS.values():
            result = simulate(limiter(50.0), gateway(10), jobs=20)
            assert result["requests"] >= 20 * 2  # every job polled until it ended
            assert 0 <= result["throttled_share"] < 1


def test_the_changing_job_gives_a_new_answer_every_poll(env: dict[str, str]) -> None:
    steps = changing_job(6)
    assert len(steps) == 6
    assert len({json.dumps(step, sort_keys=True) for step in steps}) == 6  # each its own
    assert {step["status"] for step in steps} == {"RUNNING", "SUCCESS"}
    assert {step["id"] for step in steps} == {CHANGING_ID}
    with fake_server(env) as server:
        for variant in ("imagejobs", "floor"):
            params = {"total": 4, "concurrency": 2, "changing": True}
            result = run_variant("gets", variant, server.url, params, env)
            assert result["requests"] == 4
        # Each variant: one GET to connect, then four; none of the reference job's.
        assert json.loads(server.ask(f"stats {CHANGING_ID}"))["requests"] == 10
        assert json.loads(server.ask(f"stats {REFERENCE_ID}"))["requests"] == 0


def test_the_sweeps_scenario_gets_every_outcome_right_both_ways() -> None:
    for variant in sweeps.VARIANTS:
        result = sweeps.simulate(variant, jobs=30, old=60, seconds=10.0, seed=1)
        assert result["right"] == 30
        assert result["answered_400"] == 0
        assert result["requests"] >= 30  # a GET ended each job
    swept = sweeps.simulate("sweeps", jobs=30, old=60, seconds=10.0, seed=1)
    assert swept["lists"] > 0


def test_the_cadence_scenario_runs_every_schedule_on_every_workload() -> None:
    for workload in ("ten-minute", "mixed", "learned"):
        for variant in ("imagejobs default", "imagejobs + history", *cadence.ANCHORS):
            result = cadence.simulate(workload, variant, count=4, seed=1)
            assert result["requests_per_job"] >= 1
            assert result["p95_late_s"] >= 0  # no end was seen before it happened


def test_the_fleet_scenario_runs_on_redis(redis_url: str) -> None:
    # Without Redis it is the same code as every other scenario's: only the fleet is new.
    result = fleet.simulate(2, 3, 2, seconds=1.0, redis_url=redis_url, initial_delay=0.05)
    assert result["waits"] == 2 * 5
    assert result["right"] == result["waits"]  # every process saw every true outcome
    assert result["redis_calls"] > 0


def test_a_grid_cell_counts_every_request_under_a_source() -> None:
    result = grid.simulate(40, 20.0, 10.0, 2.0, seed=0)
    assert result["p95_late_s"] >= 0
    assert sum(result["by_source"].values()) == pytest.approx(result["requests_per_job"])
    assert result["by_source"]["final"] >= 1  # each job's end seen by a GET of its own
    assert grid.bound(400, 60.0, 10.0)["period_s"] > 0


def test_the_scale_scenario_waits_on_every_job_and_measures_each_run() -> None:
    for setting in (None, False):
        result = scale.simulate(60, 30.0, 20.0, setting)
        assert result["right"] == 60
        assert result["refused"] == 0
        assert sum(result["by_source"].values()) == pytest.approx(result["requests_per_job"])
        assert result["longest_step_ms"]["hub"] > 0
        assert result["peak_rss_mb"] > 0
    assert scale.bound(10_000, 20.0)["sweep_period_s"] == pytest.approx(15.0)
    assert next(iter(scale.rows({"run": result})))[1] == "60/60"


def test_the_lateness_series_holds_the_full_runs_and_a_row_per_job_count() -> None:
    points = scale.series_points(quick=False)
    assert set(scale.RUNS.values()) <= set(points)  # measured once, shown twice
    assert {jobs for jobs, *_ in points} == {1_000, 3_000, 10_000, 30_000, 100_000}
    assert (100_000, 36_000.0, 20.0, False) not in points
    on = {"bound": {"late_s": 1.5}, "p95_late_s": 31.0, "requests_per_job": 2.0}
    off = {**on, "p95_late_s": 4.0}
    rows = list(scale.series_rows({(1000, 360.0, 20.0, None): on, (1000, 360.0, 20.0, False): off}))
    assert rows == [["1,000", "1.5", "31.0, 2.00", "█" * scale.BAR, "4.0, 2.00", "████████"]]


def test_the_memory_scenario_waits_with_the_gateway_in_a_process_of_its_own() -> None:
    result = rss.measure(jobs=20, seconds=0.5, rate=200.0, first_end=0.1)
    assert result["right"] == 20  # every job ended as the tenant scripts it
    assert result["rss_before_mb"] > 0
    assert result["rss_after_close_mb"] > 0
    assert result["arenas_before"] is None or result["arenas_before"] > 0
    assert result["rss_change"] == pytest.approx(
        result["rss_after_close_mb"] / result["rss_before_mb"] - 1
    )
