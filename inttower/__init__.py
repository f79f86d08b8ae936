"""inttower: a leak-free, reproducible IntTower pre-ranking pipeline on MovieLens."""

__version__ = "0.1.0"
