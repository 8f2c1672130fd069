"""The pure governance engine: CEL policies, lineage, breaking-change rules and their
translation to admission policies. No I/O and no clock; imports only ``datamesh.api``."""
