"""Model card templates, one `<family>.md` per model family, read by `hfgen.model_card`."""
