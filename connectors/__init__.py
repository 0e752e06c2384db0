"""Rasa custom channels (Zalo OA, Telegram, SMS), registered by module path in credentials.yml,
and the senders the delivery pipeline (`bot/delivery/deliverer.py`) uses for proactive messages."""
