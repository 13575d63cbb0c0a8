"""The log filter keeps the addon's data out of Odoo's "bad query" lines and tracebacks.

Records are shaped as odoo/sql_db.py and odoo/http.py log them; the real thing (a refused INSERT in a
real Odoo) is tests/odoo/test_api_hostile_input.py.
"""

import io
import logging
from types import SimpleNamespace

import pytest
from aigen_pure import log_redaction

PROMPT = "my secret prompt about the merger"
INSERT = (
    b'INSERT INTO "ai_generation_request" ("ai_model", "params", "prompt") VALUES '
    b"('gpt-test', '{\"system\": \"x\\u0000\"}', '" + PROMPT.encode() + b'\') RETURNING "id"'
)
ERROR_TEXT = (
    "unsupported Unicode escape sequence\nLINE 1: ...', '" + PROMPT + "'\n"
    "DETAIL:  Failing row contains (" + PROMPT + ").\nCONTEXT:  JSON data, line 1: {...\n"
)


class FakeDataError(Exception):
    """Like psycopg2.Error: the cursor it came from, whose ``query`` is the statement sent."""

    def __init__(self, message, query):
        super().__init__(message)
        self.cursor = SimpleNamespace(query=query)


@pytest.fixture
def capture():
    """A logger with the filter, printing through a plain handler; yields (logger, read())."""
    name = "test.redaction"
    logger = logging.getLogger(name)
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    log_redaction.install([name])
    log_redaction.install([name])  # twice: still one filter
    assert sum(isinstance(f, log_redaction.RedactAddonQueries) for f in logger.filters) == 1
    yield logger, stream.getvalue
    logger.removeHandler(handler)
    logger.filters.clear()


def test_bad_query_line_keeps_the_error_but_not_the_data(capture):
    logger, read = capture
    logger.error("bad query: %s\nERROR: %s", INSERT, FakeDataError(ERROR_TEXT, INSERT))
    text = read()
    assert PROMPT not in text and "x\\u0000" not in text
    assert "ERROR test.redaction: bad query: INSERT ai_generation_request" in text
    assert "unsupported Unicode escape sequence" in text


def test_a_template_query_of_the_addon_is_redacted_too(capture):
    # psycopg2 refuses a NUL before sending: Odoo logs the query template and a ValueError
    logger, read = capture
    template = 'SELECT "ai_generation_price"."id" FROM "ai_generation_price" WHERE "model_name" = %s'
    logger.error("bad query: %s\nERROR: %s", template, ValueError("A string literal cannot contain NUL"))
    assert "bad query: SELECT ai_generation_price (query text" in read()


def test_other_tables_and_debug_lines_are_left_alone(capture):
    logger, read = capture
    other = b"INSERT INTO res_partner (name) VALUES ('Jane')"
    logger.error("bad query: %s\nERROR: %s", other, FakeDataError("boom\nDETAIL: x", other))
    logger.debug("[1.000 ms] query: %s", INSERT.decode())
    logger.setLevel(logging.DEBUG)
    logger.debug("[1.000 ms] query: %s", INSERT.decode())
    text = read()
    assert "VALUES ('Jane')" in text and "DETAIL: x" in text
    assert text.count(PROMPT) == 1  # DEBUG may show the data, as Odoo's --log-sql does
    logger.setLevel(logging.NOTSET)


def test_traceback_of_a_refused_statement_keeps_its_frames_not_the_row(capture):
    logger, read = capture
    try:
        try:
            raise FakeDataError(ERROR_TEXT, INSERT)
        except FakeDataError as exc:
            raise RuntimeError("request failed") from exc
    except RuntimeError:
        logger.error("Exception during request handling.", exc_info=True)
    text = read()
    assert PROMPT not in text
    assert "Traceback (most recent call last)" in text
    assert "FakeDataError: unsupported Unicode escape sequence [details redacted" in text
    assert "RuntimeError: request failed" in text


def test_traceback_after_a_savepoint_rollback_is_still_redacted(capture):
    # Odoo rolls the savepoint back on the same cursor: its query is no longer the refused INSERT
    logger, read = capture
    error = FakeDataError(ERROR_TEXT, INSERT)
    logger.error("bad query: %s\nERROR: %s", INSERT, error)
    error.cursor.query = b'ROLLBACK TO SAVEPOINT "abc"'
    try:
        raise error
    except FakeDataError:
        logger.error("Exception during request handling.", exc_info=True)
    text = read()
    assert PROMPT not in text
    assert text.count("[details redacted") == 2


def test_a_traceback_unrelated_to_the_addon_is_untouched(capture):
    logger, read = capture
    try:
        raise FakeDataError("boom\nDETAIL:  Key (login)=(jane) exists.", b"INSERT INTO res_users")
    except FakeDataError:
        logger.exception("failed")
    assert "Key (login)=(jane) exists." in read()


def test_redacted_query_names_kind_and_tables():
    query = b"/* x */ UPDATE \"ai_generation_request\" SET prompt = 'p' FROM ai_credit_account WHERE 1"
    assert log_redaction.redacted_query(query) == (
        "UPDATE ai_generation_request, ai_credit_account (query text and parameters redacted)"
    )
    assert log_redaction.addon_tables(None) == []
    assert log_redaction.addon_tables(memoryview(b"select 1 from ai_generation_event")) == [
        "ai_generation_event"
    ]
