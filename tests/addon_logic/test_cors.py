"""The CORS allow-list of the public API (addons/ai_generation/pure/cors.py)."""

import pytest
from aigen_pure import cors


def test_origins_are_normalized_as_browsers_send_them():
    assert cors.parse_origins("HTTPS://App.Example.com:443/ http://localhost:5173,http://localhost:5173") == [
        "https://app.example.com",
        "http://localhost:5173",
    ]
    assert cors.parse_origins("http://[::1]:8080") == ["http://[::1]:8080"]
    assert cors.parse_origins("") == []


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "app.example.com",
        "ftp://example.com",
        "https://example.com/app",
        "https://u:p@example.com",
        "https://example.com?x=1",
        "https://example.com:99999",
        "null",
    ],
)
def test_what_is_not_an_origin_is_refused_with_its_name(entry):
    with pytest.raises(cors.InvalidOrigin, match="not"):
        cors.parse_origins(f"https://ok.example.com {entry}")


def test_only_listed_origins_are_allowed_and_bad_stored_entries_are_skipped():
    allowed = cors.allowed_origins("https://app.example.com\nnot-an-origin\nhttp://localhost:5173")
    assert allowed == {"https://app.example.com", "http://localhost:5173"}
    assert cors.is_allowed("https://app.example.com", allowed)
    assert cors.is_allowed("https://APP.example.com:443", allowed)
    for origin in (
        "https://evil.example.com",
        "http://app.example.com",
        "null",
        "",
        None,
        "http://localhost:5174",
    ):
        assert not cors.is_allowed(origin, allowed)


def test_headers_never_allow_credentials():
    headers = cors.preflight_headers("https://app.example.com")
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Idempotency-Key" in headers["Access-Control-Allow-Headers"]
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    assert "Location" in headers["Access-Control-Expose-Headers"]
    assert headers["Vary"] == "Origin"
    assert not any("credentials" in name.lower() for name in headers)
