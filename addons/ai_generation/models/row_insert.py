# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""One INSERT for the rows every POST and callback writes: the request, its ledger lines, the callback's
event and the Idempotency-Key's answer.

The ORM's ``create`` spent a fifth of a POST's CPU on what these rows never need: defaults looked up
field by field, access rules for a superuser, Python constraints (these models have none: their rules
are SQL constraints and unique indexes, which PostgreSQL still enforces) and the recomputation of stored
fields whose values the caller already knows. The caller gives every stored value the ORM would have
written (tests/test_stored_values.py compares each with an ORM-created row); what it leaves out is NULL,
as a field without a default is after ``create``. The new record is put in the cache as ``create``
puts it, so reading it back costs no query.
"""

import functools

from odoo.tools import SQL

NOW_UTC = "(now() at time zone 'UTC')"  # the transaction's time, as the ORM's cr.now()


@functools.lru_cache(maxsize=64)
def insert_statement(table, names, derived=(), unless_taken=None):
    """The INSERT of ``names`` and the log-access columns into ``table``, built once: composing Odoo's
    SQL objects column by column costs more than the statement's round trip.

    With ``derived`` ((column, expression), ...), those columns come from the expressions instead, over
    the relation they name: ``INSERT ... SELECT ... FROM`` it, one row per row it holds (a statement's
    ``WITH`` gives it; see ``insert_row_from``).

    A caller that stamps the row itself gives ``create_date`` and ``write_date`` in ``names``; otherwise
    both are the transaction's time. With ``unless_taken`` (a column of a unique index), a row whose
    value another transaction holds is not inserted: the statement returns no row instead of raising
    (after waiting for that transaction, as the unique index makes it)."""
    columns = names + tuple(column for column, _expression in derived)
    dated = "create_date" in names
    head = SQL(
        "INSERT INTO %s (%s, create_uid, write_uid%s)",
        SQL.identifier(table),
        SQL(", ").join(map(SQL.identifier, columns)),
        SQL("" if dated else ", create_date, write_date"),
    ).code  # identifiers only: no placeholder yet
    given = ["%s"] * len(names)
    # create_uid and write_uid: the last two values
    log_access = "%s, %s" if dated else f"%s, %s, {NOW_UTC}, {NOW_UTC}"
    if not derived:
        conflict = f" ON CONFLICT ({unless_taken}) DO NOTHING" if unless_taken else ""
        return f"{head} VALUES ({', '.join([*given, log_access])}){conflict} RETURNING id, create_date"
    expressions = [expression for _column, expression in derived]
    sources = sorted({expression.split(".")[0] for expression in expressions})
    returned = ", ".join(["id", "create_date", *(column for column, _expression in derived)])
    # names and expressions are this addon's own constants, never a client's input
    return (
        f"{head} SELECT {', '.join([*given, *expressions, log_access])} FROM {', '.join(sources)}"  # noqa: S608
        f" RETURNING {returned}"
    )


def insert_sql(model, values, unless_taken=None):
    """(statement, parameters) of the INSERT ``insert_row`` sends, for a caller that sends it together
    with other statements (``before`` of ``insert_row_from``; ``values`` then gives the id too), or
    alone: see ``insert_statement`` for ``unless_taken``."""
    uid = model.env.uid
    statement = insert_statement(model._table, tuple(values), unless_taken=unless_taken)
    return statement, [*_column_params(model, values), uid, uid]


def _column_params(model, values):
    fields_ = model._fields
    return [fields_[name].convert_to_column_insert(values[name], model, values) for name in values]


def send_together(cr, statements):
    """Send ``statements`` ([(statement, parameters)]) in one round trip; the last one's first row.

    psycopg2 fills the placeholders on the client, so several statements go as one query string; each
    runs in the current transaction, and an error in one fails them all (the transaction is then rolled
    back). Under load every round trip makes the thread wait for the GIL, and the rows locked so far
    stay locked meanwhile."""
    if not statements:
        return None
    cr.execute(
        "; ".join(sql for sql, _params in statements), [p for _sql, params in statements for p in params]
    )
    return cr.fetchone() if cr.description else None


def insert_row_from(model, values, with_clause, with_params, derived, before=()):
    """One statement: ``with_clause`` (``WITH name AS (...)``, its placeholders filled by
    ``with_params``), then the INSERT of ``values`` and of the ``derived`` columns read from what it
    returned; sent after the ``before`` statements, in the same round trip (``send_together``). The new
    row's (id, create_date, *derived columns), or None when the WITH returned no row (nothing
    inserted). The row is not cached: its caller does not read it back."""
    statement = insert_statement(model._table, tuple(values), tuple(derived))
    uid = model.env.uid
    params = [*with_params, *_column_params(model, values), uid, uid]
    return send_together(model.env.cr, [*before, (f"{with_clause} {statement}", params)])


def insert_row(model, values, cached=True):
    """INSERT one row of ``model`` with ``values`` ({stored field: value in write format}) and the
    log-access columns; return the new record with every stored column in the cache (``cached``), or
    with nothing cached for a row its caller does not read back (a ledger line, an event).

    For this addon's own writes only, on the superuser's behalf: no access rule is checked. Fields
    that depend on the new row (one2many of its parents, their computed fields) are not updated: the
    caller invalidates them, so they are read again from the database.
    """
    new_id, created = send_together(model.env.cr, [insert_sql(model, values)])
    if not cached:
        return model.browse(new_id)
    return cache_new_row(model, new_id, values, created)


def cache_new_row(model, new_id, values, created):
    """The record ``new_id`` of ``model``, just inserted with ``values`` at ``created`` (its
    create_date), with every stored column in the cache as ``create`` leaves it."""
    record = model.browse(new_id)
    uid = model.env.uid
    given = dict(values, create_uid=uid, write_uid=uid, create_date=created, write_date=created)
    cache = model.env.cache
    for name, field in model._fields.items():
        if not field.store or not field.column_type or name == "id":
            continue
        if name in given:
            cache.set(record, field, field.convert_to_cache(given[name], record))
        elif not field.compute:
            cache.set(record, field, field.convert_to_cache(None, record))
    return record
