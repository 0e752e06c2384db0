"""Dossiers: drafts, consent and submission, the gateway to the provincial system,
status notices and texts, working days.
"""
