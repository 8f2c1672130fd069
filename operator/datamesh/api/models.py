"""The public API: DataProduct and GovernancePolicy, group datamesh.io, version v1alpha1.

These pydantic models are the one source of truth. ``crd.py`` turns them into the
CustomResourceDefinitions under ``crds/``, ``meshctl`` validates pull requests with them,
and the operator parses what the apiserver stored with them. Every field has a
description because it becomes ``kubectl explain`` text.

Limits (``max_length``, ``max_items``) are not decoration: the apiserver refuses CEL
validation rules whose worst-case cost is unbounded, so every list and string a rule
walks is bounded.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SEMVER = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
DURATION = r"^[1-9][0-9]{0,5}(s|m|h|d)$"
QUANTITY = r"^[1-9][0-9]{0,6}(Mi|Gi|Ti)$"
# A column name: also a SQL identifier, so at most 63 bytes (PostgreSQL's limit; longer
# names are truncated there, silently).
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,}$"


def _cron_field(value: str) -> str:
    """One cron field as Kubernetes' CronJob controller parses it (robfig/cron's standard
    parser): ``*`` or ``?``, a value or a range, each with an optional positive step, in a
    list. (It also refuses a range that runs backwards, which a pattern cannot see.)"""
    item = rf"([*?]|{value}(-{value})?)(/0*[1-9][0-9]*)?"
    return rf"{item}(,{item})*"


_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DAYS = "sun|mon|tue|wed|thu|fri|sat"
# The five fields with their ranges (minute, hour, day of month, month, day of week;
# names in any case), or one of the macros; `0 24 * * *` is refused here, in the CRD and
# offline, as the CronJob API would refuse it later.
CRON = (
    r"^(?i:@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + r"\s+".join(
        (
            _cron_field(r"0*[1-5]?[0-9]"),
            _cron_field(r"0*(1?[0-9]|2[0-3])"),
            _cron_field(r"0*([1-9]|[12][0-9]|3[01])"),
            _cron_field(rf"(0*([1-9]|1[0-2])|{_MONTHS})"),
            _cron_field(rf"(0*[0-6]|{_DAYS})"),
        )
    )
    + r")$"
)

# A product's name is also the stem of its children's names (see provisioning), so it is
# kept well under the 63-character limit of a label value.
MAX_PRODUCT_NAME = 40


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        frozen=True,
    )
    # CEL rules attached to this object in the generated CRD.
    validations: ClassVar[list[dict[str, str]]] = []


# -- enumerations ---------------------------------------------------------------------------


class ProductType(StrEnum):
    SOURCE = "source"
    AGGREGATE = "aggregate"
    CONSUMER_ALIGNED = "consumer-aligned"
    DERIVED = "derived"


class Classification(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    LONG = "long"
    FLOAT = "float"
    DOUBLE = "double"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"
    BINARY = "binary"
    ARRAY = "array"
    MAP = "map"
    STRUCT = "struct"


class PiiCategory(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    NAME = "name"
    ADDRESS = "address"
    GOVERNMENT_ID = "government-id"
    FINANCIAL = "financial"
    HEALTH = "health"
    IP_ADDRESS = "ip-address"
    LOCATION = "location"
    DATE_OF_BIRTH = "date-of-birth"
    OTHER = "other"


class SchemaFormat(StrEnum):
    PARQUET = "parquet"
    AVRO = "avro"
    JSON = "json"
    CSV = "csv"
    DELTA = "delta"
    ICEBERG = "iceberg"


class PortType(StrEnum):
    TABLE = "table"
    VIEW = "view"
    TOPIC = "topic"
    API = "api"
    FILE = "file"


class BuiltinCheck(StrEnum):
    NOT_NULL = "not_null"
    UNIQUE = "unique"
    COMPLETENESS = "completeness"
    FRESHNESS = "freshness"
    ROW_COUNT = "row_count"
    ACCEPTED_VALUES = "accepted_values"
    RANGE = "range"
    REFERENTIAL_INTEGRITY = "referential_integrity"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Enforcement(StrEnum):
    BLOCK = "block"
    WARN = "warn"
    AUDIT = "audit"


class DeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    NON_COMPLIANT = "NonCompliant"
    # Provisioned, but what it reads is not all there (a missing upstream, a cycle).
    DEGRADED = "Degraded"
    FAILED = "Failed"
    DELETING = "Deleting"


def _d(text: str, **kw: Any) -> Any:
    """A field with a description (every field has one: it is `kubectl explain` text)."""
    return Field(description=text, **kw)


Name = Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]
# A list whose items are unique by name, as the apiserver enforces natively (a "map"
# list): no CEL rule whose cost grows with the square of the list's length.
UNIQUE_BY_NAME = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
Tag = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][-a-z0-9_.]*$")]
ShortText = Annotated[str, Field(max_length=256)]


# -- DataProduct ----------------------------------------------------------------------------


class Owner(ApiModel):
    """Who answers for the product: the owning team and how to reach it."""

    team: str = _d(
        "Owning team, e.g. `sales-analytics`.", min_length=1, max_length=63, pattern=DNS_LABEL
    )
    email: str = _d("Contact e-mail address of the owning team.", max_length=254, pattern=EMAIL)
    channel: str | None = _d(
        "Chat channel for consumers' questions, e.g. `#sales-data`.", default=None, max_length=80
    )


class FieldConstraints(ApiModel):
    """Value constraints of one field; consumers may rely on them, so tightening breaks them."""

    validations: ClassVar[list[dict[str, str]]] = [
        cel(
            "!has(self.minimum) || !has(self.maximum) || self.minimum <= self.maximum",
            "minimum must not exceed maximum",
        ),
        cel(
            "!has(self.minLength) || !has(self.maxLength) || self.minLength <= self.maxLength",
            "minLength must not exceed maxLength",
        ),
    ]

    min_length: int | None = _d("Shortest allowed string length.", default=None, ge=0, le=1_000_000)
    max_length: int | None = _d("Longest allowed string length.", default=None, ge=0, le=1_000_000)
    minimum: float | None = _d("Smallest allowed numeric value.", default=None)
    maximum: float | None = _d("Largest allowed numeric value.", default=None)
    pattern: str | None = _d(
        "Regular expression every value matches.", default=None, max_length=512
    )
    allowed_values: list[ShortText] | None = _d(
        "The only values the field may take.", default=None, max_length=256
    )
    unique: bool | None = _d("Values are unique across rows.", default=None)


class SchemaField(ApiModel):
    """One column of the product's output contract."""

    validations: ClassVar[list[dict[str, str]]] = [
        cel(
            "!self.pii || has(self.piiCategory)",
            "a field marked pii must name its piiCategory",
            ".piiCategory",
        ),
    ]

    name: str = _d(
        "Column name (letters, digits, underscore; at most 63).", pattern=IDENTIFIER, max_length=63
    )
    type: FieldType = _d("Logical type of the column.")
    description: str | None = _d(
        "What the column means, for consumers.", default=None, max_length=1024
    )
    nullable: bool = _d(
        "Whether the column may be null. Changing true to false breaks consumers.", default=True
    )
    primary_key: bool = _d("Part of the product's primary key.", default=False)
    pii: bool = _d("Holds personally identifiable information.", default=False)
    pii_category: PiiCategory | None = _d(
        "Kind of personal data; required when `pii` is true.", default=None
    )
    constraints: FieldConstraints | None = _d(
        "Value constraints consumers may rely on.", default=None
    )


class ContractSchema(ApiModel):
    """The versioned output contract: format and columns."""

    format: SchemaFormat = _d("Storage or wire format of the published data.")
    fields: list[SchemaField] = _d(
        "Columns of the contract, in order; names are unique.",
        min_length=1,
        max_length=128,
        json_schema_extra=UNIQUE_BY_NAME,
    )


class InputPort(ApiModel):
    """An upstream data product this one reads from (a lineage edge)."""

    product: Name = _d("Name of the upstream DataProduct.")
    domain: Name | None = _d(
        "Domain of the upstream product; defaults to this product's domain.", default=None
    )
    port: Name | None = _d("Output port of the upstream product that is read.", default=None)
    description: str | None = _d("What is read and why.", default=None, max_length=512)


class OutputPort(ApiModel):
    """Where consumers read the product."""

    name: Name = _d("Port name, unique within the product.")
    type: PortType = _d("Kind of interface.")
    location: str = _d(
        "Address of the port: table name, topic, URL or path.", min_length=1, max_length=512
    )
    description: str | None = _d("What the port serves.", default=None, max_length=512)


class Sla(ApiModel):
    """Service levels the owning team commits to."""

    freshness: str = _d("Maximum age of the newest data, e.g. `1h`, `15m`, `1d`.", pattern=DURATION)
    availability: float = _d("Availability target in percent, e.g. 99.5.", gt=0, le=100)
    completeness: float | None = _d(
        "Share of expected records present, in percent.", default=None, gt=0, le=100
    )


class QualityCheck(ApiModel):
    """A data quality check run by the pipeline: a built-in rule or a SQL query."""

    validations: ClassVar[list[dict[str, str]]] = [
        cel("has(self.rule) != has(self.sql)", "set exactly one of rule and sql"),
    ]

    name: Name = _d("Check name, unique within the product.")
    rule: BuiltinCheck | None = _d("Built-in rule to run.", default=None)
    sql: str | None = _d(
        "A read-only query (one SELECT) returning one number, compared with `minimum` and "
        "`maximum` when set, else with `threshold` as the least passing share (0..1). "
        "`{{ table }}` stands for the product's table.",
        default=None,
        max_length=4096,
    )
    column: str | None = _d(
        "Column the built-in rule applies to.", default=None, pattern=IDENTIFIER, max_length=63
    )
    threshold: float = _d("Minimum passing share, 0..1.", default=1.0, ge=0, le=1)
    minimum: float | None = _d(
        "Least value allowed: the row count for `row_count`, the result of `sql`.", default=None
    )
    maximum: float | None = _d(
        "Greatest value allowed: the row count for `row_count`, the result of `sql`.",
        default=None,
    )
    severity: Severity = _d("How bad a failure is.", default=Severity.ERROR)


class Encryption(ApiModel):
    """How the stored data is protected."""

    at_rest: bool = _d("Data is encrypted at rest.", default=False)
    kms_key: str | None = _d("Key used for encryption at rest.", default=None, max_length=256)


class Storage(ApiModel):
    """The storage the operator provisions as a PersistentVolumeClaim."""

    size: str = _d("Requested capacity, e.g. `10Gi`.", pattern=QUANTITY)
    storage_class: str | None = Field(
        default=None,
        alias="class",
        max_length=63,
        pattern=DNS_LABEL,
        description="StorageClass of the claim; the cluster default when unset.",
    )
    encryption: Encryption = _d("Encryption settings.", default_factory=Encryption)


class Pipeline(ApiModel):
    """The job that refreshes the product, run as a CronJob."""

    # Kubernetes' cron parser refuses a range that runs backwards (`5-1`); the pattern
    # cannot compare numbers, so this rule does (named ranges are left to the parser).
    validations: ClassVar[list[dict[str, str]]] = [
        cel(
            "self.schedule.split(' ').all(f, f.split(',').all(p, "
            "!p.split('/')[0].matches('^[0-9]+-[0-9]+$') || "
            "int(p.split('/')[0].split('-')[0]) <= int(p.split('/')[0].split('-')[1])))",
            "a range in the schedule runs backwards (write the smaller number first, "
            "e.g. 1-5): Kubernetes refuses it",
            ".schedule",
        ),
        cel(
            "!has(self.sourceSecret) || has(self.sql)",
            "sourceSecret names where sql runs: set sql too",
            ".sourceSecret",
        ),
    ]

    schedule: str = _d("Cron schedule, e.g. `0 * * * *`.", pattern=CRON, max_length=100)
    image: str = _d("Container image of the job.", min_length=1, max_length=512, pattern=r"^\S+$")
    command: list[Annotated[str, Field(max_length=1024)]] = _d(
        "Command and arguments of the job.", default_factory=list, max_length=64
    )
    suspend: bool = _d("Pause the schedule without removing the job.", default=False)
    sql: str | None = _d(
        "For the platform's SQL runner (command `datamesh-sql` of the pipeline image): a "
        "SELECT whose rows replace the product's table, in one transaction. Input ports are "
        "named, never their tables: `{{ orders }}` or `{{ sales/orders }}` stands for the "
        "table the input port reads.",
        default=None,
        min_length=1,
        max_length=16384,
    )
    source_secret: Name | None = _d(
        "A Secret in the product's namespace with a source database's libpq settings "
        "(PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD): `sql` runs there and its rows "
        "are loaded into the warehouse (a source-aligned product's load).",
        default=None,
    )


class Principals(ApiModel):
    """A set of principals: whole domains, groups and service accounts."""

    domains: list[Name] = _d(
        "Domains whose members are granted access.", default_factory=list, max_length=64
    )
    groups: list[Annotated[str, Field(min_length=1, max_length=128)]] = _d(
        "Identity groups granted access.", default_factory=list, max_length=64
    )
    service_accounts: list[
        Annotated[
            str, Field(max_length=253, pattern=r"^[a-z0-9-]{1,63}/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
        ]
    ] = _d(
        "Service accounts granted access, as `namespace/name`.", default_factory=list, max_length=64
    )


class Access(ApiModel):
    """Who may read and write the product, and whether access is audited."""

    readers: Principals = _d(
        "Granted read access to the contract and data.", default_factory=Principals
    )
    writers: Principals = _d("Granted write access.", default_factory=Principals)
    audit_logging: bool = _d("Every access to the data is logged.", default=False)


class Deprecation(ApiModel):
    """Announces the product's retirement to its consumers."""

    deprecated: bool = _d("The product is deprecated.", default=True)
    sunset_date: str | None = _d(
        "Date after which the product is removed (YYYY-MM-DD).",
        default=None,
        pattern=r"^\d{4}-\d{2}-\d{2}$",
    )
    replaced_by: Name | None = _d("Product consumers should move to.", default=None)
    reason: str | None = _d("Why the product is retired.", default=None, max_length=512)


class DataProductSpec(ApiModel):
    """The desired state of a data product: its contract, promises and resources."""

    validations: ClassVar[list[dict[str, str]]] = [
        cel(
            "self.classification != 'public' || !self.schema.fields.exists(f, f.pii)",
            "a public product cannot contain fields marked pii",
            ".classification",
        ),
        cel("self.retentionDays > 0", "retentionDays must be positive", ".retentionDays"),
    ]

    domain: Name = _d("Owning domain; must match the product's namespace and folder.")
    owner: Owner = _d("Owning team and contacts.")
    description: str = _d("What the product is, for consumers.", min_length=1, max_length=2048)
    version: str = _d(
        "Semantic version of the contract. A breaking change needs a new major version.",
        pattern=SEMVER,
        max_length=64,
    )
    type: ProductType = _d(
        "Place in the mesh: source-aligned, aggregate, consumer-aligned or derived."
    )
    classification: Classification = _d(
        "Data classification; drives retention, encryption and access policies."
    )
    retention_days: int = _d("How long data is kept, in days.", ge=1, le=36500)
    tags: list[Tag] = _d(
        "Free-form tags for search and policy matching.", default_factory=list, max_length=32
    )
    schema_: ContractSchema = Field(
        alias="schema", description="The output contract: format and columns."
    )
    input_ports: list[InputPort] = _d(
        "Upstream products read (lineage).", default_factory=list, max_length=64
    )
    output_ports: list[OutputPort] = _d(
        "Interfaces consumers read from; names are unique.",
        default_factory=list,
        max_length=16,
        json_schema_extra=UNIQUE_BY_NAME,
    )
    sla: Sla | None = _d("Service levels; required by the global SLA policy.", default=None)
    quality_checks: list[QualityCheck] = _d(
        "Data quality checks run by the pipeline; names are unique.",
        default_factory=list,
        max_length=64,
        json_schema_extra=UNIQUE_BY_NAME,
    )
    storage: Storage | None = _d("Storage to provision; none when unset.", default=None)
    pipeline: Pipeline | None = _d("Refresh job to run; none when unset.", default=None)
    access: Access = _d("Readers, writers and audit logging.", default_factory=Access)
    deletion_policy: DeletionPolicy = _d(
        "What happens to the storage when the product is "
        "deleted: Retain keeps it, Delete removes it.",
        default=DeletionPolicy.RETAIN,
    )
    deprecation: Deprecation | None = _d("Retirement notice, when deprecated.", default=None)
    warehouse: Name | None = _d(
        "The warehouse that holds the product's `table` output ports, by the name the "
        "platform team gave it (the operator's `warehouses` setting); the first one when "
        "unset.",
        default=None,
    )


class Condition(ApiModel):
    """A Kubernetes-style condition."""

    model_config = ConfigDict(frozen=False)

    type: str = _d("Condition type, e.g. Ready.", max_length=63)
    status: str = _d("True, False or Unknown.", pattern=r"^(True|False|Unknown)$")
    reason: str = _d("CamelCase reason for the last transition.", max_length=128)
    message: str = _d("Human-readable detail.", default="", max_length=4096)
    last_transition_time: str = _d("When the status last changed (RFC 3339).")
    observed_generation: int | None = _d(
        "Generation the condition was computed from.", default=None
    )


class Violation(ApiModel):
    """One failed policy rule."""

    policy: str = _d("Failed policy, as `namespace/name`.")
    rule: str = _d("Failed rule of the policy.")
    enforcement: Enforcement = _d("block, warn or audit.")
    severity: Severity = _d("How bad the failure is.")
    message: str = _d("What is wrong and how to fix it.")


class EvaluatedPolicy(ApiModel):
    """A policy evaluated for a product, and the generation that was evaluated."""

    policy: str = _d("Policy, as `namespace/name`.")
    generation: int = _d("metadata.generation of the policy evaluated.")


class Compliance(ApiModel):
    """Result of the last governance evaluation."""

    compliant: bool = _d("No block rule fails.")
    blocking: int = _d("Number of failed block rules.", default=0)
    warnings: int = _d("Number of failed warn rules.", default=0)
    audits: int = _d("Number of failed audit rules.", default=0)
    violation_count: int = _d("Number of failed rules of any enforcement.", default=0)
    violations: list[Violation] = _d("Failed rules, in a stable order.", default_factory=list)
    policies: list[EvaluatedPolicy] = _d(
        "Policies evaluated, with the generations that produced the current verdict.",
        default_factory=list,
    )
    evaluated_at: str | None = _d(
        "When the evaluation result last changed (RFC 3339).", default=None
    )


class Children(ApiModel):
    """Names of the resources provisioned for the product."""

    storage_claim: str | None = _d("PersistentVolumeClaim.", default=None)
    cron_job: str | None = _d("Pipeline CronJob.", default=None)
    config_map: str | None = _d("Published contract ConfigMap.", default=None)
    service_account: str | None = _d("Pipeline ServiceAccount.", default=None)
    role: str | None = _d("Reader Role.", default=None)
    role_binding: str | None = _d("Reader RoleBinding.", default=None)
    warehouse_secret: str | None = _d(
        "Secret with the pipeline's warehouse credentials.", default=None
    )


class Lineage(ApiModel):
    """Resolved lineage, as `domain/name` references."""

    upstream: list[str] = _d("Products this one reads.", default_factory=list)
    downstream: list[str] = _d("Products that read this one.", default_factory=list)
    missing: list[str] = _d("Declared upstream products that do not exist.", default_factory=list)
    cycle: list[str] | None = _d(
        "A lineage cycle through this product, as the path that closes it.", default=None
    )


class WarehouseStatus(ApiModel):
    """The product's objects in its warehouse."""

    name: str = _d("The warehouse.")
    role: str | None = _d("Role the product's pipeline logs in as.", default=None)
    tables: list[str] = _d("Tables of the table ports, as `schema.table`.", default_factory=list)
    plan_hash: str | None = _d(
        "Digest of the objects last provisioned: a reconcile whose plan has the same digest "
        "sends nothing to the warehouse.",
        default=None,
    )


class CheckStatus(ApiModel):
    """One quality check's latest verdict, measured on the product's table."""

    name: str = _d("The check.")
    rule: str = _d("Built-in rule, or sql.")
    severity: str = _d("info, warning, error or critical.")
    verdict: str = _d("Passed, Failed or Unknown (it could not run: the message says why).")
    value: float | None = _d("What was measured.", default=None)
    expected: str | None = _d("What passes, e.g. `>= 0.99` or `<= 3600 s`.", default=None)
    message: str | None = _d("The measurement, or why it could not be made.", default=None)
    sample: list[str] = _d(
        "A few failing rows, each as JSON (bounded).", default_factory=list, max_length=5
    )


class QualityStatus(ApiModel):
    """The latest quality run: after each pipeline run, on the product's table."""

    summary: str = _d("E.g. `7/8 passed`, or `1 failed` (shown by kubectl).")
    last_run: str | None = _d("When the checks ran (RFC 3339).", default=None)
    job: str | None = _d("The pipeline run (Job) whose pod ran them.", default=None)
    table: str | None = _d("The table checked.", default=None)
    checks: list[CheckStatus] = _d("Every check's verdict.", default_factory=list)


class SlaStatus(ApiModel):
    """The SLA as measured: freshness from the data and from the pipeline's runs."""

    freshness_target: str = _d("spec.sla.freshness.")
    availability_target: float = _d("spec.sla.availability, in percent.")
    last_success: str | None = _d("When the last successful run finished.", default=None)
    data_age_seconds: float | None = _d(
        "Age of the newest row at the last check (the freshness check's measure).", default=None
    )
    availability: float | None = _d(
        "Share of the recent runs that succeeded, in percent.", default=None
    )
    recent_runs: int = _d("Runs the availability is measured over.", default=0)


class DataProductStatus(ApiModel):
    """Observed state, written by the operator."""

    observed_generation: int | None = _d("Generation last reconciled.", default=None)
    phase: Phase | None = _d("Summary of the product's state.", default=None)
    conditions: list[Condition] = _d(
        "Compliant, StorageReady, PipelineReady, LineageResolved, WarehouseReady, "
        "QualityPassed, SLAMet, Ready.",
        default_factory=list,
    )
    compliance: Compliance | None = _d("Governance evaluation result.", default=None)
    children: Children | None = _d("Provisioned resources.", default=None)
    lineage: Lineage | None = _d("Resolved upstream and downstream products.", default=None)
    warehouse: WarehouseStatus | None = _d(
        "Tables and role in the warehouse, when one is configured.", default=None
    )
    quality: QualityStatus | None = _d("The latest quality checks' verdicts.", default=None)
    sla: SlaStatus | None = _d("The SLA as measured.", default=None)


# -- GovernancePolicy -----------------------------------------------------------------------


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement, as in Kubernetes."""

    key: str = _d("Label key.", max_length=317)
    operator: str = _d(
        "In, NotIn, Exists or DoesNotExist.", pattern=r"^(In|NotIn|Exists|DoesNotExist)$"
    )
    values: list[Annotated[str, Field(max_length=63)]] = _d(
        "Values for In and NotIn.", default_factory=list, max_length=64
    )


class LabelSelector(ApiModel):
    """A Kubernetes label selector over the product's labels."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] = _d(
        "Labels that must all be present with these values.", default_factory=dict
    )
    match_expressions: list[LabelSelectorRequirement] = _d(
        "Requirements that must all hold.", default_factory=list, max_length=16
    )


class Match(ApiModel):
    """Which products a policy applies to; an empty list means any."""

    domains: list[Name] = _d("Domains the policy applies to.", default_factory=list, max_length=64)
    classifications: list[Classification] = _d(
        "Classifications it applies to.", default_factory=list, max_length=4
    )
    tags: list[Tag] = _d(
        "Applies to products carrying any of these tags.", default_factory=list, max_length=32
    )
    selector: LabelSelector | None = _d("Label selector over the product's labels.", default=None)


class Rule(ApiModel):
    """One CEL check over the product, bound as `object`."""

    name: Name = _d("Rule name, unique within the policy.")
    when: str | None = _d(
        "CEL condition; the rule applies only when it is true.", default=None, max_length=4096
    )
    expression: str = _d(
        "CEL expression that is true when the product complies, e.g. `has(object.spec.sla)`.",
        min_length=1,
        max_length=4096,
    )
    message: str = _d(
        "Shown when the rule fails; say how to fix it.", min_length=1, max_length=1024
    )


# A day of the calendar (no February 30th; February 29th in leap years only), optionally
# followed by a time: checked by the pattern itself, so the CRD, meshctl and the models
# refuse the same strings with the same message.
REAL_DATE = (
    r"^([0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-8]))"
    r"|([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29)"
    r"([T ][0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)


class PolicyException(ApiModel):
    """Exempts one product from this policy until a date. Expired exceptions stop applying."""

    product: Name = _d("Name of the exempted product.")
    domain: Name | None = _d("Domain of the exempted product; any domain when unset.", default=None)
    reason: str = _d("Why the exception is granted.", min_length=1, max_length=1024)
    expires: str = _d(
        "When the exception lapses (RFC 3339 date-time or YYYY-MM-DD).",
        pattern=REAL_DATE,
        max_length=40,
    )


class GovernancePolicySpec(ApiModel):
    """A governance policy: global in the platform namespace, domain-scoped elsewhere."""

    description: str = _d("What the policy protects and why.", min_length=1, max_length=2048)
    enforcement: Enforcement = _d("block stops provisioning, warn reports, audit records.")
    severity: Severity = _d("How bad a violation is.", default=Severity.ERROR)
    match: Match = _d("Which products the policy applies to.", default_factory=Match)
    rules: list[Rule] = _d(
        "CEL rules; all must hold; names are unique.",
        min_length=1,
        max_length=32,
        json_schema_extra=UNIQUE_BY_NAME,
    )
    exceptions: list[PolicyException] = _d(
        "Time-limited exemptions.", default_factory=list, max_length=128
    )


class GovernancePolicyStatus(ApiModel):
    """Observed state of a policy, written by the operator."""

    observed_generation: int | None = _d("Generation last evaluated.", default=None)
    conditions: list[Condition] = _d("Valid: every expression compiles.", default_factory=list)
    matched: int | None = _d("Number of products the policy applies to.", default=None)
    violating: int | None = _d("Number of matched products failing a rule.", default=None)
    errors: list[str] = _d("Compile errors per rule, when invalid.", default_factory=list)
    warnings: list[str] = _d(
        "Problems that do not invalidate the policy, e.g. an exception naming no product.",
        default_factory=list,
    )


# -- whole objects --------------------------------------------------------------------------


class ObjectMeta(BaseModel):
    """The parts of metadata the engine reads. The rest (managedFields, annotations) is
    dropped: the operator keeps every product's model in memory."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The apiserver's own rules for names (RFC 1123 subdomain) and namespaces (label), so
    # that `meshctl validate` refuses what `kubectl apply` would.
    name: str = Field(
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    )
    namespace: str = Field("", max_length=63, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    labels: dict[str, str] = Field(default_factory=dict)
    generation: int = 0


class DataProduct(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    KIND: ClassVar[str] = "DataProduct"

    metadata: ObjectMeta
    spec: DataProductSpec

    @property
    def ref(self) -> str:
        """Stable reference used in lineage and messages: `domain/name`."""
        return f"{self.spec.domain}/{self.metadata.name}"


class GovernancePolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    KIND: ClassVar[str] = "GovernancePolicy"

    metadata: ObjectMeta
    spec: GovernancePolicySpec

    @property
    def ref(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"
