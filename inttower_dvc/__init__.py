"""DVC and git, for the front ends: `dvc.yaml` rendering, the `dvc`/`git` subprocess layer
and the `.dir` hash. The `inttower` library imports none of it.
"""
