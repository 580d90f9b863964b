"""Per-model rules, in one table: the single source for validation and tool descriptions."""

from ttapi_mcp.catalog.models import (
    MODELS,
    ModelSpec,
    catalog_as_json,
    upstream_options,
)
from ttapi_mcp.catalog.rules import (
    MASK_MAX_BYTES,
    OPTIONAL_FIELDS,
    Violation,
    validate_edit,
    validate_generation,
)

__all__ = [
    "MASK_MAX_BYTES",
    "MODELS",
    "OPTIONAL_FIELDS",
    "ModelSpec",
    "Violation",
    "catalog_as_json",
    "upstream_options",
    "validate_edit",
    "validate_generation",
]
