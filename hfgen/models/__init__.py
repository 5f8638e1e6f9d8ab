"""hfgen model families: one folder each, transformers style (configuration_<family>.py + modeling_<family>.py)."""
