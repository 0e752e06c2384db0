"""A local phone simulator for demos and tests: stand-ins for the Zalo, Telegram and eSMS
provider APIs (`standins`), and a page where a tester plays a demo citizen on each channel
against the real Rasa server, connectors and scheduler pipeline (`app`). It never runs where
real channel secrets are configured. `python -m simulator serve` starts it on 127.0.0.1."""
