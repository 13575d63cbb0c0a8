# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""What Odoo's own RPC opens on this addon, found by enumeration rather than by a list of known holes.

Every model the addon defines or extends, every field it adds and every public method it defines is
taken from the registry, so a field or method added later is covered without touching this file. As a
portal user, a plain internal user and an AI Generation manager (none of them a system administrator),
through what /web/dataset/call_kw and /jsonrpc run (``check_method_name`` then ``odoo.api.call_kw``):

- nothing secret is read: neither the worker secret nor its digest, neither the AMQP URL with its
  password nor the Alertmanager URL, and no field whose groups the user lacks;
- nothing money- or state-bearing changes through write, web_save, create, copy or unlink: the rows of
  every table of the addon's models, its company columns and its parameters are compared before and
  after each call (managers change prices and fill the credit wizard by design);
- every public method is an action that refuses users outside the manager group, or an ORM method the
  surfaces above already call.
"""

import inspect
import json
import re
from pathlib import Path

import psycopg2
from odoo import Command, api
from odoo.exceptions import UserError
from odoo.models import check_method_name, regex_private
from odoo.sql_db import SQL
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..models.res_config_settings import SECRET_PARAM
from .common import AiGenerationCase, AiGenerationMixin, closed_port

ADDON = "ai_generation"
ADDON_PACKAGE = f"odoo.addons.{ADDON}."
ADDON_DIR = Path(__file__).resolve().parents[1]
MAGIC_FIELDS = {"id", "display_name", "create_uid", "create_date", "write_uid", "write_date"}

PLAIN_SECRET = "rpc-surface-worker-secret-5d1f0c9e7b2a4f68"
AMQP_PASSWORD = "amqp-pw-rpc-surface-3e7a"
ALERTMANAGER_MARK = "am-rpc-surface-91c4"
DETAIL_MARK = "detail-rpc-surface-6b2e"  # in error_detail: for managers only
SECRET_SETTINGS = {"ai_worker_secret", "ai_amqp_url", "ai_alertmanager_url"}
ACCESS_ERROR = "odoo.exceptions.AccessError"

# what managers change by design: prices, and the credit wizard (it collects numbers; the ledger posts)
MANAGERS_TABLES = {"ai_generation_price", "ai_credit_operation_wizard"}
# the public methods meant to be called over RPC, with the arguments after the ids; non-managers are refused
ACTIONS = {
    ("ai.generation.request", "action_cancel"): lambda t: ([t["running"].id],),
    ("ai.generation.request", "action_refund"): lambda t: ([t["succeeded"].id], 1, "rpc refund"),
    ("ai.credit.account", "action_grant"): lambda t: ([t["account"].id], 100, "rpc grant"),
    ("ai.credit.account", "action_adjust"): lambda t: ([t["account"].id], 100, "rpc adjust"),
    ("ai.credit.operation.wizard", "action_apply"): lambda t: ([t["wizard"].id],),
}
# ORM methods the addon may override: the read and write surfaces below call each of them
ORM_METHODS = {"create", "write", "unlink", "copy", "default_get", "read", "web_read", "web_save", "onchange"}
GROUPABLE = {"char", "selection", "integer", "float", "monetary", "boolean", "many2one", "date", "datetime"}
SKIP = object()


def attack_context():
    """Every context key the addon's code reads, set as an RPC caller can set it (JSON values only)."""
    keys = set()
    for path in ADDON_DIR.rglob("*.py"):
        if "tests" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        keys.update(re.findall(r"context\.get\(\s*[\"'](\w+)[\"']", text))
        keys.update(re.findall(r"_KEY\s*=\s*[\"'](\w+)[\"']", text))
    return dict.fromkeys(sorted(keys), True)


class _Undo(Exception):
    """Not an error: it carries what a call changed out of the savepoint that undoes it."""


class RpcSurfaceMixin(AiGenerationMixin):
    """The addon's models and fields, the fixtures they are attacked on, and one RPC call."""

    def _setup_surface(self):
        self.portal = new_test_user(self.env, login="ai_rpc_portal", groups="base.group_portal")
        self.admin = self.env.ref("base.user_admin")
        params = self.env["ir.config_parameter"].sudo()
        params.set_param(SECRET_PARAM, PLAIN_SECRET)
        params.set_param(
            "ai_generation.amqp_url", f"amqp://aigen:{AMQP_PASSWORD}@127.0.0.1:{closed_port()}/%2F"
        )
        params.set_param(
            "ai_generation.alertmanager_url", f"http://127.0.0.1:{closed_port()}/{ALERTMANAGER_MARK}"
        )
        self.digest = params.get_param(SECRET_PARAM)
        self.needles = {
            "worker secret": PLAIN_SECRET,
            "worker secret digest": self.digest,
            "AMQP password": AMQP_PASSWORD,
            "Alertmanager URL": ALERTMANAGER_MARK,
        }

    # ------------------------------------------------------------------ the addon's surface
    def addon_models(self):
        """{model name: fields in scope}: all fields of the addon's own models, the added ones elsewhere."""
        scope = {}
        for name in sorted(self.env.registry):
            model = self.env[name]
            if not any(cls.__module__.startswith(ADDON_PACKAGE) for cls in type(model).__mro__):
                continue
            own = model._original_module == ADDON
            scope[name] = {
                f for f, field in model._fields.items() if own or ADDON in field._modules
            } - MAGIC_FIELDS
        # the parameters hold the secret and the URLs: the model is on the surface with all its fields
        scope["ir.config_parameter"] = set(self.env["ir.config_parameter"]._fields) - MAGIC_FIELDS
        return scope

    def record_models(self):
        return {m: f for m, f in self.addon_models().items() if not self.env[m]._abstract}

    def protected_tables(self, user):
        tables = {
            self.env[m]._table
            for m in self.record_models()
            if self.env[m]._auto and self.env[m]._original_module == ADDON
        }
        return tables - MANAGERS_TABLES if self.is_manager(user) else tables

    def is_manager(self, user):
        return user.has_group("ai_generation.group_ai_generation_manager")

    # ------------------------------------------------------------------ fixtures
    def _setup_targets(self):
        self.grant(self.alice, 100)
        running = self.new_request(self.alice, prompt="rpc-surface running")
        self.callback("progress", running, state="running", attempt=1)
        succeeded = self.new_request(self.alice, prompt="rpc-surface succeeded")
        self.callback("result", succeeded, output="done")
        failed = self.new_request(self.alice, prompt="rpc-surface failed")
        self.callback(
            "failure", failed, **dict(self.failure_payload("provider_unavailable"), detail=DETAIL_MARK)
        )
        self.env["ai.generation.request"]._api_create(
            self.alice,
            self._generation_input("rpc-surface idempotent"),
            idempotency_key="rpc-surface-key",
            body_hash="rpc-surface-hash",
        )
        self.env["ai.generation.alert"].sudo().create(
            {"fingerprint": '{"alertname": "rpc"}', "labels": {"alertname": "rpc"}, "starts_at": "2026-01-01"}
        )
        wizard = (
            self.env["ai.credit.operation.wizard"]
            .with_user(self.manager)
            .create({"operation": "refund", "request_id": succeeded.id, "credits": 1, "reason": "rpc"})
        )
        settings = self.env["res.config.settings"].with_user(self.admin).create({})
        # the addon overrides the API key check (res.users.apikeys, and auth_totp.device inherits it)
        self.env["res.users.apikeys"].with_user(self.alice).sudo()._generate(None, "rpc-surface", None)
        self.env["auth_totp.device"].with_user(self.alice).sudo()._generate("browser", "rpc-surface", None)
        self.env.flush_all()
        self.targets = {
            "running": running,
            "succeeded": succeeded,
            "account": self.account(self.alice),
            "wizard": wizard,
            "ai.generation.request": running,
            "ai.credit.operation.wizard": wizard,
            "res.config.settings": settings,
            "res.company": self.env.company,
            "ir.config_parameter": self.env["ir.config_parameter"]
            .sudo()
            .search([("key", "=", SECRET_PARAM)]),
        }
        for model in self.record_models():
            if model not in self.targets:
                self.targets[model] = self.env[model].sudo().search([], limit=1)
        missing = [m for m in self.record_models() if not self.targets[m]]
        self.assertEqual(missing, [], "every model needs a record to attack")

    def _generation_input(self, prompt):
        from ..pure.validation import GenerationInput

        return GenerationInput(backend="external", model="gpt-test", task="text", prompt=prompt, params={})

    # ------------------------------------------------------------------ calls
    def rpc(self, user, model, method, *args, **kwargs):
        """What /web/dataset/call_kw runs for ``user``."""
        check_method_name(method)
        return api.call_kw(self.env(user=user.id, context={})[model], method, list(args), kwargs)

    def attempt(self, call, observe=None):
        """(refused, result, observed) of ``call``, run in a savepoint that is always rolled back."""
        try:
            with (
                mute_logger("odoo.sql_db", "odoo.models", "odoo.addons.base.models.ir_model"),
                self.env.cr.savepoint(),
            ):
                result = call()
                self.env.flush_all()
                raise _Undo(result, observe() if observe else None)
        except _Undo as undo:
            return False, undo.args[0], undo.args[1]
        except (UserError, psycopg2.Error) as exc:  # AccessError, ValidationError, MissingError; the database
            return True, exc, None

    def fingerprint(self, tables):
        """The rows of ``tables`` (write_date/write_uid aside), the addon's company columns and parameters."""
        cr = self.env.cr
        self.env.flush_all()
        state = {}
        for table in sorted(tables):
            cr.execute(
                SQL(
                    "SELECT count(*), md5(coalesce(string_agg("
                    "(to_jsonb(t) - 'write_date' - 'write_uid')::text, ',' ORDER BY t.id), '')) FROM %s t",
                    SQL.identifier(table),
                )
            )
            state[table] = cr.fetchone()
        Company = self.env["res.company"]
        columns = sorted(f for f in self.addon_models()["res.company"] if Company._fields[f].column_type)
        cr.execute(
            SQL("SELECT id, %s FROM res_company ORDER BY id", SQL(", ").join(map(SQL.identifier, columns)))
        )
        state["res_company"] = cr.fetchall()
        cr.execute(
            "SELECT key, value FROM ir_config_parameter WHERE key LIKE 'ai\\_generation.%' ORDER BY key"
        )
        state["ir_config_parameter"] = cr.fetchall()
        return state

    def changes(self, call, user, before=None):
        """Tables ``call`` changed (empty when refused or harmless) and whether it was refused."""
        tables = self.protected_tables(user)
        before = before or self.fingerprint(tables)
        refused, _result, after = self.attempt(call, lambda: self.fingerprint(tables))
        if refused:
            return [], True
        return sorted(t for t in before if before[t] != after[t]), False


@tagged("at_install", "-post_install", ADDON)
class TestRpcSurface(RpcSurfaceMixin, AiGenerationCase):
    maxDiff = None  # a failure lists every call that got through

    def setUp(self):
        super().setUp()
        self._setup_surface()
        self._setup_targets()
        self.users = {"portal": self.portal, "internal": self.alice, "manager": self.manager}

    # ------------------------------------------------------------------ reading
    def read_calls(self, user, model, scope):
        """(name, call) of every read RPC of ``model``; per hidden field, the calls that must refuse it."""
        Model = self.env[model]
        ids = self.targets[model].ids if model in self.targets else []
        _refused, described, _ = self.attempt(lambda: self.rpc(user, model, "fields_get"))
        visible = sorted(scope & set(described)) if isinstance(described, dict) else []
        hidden = sorted(scope - set(visible))
        spec = {f: {} for f in visible}
        full_spec = {f: {} for f in sorted(scope)}
        calls = [
            ("fields_get", lambda: self.rpc(user, model, "fields_get")),
            ("default_get", lambda: self.rpc(user, model, "default_get", sorted(scope))),
        ]
        if Model._abstract:  # no records: what a model answers without any
            return calls, [], visible
        calls += [
            ("onchange", lambda: self.rpc(user, model, "onchange", [], {}, [], full_spec)),
            ("name_search", lambda: self.rpc(user, model, "name_search", "")),
            ("search_read", lambda: self.rpc(user, model, "search_read", [], visible)),
            ("web_search_read", lambda: self.rpc(user, model, "web_search_read", [], spec)),
        ]
        if ids:
            calls += [
                ("read", lambda: self.rpc(user, model, "read", ids, visible)),
                ("web_read", lambda: self.rpc(user, model, "web_read", ids, spec)),
            ]
        if model == "res.config.settings":
            calls.append(("get_values", lambda: self.rpc(user, model, "get_values", ids)))
        if model == "ir.config_parameter":
            for key in ("ai_generation.amqp_url", "ai_generation.alertmanager_url", SECRET_PARAM):
                calls.append((f"get_param {key}", lambda key=key: self.rpc(user, model, "get_param", key)))
        for fname in sorted(scope):
            field = Model._fields[fname]
            if field.store and field.column_type and field.type in GROUPABLE:
                groupby = f"{fname}:day" if field.type in ("date", "datetime") else fname
                calls.append(
                    (
                        f"read_group {fname}",
                        lambda g=groupby: self.rpc(user, model, "read_group", [], [], [g]),
                    )
                )
        must_refuse = []
        for fname in hidden:
            must_refuse += [
                (f"read {fname}", lambda f=fname: self.rpc(user, model, "read", ids, [f])),
                (f"search_read {fname}", lambda f=fname: self.rpc(user, model, "search_read", [], [f])),
                (f"web_read {fname}", lambda f=fname: self.rpc(user, model, "web_read", ids, {f: {}})),
            ]
        return calls, must_refuse, visible

    def read_surface(self, user):
        """{(model, call): text answered} and the calls that answered a field the user may not read."""
        answers, opened = {}, []
        for model, scope in self.addon_models().items():
            calls, must_refuse, visible = self.read_calls(user, model, scope)
            hidden = scope - set(visible)
            for name, call in calls:
                refused, result, _ = self.attempt(call)
                answers[model, name] = "" if refused else json.dumps(result, default=str)
                if not refused and name in ("default_get", "onchange"):
                    answered = result.get("value", {}) if name == "onchange" else result
                    opened += [f"{model} {name} {f}" for f in sorted(hidden & set(answered))]
            for name, call in must_refuse:
                refused, _result, _ = self.attempt(call)
                if not refused:
                    opened.append(f"{model} {name}")
        return answers, opened

    def assertNothingSecretRead(self, user, extra_needles=()):
        answers, opened = self.read_surface(user)
        needles = dict(self.needles, **dict(extra_needles))
        leaks = [
            f"{model} {call}: {what}"
            for (model, call), text in answers.items()
            for what, needle in needles.items()
            if needle in text
        ]
        self.assertEqual(leaks, [], f"{user.login} reads secrets")
        self.assertEqual(opened, [], f"{user.login} reads fields outside their groups")
        for model in ("res.config.settings", "ir.config_parameter"):
            described = answers[model, "fields_get"]
            self.assertFalse(SECRET_SETTINGS & set(json.loads(described or "{}")), f"{model} fields_get")
        return answers

    def test_portal_users_read_no_secret(self):
        answers = self.assertNothingSecretRead(self.portal, {"error detail": DETAIL_MARK})
        # what a portal user (a customer, issue 9) gets: the price list, and of the rest only their own
        # records, of which they have none here; nothing of the settings
        own = [m for m in self.record_models() if self.env[m]._original_module == ADDON]
        own += ["res.config.settings", "ir.config_parameter"]
        answered = sorted(
            f"{m} {call}"
            for m in own
            for call in ("read", "search_read")
            if json.loads(answers[m, call] or "[]")
        )
        self.assertEqual(answered, ["ai.generation.price read", "ai.generation.price search_read"])

    def test_internal_users_read_no_secret(self):
        self.assertNothingSecretRead(self.alice, {"error detail": DETAIL_MARK})

    def test_managers_read_no_secret(self):
        self.assertNothingSecretRead(self.manager)

    def test_administrators_read_the_urls_but_never_the_secret(self):
        """The check above can fail: an administrator's answers hold the URLs, and still never the secret."""
        answers, _opened = self.read_surface(self.admin)
        text = "\n".join(answers.values())
        self.assertIn(AMQP_PASSWORD, answers["res.config.settings", "default_get"])
        self.assertIn(ALERTMANAGER_MARK, answers["res.config.settings", "default_get"])
        self.assertIn(DETAIL_MARK, text)
        self.assertIn(self.digest, answers["ir.config_parameter", f"get_param {SECRET_PARAM}"])
        self.assertNotIn(PLAIN_SECRET, text)

    # ------------------------------------------------------------------ writing
    def tampered_values(self, record, fname, user):
        """Values an attacker would write into ``fname`` of ``record`` (none when the type has no sense)."""
        field = record._fields[fname]
        current = record.sudo()[fname]
        kind = field.type
        if kind == "boolean":
            return [not current]
        if kind in ("integer", "float", "monetary"):
            return [(current or 0) + 500]
        if kind in ("char", "text", "html"):
            return [f"{current or ''}-tampered"]
        if kind == "selection":
            return [value for value in field.get_values(self.env) if value != current][:1]
        if kind in ("date", "datetime"):
            return ["2001-02-03" if kind == "date" else "2001-02-03 04:05:06"]
        if kind == "json":
            return [{"tampered": True}]
        comodel = self.env[field.comodel_name].sudo() if field.relational else None
        if kind == "many2one":
            if field.comodel_name == "res.users" and user != current:
                return [user.id]
            other = comodel.search([("id", "not in", current.ids)], limit=1)
            return [other.id] if other else []
        if kind == "one2many" and current:
            child = current[0]
            return [
                [Command.unlink(child.id)],
                [Command.delete(child.id)],
                [Command.create(self.clone_vals(child))],
            ]
        if kind == "many2many":
            other = comodel.search([("id", "not in", current.ids)], limit=1)
            return [[Command.link(other.id)]] if other else []
        return []

    def clone_vals(self, record, user=None):
        """``record``'s stored values as create() takes them, made unique, owned by ``user`` when given."""
        record = record.sudo()
        vals = {}
        for fname, field in record._fields.items():
            if fname in MAGIC_FIELDS or not field.store or field.type in ("one2many", "many2many"):
                continue
            if field.compute and not field.inverse and not field.related:
                continue
            value = field.convert_to_write(record[fname], record)
            if field.type == "char" and value:
                value = f"{value}-clone"
            if field.type == "many2one" and field.comodel_name == "res.users" and user:
                value = user.id
            vals[fname] = value
        return vals

    def write_breaches(self, user):
        """Every call through which ``user`` changed a protected table: '<op> <model>.<field>: <tables>'."""
        context = attack_context()
        before = self.fingerprint(self.protected_tables(user))
        breaches = []

        self.attempted = set()

        def check(label, call):
            self.attempted.add(label)
            changed, _refused = self.changes(call, user, before)
            if changed:
                breaches.append(f"{label}: {', '.join(changed)}")

        for model, scope in self.record_models().items():
            record = self.targets[model]
            for fname in sorted(scope):
                for value in self.tampered_values(record, fname, user):
                    vals = {fname: value}
                    check(
                        f"write {model}.{fname}",
                        lambda m=model, r=record, v=vals: self.rpc(
                            user, m, "write", r.ids, v, context=context
                        ),
                    )
                    check(
                        f"web_save {model}.{fname}",
                        lambda m=model, r=record, v=vals: self.rpc(
                            user, m, "web_save", r.ids, v, specification={}, context=context
                        ),
                    )
            clone = self.clone_vals(record, user)
            check(f"create {model}", lambda m=model, v=clone: self.rpc(user, m, "create", v, context=context))
            check(
                f"web_save (new) {model}",
                lambda m=model, v=clone: self.rpc(
                    user, m, "web_save", [], v, specification={}, context=context
                ),
            )
            check(
                f"copy {model}", lambda m=model, r=record: self.rpc(user, m, "copy", r.ids, context=context)
            )
            check(
                f"unlink {model}",
                lambda m=model, r=record: self.rpc(user, m, "unlink", r.ids, context=context),
            )
        return breaches

    def test_portal_users_change_no_money_or_state(self):
        self.env["res.company"].create({"name": "Another AI company"})  # one to move a request to
        self.assertEqual(self.write_breaches(self.portal), [])
        # the enumeration reached the fields that matter (and, being automatic, any added later)
        for label in (
            "write ai.generation.request.state",
            "write ai.generation.request.credits_charged",
            "write ai.generation.request.user_id",
            "write ai.generation.request.company_id",  # its invalid-input policy applies
            "web_save ai.credit.account.balance",
            "write ai.credit.ledger.line.amount",
            "create ai.credit.ledger.line",
            "write res.company.ai_invalid_percent",
            "write res.config.settings.ai_worker_secret",
            "write ir.config_parameter.value",
            "unlink ai.generation.event",
        ):
            self.assertIn(label, self.attempted)

    def test_internal_users_change_no_money_or_state(self):
        self.assertEqual(self.write_breaches(self.alice), [])

    def test_managers_change_no_money_or_state_outside_the_ledger_operations(self):
        self.env["res.company"].create({"name": "Another AI company"})  # one to move a request to
        self.assertEqual(self.write_breaches(self.manager), [])
        self.assertIn("write ai.generation.request.company_id", self.attempted)

    def test_the_write_check_sees_a_change(self):
        """The check above can fail: the same call made with the addon's own rights changes the ledger."""
        changed, refused = self.changes(lambda: self.grant(self.alice, 5), self.manager)
        self.assertFalse(refused)
        self.assertIn("ai_credit_account", changed)
        changed, refused = self.changes(
            lambda: self.rpc(
                self.manager,
                "ai.generation.price",
                "write",
                self.targets["ai.generation.price"].ids,
                {"credits": 99},
            ),
            self.portal,
        )
        self.assertEqual((changed, refused), (["ai_generation_price"], False), "managers set prices")

    # ------------------------------------------------------------------ methods
    def addon_methods(self):
        """{(model, method)} of every method the addon's classes define, private ones included."""
        found = set()
        for model in self.addon_models():
            for cls in type(self.env[model]).__mro__:
                if not cls.__module__.startswith(ADDON_PACKAGE) or ".tests." in cls.__module__:
                    continue
                for name, attr in vars(cls).items():
                    if isinstance(attr, (classmethod, staticmethod)):
                        attr = attr.__func__
                    if inspect.isfunction(attr):
                        found.add((model, name))
        return found

    def test_every_public_method_is_a_guarded_action_or_an_orm_method(self):
        methods = self.addon_methods()
        public = {(m, n) for m, n in methods if not regex_private.match(n)}
        self.assertIn(
            ("ai.generation.request", "_handle_callback"), methods, "the enumeration sees the addon"
        )
        unknown = sorted(f"{m}.{n}" for m, n in public if (m, n) not in ACTIONS and n not in ORM_METHODS)
        self.assertEqual(unknown, [], "public methods to make private, or to guard and list in ACTIONS")
        for model, name in sorted(methods - public):
            with self.assertRaises(UserError, msg=f"{model}.{name}"):
                check_method_name(name)
        breaches = []
        for (model, name), args in sorted(ACTIONS.items()):
            if (model, name) not in public:
                continue
            for who in (self.portal, self.alice):
                changed, refused = self.changes(
                    lambda who=who, model=model, name=name, args=args: self.rpc(
                        who, model, name, *args(self.targets)
                    ),
                    who,
                )
                if not refused or changed:
                    breaches.append(f"{who.login} {model}.{name}: refused={refused} changed={changed}")
        self.assertEqual(breaches, [])


@tagged("at_install", "-post_install", ADDON)
class TestRpcSurfaceOverHttp(RpcSurfaceMixin, HttpCase):
    """The reported calls over real JSON-RPC: /web/dataset/call_kw (a session), /jsonrpc (a password)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_ai_generation()

    def setUp(self):
        super().setUp()
        self._setup_surface()

    def call_kw(self, login, model, method, args, kwargs=None):
        self.authenticate(login, login if login != "admin" else "admin")
        response = self.url_open(
            "/web/dataset/call_kw",
            data=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "call",
                    "params": {"model": model, "method": method, "args": args, "kwargs": kwargs or {}},
                }
            ),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(response.status_code, 200)
        return response.text, response.json()

    def assertNoNeedle(self, text, who):
        for what, needle in self.needles.items():
            self.assertNotIn(needle, text, f"{who} reads the {what}")

    def test_the_reported_default_get_answers_no_secret(self):
        fields_ = ["ai_worker_secret", "ai_amqp_url", "ai_alertmanager_url"]
        for login in (self.portal.login, self.alice.login, self.manager.login):
            text, _answer = self.call_kw(login, "res.config.settings", "default_get", [fields_])
            self.assertNoNeedle(text, login)
            spec = {name: {} for name in fields_}
            text, _answer = self.call_kw(login, "res.config.settings", "onchange", [[], {}, [], spec])
            self.assertNoNeedle(text, login)
            text, answer = self.call_kw(login, "ir.config_parameter", "get_param", [SECRET_PARAM])
            self.assertNoNeedle(text, login)
            self.assertIn("error", answer)
        # the administrator still gets the URLs, never the secret (the check above can fail)
        text, answer = self.call_kw("admin", "res.config.settings", "default_get", [fields_])
        self.assertIn(AMQP_PASSWORD, text)
        self.assertFalse(answer["result"].get("ai_worker_secret"))
        self.assertNotIn(PLAIN_SECRET, text)

    def test_jsonrpc_with_a_password_answers_no_secret(self):
        db = self.env.cr.dbname
        for user in (self.portal, self.alice):
            response = self.url_open(
                "/jsonrpc",
                data=json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "method": "call",
                        "params": {
                            "service": "object",
                            "method": "execute_kw",
                            "args": [
                                db,
                                user.id,
                                user.login,
                                "res.config.settings",
                                "default_get",
                                [sorted(SECRET_SETTINGS)],
                            ],
                        },
                    }
                ),
                headers={"Content-Type": "application/json"},
            )
            self.assertEqual(response.status_code, 200)
            self.assertIn("result", response.json(), response.text[:300])
            self.assertNoNeedle(response.text, user.login)

    @mute_logger("odoo.http")
    def test_managers_cancel_no_request_of_another_company(self):
        # the manager works for the home company only; Bob for another one
        other = self.env["res.company"].create({"name": "Other RPC Company"})
        self.bob.write({"company_ids": [(4, other.id)], "company_id": other.id})
        self.grant(self.bob, 50)
        queued = self.new_request(self.bob)
        done = self.new_request(self.bob)
        self.callback("result", done, output="ok")
        for request in (queued, done):
            text, answer = self.call_kw(
                self.manager.login, "ai.generation.request", "action_cancel", [[request.id]]
            )
            self.assertEqual(answer.get("error", {}).get("data", {}).get("name"), ACCESS_ERROR, text[:300])
            self.assertNotIn(request.uuid, text, "the answer names another company's request")
        queued.invalidate_recordset()
        self.assertEqual(queued.state, "queued")

    def test_private_methods_are_not_callable(self):
        _text, answer = self.call_kw(
            self.alice.login,
            "ai.generation.request",
            "_handle_callback",
            ["result", {"generation_request_id": "x"}],
        )
        self.assertIn("Private methods", answer["error"]["data"]["message"])
