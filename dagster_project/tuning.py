"""`inttower tune` as a Dagster job: the same study, launched from the UI with its config."""

from pathlib import Path

import dagster as dg

from dagster_project.logs import forward_library_logs
from dagster_project.metadata import four_decimals, md_table
from dagster_project.resources import RunContext
from inttower.lifecycle.tuning import load_space, tune


class TuneConfig(dg.Config):
    """The search space file (relative to the project root) and how many trials to run now."""

    space: str = "tune.yaml"
    trials: int | None = None


@dg.op(description="An Optuna study over the declared space, every trial scored on valid")
def tune_study(
    context: dg.OpExecutionContext, config: TuneConfig, run: dg.ResourceParam[RunContext]
) -> dict:
    space = load_space(Path(run.storage.root) / config.space, run.params)
    with forward_library_logs(context.log), run.storage.mirror_env():
        report = tune(run.params, run.paths, space, config.trials)
    best = report["best"]
    rows = [
        {"trial": t["trial"], "state": t["state"], "valid_auc": t["valid_auc"], **t["params"]}
        for t in report["trials"]
    ]
    context.add_output_metadata(
        four_decimals(
            {
                "best_trial": best["trial"],
                "best_valid_auc": best["valid_auc"],
                "params_yaml_patch": dg.MetadataValue.md(f"```yaml\n{report['patch']}```"),
                "dvc_experiment": report["dvc"],
                "trials": dg.MetadataValue.md(md_table(rows)),
                "study": report["study"],
            }
        )
    )
    return report


@dg.job(
    name="tune_job",
    description="`inttower tune` from the launchpad: needs the encoded splits (run the pipeline "
    "first); prints nothing into the pipeline's outputs, writes data/tune/ and reports/tune.json",
)
def tune_job() -> None:
    tune_study()


def tuning_definitions() -> dg.Definitions:
    return dg.Definitions(jobs=[tune_job])
