"""Proactive scheduler: due-event scan, reminder dispatch, status notices."""
