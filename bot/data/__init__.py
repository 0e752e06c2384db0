"""Department data import and deterministic demo data."""
