"""The sensors of the loader DataLoader replaces, in Dagster terms: the master sensor launches
the tables that are due; the failure sensor runs DataLoader's retry analysis on a failed load
and shows its verdict on the Dagster run."""

import time
from typing import Any, Iterable, Optional, Sequence

import dagster as dg

from dagster_dataloader.resource import DataloaderError, DataloaderResource

TABLE_TAG = "dataloader/table"
DUE_TAG = "dataloader/due_since"


def _run_tags_for(due: dict[str, Any]) -> dict[str, str]:
    """Run tags of a due table's run: Dagster's run monitoring fails it after the table's
    time limit (`dagster/max_runtime`), as DataLoader's long-running monitor would."""
    return {
        "dagster/max_runtime": str(due["max_runtime_seconds"]),
        TABLE_TAG: due["table"],
        DUE_TAG: due["due_since"],
    }


def _request_for(
    instance: dg.DagsterInstance,
    due: dict[str, Any],
    key: dg.AssetKey,
    retry_backoff_seconds: float,
    max_backoff_seconds: float,
) -> Optional[dg.RunRequest]:
    """The run request for a due table, or None while one is in flight or waiting to retry.

    A load that ran moves the table's next load time, so its next request has a new key. A
    Dagster run that failed before DataLoader recorded anything (no binary, no control
    database, a crashed run worker) moves nothing: it is asked for again under a new key,
    `#retryN`, after a backoff that doubles up to `max_backoff_seconds`, until a run gets
    through.
    """
    earlier = instance.get_run_records(
        filters=dg.RunsFilter(tags={TABLE_TAG: due["table"], DUE_TAG: due["due_since"]})
    )
    if any(not r.dagster_run.is_finished for r in earlier):
        return None
    attempts = len(earlier)
    run_key = due["run_key"]
    if attempts:
        ended = max(r.end_time or 0 for r in earlier)
        backoff = min(retry_backoff_seconds * 2 ** (attempts - 1), max_backoff_seconds)
        if time.time() < ended + backoff:
            return None
        run_key = f"{run_key}#retry{attempts}"
    return dg.RunRequest(run_key=run_key, asset_selection=[key], tags=_run_tags_for(due))


def build_dataloader_sensor(
    assets: Sequence[dg.AssetsDefinition],
    *,
    name: str = "dataloader_master_sensor",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    retry_backoff_seconds: float = 60,
    max_backoff_seconds: float = 3600,
) -> dg.SensorDefinition:
    """Every `minimum_interval_seconds`, one RunRequest per due table among `assets`.

    The run key is the table and the time it fell due, so a tick repeated (or two sensors
    ticking at once) never launches a table twice; once the load moves the table's next load
    time, the next due time makes a new key. See `_request_for` for runs that never reached
    DataLoader.
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
            key = dg.AssetKey(due["asset_key"])
            if key not in keys:
                context.log.warning(
                    f"{due['table']} is due but has no asset here: reload the code location after adding tables"
                )
                continue
            request = _request_for(context.instance, due, key, retry_backoff_seconds, max_backoff_seconds)
            if request is not None:
                requests.append(request)
        if not requests:
            return dg.SkipReason("no DataLoader table is due (or its run is in flight, or waits to retry)")
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


def _ran_for(record: dict[str, Any], marker: str) -> bool:
    return (record.get("worker") or "").endswith(marker)


def _from_history(run: dict[str, Any]) -> dict[str, Any]:
    """A `history` row's verdict, named as `analyze` names it."""
    return {
        "run_id": run["run_id"],
        "recommendation": run.get("retry_recommendation"),
        "category": run.get("retry_category"),
        "explanation": run.get("retry_explanation") or run.get("error_text"),
    }


def build_dataloader_failure_sensor(
    *,
    name: str = "dataloader_failed_monitor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    monitored_jobs: Optional[Iterable[Any]] = None,
) -> dg.SensorDefinition:
    """On a failed run, DataLoader's retry analysis (the replaced loader's failed monitor): the verdict
    (retry now, retry with backoff, do not retry, and why) becomes tags on the Dagster run and a
    log line; a retryable table's next load time moves forward, so the master sensor relaunches
    it with a new run key. A run that failed before DataLoader recorded a load is tagged
    `not_started`: the master sensor retries it."""

    @dg.run_failure_sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        monitored_jobs=list(monitored_jobs) if monitored_jobs is not None else None,
        description="DataLoader's failed monitor: retry analysis of failed loads.",
    )
    def _failed(context: dg.RunFailureSensorContext, dataloader: DataloaderResource):
        run = context.dagster_run
        tables = tables_of_run(context.instance, run)
        if not tables:
            return
        # `dataloader load` names the Dagster run in the worker of the run it records.
        marker = f"for Dagster run {run.run_id}"
        fresh = {v["table"]: v for v in dataloader.analyze() if _ran_for(v, marker)}
        log = dg.get_dagster_logger()
        for table in tables:
            verdict = fresh.get(table)
            if verdict is None:
                # Judged before this tick (or never run): the table's history holds it.
                try:
                    runs = dataloader.history(table, limit=10)
                except DataloaderError:
                    continue  # an asset DataLoader does not load
                verdict = next((_from_history(r) for r in runs if _ran_for(r, marker)), None)
            if verdict is None:
                tags = {"dataloader/retry": "not_started"}
                message = (
                    f"DataLoader {table}: the Dagster run failed before DataLoader recorded a load "
                    "(see the run's error); the master sensor launches it again after a backoff"
                )
            else:
                tags = {
                    "dataloader/retry": verdict.get("recommendation") or "unknown",
                    "dataloader/retry_category": verdict.get("category") or "unknown",
                    "dataloader/run_id": str(verdict["run_id"]),
                }
                message = (
                    f"DataLoader {table}, run {verdict['run_id']}: {tags['dataloader/retry']} "
                    f"({tags['dataloader/retry_category']}) — {verdict.get('explanation')}"
                )
            context.instance.add_run_tags(run.run_id, tags)
            log.warning(message)

    return _failed
