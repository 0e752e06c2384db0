"""Proactive messages: the delivery API and its outbox, send errors and pacing, SMS
and e-mail, per-channel state.
"""
