"""Reading manifests from the repository: YAML documents into typed objects, with every
problem located by file, line, object and field.

Pure apart from reading the files it is given; ``meshctl`` and the tests use it, the
operator does not (it gets objects from the apiserver).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from datamesh.api.constants import API_VERSION
from datamesh.api.fieldpath import field_path
from datamesh.api.models import DataProduct, GovernancePolicy

KINDS: dict[str, type[BaseModel]] = {
    "DataProduct": DataProduct,
    "GovernancePolicy": GovernancePolicy,
}
# Everything products/ and policies/ may hold, with the apiVersion each must have.
API_VERSIONS = {"DataProduct": API_VERSION, "GovernancePolicy": API_VERSION, "Namespace": "v1"}
# The apiserver refuses a request body over this (its --max-request-bytes default), so a
# bigger manifest can never be applied; it is refused before it is parsed.
MAX_MANIFEST_BYTES = 3 * 1024 * 1024


class KubectlLoader(yaml.SafeLoader):
    """YAML read as kubectl reads it before sending JSON: an unquoted date such as
    ``2027-05-31`` stays the string it is, not a Python date."""


KubectlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one manifest, said so that a person can fix it."""

    file: str
    line: int
    object: str  # kind/namespace/name, or "" when the document has none
    field: str  # dotted path, or "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        what = " ".join(p for p in (self.object, self.field) if p)
        return f"{where}: {what + ': ' if what else ''}{self.message}"


@dataclass
class Document:
    """One YAML document from a file, with its position and, when valid, its object."""

    file: str
    line: int
    raw: Any
    node: yaml.Node | None = None
    obj: DataProduct | GovernancePolicy | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.raw.get("kind", "")) if isinstance(self.raw, dict) else ""

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` as messages name the object (empty without a kind)."""
        if not isinstance(self.raw, dict):
            return ""
        found = self.raw.get("metadata")
        meta: dict[str, Any] = found if isinstance(found, dict) else {}
        ns = meta.get("namespace", "")
        name = meta.get("name", "")
        return f"{self.kind}/{ns + '/' if ns else ''}{name}" if self.kind else ""

    def line_of(self, path: Iterable[str | int]) -> int:
        """The line of the deepest node along ``path`` that exists."""
        node = self.node
        line = self.line
        for key in path:
            if isinstance(node, yaml.MappingNode):
                nxt = next((v for k, v in node.value if k.value == key), None)
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(key, int)
                and key < len(node.value)
            ):
                nxt = node.value[key]
            else:
                nxt = None
            if nxt is None:
                break
            node = nxt
            line = node.start_mark.line + 1
        return line


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = str(err["msg"])
    if kind == "string_pattern_mismatch" and "pattern" in err.get("ctx", {}):
        return f"{msg} (got {err.get('input')!r})"
    return msg


def parse_document(doc: Document) -> None:
    """Fill ``doc.obj`` or ``doc.problems``."""
    raw = doc.raw
    if not isinstance(raw, dict):
        doc.problems.append(
            Problem(
                doc.file,
                doc.line,
                "",
                "",
                f"expected a mapping (a Kubernetes object), got {type(raw).__name__}",
            )
        )
        return
    kind = raw.get("kind")
    if kind not in API_VERSIONS:
        doc.problems.append(
            Problem(
                doc.file,
                doc.line_of(["kind"]),
                doc.ref,
                "kind",
                f"unknown kind {kind!r}: products/ and policies/ hold "
                + ", ".join(sorted(API_VERSIONS))
                + " objects",
            )
        )
        return
    if raw.get("apiVersion") != API_VERSIONS[kind]:
        doc.problems.append(
            Problem(
                doc.file,
                doc.line_of(["apiVersion"]),
                doc.ref,
                "apiVersion",
                f"must be {API_VERSIONS[kind]!r}, got {raw.get('apiVersion')!r}",
            )
        )
        return
    if kind not in KINDS:
        return  # a Namespace: the checks read its labels
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        doc.problems.append(
            Problem(
                doc.file,
                doc.line_of(["metadata"]),
                doc.ref,
                "metadata.name",
                "required field is missing",
            )
        )
        return
    try:
        doc.obj = KINDS[kind].model_validate(raw)  # type: ignore[assignment]
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            doc.problems.append(
                Problem(doc.file, doc.line_of(loc), doc.ref, field_path(loc), _message(err))
            )


def load_file(path: Path, display: str | None = None) -> tuple[list[Document], list[Problem]]:
    """All documents of one file. Whatever is wrong with the file (too big for the
    apiserver, binary, not UTF-8, not YAML, nested too deeply) comes back as a problem
    on it, with its line where there is one."""
    name = display or str(path)

    def problem(message: str, line: int = 1) -> tuple[list[Document], list[Problem]]:
        return [], [Problem(name, line, "", "", message)]

    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            return problem(
                f"the file is {size:,} bytes; the apiserver accepts at most "
                f"{MAX_MANIFEST_BYTES:,} bytes in one request, so split it"
            )
        data = path.read_bytes()
    except OSError as exc:
        return problem(f"cannot read the file: {exc.strerror or exc}")
    nul = data.find(b"\x00")
    if nul >= 0:
        return problem(f"a binary file (a NUL byte at offset {nul}), not YAML text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return problem(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}", line)
    return load_text(text, name)


def load_text(text: str, name: str) -> tuple[list[Document], list[Problem]]:
    docs: list[Document] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=KubectlLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [Problem(name, line, "", "", f"invalid YAML: {problem}")]
    except RecursionError:
        return [], [Problem(name, 1, "", "", "nested too deeply to be a Kubernetes object")]
    for node in nodes:
        if node is None:
            continue
        try:
            raw = KubectlLoader("").construct_document(node)
        except yaml.YAMLError as exc:
            return [], [Problem(name, node.start_mark.line + 1, "", "", f"invalid YAML: {exc}")]
        except RecursionError:
            line = node.start_mark.line + 1
            return [], [Problem(name, line, "", "", "nested too deeply to be a Kubernetes object")]
        if raw is None:
            continue
        doc = Document(name, node.start_mark.line + 1, raw, node)
        parse_document(doc)
        docs.append(doc)
    return docs, [p for d in docs for p in d.problems]


def yaml_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file()
            )
        else:
            yield path
