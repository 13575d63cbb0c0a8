"""The contract files in schemas/ are valid and agree with each other."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import aigen_contracts

TAXONOMY = aigen_contracts.load("error_taxonomy.json")
VECTORS = aigen_contracts.load("error_vectors.json")["vectors"]


CONTRACT_DIR = Path(aigen_contracts.__file__).parent


def _refuse_repeated_keys(pairs):
    keys = [key for key, _value in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    assert not repeated, f"keys given twice: {repeated}"
    return dict(pairs)


@pytest.mark.parametrize("path", sorted(CONTRACT_DIR.glob("*.json")), ids=lambda p: p.name)
def test_no_contract_file_gives_a_key_twice(path):
    # json.load keeps the last of two equal keys: a row added twice (or edited in one copy) went unseen
    json.loads(path.read_text(), object_pairs_hook=_refuse_repeated_keys)


@pytest.mark.parametrize("name", aigen_contracts.SCHEMA_FILES)
def test_every_schema_is_valid_draft_2020_12(name):
    Draft202012Validator.check_schema(aigen_contracts.load(name))


def test_error_type_enum_matches_taxonomy():
    enum = aigen_contracts.load("callback_common.json")["$defs"]["error_type"]["enum"]
    assert sorted(enum) == sorted(TAXONOMY["error_types"])


def test_every_rule_names_a_known_error_type():
    unknown = [r["error_type"] for r in TAXONOMY["rules"] if r["error_type"] not in TAXONOMY["error_types"]]
    assert unknown == []


def test_each_error_type_has_the_message_its_side_needs():
    for name, row in TAXONOMY["error_types"].items():
        key = "retry_suggestion" if row["side"] == "system" else "specific_guidance"
        assert row.get(key), f"{name} lacks {key}"
        assert row["side"] in TAXONOMY["messages"]


def test_no_rule_or_vector_is_given_twice():
    rules = [json.dumps(r, sort_keys=True) for r in TAXONOMY["rules"]]
    vectors = [json.dumps(v, sort_keys=True) for v in VECTORS]
    assert len(set(rules)) == len(rules) and len(set(vectors)) == len(vectors)


def test_vectors_cover_every_error_type():
    assert {v["error_type"] for v in VECTORS} == set(TAXONOMY["error_types"])


def test_vector_sides_agree_with_taxonomy():
    for v in VECTORS:
        assert TAXONOMY["error_types"][v["error_type"]]["side"] == v["side"], v
