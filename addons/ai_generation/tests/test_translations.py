# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The owner reads their request's messages in their own language: stored, on the API and on the bus."""

from odoo.tests import tagged
from odoo.tools.translate import code_translations

from ..models import owner_messages
from ..pure import contracts
from .common import AiGenerationCase

FR_QUEUED = "Votre demande a été acceptée et attend un exécuteur."
FR_SYSTEM = "Le traitement IA a échoué. Veuillez réessayer ou ajuster vos paramètres."
FR_USER = "Entrée invalide détectée. Veuillez revoir votre prompt ou vos paramètres."
FR_NOT_CHARGED = "Rien ne vous a été facturé."


def taxonomy_texts():
    taxonomy = contracts.taxonomy()
    texts = set(taxonomy["messages"].values())
    for info in taxonomy["error_types"].values():
        texts.update(info[k] for k in ("retry_suggestion", "specific_guidance") if info.get(k))
    return texts


@tagged("at_install", "-post_install", "ai_generation")
class TestOwnerLanguage(AiGenerationCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("fr_FR")
        cls.alice.lang = "fr_FR"  # Bob stays in English

    def setUp(self):
        super().setUp()
        self.grant(self.alice, 100)
        self.grant(self.bob, 100)

    def last_update(self, user, request):
        return [u for u in self.bus_updates(user) if u["request_id"] == request.uuid][-1]

    def test_the_catalogue_lists_the_taxonomy_word_for_word(self):
        listed = {text._source for text in owner_messages.TAXONOMY_TEXTS}
        self.assertEqual(listed, taxonomy_texts())

    def test_every_owner_message_has_a_french_translation(self):
        french = code_translations.get_python_translations("ai_generation", "fr_FR")
        sources = [t._source for t in owner_messages.TAXONOMY_TEXTS]
        sources += [t._source for t in owner_messages.STATE_MESSAGES.values()]
        sources.append(owner_messages.NOT_CHARGED._source)
        missing = [s for s in sources if not french.get(s) or french[s] == s]
        self.assertEqual(missing, [])

    def test_a_french_owner_is_told_in_french_on_the_request_the_api_and_the_bus(self):
        request = self.new_request(self.alice)
        self.assertEqual(request.user_message, FR_QUEUED)
        self.assertEqual(self.last_update(self.alice, request)["message"], FR_QUEUED)
        self.callback(
            "failure", request, **self.failure_payload("provider_unavailable", error_code="http_503")
        )
        body = request._api_body()
        retry = "Le fournisseur d'IA est momentanément indisponible."
        self.assertEqual((body["message"], body["charge_note"]), (FR_SYSTEM, FR_NOT_CHARGED))
        self.assertTrue(body["retry_suggestion"].startswith(retry), body["retry_suggestion"])
        update = self.last_update(self.alice, request)
        self.assertEqual((update["message"], update["charge_note"]), (FR_SYSTEM, FR_NOT_CHARGED))
        self.assertTrue(update["retry_suggestion"].startswith(retry))

    def test_an_english_owner_keeps_the_contract_wording(self):
        request = self.new_request(self.bob)
        self.callback(
            "failure", request, **self.failure_payload("provider_unavailable", error_code="http_503")
        )
        info = contracts.error_type_info("provider_unavailable")
        self.assertEqual(
            (request.user_message, request.retry_suggestion, request.charge_note),
            (contracts.user_message("system"), info["retry_suggestion"], "You were not charged."),
        )

    def test_charge_notes_are_translated_with_their_numbers(self):
        notes = []
        for _ in range(3):  # two free warnings, then the full price (the company policy in common.py)
            request = self.new_request(self.alice)
            self.callback("failure", request, **self.failure_payload("content_policy"))
            notes.append(request.charge_note)
            self.assertEqual(request.user_message, FR_USER)
            self.assertTrue(request.specific_guidance.startswith("La politique de contenu du fournisseur"))
        self.assertEqual(
            notes,
            [
                "Rien ne vous a été facturé cette fois (avertissement 1 sur 2) ; d'autres demandes invalides "
                "pourront coûter des crédits.",
                "Rien ne vous a été facturé cette fois (avertissement 2 sur 2) ; d'autres demandes invalides "
                "pourront coûter des crédits.",
                f"{request.price} crédit(s) facturé(s) pour une entrée invalide.",
            ],
        )
        self.assertEqual(self.last_update(self.alice, request)["charge_note"], notes[-1])

    def test_the_workers_english_notify_reaches_a_french_owner_in_french(self):
        request = self.new_request(self.alice)
        self.callback("failure", request, **self.failure_payload("rate_limited", error_code="http_429"))
        info = contracts.error_type_info("quota_exhausted")
        self.callback(
            "notify",
            request,
            user_message=contracts.user_message("system"),
            retry_suggestion=info["retry_suggestion"],
        )
        self.assertEqual(request.user_message, FR_SYSTEM)
        self.assertTrue(request.retry_suggestion.startswith("Notre capacité d'IA est épuisée"))
        self.assertEqual(self.last_update(self.alice, request)["retry_suggestion"], request.retry_suggestion)
        # wording the catalogue does not know is the worker's own: kept as sent
        self.callback(
            "notify", request, user_message=contracts.user_message("system"), retry_suggestion="Try at 5."
        )
        self.assertEqual(request.retry_suggestion, "Try at 5.")

    def test_cancelled_and_succeeded_messages_are_french(self):
        done = self.new_request(self.alice)
        self.callback("result", done, output="ok")
        self.assertEqual(done.user_message, "Votre génération est prête.")
        cancelled = self.new_request(self.alice)
        cancelled._set_cancelled()
        self.assertEqual(cancelled.user_message, "Votre demande a été annulée ; rien ne vous a été facturé.")
