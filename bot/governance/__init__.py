"""Accountability: the audit log's one writer, erasure, reports, masking of personal data."""
