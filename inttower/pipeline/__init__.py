"""The pipeline's machinery: the stage registry, the artifact catalog and paths, each stage's
code dependencies, the run lock, and the stage functions themselves.
"""
