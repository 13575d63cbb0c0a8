# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo import api, fields, models, tools

from ..pure.errors import ValidationFailed

BACKENDS = [("external", "External (OpenAI-compatible API)"), ("internal", "Internal (Kubernetes Job)")]
TASKS = [("text", "Text"), ("image", "Image")]


class AiGenerationPrice(models.Model):
    """Credits a request costs, per backend and model. A model without a price is not offered."""

    _name = "ai.generation.price"
    _description = "AI Generation Price"
    _order = "backend, model_name"
    _rec_name = "model_name"

    backend = fields.Selection(BACKENDS, required=True)
    model_name = fields.Char("Model", required=True, help="The model name clients send, e.g. gpt-4o-mini.")
    task = fields.Selection(
        TASKS, help="The one task the model is offered for; empty: offered for text and image requests."
    )
    credits = fields.Integer(required=True, default=1, help="Per request; image requests pay it per image.")
    active = fields.Boolean(default=True)

    _sql_constraints = [
        ("backend_model_unique", "UNIQUE(backend, model_name)", "One price per backend and model."),
        ("credits_not_negative", "CHECK(credits >= 0)", "A price cannot be negative."),
    ]

    @api.model
    def _unit_price(self, backend, model_name, task=None):
        """The price in credits, or None when the model is not offered on that backend.

        A model offered for one task only refuses the other (a 400 on the ``task`` field)."""
        found = self._price_entry(backend, model_name)
        if found is None:
            return None
        credits, only_task = found
        if task and only_task and only_task != task:
            raise ValidationFailed(
                "The request has invalid fields: task",
                fields={"task": f"The model '{model_name}' is offered for {only_task} requests only."},
            )
        return credits

    @api.model
    def _price_entry(self, backend, model_name):
        """(credits, task or False) of the active price, or None."""
        return self._price_table().get((backend, model_name))

    @api.model
    @tools.ormcache()
    def _price_table(self):
        """{(backend, model name): (credits, task or False)} of the active prices; cached as one entry:
        every POST asks, prices change rarely (any write clears the cache, in every Odoo process through
        the registry's signaling), and a name a client makes up adds nothing to the shared LRU."""
        # active only whatever the caller's context: the one cached table serves every caller
        prices = (
            self.sudo()
            .with_context(active_test=True)
            .search_fetch([], ["backend", "model_name", "credits", "task"])
        )
        return {(price.backend, price.model_name): (price.credits, price.task) for price in prices}

    @api.model_create_multi
    def create(self, vals_list):
        self.env.registry.clear_cache()
        return super().create(vals_list)

    def write(self, vals):
        self.env.registry.clear_cache()
        return super().write(vals)

    def unlink(self):
        self.env.registry.clear_cache()
        return super().unlink()

    @api.model
    def _catalogue(self):
        """What GET /api/v1/models lists: one entry per (backend, model, task) offered; per backend
        text before image, cheapest first. ``price_per`` says what the price counts: a request or an image.
        """
        entries = []
        for price in self.sudo().search([]):
            for task in [price.task] if price.task else [code for code, _label in TASKS]:
                entries.append(
                    {
                        "backend": price.backend,
                        "model": price.model_name,
                        "task": task,
                        "price": price.credits,
                        "price_per": "image" if task == "image" else "request",
                    }
                )
        order = [code for code, _label in TASKS]  # text first: what most clients ask for
        entries.sort(key=lambda e: (e["backend"], order.index(e["task"]), e["price"], e["model"]))
        return entries
