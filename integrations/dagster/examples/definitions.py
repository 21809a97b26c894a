"""DataLoader under Dagster: every active table of the control database as an asset, the
master sensor and the failure sensor.

    DATALOADER_CONTROL_DB=sqlite:///path/dataloader.db DATALOADER_LAKE_ROOT=/path/lakehouse \
    DATALOADER_BIN=/path/to/dataloader dagster dev -f definitions.py

Turn the two sensors on in the UI (Automation), or set DATALOADER_SENSORS=running.
"""

import os

import dagster as dg

from dagster_dataloader import (
    DataloaderResource,
    build_dataloader_assets,
    build_dataloader_failure_sensor,
    build_dataloader_sensor,
)

# The control database and the lakehouse come from the environment the binary inherits
# (DATALOADER_CONTROL_DB, DATALOADER_LAKE_ROOT, or LAKEBASE_*): a URL with a password never
# shows in Dagster's UI.
dataloader = DataloaderResource(binary=os.environ.get("DATALOADER_BIN", "dataloader"))

sensor_status = (
    dg.DefaultSensorStatus.RUNNING
    if os.environ.get("DATALOADER_SENSORS") == "running"
    else dg.DefaultSensorStatus.STOPPED
)

dataloader_assets = build_dataloader_assets(dataloader)

defs = dg.Definitions(
    assets=dataloader_assets,
    sensors=[
        build_dataloader_sensor(dataloader_assets, default_status=sensor_status),
        build_dataloader_failure_sensor(default_status=sensor_status),
    ],
    resources={"dataloader": dataloader},
)
