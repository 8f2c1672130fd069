"""The API layer: the pydantic models (the only source of the DataProduct and
GovernancePolicy APIs), the CRDs generated from them, and the constants every other
layer shares. Imports nothing else from ``datamesh``."""
