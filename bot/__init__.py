"""Domain logic of the proactive public-service assistant (no Rasa imports here)."""
