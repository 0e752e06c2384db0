"""Officer console: a server-rendered aiohttp + Jinja2 app beside Rasa (issue 7)."""
