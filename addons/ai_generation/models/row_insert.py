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
def insert_statement(table, names):
    """The INSERT of ``names`` and the log-access columns into ``table``, built once: composing Odoo's
    SQL objects column by column costs more than the statement's round trip."""
    head = SQL(
        "INSERT INTO %s (%s, create_uid, write_uid, create_date, write_date)",
        SQL.identifier(table),
        SQL(", ").join(map(SQL.identifier, names)),
    ).code  # identifiers only: no placeholder yet
    placeholders = ", ".join(["%s"] * (len(names) + 2))  # the values, then create_uid and write_uid
    return f"{head} VALUES ({placeholders}, {NOW_UTC}, {NOW_UTC}) RETURNING id, create_date"


def insert_row(model, values, cached=True):
    """INSERT one row of ``model`` with ``values`` ({stored field: value in write format}) and the
    log-access columns; return the new record with every stored column in the cache (``cached``), or
    with nothing cached for a row its caller does not read back (a ledger line, an event).

    For this addon's own writes only, on the superuser's behalf: no access rule is checked. Fields
    that depend on the new row (one2many of its parents, their computed fields) are not updated: the
    caller invalidates them, so they are read again from the database.
    """
    fields_ = model._fields
    names = tuple(values)
    params = [fields_[name].convert_to_column_insert(values[name], model, values) for name in names]
    uid = model.env.uid
    model.env.cr.execute(insert_statement(model._table, names), [*params, uid, uid])
    new_id, created = model.env.cr.fetchone()
    record = model.browse(new_id)
    if not cached:
        return record
    given = dict(values, create_uid=uid, write_uid=uid, create_date=created, write_date=created)
    cache = model.env.cache
    for name, field in fields_.items():
        if not field.store or not field.column_type or name == "id":
            continue
        if name in given:
            cache.set(record, field, field.convert_to_cache(given[name], record))
        elif not field.compute:
            cache.set(record, field, field.convert_to_cache(None, record))
    return record
