"""DurationHistory and its log-normal fit: pure, on the file system only through tmp_path."""

from __future__ import annotations

import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import ConfigurationError, InvalidArgument
from imagejobs.planning.history import (
    LONGEST,
    MAX_SAMPLES,
    MIN_SAMPLES,
    SHORTEST,
    DurationHistory,
    LogNormal,
)


def lognormal_samples(median: float, sigma: float, count: int, seed: int) -> list[float]:
    rng = random.Random(seed)  # noqa: S311 - reproducible samples
    return [rng.lognormvariate(math.log(median), sigma) for _ in range(count)]


# --- recording -------------------------------------------------------------------------


def test_record_keeps_durations_per_type_oldest_first() -> None:
    history = DurationHistory()
    assert not history.job_types
    history.record("DELETE_SERVER", 12)
    history.record("CREATE_SERVER", 300.5)
    history.record("CREATE_SERVER", 280)
    assert history.job_types == ("CREATE_SERVER", "DELETE_SERVER")
    assert history.durations("CREATE_SERVER") == (300.5, 280.0)
    assert history.durations("DELETE_SERVER") == (12.0,)
    assert all(isinstance(v, float) for v in history.durations("CREATE_SERVER"))
    assert history.durations("BUILD_IMAGE") == ()
    assert "CREATE_SERVER=2" in repr(history)


def test_the_constructor_records_a_mapping() -> None:
    history = DurationHistory({"A": [1, 2.5], "B": (3,)})
    assert history.job_types == ("A", "B")
    assert history.durations("A") == (1.0, 2.5)
    assert history.durations("B") == (3.0,)


@pytest.mark.parametrize(
    "seconds",
    [True, False, math.nan, math.inf, -math.inf, 0, 0.0, -1, -1e-9, "5", None, [5], 1 + 0j],
)
def test_record_refuses_an_unusable_duration(seconds: Any) -> None:
    history = DurationHistory({"A": [10]})
    with pytest.raises(InvalidArgument):
        history.record("A", seconds)
    assert history.durations("A") == (10.0,), "a refused duration is not kept"


@pytest.mark.parametrize("job_type", ["", None, 5, b"A"])
def test_record_refuses_an_unusable_job_type(job_type: Any) -> None:
    history = DurationHistory()
    with pytest.raises(InvalidArgument, match="job_type"):
        history.record(job_type, 10)
    assert history.job_types == ()


def test_only_the_most_recent_max_samples_are_kept() -> None:
    history = DurationHistory()
    for n in range(1, MAX_SAMPLES + 51):
        history.record("A", n)
    kept = history.durations("A")
    assert len(kept) == MAX_SAMPLES
    assert kept == tuple(float(n) for n in range(51, MAX_SAMPLES + 51))


def test_replace_swaps_a_types_durations_and_leaves_the_others() -> None:
    history = DurationHistory({"A": [1, 2, 3], "B": [9]})
    history.replace("A", [10, 20])
    assert history.durations("A") == (10.0, 20.0)
    assert history.durations("B") == (9.0,)
    history.replace("C", range(1, MAX_SAMPLES + 11))
    assert history.durations("C") == tuple(float(n) for n in range(11, MAX_SAMPLES + 11))
    history.replace("A", [])
    assert history.job_types == ("B", "C"), "replaced by nothing: the type is gone"


def test_replace_with_a_bad_duration_raises() -> None:
    history = DurationHistory({"A": [1, 2, 3]})
    with pytest.raises(InvalidArgument):
        history.replace("A", [5, -1])


def test_replace_with_a_bad_duration_leaves_the_type_as_it_was() -> None:
    history = DurationHistory({"A": [1, 2, 3]})
    with pytest.raises(InvalidArgument):
        history.replace("A", [5, -1])
    assert history.durations("A") == (1.0, 2.0, 3.0)


# --- the fit ---------------------------------------------------------------------------


def test_no_fit_below_min_samples() -> None:
    history = DurationHistory({"A": [100] * (MIN_SAMPLES - 1)})
    assert history.fit("A") is None
    assert history.fit("unknown") is None
    history.record("A", 100)
    fit = history.fit("A")
    assert fit is not None
    assert fit.count == MIN_SAMPLES


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("median", "sigma"), [(240.0, 0.3), (45.0, 0.8), (3600.0, 0.1)])
def test_the_fit_recovers_a_lognormal_median_and_sigma(
    seed: int, median: float, sigma: float
) -> None:
    samples = lognormal_samples(median, sigma, MAX_SAMPLES, seed)
    fit = DurationHistory({"A": samples}).fit("A")
    assert fit is not None
    assert fit.count == MAX_SAMPLES
    # Standard errors at 200 samples: mu about sigma/14, sigma about sigma/20. Four of each.
    assert math.log(fit.median) == pytest.approx(math.log(median), abs=4 * sigma / 14)
    assert fit.sigma == pytest.approx(sigma, rel=4 / 20)
    assert fit.median == pytest.approx(math.exp(fit.mu))


def test_identical_samples_give_a_small_positive_sigma() -> None:
    fit = DurationHistory({"A": [300.0] * 20}).fit("A")
    assert fit is not None
    assert 0 < fit.sigma <= 0.1
    assert fit.median == pytest.approx(300.0)
    # Not a point mass: some jobs end a little before and some a little after.
    assert 0 < fit.cdf(290) < 0.5 < fit.cdf(310) < 1


def test_cdf_and_quantile_at_known_points() -> None:
    fit = LogNormal(math.log(100), 0.5, 10)
    assert fit.cdf(0) == 0.0
    assert fit.cdf(-5) == 0.0
    assert fit.cdf(100) == pytest.approx(0.5)
    assert fit.quantile(0.5) == pytest.approx(100)
    # One sigma above the median holds 84.13% of jobs.
    assert fit.cdf(100 * math.exp(0.5)) == pytest.approx(0.841345, abs=1e-6)
    assert fit.quantile(0.975) == pytest.approx(100 * math.exp(0.5 * 1.959964), rel=1e-6)


fits = st.builds(
    LogNormal,
    mu=st.floats(math.log(0.5), math.log(1e6)),
    sigma=st.floats(0.05, 2.0),
    count=st.integers(MIN_SAMPLES, MAX_SAMPLES),
)


@given(fit=fits, share=st.floats(1e-6, 1 - 1e-6))
def test_cdf_undoes_quantile(fit: LogNormal, share: float) -> None:
    assert fit.cdf(fit.quantile(share)) == pytest.approx(share, rel=1e-7, abs=1e-12)


@given(fit=fits, z=st.floats(-4.5, 4.5))
def test_quantile_undoes_cdf(fit: LogNormal, z: float) -> None:
    seconds = math.exp(fit.mu + fit.sigma * z)
    assert fit.quantile(fit.cdf(seconds)) == pytest.approx(seconds, rel=1e-6)


@given(fit=fits, low=st.floats(1e-6, 0.5), high=st.floats(0.5, 1 - 1e-6))
def test_quantile_is_increasing(fit: LogNormal, low: float, high: float) -> None:
    assert fit.quantile(low) <= fit.quantile(0.5) <= fit.quantile(high)


# --- files -----------------------------------------------------------------------------


def test_save_then_load_gives_the_same_durations(tmp_path: Path) -> None:
    history = DurationHistory(
        {"CREATE_SERVER": lognormal_samples(300, 0.3, 40, 7), "DELETE_SERVER": [1.0, 7, 2e6]}
    )
    path = tmp_path / "nested" / "dir" / "history.json"
    history.save(path)
    loaded = DurationHistory.load(path)
    assert loaded.job_types == history.job_types
    for job_type in history.job_types:
        assert loaded.durations(job_type) == history.durations(job_type)
    assert loaded.fit("CREATE_SERVER") == history.fit("CREATE_SERVER")


durations_maps = st.dictionaries(
    st.text(min_size=1, max_size=20),
    st.lists(
        st.floats(min_value=SHORTEST, max_value=LONGEST, allow_nan=False, allow_infinity=False),
        max_size=30,
    ),
    max_size=5,
)


@given(durations=durations_maps)
def test_save_load_round_trip_property(durations: dict[str, list[float]]) -> None:
    history = DurationHistory(durations)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "h.json"
        history.save(path)
        loaded = DurationHistory.load(path)
        assert [p.name for p in Path(directory).iterdir()] == ["h.json"]
    assert loaded.job_types == history.job_types
    for job_type in history.job_types:
        assert loaded.durations(job_type) == history.durations(job_type)


def test_load_of_a_missing_file_is_an_empty_history(tmp_path: Path) -> None:
    history = DurationHistory.load(tmp_path / "none.json")
    assert history.job_types == ()
    assert history.fit("CREATE_SERVER") is None
    assert list(tmp_path.iterdir()) == [], "loading creates nothing"


@pytest.mark.parametrize(
    "text",
    [
        "not json {",
        "",
        "[]",
        "null",
        '"a string"',
        "[" * 100_000,
        '{"durations": {"A": [1]}}',
        '{"format": 2, "durations": {"A": [1]}}',
        '{"format": "1", "durations": {"A": [1]}}',
        '{"format": 1}',
        '{"format": 1, "durations": [[1]]}',
        '{"format": 1, "durations": {"A": 5}}',
        '{"format": 1, "durations": {"A": {"x": 1}}}',
        '{"format": 1, "durations": {"A": [-1]}}',
        '{"format": 1, "durations": {"A": [0]}}',
        '{"format": 1, "durations": {"A": ["60"]}}',
        '{"format": 1, "durations": {"A": [true]}}',
        '{"format": 1, "durations": {"A": [null]}}',
        '{"format": 1, "durations": {"A": [NaN]}}',
        '{"format": 1, "durations": {"A": [Infinity]}}',
        '{"format": 1, "durations": {"A": [1e999]}}',
        '{"format": 1, "durations": {"": [1]}}',
    ],
)
def test_load_of_a_file_that_is_no_history_names_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "history.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        DurationHistory.load(path)
    assert str(path) in str(info.value)


def test_load_of_a_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        DurationHistory.load(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_of_a_file_that_is_not_utf8_names_it(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_bytes(b'{"format": 1, "durations": {"\xff\xfe": [1]}}')
    with pytest.raises(ConfigurationError) as info:
        DurationHistory.load(path)
    assert str(path) in str(info.value)


def test_save_writes_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    DurationHistory({"B": [2], "A": [1, 1.5]}).save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "format": 1,
        "durations": {"A": [1.0, 1.5], "B": [2.0]},
    }


def test_save_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    history = DurationHistory({"A": [1, 2]})
    history.save(path)
    history.record("A", 3)
    history.save(path)  # over an existing file
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]
    assert DurationHistory.load(path).durations("A") == (1.0, 2.0, 3.0)


def test_a_save_that_fails_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    target = tmp_path / "history.json"
    target.mkdir()
    (target / "keep").write_text("x")  # a directory in the way: the rename fails
    with pytest.raises(IsADirectoryError):
        DurationHistory({"A": [1]}).save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]
    assert [p.name for p in target.iterdir()] == ["keep"]
