"""DataLoader as Dagster assets: a resource, an asset factory and the replaced loader's sensors."""

from dagster_dataloader.assets import build_dataloader_assets
from dagster_dataloader.resource import DataloaderError, DataloaderResource
from dagster_dataloader.sensors import (
    build_dataloader_failure_sensor,
    build_dataloader_sensor,
)

__all__ = [
    "DataloaderError",
    "DataloaderResource",
    "build_dataloader_assets",
    "build_dataloader_failure_sensor",
    "build_dataloader_sensor",
]
