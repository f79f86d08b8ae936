"""A trained model's life after the pipeline: the champion and its promotion rule, retraining
as a decision, backtests over past cutoffs, hyper-parameter tuning.
"""
