"""Ingestion of machine-coded event data (POLECAT) into the data contract's events.csv."""

from neutrality_forecast.ingest.mapping import (
    CaseSpec,
    MappingError,
    PolecatMapping,
    default_mapping_path,
    load_mapping,
)
from neutrality_forecast.ingest.polecat import (
    POLECAT_HEADER,
    IngestError,
    IngestReport,
    ingest_polecat,
    read_header,
)

__all__ = [
    "POLECAT_HEADER",
    "CaseSpec",
    "IngestError",
    "IngestReport",
    "MappingError",
    "PolecatMapping",
    "default_mapping_path",
    "ingest_polecat",
    "load_mapping",
    "read_header",
]
