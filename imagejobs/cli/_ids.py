"""Job IDs as a shell pipes them in: bare IDs, or the JSON the provider's CLI prints. Pure.

``-`` among the arguments stands for what stdin holds. That may be bare IDs,
one a line or separated by spaces, tabs or commas (``#`` starts a comment
line), or JSON: KooCLI prints ``{"job_id": "..."}`` (pretty-printed over
several lines by default), and scripts collect those in an array or one a line
(JSON Lines). An array may also hold the IDs themselves. Anything else is
refused with one line that says what was read and how to fix it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence

from imagejobs import ConfigurationError, InvalidArgument

from ._format import visible

__all__ = ["ids_from_text", "read_job_ids", "read_one_job_id"]

# What separates bare IDs: the Action's input and a shell's word lists alike.
_SEPARATORS = re.compile(r"[\s,]+")
# Never part of a real ID (18 digits), always part of JSON or a quoted string.
_NOT_AN_ID = re.compile(r"""[{}\[\]"':]""")

_HOW = (
    'pipe job IDs one a line, or KooCLI\'s JSON ({"job_id": ...}); with KooCLI, '
    "--cli-query=job_id --cli-output=tsv prints bare IDs, or pipe through jq -r .job_id"
)


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return visible(text if len(text) <= 60 else text[:57] + "...")


def _from_json(value: object, text: str) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _from_json(item, text)
    elif isinstance(value, dict) and "job_id" in value:
        yield from _from_json(value["job_id"], text)
    elif isinstance(value, str) and value.strip():
        yield value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        yield str(value)
    else:
        raise ConfigurationError(
            f"stdin holds JSON without a job_id: {_shown(json.dumps(value))}; {_HOW}"
        )


def _json_documents(text: str) -> list[object]:
    """Return the JSON value of ``text``, or of each of its lines (JSON Lines)."""
    try:
        return [json.loads(text)]
    except (ValueError, RecursionError):
        pass
    documents = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            documents.append(json.loads(line))
        except (ValueError, RecursionError):
            raise ConfigurationError(
                f"stdin is not JSON nor job IDs: {_shown(line)}; {_HOW}"
            ) from None
    return documents


def ids_from_text(text: str) -> list[str]:
    """Return the job IDs ``text`` holds (see the module's doc), in order.

    Raises :class:`ConfigurationError` (exit 2) naming what was read otherwise.
    """
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if body.lstrip().startswith(("{", "[")):
        ids = [job_id for value in _json_documents(body) for job_id in _from_json(value, body)]
    else:
        ids = [word for word in _SEPARATORS.split(body) if word]
        odd = next((word for word in ids if _NOT_AN_ID.search(word)), None)
        if odd is not None:
            raise ConfigurationError(f"stdin holds {_shown(odd)}, not a job ID; {_HOW}")
    return ids


def read_job_ids(given: Sequence[str], stdin_text: str | None) -> list[str]:
    """Return the job IDs given, with ``-`` replaced by those stdin holds.

    ``stdin_text`` is stdin's whole text, read only when ``-`` is given.
    """
    ids: list[str] = []
    for item in given:
        if item != "-":
            ids.append(item)
        elif stdin_text is not None:
            ids.extend(ids_from_text(stdin_text))
    if "-" in given and not ids:
        raise InvalidArgument(f"stdin holds no job ID; {_HOW}")
    return ids


def read_one_job_id(stdin_text: str) -> str:
    """Return the one job ID stdin holds (for ``watch -`` and ``get -``)."""
    ids = list(dict.fromkeys(ids_from_text(stdin_text)))
    if len(ids) != 1:
        held = "no job ID" if not ids else f"{len(ids)} job IDs"
        raise InvalidArgument(f"stdin holds {held}; this command takes one (wait takes many)")
    return ids[0]
