"""One Dagster asset per active DataLoader table, materialized by `dataloader load` via Pipes."""

import re
from typing import Any, Callable, Optional, Sequence

import dagster as dg

from dagster_dataloader.resource import DataloaderResource

# DataLoader's database types as Dagster kinds (the names Dagster has icons for).
_KINDS = {
    "postgresql": "postgres",
    "mssql": "sqlserver",
    "snowflakepem": "snowflake",
}

_CHECK_DESCRIPTIONS = {
    "primary_key_unique": "The Delta table holds each primary-key value once.",
    "row_count_matches_source": "The Delta table holds as many rows as the source table (checked after each load; the source may have moved on meanwhile, so a miss is a warning).",
}


def describe(table: dict[str, Any]) -> str:
    """A table's configuration in a sentence or two, for the asset's description."""
    source = table["source"]
    if isinstance(source, dict):
        source = ".".join(p for p in (source.get("schema"), source.get("name")) if p)
    parts = [
        f"DataLoader loads `{source}` from connection `{table['connection']}` "
        f"({table.get('source_type') or 'unknown type'}), strategy `{table['strategy']}`"
    ]
    if table.get("primary_keys"):
        parts.append(f"primary key ({', '.join(table['primary_keys'])})")
    if table.get("incremental_column"):
        parts.append(f"incremental column `{table['incremental_column']}`")
    if table.get("schedule"):
        parts.append(f"schedule `{table['schedule']}` ({table.get('timezone') or 'UTC'})")
    return ", ".join(parts) + "."


def _asset_for(table: dict[str, Any], with_checks: bool) -> dg.AssetsDefinition:
    key = dg.AssetKey(table["asset_key"])
    destination = table["destination"]
    source_type = table.get("source_type") or "unknown"
    check_names = list(table.get("asset_checks", [])) if with_checks else []
    checks = [
        dg.AssetCheckSpec(name, asset=key, description=_CHECK_DESCRIPTIONS.get(name))
        for name in check_names
    ]

    @dg.asset(
        key=key,
        # Group names are Python-identifier-like; a schema may hold a hyphen.
        group_name=re.sub(r"[^A-Za-z0-9_]", "_", table["asset_key"][1]),
        kinds={_KINDS.get(source_type, source_type), "delta"},
        tags={"dataloader/strategy": table["strategy"], "dataloader/source_type": source_type},
        description=describe(table),
        check_specs=checks or None,
        metadata={"dataloader/table": destination, "dataloader/table_id": table["table_id"]},
    )
    def _load(context: dg.AssetExecutionContext, dataloader: DataloaderResource):
        return dataloader.load(context, destination, checks=check_names).get_results()

    return _load


def build_dataloader_assets(
    dataloader: DataloaderResource,
    *,
    select: Optional[Callable[[dict[str, Any]], bool]] = None,
    checks: bool = True,
) -> Sequence[dg.AssetsDefinition]:
    """One asset per active table of the control database (read when the code location loads),
    materialized with the resource bound to the key `dataloader`.

    Asset key `[catalog, schema, table]`, group = schema, kinds = source type and delta, tags
    `dataloader/strategy` and `dataloader/source_type`, asset checks as DataLoader reports them.
    `select` keeps only the tables (the rows of `dataloader table list --json`) it accepts.
    `checks=False` leaves the checks out: each one reads the whole key column of the Delta table
    (and counts the source), which a very large table may not want after every load.
    """
    return [
        _asset_for(table, checks)
        for table in dataloader.tables()
        if table.get("is_active", True) and (select is None or select(table))
    ]
