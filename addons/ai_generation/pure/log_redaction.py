"""Keeps prompts out of Odoo's own error log lines (a logging filter; nothing here imports odoo).

When PostgreSQL refuses a statement, ``odoo.sql_db`` logs ``bad query: <query> ERROR: <error>`` at
ERROR, the query with every parameter interpolated (a prompt, the params, a result), and the request
handler logs the traceback, whose psycopg2 message quotes the row again (``LINE 1: ...``, ``DETAIL:
Failing row contains (...)``, ``CONTEXT: JSON data ...``). For statements on this addon's tables the
filter keeps the line and the error's first line but drops the data: the statement kind and the tables
stay, so the line still says what failed. The full query stays available at DEBUG (``query:`` lines).
"""

import contextlib
import logging
import re
import traceback

# The loggers that print a failed query or its exception: the cursor, the HTTP request handler and the
# cron runner (a cron's exception carries the same psycopg2 message).
LOGGERS = ("odoo.sql_db", "odoo.http", "odoo.addons.base.models.ir_cron")
ADDON_TABLE_RE = re.compile(r"\b(ai_generation_\w+|ai_credit_\w+)\b")
STATEMENT_RE = re.compile(r"\s*(?:/\*.*?\*/\s*)*(\w+)", re.DOTALL)
REDACTED = "[details redacted: a statement on the ai_generation tables; its data stays out of the logs]"
# Set on an exception whose "bad query" line was redacted: its traceback, logged later, is redacted too.
# (The cursor's own ``query`` is no proof by then: a savepoint rollback has replaced it.)
MARK = "_ai_generation_redacted"


def _text(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def addon_tables(query):
    """The addon's tables a query names, in order of appearance (empty: not the addon's business)."""
    text = _text(query)
    if not text:
        return []
    return list(dict.fromkeys(ADDON_TABLE_RE.findall(text)))


def redacted_query(query):
    """``INSERT ai_generation_request [...]``: the statement kind and the tables, no parameters."""
    text = _text(query) or ""
    match = STATEMENT_RE.match(text)
    kind = match.group(1).upper() if match else "QUERY"
    return f"{kind} {', '.join(addon_tables(text))} (query text and parameters redacted)"


def first_line(error):
    """The error's first line: what PostgreSQL refused, without the quoted row (LINE/DETAIL/CONTEXT)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _touches_addon_tables(error):
    """Whether ``error`` came from a statement on the addon's tables (marked, or its cursor says so)."""
    if getattr(error, MARK, False):
        return True
    cursor = getattr(error, "cursor", None)
    return cursor is not None and bool(addon_tables(getattr(cursor, "query", None)))


def _exception_chain(error):
    seen = []
    while error is not None and all(error is not other for other in seen):
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


class RedactAddonQueries(logging.Filter):
    """Rewrites (never drops) a record that would print data of the addon's tables."""

    def filter(self, record):
        if record.levelno <= logging.DEBUG:
            return True
        if isinstance(record.msg, str) and record.msg.startswith("bad query:"):
            self._redact_bad_query(record)
        if record.exc_info and record.exc_info[1] is not None:
            self._redact_exception(record)
        return True

    @staticmethod
    def _redact_bad_query(record):
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 2 and addon_tables(args[0]):
            query, error = args
            record.args = (redacted_query(query), f"{first_line(error)} {REDACTED}")
            with contextlib.suppress(AttributeError, TypeError):  # a type without attributes of its own
                setattr(error, MARK, True)

    @staticmethod
    def _redact_exception(record):
        exc_type, exc, tb = record.exc_info
        touched = [e for e in _exception_chain(exc) if _touches_addon_tables(e)]
        if not touched:
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n")
        for error in touched:
            message = str(error).strip()  # psycopg2's ends with a newline the traceback may not
            if message:
                text = text.replace(message, f"{first_line(error)} {REDACTED}")
        # Formatters print exc_text when set: the traceback is kept, the quoted row is not.
        record.exc_text = text


def install(loggers=LOGGERS):
    """Adds the filter to each logger once (safe to call on every import of the addon)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactAddonQueries) for f in logger.filters):
            logger.addFilter(RedactAddonQueries())
