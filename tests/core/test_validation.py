"""IDs are checked by their documented rules, whichever way a check takes."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from imagejobs import InvalidArgument
from imagejobs.core.validation import check_id, check_ids


def _allowed(value: str) -> bool:
    """The rules check_id's docstring gives, written out one by one."""
    return (
        0 < len(value) <= 128
        and value not in (".", "..")
        and not any(c.isspace() or c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value)
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)  # not encodable as UTF-8
    )


# Mostly the characters of real IDs, so that long plain ones come up, and every kind
# of character a rule is about.
_CHARACTERS = st.one_of(
    st.sampled_from(string.ascii_letters + string.digits + "_-"),
    st.sampled_from("./\\ \t\n\x00\x1f\x7f\u00a0\u2028\u3000é中:%"),
    st.characters(),
)


@given(st.text(_CHARACTERS, max_size=140))
@example(".")
@example("..")
@example("...")
@example("a.b")
@example("-_")
@example("9" * 128)
@example("9" * 129)
def test_an_id_is_taken_exactly_when_the_rules_allow_it(value: str) -> None:
    if _allowed(value):
        assert check_id("job_id", value) is value
    else:
        with pytest.raises(InvalidArgument, match="job_id"):
            check_id("job_id", value)


@pytest.mark.parametrize("length", [1, 127, 128, 129])
def test_a_plain_id_of_any_length_up_to_128(length: int) -> None:
    value = "7" * length
    if length <= 128:
        assert check_id("job_id", value) is value
    else:
        with pytest.raises(InvalidArgument, match="too long"):
            check_id("job_id", value)


class _Id(str):
    pass


def test_an_id_of_a_str_subclass_is_checked_by_the_rules_too() -> None:
    assert check_id("job_id", _Id("123")) == "123"
    with pytest.raises(InvalidArgument, match="not allowed"):
        check_id("job_id", _Id("1/2"))
    with pytest.raises(InvalidArgument, match="must be a string"):
        check_id("job_id", 123)


def _one_by_one(values: list[object]) -> list[str] | str:
    """What checking each value with check_id gives: the list, or the first error."""
    try:
        return [check_id("job_id", value) for value in values]
    except InvalidArgument as error:
        return str(error)


@given(
    st.lists(
        st.one_of(
            st.text(st.sampled_from(string.ascii_letters + string.digits + "_-"), max_size=130),
            st.text(_CHARACTERS, max_size=20),
            st.sampled_from(["a\nb", "\n", "a\n", "", ".", 7, None]),
        ),
        max_size=8,
    )
)
@example(["a\nb"])  # one ID with a newline in it, not two
@example(["a", "\nb"])
@example(["9" * 128, "9" * 129])
@example([])
def test_many_ids_are_taken_exactly_as_each_one_alone(values: list[object]) -> None:
    alone = _one_by_one(values)
    if isinstance(alone, list):
        assert check_ids("job_id", iter(values)) == alone
    else:
        with pytest.raises(InvalidArgument) as raised:
            check_ids("job_id", iter(values))
        assert str(raised.value) == alone


def test_many_ids_of_a_str_subclass_are_checked_by_the_rules_too() -> None:
    assert check_ids("job_id", [_Id("1"), "2"]) == ["1", "2"]
    with pytest.raises(InvalidArgument, match="not allowed"):
        check_ids("job_id", ["1", _Id("1/2")])
