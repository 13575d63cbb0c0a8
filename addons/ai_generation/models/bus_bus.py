# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
import odoo
import psycopg2
from odoo import models, sql_db
from odoo.addons.bus.models.bus import ODOO_NOTIFY_FUNCTION, get_notify_payloads
from odoo.tools import SQL
from odoo.tools.misc import OrderedSet
from psycopg2 import sql as pgsql

from ..pure.bus_notifier import bus_notifier
from .transactions import may_commit_apart

_CHANNELS_KEY = "bus.bus.channels"  # the key bus.bus keeps the channels to wake under (postcommit data)
_VALUES_KEY = "bus.bus.values"  # and the rows to insert before the commit (precommit data)
_NOTIFY = pgsql.SQL("SELECT {}('imbus', %s)").format(pgsql.Identifier(ODOO_NOTIFY_FUNCTION))


# a server that stops answering without closing the socket must not hold the wake-ups for long
_KEEPALIVE = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10}


def _connect():
    _name, info = sql_db.connection_info_for("postgres")
    connection = psycopg2.connect(**{**_KEEPALIVE, **info})
    connection.autocommit = True
    return connection


def _notify(cursor, payload):
    cursor.execute(_NOTIFY, (payload,))


class BusBus(models.Model):
    _inherit = "bus.bus"

    def _ensure_hooks(self):
        """The bus's hooks, with the post-commit NOTIFY sent by this process's notifier thread over one
        kept connection (pure/bus_notifier.py) instead of a new connection per transaction.

        Registering the channels key first makes bus.bus add only its pre-commit hook (it adds its own
        NOTIFY only when the key is missing); registering the values key first does the same for the
        pre-commit create of the rows, which becomes one INSERT. Tests, installs and the gevent
        (websocket) process keep Odoo's own NOTIFY; tests and installs keep its create.
        """
        cr = self.env.cr
        if _VALUES_KEY not in cr.precommit.data and may_commit_apart(self.env.registry):
            rows = cr.precommit.data[_VALUES_KEY] = []
            uid = self.env.uid

            @cr.precommit.add
            def insert_messages():
                # one INSERT: the ORM's create of these two-column rows was 7% of a POST's CPU
                values = cr.precommit.data.pop(_VALUES_KEY, rows)
                if values:
                    cr.execute(_insert_messages(values, uid))

        if (
            _CHANNELS_KEY not in cr.postcommit.data
            and not odoo.evented
            and may_commit_apart(self.env.registry)
        ):
            channels = cr.postcommit.data[_CHANNELS_KEY] = OrderedSet()

            @cr.postcommit.add
            def notify():
                woken = list(cr.postcommit.data.pop(_CHANNELS_KEY, channels))
                if woken and not bus_notifier(_connect, get_notify_payloads, _notify).submit(woken):
                    _notify_now(woken)  # the notifier is swamped: the bus's own way, this once

        return super()._ensure_hooks()


def _insert_messages(values, uid):
    now = SQL("(now() at time zone 'UTC')")
    return SQL(
        "INSERT INTO bus_bus (channel, message, create_uid, write_uid, create_date, write_date) VALUES %s",
        SQL(", ").join(
            SQL("(%s, %s, %s, %s, %s, %s)", v["channel"], v["message"], uid, uid, now, now) for v in values
        ),
    )


def _notify_now(channels):
    with sql_db.db_connect("postgres").cursor() as cr:
        for payload in get_notify_payloads(channels):
            cr.execute(SQL("SELECT %s('imbus', %s)", SQL.identifier(ODOO_NOTIFY_FUNCTION), payload))
