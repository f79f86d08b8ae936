"""The stage functions, one module per stage: each `run(params, paths)` reads the stage's inputs,
calls the library and writes its outputs, atomically and only after every check passed (a
failed stage leaves what earlier runs produced untouched), and returns a JSON-able summary that
the CLI prints and Dagster shows. A stage's code dependencies are the import closure of its
module (inttower/pipeline/code_deps.py): one module per stage keeps each stage's closure its
own, with every import at the top.
"""
