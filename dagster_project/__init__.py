"""The Dagster front end of inttower: one asset per registry stage, with checks and metadata."""
