"""The master sensor and the failure sensor, evaluated by Dagster against a real control
database."""

from __future__ import annotations

import dagster as dg

from conftest import apply_yaml, run_cli, wrong_password_table
from dagster_dataloader import (
    DataloaderResource,
    build_dataloader_assets,
    build_dataloader_failure_sensor,
    build_dataloader_sensor,
)


def tick(sensor, instance, dataloader) -> list[dg.RunRequest]:
    """One evaluation of the master sensor; its run requests."""
    with dg.build_sensor_context(instance=instance, resources={"dataloader": dataloader}) as context:
        return list(sensor.evaluate_tick(context).run_requests or [])


def evaluate_failure_sensor(sensor, result: dg.ExecuteInProcessResult, instance, dataloader) -> None:
    """The run failure sensor on a failed run, as Dagster's daemon would call it."""
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"dataloader": dataloader},
    ) as context:
        sensor(context.for_run_failure())


def test_the_master_sensor_requests_exactly_the_due_tables_once(pg_schema, dataloader, tmp_path):
    conn, schema = pg_schema
    for name in ("due_new", "loaded", "paused", "manual"):
        conn.execute(f'CREATE TABLE "{schema}".{name} (id int PRIMARY KEY, v text)')
        conn.execute(f"""INSERT INTO "{schema}".{name} VALUES (1, 'a'), (2, 'b')""")
    apply_yaml(
        dataloader,
        tmp_path,
        f"""
connections:
  pg: {{type: postgresql, host: 127.0.0.1, port: 5432, database: test, user: postgres}}
defaults:
  connection: pg
  destination: bronze.{schema}.{{table}}
  strategy: full
tables:
  - source: {schema}.due_new
    schedule: "*/5 * * * *"
    timeout_minutes: 30
  - source: {schema}.loaded
    schedule: "*/5 * * * *"
  - source: {schema}.paused
    schedule: "*/5 * * * *"
    active: false
  - source: {schema}.manual
""",
    )
    # Loaded once, its next load is the next cron time, a few minutes away: not due.
    run_cli(dataloader, "load", f"bronze.{schema}.loaded")

    # Without checks: the assets declare none, and the load must report none.
    assets = build_dataloader_assets(dataloader, checks=False)
    assert all(not a.check_specs for a in assets)
    sensor = build_dataloader_sensor(assets)

    instance = dg.DagsterInstance.ephemeral()

    first, second = tick(sensor, instance, dataloader), tick(sensor, instance, dataloader)
    assert [r.asset_selection for r in first] == [[dg.AssetKey(["bronze", schema, "due_new"])]]
    request = first[0]
    assert request.run_key.startswith(f"bronze.{schema}.due_new@")
    assert request.tags["dagster/max_runtime"] == str(30 * 60)
    assert request.tags["dataloader/table"] == f"bronze.{schema}.due_new"
    # The same tick again asks for the same run key, which Dagster launches only once.
    assert [r.run_key for r in second] == [r.run_key for r in first]

    # Once the due table has loaded, nothing is due.
    result = dg.materialize(
        [a for a in assets if a.key == dg.AssetKey(["bronze", schema, "due_new"])],
        resources={"dataloader": dataloader},
        instance=instance,
        tags=request.tags,
    )
    assert result.success
    assert not result.get_asset_check_evaluations()
    assert tick(sensor, instance, dataloader) == []


def test_the_failure_sensor_tags_the_run_with_dataloaders_verdict(mariadb_user, dataloader, tmp_path, monkeypatch):
    table = wrong_password_table(dataloader, tmp_path, mariadb_user, monkeypatch)
    assets = build_dataloader_assets(dataloader)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(assets, resources={"dataloader": dataloader}, instance=instance, raise_on_error=False)
    assert not result.success

    sensor = build_dataloader_failure_sensor()
    evaluate_failure_sensor(sensor, result, instance, dataloader)

    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["dataloader/retry"] == "do_not_retry"
    assert tags["dataloader/retry_category"] == "authentication"
    runs = dataloader.history(table)
    assert tags["dataloader/run_id"] == str(runs[0]["run_id"])
    assert runs[0]["retry_recommendation"] == "do_not_retry"


def test_a_run_that_never_reached_dataloader_is_retried_after_a_backoff(pg_schema, dataloader, tmp_path):
    conn, schema = pg_schema
    conn.execute(f'CREATE TABLE "{schema}".items (id int PRIMARY KEY)')
    apply_yaml(
        dataloader,
        tmp_path,
        f"""
connections:
  pg: {{type: postgresql, host: 127.0.0.1, port: 5432, database: test, user: postgres}}
tables:
  - source: {schema}.items
    connection: pg
    destination: bronze.{schema}.items
    strategy: full
    schedule: "0 2 * * *"
""",
    )
    assets = build_dataloader_assets(dataloader)
    sensor = build_dataloader_sensor(assets, retry_backoff_seconds=0)
    waiting = build_dataloader_sensor(assets, retry_backoff_seconds=3600)
    failed_monitor = build_dataloader_failure_sensor()
    instance = dg.DagsterInstance.ephemeral()
    # Runs launched with a binary that is not there fail before DataLoader records anything.
    broken = DataloaderResource(
        binary=str(tmp_path / "no-such-dataloader"), control_db=dataloader.control_db, lake_root=dataloader.lake_root
    )

    keys = []
    for attempt in range(3):
        requests = tick(sensor, instance, dataloader)
        assert len(requests) == 1
        keys.append(requests[0].run_key)
        result = dg.materialize(
            assets, resources={"dataloader": broken}, instance=instance, tags=requests[0].tags, raise_on_error=False
        )
        assert not result.success
        evaluate_failure_sensor(failed_monitor, result, instance, dataloader)
        assert instance.get_run_by_id(result.run_id).tags["dataloader/retry"] == "not_started"
    base = keys[0]
    assert base.startswith(f"bronze.{schema}.items@")
    assert keys == [base, f"{base}#retry1", f"{base}#retry2"]
    # Within the backoff, nothing is asked for; after it, the next retry.
    assert tick(waiting, instance, dataloader) == []
    assert [r.run_key for r in tick(sensor, instance, dataloader)] == [f"{base}#retry3"]
    assert dataloader.history(f"bronze.{schema}.items") == []
