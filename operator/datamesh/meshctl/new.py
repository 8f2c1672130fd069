"""``meshctl new``: scaffold a product (and its domain's namespace) that passes every live
policy as generated; the owners then edit the schema."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import yaml

from datamesh.api.constants import API_VERSION, DOMAIN_LABEL, PIPELINE_IMAGE
from datamesh.api.models import MAX_PRODUCT_NAME, ProductType
from datamesh.meshctl import repository

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def register(sub: Any) -> None:
    n = sub.add_parser("new", help="scaffold a product that passes validate")
    n.add_argument("name")
    n.add_argument("--domain", required=True)
    n.add_argument("--type", choices=[t.value for t in ProductType], default="source")
    n.add_argument("--team", help="owning team (default: <domain>-team)")
    n.set_defaults(func=run)


def scaffold(name: str, domain: str, product_type: str, team: str | None) -> dict[str, Any]:
    """The product as generated: every field a live policy asks for, with TODOs."""
    team = team or f"{domain}-team"
    table = f"{domain.replace('-', '_')}.{name.replace('-', '_')}"
    return {
        "apiVersion": API_VERSION,
        "kind": "DataProduct",
        "metadata": {"name": name, "namespace": domain, "labels": {DOMAIN_LABEL: domain}},
        "spec": {
            "domain": domain,
            "owner": {"team": team, "email": f"{team}@example.com", "channel": f"#{team}"},
            "description": f"TODO: what {name} contains and who it is for.",
            "version": "0.1.0",
            "type": product_type,
            "classification": "internal",
            "retentionDays": 365,
            "tags": [domain],
            "schema": {
                "format": "parquet",
                "fields": [
                    {
                        "name": "id",
                        "type": "string",
                        "description": "Record identifier.",
                        "primaryKey": True,
                        "nullable": False,
                    },
                    {
                        "name": "updated_at",
                        "type": "timestamp",
                        "description": "When the record last changed (UTC).",
                    },
                ],
            },
            "outputPorts": [
                {
                    "name": "warehouse",
                    "type": "table",
                    "location": table,
                    "description": "Curated table in the warehouse.",
                }
            ],
            "sla": {"freshness": "1h", "availability": 99.5, "completeness": 99.0},
            "qualityChecks": [
                {"name": "completeness", "rule": "completeness", "threshold": 0.99},
                {"name": "freshness", "rule": "freshness"},
                {"name": "id-unique", "rule": "unique", "column": "id"},
            ],
            "storage": {"size": "10Gi", "encryption": {"atRest": True}},
            "pipeline": {
                "schedule": "0 * * * *",
                "image": PIPELINE_IMAGE,
            },
            "access": {"readers": {"domains": [domain]}, "auditLogging": True},
        },
    }


def namespace(domain: str) -> dict[str, Any]:
    """The domain's namespace, labelled with its domain and the restricted standard."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": domain,
            "labels": {DOMAIN_LABEL: domain, "pod-security.kubernetes.io/enforce": "restricted"},
        },
    }


def run(args: argparse.Namespace) -> int:
    name, domain = args.name, args.domain
    for label, value in (("NAME", name), ("--domain", domain)):
        if not NAME_RE.match(value) or len(value) > 63:
            raise repository.UsageError(
                f"{label} {value!r} must be a DNS label: lower-case letters, "
                "digits and '-', starting and ending with a letter or digit"
            )
    if len(name) > MAX_PRODUCT_NAME:
        raise repository.UsageError(
            f"NAME {name!r} is {len(name)} characters; at most "
            f"{MAX_PRODUCT_NAME}, so that the names of its children fit"
        )
    repo = repository.find_root(Path.cwd()) or Path.cwd()  # a new repository starts here
    folder = repo / "products" / domain
    target = folder / f"{name}.yaml"
    if target.exists():
        raise repository.UsageError(f"{repository.display(target, repo)} already exists")
    folder.mkdir(parents=True, exist_ok=True)
    ns_file = folder / "namespace.yaml"
    if not ns_file.exists():
        ns_file.write_text(yaml.safe_dump(namespace(domain), sort_keys=False))
        print(f"created {repository.display(ns_file, repo)}")
    target.write_text(
        yaml.safe_dump(scaffold(name, domain, args.type, args.team), sort_keys=False, width=100)
    )
    print(
        f"created {repository.display(target, repo)}; edit the schema, then run `meshctl validate`"
    )
    return 0
