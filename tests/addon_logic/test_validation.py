import pytest
from aigen_pure import pricing, validation
from aigen_pure.validation import InvalidRequest, Limits, PayloadTooLarge, validate_generation

GOOD = {
    "backend": "external",
    "model": "gpt-4o-mini",
    "task": "text",
    "prompt": "hi",
    "params": {"max_tokens": 5},
}


def test_a_good_body():
    gen = validate_generation(GOOD)
    assert (gen.backend, gen.model, gen.task, gen.prompt, gen.params) == (
        "external",
        "gpt-4o-mini",
        "text",
        "hi",
        {"max_tokens": 5},
    )
    assert validate_generation({k: v for k, v in GOOD.items() if k not in ("task", "params")}).task == "text"


def test_every_bad_field_is_named():
    with pytest.raises(InvalidRequest) as caught:
        validate_generation(
            {
                "backend": "x",
                "model": 3,
                "task": "video",
                "prompt": "",
                "params": {"n": 9, "size": "1x1", "foo": 1},
                "bar": 0,
            }
        )
    fields = caught.value.fields
    assert sorted(fields) == [
        "backend",
        "bar",
        "model",
        "params.foo",
        "params.n",
        "params.size",
        "prompt",
        "task",
    ]
    assert "between 1 and 4" in fields["params.n"]
    assert "1024x1024" in fields["params.size"]


def test_params_must_be_an_object():
    with pytest.raises(InvalidRequest) as caught:
        validate_generation(dict(GOOD, params=[1]))
    assert caught.value.fields == {"params": "Must be a JSON object."}


def test_sizes_over_the_limits_are_413():
    with pytest.raises(PayloadTooLarge, match="prompt"):
        validate_generation(dict(GOOD, prompt="x" * 11), Limits(max_prompt_chars=10))
    with pytest.raises(PayloadTooLarge, match="params"):
        validate_generation(dict(GOOD, params={"system": "y" * 100}), Limits(max_params_bytes=50))


@pytest.mark.parametrize("raw", [b"", b"[1]", b"{bad", b"\xff"])
def test_body_must_be_a_json_object(raw):
    with pytest.raises(InvalidRequest):
        validation.parse_json_object(raw)


def test_price_counts_images():
    assert pricing.request_price(5, "image", {"n": 3}) == 15
    assert pricing.request_price(5, "text", {"n": 3}) == 5
    assert pricing.request_price(5, "image", {}) == 5
