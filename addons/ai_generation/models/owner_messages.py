# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""What the owner of a request reads, in the owner's language (Odoo's code translations, i18n/*.po).

A text is translated once, when it is stored on the request, into its owner's language
(``res.users.lang``): the API, the bus and the form then show the same words, and the request keeps what
its owner was told. The Odoo-free layer (pure/) and the contracts (schemas/error_taxonomy.json) stay in
English; their texts are listed here as literal ``_lt()`` terms so that Odoo's export puts them in
i18n/ai_generation.pot (tests/test_translations.py keeps the list equal to the taxonomy).
"""

from odoo.tools.translate import LazyGettext, LazyTranslate, get_translation

from ..pure import states

ADDON = "ai_generation"
_lt = LazyTranslate(ADDON)

# What the owner reads for the states that are not failures (failures use the taxonomy's messages)
STATE_MESSAGES = {
    states.QUEUED: _lt("Your request was accepted and is waiting for a worker."),
    states.DISPATCHED: _lt("Your request was accepted and is waiting for a worker."),
    states.RUNNING: _lt("Your request is being processed."),
    states.SUCCEEDED: _lt("Your generation is ready."),
    states.CANCELLED: _lt("Your request was cancelled; you were not charged."),
}
NOT_CHARGED = _lt("You were not charged.")

# schemas/error_taxonomy.json's messages, retry suggestions and guidance, word for word
TAXONOMY_TEXTS = (
    _lt("AI processing failed. Please try again or adjust your parameters."),
    _lt("Invalid input detected. Please review your prompt/parameters."),
    _lt("The AI provider is temporarily unavailable. Try again in a few minutes; you were not charged."),
    _lt(
        "The AI provider took too long to answer. Try again, or ask for a shorter output; "
        "you were not charged."
    ),
    _lt("We could not reach the AI provider. Try again in a few minutes; you were not charged."),
    _lt("The AI provider is busy right now. Try again in a minute; you were not charged."),
    _lt(
        "Our AI capacity is used up for the moment and the team has been alerted. Try again later; "
        "you were not charged."
    ),
    _lt(
        "The AI service is misconfigured and the team has been alerted. Try again later; "
        "you were not charged."
    ),
    _lt(
        "Check your parameters: the model name, image size, token limits and other numeric settings must be "
        "within the documented limits."
    ),
    _lt("The provider's content policy rejected your prompt. Rephrase it without disallowed content."),
    _lt(
        "Your prompt and requested output are longer than the model accepts. Shorten the prompt or lower "
        "max_tokens."
    ),
    _lt(
        "The model took too long. Try again, or ask for a smaller image or a shorter text; "
        "you were not charged."
    ),
    _lt("The model could not run on our servers. Try again in a few minutes; you were not charged."),
    _lt("The model could not process this input. Check that the prompt and parameters suit the chosen task."),
    _lt(
        "The AI's answer was larger than this service keeps. Ask for a shorter text or a smaller image; "
        "you were not charged."
    ),
    _lt("Something unexpected went wrong. Try again; you were not charged."),
)


def load_owner(user):
    """(company id, language) of ``user``, with its partner (the bus channel) and the partner's language
    left in the ORM cache: one query, where the ORM reads the whole user and partner (hundreds of
    columns, and res.users' own access search) and an own transaction starts with an empty cache."""
    if not user:
        return False, "en_US"
    env, partner_field = user.env, user._fields["partner_id"]
    if not env.cache.contains(user, partner_field):
        # what the ORM would read: its pending writes first (a stale row must not overwrite them)
        user.flush_recordset(["company_id", "partner_id"])
        env["res.partner"].flush_model(["lang"])
        env.cr.execute(
            "SELECT u.company_id, u.partner_id, p.lang FROM res_users u"
            " JOIN res_partner p ON p.id = u.partner_id WHERE u.id = %s",
            (user.id,),
        )
        cache_owner(user, *env.cr.fetchone())
    owner = user.sudo().with_context(prefetch_fields=False)
    return owner.company_id.id, owner.partner_id.lang or "en_US"


def cache_owner(user, company_id, partner_id, lang):
    """Put what load_owner reads (read by the caller's own query) in the ORM cache."""
    env = user.env
    partner = env["res.partner"].browse(partner_id)
    env.cache.set(user, user._fields["company_id"], company_id)
    env.cache.set(user, user._fields["partner_id"], partner_id)
    env.cache.set(partner, partner._fields["lang"], lang)


def owner_lang(user):
    return load_owner(user)[1]


def owner_text(user, text, **args):
    """``text`` as ``user`` reads it: a ``_lt()`` term, or English from the contracts or a worker.

    English the catalogue does not know (a worker's own wording) is kept as it is.
    """
    return text_in(owner_lang(user), text, **args) if text else text


def text_in(lang, text, **args):
    """``text`` in the language ``lang`` (see owner_text), for a caller that knows the owner's language."""
    if not text:
        return text
    source = text._source if isinstance(text, LazyGettext) else str(text)
    return get_translation(ADDON, lang, source, args)


def warning_note(user, number, of):
    return owner_text(
        user,
        _lt(
            "You were not charged this time (warning %(number)s of %(of)s); further invalid requests may "
            "cost credits."
        ),
        number=number,
        of=of,
    )


def charged_note(user, credits):
    return owner_text(user, _lt("%(credits)s credit(s) were charged for invalid input."), credits=credits)
