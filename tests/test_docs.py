"""README.md and the pages under docs/: every example runs as written, every link resolves."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import imagejobs
from imagejobs.testing import load_scenario

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
MAX_README_LINES = 300

FENCED = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`]+`")
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def name_of(page: Path) -> str:
    """Return a page's path from the repository root, as links and test IDs spell it."""
    return page.relative_to(ROOT).as_posix()


def blocks(page: Path, language: str) -> list[str]:
    """Return the bodies of a page's fenced blocks in ``language``, in order."""
    return [body for lang, body in FENCED.findall(page.read_text()) if lang == language]


def prose(text: str) -> str:
    """Return the text outside fenced blocks and code spans."""
    return CODE_SPAN.sub("", FENCED.sub("", text))


def anchor(heading: str) -> str:
    """Return GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes."""
    text = CODE_SPAN.sub(lambda span: span.group()[1:-1], heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Return every anchor a page's headings give, numbering repeats as GitHub does."""
    seen: dict[str, int] = {}
    found = set()
    for _, heading in HEADING.findall(FENCED.sub("", page.read_text())):
        slug = anchor(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def links(text: str) -> list[str]:
    """Return the targets of the markdown links in ``text``, outside code."""
    return [target for _, target in LINK.findall(prose(text))]


def is_relative(target: str) -> bool:
    return re.match(r"[a-z][a-z0-9+.-]*:", target) is None


def promised_output(code: str) -> list[str] | None:
    """Return the lines a block's trailing ``# Output:`` comment promises, if any."""
    _, marker, tail = code.partition("\n# Output:\n")
    if not marker:
        return None
    return [line.removeprefix("# ") for line in tail.splitlines()]


def run_example(code: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """Run an example as a script in ``directory``, every warning an error.

    An example must not teach what a library warns against (aiohttp's
    ``NotAppKeyWarning``, a deprecation).
    """
    script = directory / "example.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=directory,  # an example that writes a file writes it there
    )


README_BLOCKS = blocks(README, "python")
EXAMPLES = [
    (name_of(page), number, code)
    for page in PAGES
    for number, code in enumerate(blocks(page, "python"))
]


def test_readme_has_python_examples() -> None:
    assert len(README_BLOCKS) >= 2


def test_docs_pages_have_python_examples() -> None:
    assert len(EXAMPLES) > len(README_BLOCKS)


@pytest.mark.parametrize(
    "code", [code for _, _, code in EXAMPLES], ids=[f"{page}-block{n}" for page, n, _ in EXAMPLES]
)
def test_example_runs(code: str, tmp_path: Path) -> None:
    result = run_example(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    promised = promised_output(code)
    if promised is not None:
        assert result.stdout.splitlines() == promised


def test_an_example_that_warns_fails(tmp_path: Path) -> None:
    result = run_example(
        "import warnings\nwarnings.warn('deprecated', DeprecationWarning)\n", tmp_path
    )
    assert result.returncode != 0
    assert "DeprecationWarning: deprecated" in result.stderr


def test_the_waiting_examples_promise_their_output() -> None:
    assert sum(promised_output(code) is not None for _, _, code in EXAMPLES) >= 3
    assert sum(promised_output(code) is not None for code in README_BLOCKS) >= 2


def test_first_example_prints_the_running_job() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", README_BLOCKS[0]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.split() == ["702364883651395584", "RUNNING", "False"]


def test_readme_shows_how_to_set_a_deadline() -> None:
    deadlines = [code for code in README_BLOCKS if "timeout=" in code]
    assert deadlines, "no README example sets PollPolicy(timeout=...)"
    assert any(
        "WaitTimeout" in code and any("timeout" in line for line in promised_output(code) or [])
        for code in deadlines
    )


def test_readme_error_tree_is_whole() -> None:
    (tree,) = [block for block in blocks(README, "text") if block.startswith("ImageJobsError")]
    exported = [
        name
        for name in imagejobs.__all__
        if isinstance(getattr(imagejobs, name), type)
        and issubclass(getattr(imagejobs, name), imagejobs.ImageJobsError)
    ]
    assert "ClientClosed" in exported
    for name in exported:
        assert f"{name} " in tree or tree.startswith(name), name


def test_the_scenario_example_loads() -> None:
    scenarios = blocks(DOCS / "testing.md", "json")
    assert len(scenarios) == 1
    fake = load_scenario(json.loads(scenarios[0]))
    assert fake.token == "a-token-to-demand"
    assert fake.project_id == "0123456789abcdef0123456789abcdef"


def test_both_set_up_commands_are_there() -> None:
    commands = [body.rstrip("\n") for body in blocks(README, "sh")]
    assert commands[0].endswith("&& .venv/bin/imagejobs demo")
    assert commands[1].endswith("&& .venv/bin/python -m pytest")
    # .ci/run runs the line after the marker: the marker sits right above the test command.
    lines = README.read_text().splitlines()
    marker = lines.index("<!-- test-command: .ci/run runs the line below verbatim -->")
    assert lines[marker + 1 : marker + 3] == ["```sh", commands[1]]


def test_readme_is_short() -> None:
    assert README.read_text().count("\n") <= MAX_README_LINES


def test_readme_contents_link_every_docs_page() -> None:
    text = README.read_text()
    contents = re.search(r"^## Contents\n(.*?)^## ", text, re.DOTALL | re.MULTILINE)
    assert contents is not None, "README.md has no '## Contents' section"
    targets = {target.partition("#")[0] for target in links(contents.group(1))}
    pages = {name_of(page) for page in DOCS.glob("*.md")}
    assert targets >= pages


def test_every_docs_page_is_linked_from_readme() -> None:
    targets = {target.partition("#")[0] for target in links(README.read_text())}
    assert {name_of(page) for page in DOCS.glob("*.md")} <= targets


@pytest.mark.parametrize("page", PAGES, ids=[name_of(page) for page in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    relative = [target for target in links(page.read_text()) if is_relative(target)]
    assert relative
    for target in relative:
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{target}: no such file"
        if fragment:
            assert fragment in anchors(linked), f"{target}: no such heading"


def test_the_anchor_rule() -> None:
    assert anchor("Sweeps: many jobs for a few requests") == "sweeps-many-jobs-for-a-few-requests"
    assert anchor("A standalone fake server") == "a-standalone-fake-server"
    assert anchor("The `imagejobs` logger_1") == "the-imagejobs-logger_1"
