"""Rasa custom actions: thin adapters over the domain logic in `bot/`."""
