"""Configuration, database engine and units of work, the schema and its migrations,
the clock, and the lifecycles of stored states.
"""
