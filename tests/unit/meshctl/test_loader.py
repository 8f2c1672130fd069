"""Reading manifests: every problem names the file, line, object and field."""

from __future__ import annotations

import pytest

from datamesh.api.models import DataProduct
from datamesh.meshctl import loader
from tests.support.factories import dump, product_dict


def load(text: str) -> tuple[list[loader.Document], list[loader.Problem]]:
    return loader.load_text(text, "products/sales/orders.yaml")


def test_valid_product_parses() -> None:
    docs, problems = load(dump(product_dict()))
    assert problems == []
    assert isinstance(docs[0].obj, DataProduct)
    assert docs[0].obj.ref == "sales/orders"


def test_malformed_yaml_reports_the_line() -> None:
    _, problems = load("apiVersion: v1\nkind: [unclosed\nmetadata: {}\n")
    assert len(problems) == 1
    assert problems[0].line == 3
    assert problems[0].message.startswith("invalid YAML")
    assert str(problems[0]).startswith("products/sales/orders.yaml:3: ")


def test_unknown_field_is_named_with_its_line() -> None:
    doc = product_dict()
    doc["spec"]["sla"]["fresness"] = "1h"
    text = dump(doc)
    _, problems = load(text)
    assert [(p.field, p.message) for p in problems] == [("spec.sla.fresness", "unknown field")]
    assert text.splitlines()[problems[0].line - 1].strip().startswith("fresness:")
    assert problems[0].object == "DataProduct/sales/orders"


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda s: s.update(retentionDays="forever"), "spec.retentionDays", "valid integer"),
        (lambda s: s.pop("owner"), "spec.owner", "required field is missing"),
        (lambda s: s.update(version="1.0"), "spec.version", "'1.0'"),
        (lambda s: s.update(classification="secret"), "spec.classification", "Input should be"),
        (
            lambda s: s["schema"]["fields"][1].update(type="varchar"),
            "spec.schema.fields[1].type",
            "Input should be",
        ),
        (lambda s: s.update(retentionDays=-1), "spec.retentionDays", "greater than or equal to 1"),
        (lambda s: s["storage"].update(size="-5Gi"), "spec.storage.size", "'-5Gi'"),
    ],
)
def test_wrong_values_name_the_field(mutate, field: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    doc = product_dict()
    mutate(doc["spec"])
    _, problems = load(dump(doc))
    assert [p.field for p in problems] == [field]
    assert fragment in problems[0].message


def test_wrong_api_version_and_missing_name() -> None:
    doc = product_dict()
    doc["apiVersion"] = "datamesh.io/v1"
    _, problems = load(dump(doc))
    assert problems[0].field == "apiVersion" and "datamesh.io/v1alpha1" in problems[0].message
    doc = product_dict()
    del doc["metadata"]["name"]
    _, problems = load(dump(doc))
    assert problems[0].field == "metadata.name"


def test_other_kinds_pass_through_and_scalars_are_refused() -> None:
    docs, problems = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: sales}\n---\n42\n")
    assert docs[0].obj is None and docs[0].kind == "Namespace"
    assert len(problems) == 1 and "expected a mapping" in problems[0].message
    assert problems[0].line == 5
