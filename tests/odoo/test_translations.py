"""The addon's translation template (i18n/ai_generation.pot) is current: what Odoo's own export gives."""

import ast
import re

import pytest

from tests.support.i18n import ADDON, POT_PATH, comparable, export_pot
from tests.support.odoo import ADDONS_DIR, require_odoo

TRANSLATING = {"_", "_lt"}  # the keywords Odoo's export extracts from Python (odoo/tools/translate.py)
PO_STRING = re.compile(r'^(msgid|msgstr)?\s*"(.*)"$')


def po_msgids(text: str) -> set[str]:
    ids, current, in_id = set(), [], False
    for line in [*text.splitlines(), ""]:
        match = PO_STRING.match(line.strip())
        if match and match.group(1) == "msgid":
            current, in_id = [match.group(2)], True
        elif match and match.group(1) is None and in_id:
            current.append(match.group(2))
        else:
            if in_id:
                ids.add(ast.literal_eval('"' + "".join(current) + '"'))
            in_id = False
    ids.discard("")
    return ids


def python_terms() -> dict[str, str]:
    """{text: where} for every literal _("...") / _lt("...") / env._("...") in the addon's Python."""
    terms = {}
    for path in sorted((ADDONS_DIR / ADDON).rglob("*.py")):
        if "tests" in path.relative_to(ADDONS_DIR / ADDON).parts:
            continue  # Odoo's export skips tests too
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            first = node.args[0]
            if name in TRANSLATING and isinstance(first, ast.Constant) and isinstance(first.value, str):
                terms[first.value] = f"{path.relative_to(ADDONS_DIR)}:{node.lineno}"
    return terms


def test_every_translated_python_text_is_in_the_pot():
    terms = python_terms()
    assert len(terms) > 20
    missing = {text: where for text, where in terms.items() if text not in po_msgids(POT_PATH.read_text())}
    assert not missing, f"not in {POT_PATH.name} (python -m tests.support.i18n): {missing}"


def test_the_french_catalogue_translates_only_texts_of_the_pot():
    french = po_msgids((POT_PATH.parent / "fr.po").read_text())
    assert french and french <= po_msgids(POT_PATH.read_text())


@pytest.mark.odoo
@pytest.mark.slow
def test_the_pot_is_what_odoo_exports_now():
    odoo = require_odoo()
    shipped = comparable(POT_PATH.read_text(encoding="utf-8"))
    assert shipped == comparable(export_pot(odoo)), "stale: regenerate it with python -m tests.support.i18n"
