"""One nested run config (its sections) and the named presets."""
