"""Text processing: normalisation, handcrafted features and PII redaction.

Plain functions over a pandas Series of texts, free of Ray: the pipeline stages wrap them, and
they run as they are in notebooks and tests.
"""

from privacy_ray.text.features import (
    FEATURE_CATALOGUE,
    FeatureSpec,
    catalogue_records,
    compute_features,
    feature_names,
)
from privacy_ray.text.normalize import normalize_text, normalize_texts
from privacy_ray.text.redaction import (
    ENTITIES,
    PiiSpan,
    Redactor,
    detect_pii,
    make_redactor,
    pii_counts,
    redact,
    redact_texts,
    scan_texts,
)

__all__ = [
    "ENTITIES",
    "FEATURE_CATALOGUE",
    "FeatureSpec",
    "PiiSpan",
    "Redactor",
    "catalogue_records",
    "compute_features",
    "detect_pii",
    "feature_names",
    "make_redactor",
    "normalize_text",
    "normalize_texts",
    "pii_counts",
    "redact",
    "redact_texts",
    "scan_texts",
]
