"""Client.from_env and regions: arguments beat the environment, which beats the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagejobs import (
    REGIONS,
    AkSkCredentials,
    Client,
    ConfigurationError,
    InvalidArgument,
    TokenCredentials,
)

PROJECT = "0123456789abcdef0123456789abcdef"
AK, SK = "AKFROMENVIRONMENT001", "SKfromenvironment00000000000000000000001"
VARIABLES = (
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
    "IMAGEJOBS_AUTH_TOKEN",
    "IMAGEJOBS_REGION",
    "IMAGEJOBS_ENDPOINT",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment whose home holds no credentials file."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def write_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "credentials"
    path.write_text(text)
    return path


def keys_of(client: Client) -> tuple[str, str, str | None]:
    credentials = client._credentials
    assert isinstance(credentials, AkSkCredentials)
    return credentials.ak, credentials.sk, credentials.security_token


def test_everything_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("HUAWEICLOUD_SDK_AK", AK)
    env.setenv("HUAWEICLOUD_SDK_SK", SK)
    env.setenv("HUAWEICLOUD_SDK_SECURITY_TOKEN", "temporary")
    env.setenv("HUAWEICLOUD_SDK_PROJECT_ID", PROJECT)
    env.setenv("IMAGEJOBS_REGION", "ap-southeast-1")
    client = Client.from_env()
    assert client.project_id == PROJECT
    assert client.endpoint == "https://workspace.ap-southeast-1.myhuaweicloud.com"
    assert keys_of(client) == (AK, SK, "temporary")


def test_the_file_fills_in_what_the_environment_lacks(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_file(
        tmp_path,
        f"[basic]\nak = FILEAK\nsk = FILESK\nproject_id = {PROJECT}\nsecurity_token = tok\n",
    )
    env.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(path))
    env.setenv("IMAGEJOBS_REGION", "cn-north-4")
    client = Client.from_env()
    assert client.project_id == PROJECT
    assert client.endpoint == "https://appstream.cn-north-4.myhuaweicloud.com"
    assert keys_of(client) == ("FILEAK", "FILESK", "tok")


def test_the_default_file_lives_in_the_home_folder(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "home" / ".huaweicloud"
    folder.mkdir(parents=True)
    (folder / "credentials").write_text(f"[basic]\nak=HOMEAK\nsk=HOMESK\nproject_id={PROJECT}\n")
    client = Client.from_env(region="cn-east-3")
    assert keys_of(client) == ("HOMEAK", "HOMESK", None)


def test_environment_beats_file_and_arguments_beat_both(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_file(tmp_path, "[basic]\nak=FILEAK\nsk=FILESK\nproject_id=fromfile\n")
    env.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(path))
    env.setenv("HUAWEICLOUD_SDK_AK", AK)
    env.setenv("HUAWEICLOUD_SDK_SK", SK)
    env.setenv("HUAWEICLOUD_SDK_PROJECT_ID", "fromenv")
    env.setenv("IMAGEJOBS_ENDPOINT", "https://env.example.com")
    env.setenv("IMAGEJOBS_REGION", "cn-north-4")
    client = Client.from_env()
    assert (client.project_id, client.endpoint, keys_of(client)[0]) == (
        "fromenv",
        "https://env.example.com",  # an endpoint beats a region
        AK,
    )
    token = TokenCredentials("explicit")
    explicit = Client.from_env(project_id="fromargs", region="cn-south-1", credentials=token)
    assert explicit.project_id == "fromargs"
    assert explicit.endpoint == "https://appstream.cn-south-1.myhuaweicloud.com"
    assert explicit._credentials is token


def test_a_token_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("IMAGEJOBS_AUTH_TOKEN", "env-token")
    client = Client.from_env(project_id=PROJECT, endpoint="https://x.example.com")
    assert client._credentials == TokenCredentials("env-token")


def test_empty_variables_count_as_unset(env: pytest.MonkeyPatch) -> None:
    env.setenv("HUAWEICLOUD_SDK_AK", "")
    env.setenv("HUAWEICLOUD_SDK_SK", " ")
    env.setenv("IMAGEJOBS_AUTH_TOKEN", "env-token")
    client = Client.from_env(project_id=PROJECT, region="cn-north-4")
    assert isinstance(client._credentials, TokenCredentials)


def test_credentials_none_means_send_none(env: pytest.MonkeyPatch) -> None:
    client = Client.from_env(project_id=PROJECT, endpoint="http://127.0.0.1:1", credentials=None)
    assert client._credentials is None


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({}, "no project ID: pass project_id=, set HUAWEICLOUD_SDK_PROJECT_ID, or put project_id"),
        ({"HUAWEICLOUD_SDK_PROJECT_ID": PROJECT}, "no credentials: pass credentials=, set HUAWEI"),
        (
            {"HUAWEICLOUD_SDK_PROJECT_ID": PROJECT, "HUAWEICLOUD_SDK_AK": AK},
            "HUAWEICLOUD_SDK_AK is set but HUAWEICLOUD_SDK_SK is not",
        ),
        (
            {"HUAWEICLOUD_SDK_PROJECT_ID": PROJECT, "HUAWEICLOUD_SDK_SECURITY_TOKEN": "t"},
            "HUAWEICLOUD_SDK_SECURITY_TOKEN is set without",
        ),
        (
            {
                "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT,
                "HUAWEICLOUD_SDK_AK": AK,
                "HUAWEICLOUD_SDK_SK": SK,
                "IMAGEJOBS_AUTH_TOKEN": "t",
            },
            "both an access key",
        ),
        (
            {"HUAWEICLOUD_SDK_PROJECT_ID": PROJECT, "IMAGEJOBS_AUTH_TOKEN": "t"},
            "no endpoint: pass endpoint= or region=, or set IMAGEJOBS_ENDPOINT or IMAGEJOBS_REGION",
        ),
        (
            {
                "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT,
                "IMAGEJOBS_AUTH_TOKEN": "t",
                "IMAGEJOBS_REGION": "mars-1",
            },
            "IMAGEJOBS_REGION: unknown region 'mars-1'; known regions: af-north-1,",
        ),
    ],
)
def test_a_missing_piece_is_named_with_where_it_may_come_from(
    env: pytest.MonkeyPatch, variables: dict[str, str], problem: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        Client.from_env()
    assert str(info.value).startswith(problem)
    assert SK not in str(info.value)


def test_a_named_file_that_is_missing_is_an_error(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(tmp_path / "nope"))
    with pytest.raises(ConfigurationError, match=r"credentials file .*nope .* does not exist"):
        Client.from_env()


def test_a_file_with_half_a_key_pair_is_an_error(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(write_file(tmp_path, "[basic]\nak=A\n")))
    with pytest.raises(ConfigurationError, match=r"has no sk in \[basic\]"):
        Client.from_env(project_id=PROJECT, region="cn-north-4")


def test_a_broken_file_is_named_without_quoting_it(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_file(tmp_path, "[basic]\nak=A\nthis line holds SUPERSECRET\n")
    env.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(path))
    with pytest.raises(ConfigurationError, match=r"is not valid INI \(line 3\)") as info:
        Client.from_env(region="cn-north-4")
    assert "SUPERSECRET" not in str(info.value)


def test_the_file_is_not_read_when_nothing_is_missing(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(write_file(tmp_path, "not [ini")))
    env.setenv("HUAWEICLOUD_SDK_AK", AK)
    env.setenv("HUAWEICLOUD_SDK_SK", SK)
    client = Client.from_env(project_id=PROJECT, region="cn-north-4")
    assert keys_of(client)[0] == AK


def test_every_known_region_has_its_endpoint() -> None:
    assert len(REGIONS) == 17
    for region, endpoint in REGIONS.items():
        client = Client(project_id=PROJECT, region=region)
        assert client.endpoint == endpoint
        assert region in endpoint
        assert endpoint in repr(client)


def test_an_unknown_region_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match=r"unknown region 'eu-west-0'; known regions: af-"):
        Client(project_id=PROJECT, region="eu-west-0")


def test_an_endpoint_wins_over_any_region() -> None:
    client = Client(project_id=PROJECT, region="eu-west-0", endpoint="https://mine.example.com")
    assert client.endpoint == "https://mine.example.com"


def test_no_endpoint_and_no_region_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="pass endpoint= or region="):
        Client(project_id=PROJECT)
