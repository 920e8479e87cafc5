"""Configuration: models (the single source of truth), the YAML loader and env substitution."""
