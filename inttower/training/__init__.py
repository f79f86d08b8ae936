"""Device selection, batching, checkpoints and the training loop with early stopping."""
