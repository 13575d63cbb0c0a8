"""How large a callback and its result may be (addons/ai_generation/pure/result_limits.py)."""

import io

import pytest
from aigen_pure import result_limits


class CountingStream(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_the_body_limit_is_twice_the_result_plus_the_envelope_with_a_floor():
    assert result_limits.callback_body_limit(1024 * 1024) == 2 * 1024 * 1024 + 64 * 1024
    assert result_limits.effective_max_result_bytes(-5) == result_limits.MIN_MAX_RESULT_BYTES
    assert result_limits.callback_body_limit(0) == 2 * 1024 + 64 * 1024


def test_the_result_is_counted_in_utf8_bytes_of_output_and_url_together():
    assert result_limits.result_bytes({"output": "€" * 10}) == 30
    assert result_limits.result_bytes({"output": "ab", "output_url": "https://x"}) == 11
    assert result_limits.result_bytes({"output": None, "usage": {"total_tokens": 3}}) == 0


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    stream = CountingStream(b"x" * 100)
    with pytest.raises(result_limits.BodyTooLarge, match="100 bytes; the limit is 99"):
        result_limits.read_bounded(stream, 100, 99)
    assert stream.bytes_read == 0


@pytest.mark.parametrize("size", [0, 1, 5 * 1024 * 1024 - 1, 5 * 1024 * 1024])
def test_a_body_within_the_limit_is_read_whole(size):
    data = b"y" * size
    assert result_limits.read_bounded(CountingStream(data), None, 5 * 1024 * 1024) == data
    assert result_limits.read_bounded(CountingStream(data), size, 5 * 1024 * 1024) == data


def test_a_body_without_a_length_stops_one_byte_past_the_limit():
    stream = CountingStream(b"z" * (10 * 1024 * 1024))
    with pytest.raises(result_limits.BodyTooLarge, match="larger than 3000000"):
        result_limits.read_bounded(stream, None, 3_000_000)
    assert stream.bytes_read == 3_000_001


def test_the_rest_of_a_refused_body_is_read_to_its_end_up_to_the_cap():
    stream = CountingStream(b"w" * (3 * 1024 * 1024))
    assert result_limits.discard_rest(stream, None, cap=8 * 1024 * 1024) is True
    assert stream.bytes_read == 3 * 1024 * 1024
    longer = CountingStream(b"w" * (3 * 1024 * 1024))
    assert result_limits.discard_rest(longer, None, cap=1024 * 1024) is False
    assert longer.bytes_read <= 2 * 1024 * 1024
    declared = CountingStream(b"w" * 10)
    assert result_limits.discard_rest(declared, 2 * 1024 * 1024, cap=1024 * 1024) is False
    assert declared.bytes_read == 0
