"""MovieLens sources, canonical schema, validation, labels and the temporal split."""
