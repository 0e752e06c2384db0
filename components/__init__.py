"""Custom Rasa NLU components (registered by module path in config.yml)."""
