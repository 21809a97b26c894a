"""Assets built from a real control database, materialized by Dagster through Pipes, against
real PostgreSQL and MariaDB sources."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable

from conftest import apply_yaml, run_cli, wrong_password_table
from dagster_dataloader import build_dataloader_assets

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "definitions.py"


def make_sources(conn, schema: str) -> None:
    conn.execute(
        f'CREATE TABLE "{schema}".customers (id int PRIMARY KEY, name text NOT NULL, country text)'
    )
    conn.execute(
        f"""INSERT INTO "{schema}".customers
            SELECT i, 'customer ' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'NL' END
            FROM generate_series(1, 250) i"""
    )
    conn.execute(
        f"""CREATE TABLE "{schema}".orders (id bigint PRIMARY KEY, customer_id int NOT NULL,
            amount numeric(12, 2) NOT NULL, updated_at timestamptz NOT NULL)"""
    )
    conn.execute(
        f"""INSERT INTO "{schema}".orders
            SELECT i, 1 + i % 250, (i * 7 % 1000) / 4.0, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
            FROM generate_series(1, 1200) i"""
    )


def tables_yaml(schema: str) -> str:
    return f"""
connections:
  pg:
    type: postgresql
    host: 127.0.0.1
    port: 5432
    database: test
    user: postgres
defaults:
  connection: pg
  destination: bronze.{schema}.{{table}}
  schedule: "0 2 * * *"
tables:
  - source: {schema}.customers
    strategy: full
    primary_key: [id]
  - source: {schema}.orders
    strategy: incremental
    primary_key: [id]
    incremental_column: updated_at
"""


def source_rows(conn, schema: str, table: str) -> list[tuple]:
    return conn.execute(f'SELECT * FROM "{schema}".{table} ORDER BY id').fetchall()


def delta_rows(lake: Path, schema: str, table: str) -> list[tuple]:
    data = DeltaTable(str(lake / "bronze" / schema / table)).to_pyarrow_table()
    data = data.drop_columns(["_loaded_at", "_run_id"]).sort_by("id")
    columns = data.to_pydict()
    return list(zip(*columns.values()))


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetMaterialization]:
    return {
        m.asset_key.to_user_string(): m
        for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    }


def test_two_assets_materialize_through_pipes_and_equal_their_sources(pg_schema, dataloader, tmp_path):
    conn, schema = pg_schema
    make_sources(conn, schema)
    apply_yaml(dataloader, tmp_path, tables_yaml(schema))

    assets = build_dataloader_assets(dataloader)
    specs = {a.key.to_user_string(): a for a in assets}
    assert set(specs) == {f"bronze/{schema}/customers", f"bronze/{schema}/orders"}
    customers = specs[f"bronze/{schema}/customers"]
    assert customers.group_names_by_key[customers.key] == schema
    assert customers.specs_by_key[customers.key].kinds == {"postgres", "delta"}
    assert customers.specs_by_key[customers.key].tags["dataloader/strategy"] == "full"
    assert f"{schema}.customers" in customers.descriptions_by_key[customers.key]
    assert {c.name for c in customers.check_specs} == {"primary_key_unique", "row_count_matches_source"}
    assert {c.name for c in specs[f"bronze/{schema}/orders"].check_specs} == {"primary_key_unique"}

    result = dg.materialize(assets, resources={"dataloader": dataloader})
    assert result.success

    lake = tmp_path / "lakehouse"
    for table in ("customers", "orders"):
        assert delta_rows(lake, schema, table) == source_rows(conn, schema, table), table

    found = materializations(result)
    orders = found[f"bronze/{schema}/orders"].metadata
    assert orders["rows_read"].value == 1200
    assert orders["rows_written"].value == 1200
    assert orders["rows_deleted"].value == 0
    assert orders["strategy"].value == "incremental"
    assert orders["watermark_before"].value is None
    assert orders["watermark_after"].value == "2026-01-01 20:00:00+00"
    assert orders["delta_version"].value == 0
    assert orders["table_uri"].value.endswith(f"/bronze/{schema}/orders")
    assert orders["dagster/row_count"].value == 1200
    assert orders["duration_s"].value > 0
    assert isinstance(orders["dataloader_run_id"].value, int)
    assert found[f"bronze/{schema}/customers"].metadata["rows_written"].value == 250
    for m in found.values():
        assert m.tags["dagster/data_version"] == "0"

    checks = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    assert set(checks) == {
        (f"bronze/{schema}/customers", "primary_key_unique"),
        (f"bronze/{schema}/customers", "row_count_matches_source"),
        (f"bronze/{schema}/orders", "primary_key_unique"),
    }
    assert all(c.passed for c in checks.values())
    count = checks[(f"bronze/{schema}/customers", "row_count_matches_source")]
    assert count.metadata["source_rows"].value == 250
    assert count.metadata["delta_rows"].value == 250

    # A second materialization merges only the changes, and Dagster sees a new data version.
    conn.execute(f"""UPDATE "{schema}".orders SET amount = amount + 1, updated_at = updated_at + interval '1 day' WHERE id % 100 = 0""")
    conn.execute(f"""INSERT INTO "{schema}".orders VALUES (5000, 1, 9.99, timestamptz '2026-03-01 00:00:00+00')""")
    orders_asset = specs[f"bronze/{schema}/orders"]
    again = dg.materialize([orders_asset], resources={"dataloader": dataloader})
    assert again.success
    metadata = materializations(again)[f"bronze/{schema}/orders"]
    assert metadata.metadata["rows_read"].value == 13
    assert metadata.metadata["rows_inserted"].value == 1
    assert metadata.metadata["rows_updated"].value == 12
    assert metadata.tags["dagster/data_version"] == "1"
    assert delta_rows(lake, schema, "orders") == source_rows(conn, schema, "orders")

    history = dataloader.history(f"bronze.{schema}.orders", limit=5)
    assert [r["trigger"] for r in history] == ["dagster", "dagster"]


def test_a_failed_load_fails_the_run_with_dataloaders_message(mariadb_user, dataloader, tmp_path, monkeypatch):
    table = wrong_password_table(dataloader, tmp_path, mariadb_user, monkeypatch)
    assets = build_dataloader_assets(dataloader)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(assets, resources={"dataloader": dataloader}, instance=instance, raise_on_error=False)
    assert not result.success
    assert not result.get_asset_materialization_events()

    messages = [e.user_message or "" for e in instance.all_logs(result.run_id)]
    failure = [m for m in messages if "DataLoader load failed" in m]
    assert failure, messages
    assert "Access denied" in failure[0] and mariadb_user in failure[0], failure[0]
    assert "wrong-password" not in "\n".join(messages)
    step_failure = result.get_step_failure_events()[0].step_failure_data.error
    assert step_failure is not None

    runs = dataloader.history(table)
    assert runs[0]["status"] == "Failed" and runs[0]["trigger"] == "dagster"


def test_the_example_definitions_materialize_headless(pg_schema, dataloader, tmp_path):
    conn, schema = pg_schema
    make_sources(conn, schema)
    apply_yaml(dataloader, tmp_path, tables_yaml(schema))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "DATALOADER_BIN": dataloader.binary,
        "DATALOADER_CONTROL_DB": dataloader.control_db,
        "DATALOADER_LAKE_ROOT": dataloader.lake_root,
    }
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "asset", "materialize", "-f", str(EXAMPLE), "--select", f"bronze/{schema}/customers"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RUN_SUCCESS" in done.stdout + done.stderr
    lake = Path(dataloader.lake_root)
    assert delta_rows(lake, schema, "customers") == source_rows(conn, schema, "customers")
    assert not (lake / "bronze" / schema / "orders").exists()
    assert "Succeeded" in run_cli(dataloader, "history", f"bronze.{schema}.customers")


def test_dagster_dev_loads_the_example_and_its_sensor_launches_the_due_table(pg_schema, dataloader, tmp_path):
    """The whole path: `dagster dev` loads definitions.py, its daemon ticks the master sensor,
    the sensor's run materializes the due table through Pipes."""
    conn, schema = pg_schema
    make_sources(conn, schema)
    apply_yaml(dataloader, tmp_path, tables_yaml(schema).replace("strategy: incremental", "strategy: incremental\n    active: false"))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "DATALOADER_BIN": dataloader.binary,
        "DATALOADER_CONTROL_DB": dataloader.control_db,
        "DATALOADER_LAKE_ROOT": dataloader.lake_root,
        "DATALOADER_SENSORS": "running",
    }
    dagster = Path(sys.executable).parent / "dagster"
    log = open(tmp_path / "dagster-dev.log", "w")
    dev = subprocess.Popen(
        [str(dagster), "dev", "-f", str(EXAMPLE), "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    table = f"bronze.{schema}.customers"
    try:
        deadline = time.monotonic() + 180
        runs = []
        while time.monotonic() < deadline:
            assert dev.poll() is None, (tmp_path / "dagster-dev.log").read_text()
            runs = dataloader.history(table)
            if runs and runs[0]["status"] == "Succeeded":
                break
            time.sleep(1)
        assert runs and runs[0]["status"] == "Succeeded", (tmp_path / "dagster-dev.log").read_text()
        assert runs[0]["trigger"] == "dagster"

        query = '{ runsOrError { ... on Runs { results { status tags { key value } } } } }'
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"content-type": "application/json"},
        )
        deadline = time.monotonic() + 30
        while True:
            found = json.load(urllib.request.urlopen(request))["data"]["runsOrError"]["results"]
            if found and found[0]["status"] == "SUCCESS" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(found) == 1, found
        tags = {t["key"]: t["value"] for t in found[0]["tags"]}
        assert found[0]["status"] == "SUCCESS"
        assert tags["dagster/sensor_name"] == "dataloader_master_sensor"
        assert tags["dataloader/table"] == table
        assert tags["dagster/run_key"].startswith(f"{table}@")
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        log.close()
    assert delta_rows(Path(dataloader.lake_root), schema, "customers") == source_rows(conn, schema, "customers")
