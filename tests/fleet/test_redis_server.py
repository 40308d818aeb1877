"""Without a redis-server the fleet tests are skipped, saying how to get one; in CI they fail."""

from __future__ import annotations

import pytest
import redis_server

MISSING = "redis-server-that-is-not-installed"


@pytest.fixture
def no_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look for a binary no machine has, instead of uninstalling redis."""
    monkeypatch.setattr(redis_server, "NAME", MISSING)


@pytest.mark.usefixtures("no_redis_server")
def test_a_missing_redis_server_skips_with_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert redis_server.find_redis_server() is None
    with pytest.raises(pytest.skip.Exception) as skipped:
        redis_server.redis_server_binary()
    reason = str(skipped.value)
    assert "\n" not in reason
    assert reason.startswith(f"{MISSING} is not installed")
    assert "apt-get install redis-server" in reason
    assert "brew install redis" in reason


@pytest.mark.usefixtures("no_redis_server")
def test_a_missing_redis_server_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the fleet tests"):
        redis_server.redis_server_binary()


def test_the_installed_redis_server_is_found() -> None:
    # The suite's own machines have it (.ci/ensure-redis); a laptop without it skips.
    found = redis_server.find_redis_server()
    if found is None:
        pytest.skip(f"redis-server is not installed ({redis_server.INSTALL})")
    assert redis_server.redis_server_binary() == found
