import json

import pytest
from aigen_pure import contracts, pricing, validation
from aigen_pure.errors import ValidationFailed
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


def _answer(caught):
    """The 400's body the API sends for an InvalidRequest (controllers/api.py), checked against its schema."""
    body = ValidationFailed(str(caught.value), caught.value.fields).body()
    assert not list(contracts.validator("error_response.json").iter_errors(body))
    return body["error"]


def test_a_body_of_many_bad_fields_answers_with_the_first_20_and_a_count():
    # 1 MiB of unknown keys was a 3.4 MB answer: one field entry each, and every name in the message
    keys = [f"k{i:06d}" for i in range(80000)]
    raw = json.dumps(dict(GOOD, **dict.fromkeys(keys, 0)), separators=(",", ":")).encode()
    assert len(raw) <= 1024 * 1024
    body = validation.parse_json_object(raw)
    with pytest.raises(InvalidRequest) as caught:
        validate_generation(body)
    error = _answer(caught)
    assert len(json.dumps(error)) < 4096
    assert sorted(error["fields"]) == keys[:20]
    assert error["fields_omitted"] == len(keys) - 20
    assert error["message"] == (
        f"The request has {len(keys)} invalid fields: "
        + ", ".join(keys[:20])
        + f" and {len(keys) - 20} more."
    )
    # the same for values the database refuses, found while parsing
    with pytest.raises(InvalidRequest) as caught:
        validation.parse_json_object(json.dumps(dict.fromkeys(keys[:1000], "\x00")))
    error = _answer(caught)
    assert (len(error["fields"]), error["fields_omitted"]) == (20, 980)


def test_a_long_field_name_is_cut_short_in_the_answer():
    with pytest.raises(InvalidRequest) as caught:
        validate_generation(dict(GOOD, **{"x" * 500000: 1}))
    error = _answer(caught)
    assert list(error["fields"]) == ["x" * 99 + "…"]
    assert "fields_omitted" not in error
    assert len(json.dumps(error, ensure_ascii=False).encode()) < 1024


def test_a_few_bad_fields_are_all_named():
    with pytest.raises(InvalidRequest) as caught:
        validate_generation(dict(GOOD, backend="cloud", extra=1))
    error = _answer(caught)
    assert error["fields"] == {
        "backend": "Required; must be one of: external, internal.",
        "extra": "Unknown field.",
    }
    assert error["message"] == "The request has invalid fields: backend, extra"
    assert "fields_omitted" not in error


def test_database_refuses_a_nul_or_a_lone_surrogate():
    # what an API key is checked for before its lookup (models/res_users_apikeys.py)
    assert [validation.database_refuses(t) for t in ("0123abcd", "é€", "ab\x00", "\ud800")] == [
        False,
        False,
        True,
        True,
    ]


def test_params_must_be_an_object():
    with pytest.raises(InvalidRequest) as caught:
        validate_generation(dict(GOOD, params=[1]))
    assert caught.value.fields == {"params": "Must be a JSON object."}


def test_sizes_over_the_limits_are_413():
    with pytest.raises(PayloadTooLarge, match="prompt"):
        validate_generation(dict(GOOD, prompt="x" * 11), Limits(max_prompt_chars=10))
    with pytest.raises(PayloadTooLarge, match="params"):
        validate_generation(dict(GOOD, params={"system": "y" * 100}), Limits(max_params_bytes=50))


@pytest.mark.parametrize("raw", [b"", b"[1]", b"{bad", b"\xff", b"null", b"1", b'"x"', b"{}x"])
def test_body_must_be_a_json_object(raw):
    with pytest.raises(InvalidRequest) as caught:
        validation.parse_json_object(raw)
    assert list(caught.value.fields) == ["body"]


GOOD_JSON = '{"backend":"external","model":"m","prompt":"hi","params":%s}'

# Each input answered 500 before (RecursionError, NUL/surrogate refused by PostgreSQL or by the answer
# encoder, NaN stored as invalid JSON) or was taken although it is not JSON. {field: words of the message}
HOSTILE_BODIES = {
    "deep params": (GOOD_JSON % ("[" * 1000 + "]" * 1000), {"body": "Nested"}),
    "deep, parsed": (GOOD_JSON % ("[" * 40 + "]" * 40), {"params": "Nested more than 16"}),
    "deep unknown field": ('{"x":' + "[" * 5000 + "]" * 5000 + "}", {"body": "Nested"}),
    "NUL in model": ('{"backend":"external","model":"m\\u0000","prompt":"hi"}', {"model": "NUL"}),
    "NUL in prompt": ('{"backend":"external","model":"m","prompt":"h\\u0000i"}', {"prompt": "NUL"}),
    "NUL in a params key": (GOOD_JSON % '{"sys\\u0000tem":"x"}', {"params": "A key here: must not"}),
    "NUL in a params value": (GOOD_JSON % '{"system":"x\\u0000"}', {"params.system": "NUL"}),
    "NUL deep in a list": (GOOD_JSON % '{"stop":["a","\\u0000"]}', {"params.stop.1": "NUL"}),
    "high surrogate": ('{"backend":"external","model":"m","prompt":"\\ud800"}', {"prompt": "surrogate"}),
    "low surrogate": ('{"backend":"external","model":"\\udc00","prompt":"hi"}', {"model": "surrogate"}),
    "surrogate key": ('{"backend":"external","model":"m","prompt":"hi","\\ud800":1}', {"body": "A key"}),
    "NaN": (GOOD_JSON % '{"temperature":NaN}', {"params.temperature": "finite"}),
    "Infinity": (GOOD_JSON % '{"temperature":Infinity}', {"params.temperature": "finite"}),
    "-Infinity": (GOOD_JSON % '{"seed":-Infinity}', {"params.seed": "finite"}),
    "1e400 (a float overflow)": (GOOD_JSON % '{"temperature":1e400}', {"params.temperature": "finite"}),
    "5000 digits": (GOOD_JSON % ('{"seed":' + "9" * 5000 + "}"), {"params.seed": "between"}),
    "2**53": (GOOD_JSON % ('{"seed":' + str(2**53) + "}"), {"params.seed": "between"}),
    "duplicate key": (
        '{"backend":"external","model":"m","prompt":"a","prompt":"b"}',
        {"prompt": "more than once"},
    ),
}


@pytest.mark.parametrize("name", HOSTILE_BODIES)
def test_hostile_json_is_refused_field_by_field(name):
    text, expected = HOSTILE_BODIES[name]
    with pytest.raises(InvalidRequest) as caught:
        validation.parse_json_object(text.encode("utf-8"))
    fields = caught.value.fields
    assert sorted(fields) == sorted(expected), fields
    for where, words in expected.items():
        assert words in fields[where]
        # the answer itself must be encodable (a surrogate in it was a 500 of its own)
        (where + fields[where]).encode("utf-8")


def test_largest_exact_integers_and_a_bom_are_fine():
    body = validation.parse_json_object(
        ("\ufeff" + GOOD_JSON % ('{"seed":' + str(2**53 - 1) + ',"temperature":1.5e0}')).encode()
    )
    assert body["params"] == {"seed": 2**53 - 1, "temperature": 1.5}
    assert validation.parse_json_object(b'{"seed":-9007199254740991}') == {"seed": -(2**53 - 1)}
    # a surrogate pair written as escapes is one valid character
    assert validation.parse_json_object(b'{"prompt":"\\ud83d\\ude00"}') == {"prompt": "\U0001f600"}


@pytest.mark.parametrize("written", ["1000.0", "1e3", "1E3", "true"])
def test_an_integer_param_written_with_a_fraction_or_an_exponent_is_refused(written):
    # JSON Schema counts 1000.0 as an integer; it would reach the provider as a float
    body = validation.parse_json_object((GOOD_JSON % ('{"max_tokens":' + written + "}")).encode())
    with pytest.raises(InvalidRequest) as caught:
        validate_generation(body)
    assert "integer" in caught.value.fields["params.max_tokens"]
    assert validate_generation(dict(GOOD, params={"max_tokens": 1000, "temperature": 1})).params == {
        "max_tokens": 1000,
        "temperature": 1,  # a number may be written either way
    }


@pytest.mark.parametrize(
    "raw",
    [b'{"prompt":"\xed\xa0\x80"}', b'{"prompt":"\xff"}', '{"prompt":"x"}'.encode("utf-16")],
    ids=["utf-8 encoded surrogate", "invalid byte", "utf-16"],
)
def test_only_utf8_is_read(raw):
    with pytest.raises(InvalidRequest) as caught:
        validation.parse_json_object(raw)
    assert "UTF-8" in caught.value.fields["body"]


def test_idempotency_key():
    assert validation.idempotency_key([]) is None
    assert validation.idempotency_key(["order-42"]) == "order-42"
    for bad in ([""], ["with space"], ["é"], ["x" * 256], ["a\x00"], ["a", "b"]):
        with pytest.raises(InvalidRequest) as caught:
            validation.idempotency_key(bad)
        assert list(caught.value.fields) == ["Idempotency-Key"]


@pytest.mark.parametrize(
    "values",
    [
        ["abc"],
        [""],
        ["1_0"],
        ["+5"],
        [" 5"],
        ["5 "],
        ["\u0663"],
        ["1e2"],
        ["9" * 5000],
        ["0"],
        ["101"],
        ["5", "6"],
    ],
)
def test_query_integer_refuses_what_int_would_bend(values):
    with pytest.raises(InvalidRequest) as caught:
        validation.query_integer("limit", values, 20, 1, 100)
    assert "between 1 and 100" in caught.value.fields["limit"] or "once" in caught.value.fields["limit"]


def test_query_integer_and_choice():
    assert validation.query_integer("limit", [], 20, 1, 100) == 20
    assert validation.query_integer("limit", ["100"], 20, 1, 100) == 100
    assert validation.query_integer("offset", ["-1"], 0, -5, 5) == -1
    assert validation.query_choice("status", [], ("queued", "failed")) is None
    assert validation.query_choice("status", ["failed"], ("queued", "failed")) == "failed"
    for bad in ([""], ["Failed"], ["queued", "failed"], ["queued\x00"]):
        with pytest.raises(InvalidRequest) as caught:
            validation.query_choice("status", bad, ("queued", "failed"))
        assert "queued, failed" in caught.value.fields["status"]


def test_price_counts_images():
    assert pricing.request_price(5, "image", {"n": 3}) == 15
    assert pricing.request_price(5, "text", {"n": 3}) == 5
    assert pricing.request_price(5, "image", {}) == 5
