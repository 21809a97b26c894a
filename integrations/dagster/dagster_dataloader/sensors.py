"""The seed's sensors in Dagster terms: the master sensor launches the tables that are due; the
failure sensor runs DataLoader's retry analysis on a failed load and shows its verdict on the
Dagster run."""

from typing import Any, Iterable, Optional, Sequence

import dagster as dg

from dagster_dataloader.assets import asset_key_of
from dagster_dataloader.resource import DataloaderError, DataloaderResource

# DataLoader's long-running monitor cancels a load after this long unless the table says otherwise.
DEFAULT_TIMEOUT_MINUTES = 180

TABLE_TAG = "dataloader/table"


def run_tags_for(due: dict[str, Any]) -> dict[str, str]:
    """Run tags of a due table's run: Dagster's run monitoring fails it after the table's
    timeout (`dagster/max_runtime`, in seconds), as DataLoader's long-running monitor would."""
    minutes = due.get("timeout_minutes") or DEFAULT_TIMEOUT_MINUTES
    return {
        "dagster/max_runtime": str(int(minutes) * 60),
        TABLE_TAG: due["table"],
        "dataloader/due_since": due["due_since"],
    }


def build_dataloader_sensor(
    assets: Sequence[dg.AssetsDefinition],
    *,
    name: str = "dataloader_master_sensor",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """Every `minimum_interval_seconds`, one RunRequest per due table among `assets`.

    The run key is the table and the time it fell due, so a tick repeated (or two sensors
    ticking at once) never launches a table twice; once the load moves the table's next load
    time, the next due time makes a new key.
    """
    keys = {key for a in assets for key in a.keys}

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        target=dg.AssetSelection.assets(*keys),
        default_status=default_status,
        description="DataLoader's master sensor: launches the tables whose next load time has passed.",
    )
    def _master(context: dg.SensorEvaluationContext, dataloader: DataloaderResource):
        requests = []
        for due in dataloader.due():
            key = asset_key_of(due["table"])
            if key not in keys:
                context.log.warning(
                    f"{due['table']} is due but has no asset here: reload the code location after adding tables"
                )
                continue
            requests.append(
                dg.RunRequest(run_key=due["run_key"], asset_selection=[key], tags=run_tags_for(due))
            )
        if not requests:
            return dg.SkipReason("no DataLoader table is due")
        return requests

    return _master


def tables_of_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The tables a Dagster run was to load: its table tag, else the `catalog/schema/table`
    assets it selected or planned to materialize."""
    if TABLE_TAG in run.tags:
        return [run.tags[TABLE_TAG]]
    keys = list(run.asset_selection or [])
    if not keys:
        planned = instance.get_records_for_run(
            run_id=run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
        keys = [r.event_log_entry.dagster_event.asset_key for r in planned if r.event_log_entry.dagster_event]
    return sorted({".".join(key.path) for key in keys if key is not None and len(key.path) == 3})


def build_dataloader_failure_sensor(
    *,
    name: str = "dataloader_failed_monitor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    monitored_jobs: Optional[Iterable[Any]] = None,
) -> dg.SensorDefinition:
    """On a failed run, DataLoader's retry analysis (the seed's failed monitor): the verdict
    (retry now, retry with backoff, do not retry, and why) becomes tags on the Dagster run and a
    log line; a retryable table's next load time moves forward, so the master sensor relaunches
    it with a new run key."""

    @dg.run_failure_sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        monitored_jobs=list(monitored_jobs) if monitored_jobs is not None else None,
        description="DataLoader's failed monitor: retry analysis of failed loads.",
    )
    def _failed(context: dg.RunFailureSensorContext, dataloader: DataloaderResource):
        tables = tables_of_run(context.instance, context.dagster_run)
        if not tables:
            return
        verdicts = {v["table"]: v for v in dataloader.analyze()}
        log = dg.get_dagster_logger()
        for table in tables:
            verdict = verdicts.get(table)
            if verdict is None:
                # Already analysed (by another tick or `dataloader run`): the newest run holds it.
                try:
                    runs = dataloader.history(table, limit=1)
                except DataloaderError:
                    continue  # an asset DataLoader does not load
                if not runs or not runs[0].get("retry_recommendation"):
                    continue
                verdict = {
                    "run_id": runs[0]["run_id"],
                    "recommendation": runs[0]["retry_recommendation"],
                    "category": runs[0].get("retry_category") or "unknown",
                    "explanation": runs[0].get("retry_explanation") or "",
                    "retry_at": None,
                }
            tags = {
                "dataloader/retry": verdict["recommendation"],
                "dataloader/retry_category": verdict["category"],
                "dataloader/run_id": str(verdict["run_id"]),
            }
            if verdict.get("retry_at"):
                tags["dataloader/retry_at"] = verdict["retry_at"]
            context.instance.add_run_tags(context.dagster_run.run_id, tags)
            log.warning(
                f"DataLoader {table}, run {verdict['run_id']}: {verdict['recommendation']} "
                f"({verdict['category']}) — {verdict['explanation']}"
            )

    return _failed
