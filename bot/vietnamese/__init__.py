"""Vietnamese text: normalisation, identifiers and formats, phrase matching, dates."""
