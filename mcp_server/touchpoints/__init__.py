"""Touchpoints: ``@touchpoint NAME [description]`` markers written in source comments.

This package finds the markers in a file's bytes, with the declaration each one
annotates. The index, the MCP tools and the CLI above it store and serve the
results. Importing it loads only the standard library, because the capture hook
may load it on every tool call.
"""

from __future__ import annotations

from .extract import (
    EXTRACTOR_VERSION,
    MAX_FILE_BYTES,
    MAX_NOTEBOOK_BYTES,
    Extraction,
    Extractor,
    Touchpoint,
    extract,
    extract_text,
    language_for_path,
)

__all__ = [
    "EXTRACTOR_VERSION",
    "MAX_FILE_BYTES",
    "MAX_NOTEBOOK_BYTES",
    "Extraction",
    "Extractor",
    "Touchpoint",
    "extract",
    "extract_text",
    "language_for_path",
]
