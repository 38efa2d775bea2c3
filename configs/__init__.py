"""Config schema and example files; ``broker.mode`` in a config is the one switch between modes."""
