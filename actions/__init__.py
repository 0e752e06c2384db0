"""Rasa custom actions: thin adapters over the domain logic in `bot/`.

The action server has configured its log handlers by the time it imports this package; the
masking filter goes onto them so no ID number or phone is logged unmasked.
"""

from bot.governance.pii import install_masking

install_masking()
