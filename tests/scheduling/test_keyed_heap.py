"""The keyed heap: each item once, its key changed or the item taken out where it stands."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from imagejobs.scheduling.keyed_heap import KeyedHeap

items = st.sampled_from("abcdefghij")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), items, st.integers(0, 20)),
        st.tuples(st.just("discard"), items, st.just(0)),
        st.tuples(st.just("pop"), st.just(""), st.just(0)),
    ),
    max_size=80,
)


@given(operations)
def test_the_heap_holds_what_a_dict_of_keys_would_and_gives_the_least_first(
    steps: list[tuple[str, str, int]],
) -> None:
    heap: KeyedHeap[str] = KeyedHeap()
    keys: dict[str, tuple[float, int]] = {}
    for number, (what, item, when) in enumerate(steps):
        if what == "set":
            heap.set(item, float(when), number)
            keys[item] = (float(when), number)
        elif what == "discard":
            heap.discard(item)
            keys.pop(item, None)
        elif keys:
            when_popped, order, popped = heap.pop()
            assert (when_popped, order, popped) == min((*key, item) for item, key in keys.items())
            del keys[popped]
        assert len(heap) == len(keys)
        assert all(item in heap for item in keys)
        first = heap.first()
        expected = min(((*key, item) for item, key in keys.items()), default=None)
        assert first == expected
