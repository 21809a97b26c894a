"""The `dataloader` binary as a Dagster resource."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Optional

import dagster as dg
from pydantic import Field


def _value(setting: str) -> str:
    """A setting's value; a `dg.EnvVar` (which keeps a URL's password out of Dagster's UI) is
    read from the environment, as Dagster itself would when it runs the resource."""
    if isinstance(setting, dg.EnvVar):
        value = setting.get_value()
        if value is None:
            raise DataloaderError(f"environment variable {setting.env_var_name} is not set")
        return value
    return setting


class DataloaderError(Exception):
    """A `dataloader` command failed; the message is what it printed on stderr."""


class DataloaderResource(dg.ConfigurableResource):
    """Where the `dataloader` binary is and which control database and lakehouse it uses.

    Settings left empty come from the environment, as for the binary itself
    (`DATALOADER_CONTROL_DB`, `DATALOADER_LAKE_ROOT`, `dataloader.toml`).
    """

    binary: str = Field(default="dataloader", description="Path of the dataloader binary.")
    control_db: Optional[str] = Field(
        default=None,
        description="Control database URL (sqlite://PATH or postgres://...); passed in the environment, never on the command line. Give a URL with a password as dg.EnvVar(NAME).",
    )
    lake_root: Optional[str] = Field(default=None, description="Lakehouse root: a directory or an object-store URL.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment for every dataloader command (secret references such as env:NAME resolve against it).",
    )
    timeout_seconds: int = Field(
        default=300,
        description="How long a listing command (table list, due, analyze, history) may take; loads have no limit here (Dagster's run timeout applies).",
    )

    def command_env(self) -> dict[str, str]:
        """The variables the binary gets on top of this process's environment."""
        extra = {name: _value(value) for name, value in self.env.items()}
        if self.control_db:
            extra["DATALOADER_CONTROL_DB"] = _value(self.control_db)
        if self.lake_root:
            extra["DATALOADER_LAKE_ROOT"] = _value(self.lake_root)
        return extra

    def run(self, *args: str) -> str:
        """Runs `dataloader ARGS` and returns what it printed on stdout."""
        return self._run(list(args), f"dataloader {' '.join(args)}")

    def run_json(self, *args: str) -> Any:
        """Runs `dataloader ARGS --json` and returns what it printed."""
        command = f"dataloader {' '.join(args)}"
        out = self._run([*args, "--json"], command)
        try:
            return json.loads(out)
        except json.JSONDecodeError as e:
            raise DataloaderError(f"{command} printed no JSON ({e}): {out[:200]!r}") from e

    def _run(self, args: list[str], command: str) -> str:
        try:
            done = subprocess.run(
                [self.binary, *args],
                env={**os.environ, **self.command_env()},
                capture_output=True,
                text=True,
                check=False,
                timeout=self.timeout_seconds,
            )
        except FileNotFoundError as e:
            raise DataloaderError(
                f"cannot run {self.binary!r}: {e.strerror}; set DataloaderResource(binary=...) to the dataloader binary"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise DataloaderError(
                f"{command} did not answer in {self.timeout_seconds} s (is the control database reachable?)"
            ) from e
        if done.returncode != 0:
            raise DataloaderError(f"{command} failed: {done.stderr.strip()}")
        return done.stdout

    def tables(self) -> list[dict[str, Any]]:
        """Every table of the control database, with its asset key, source type and checks."""
        return self.run_json("table", "list")

    def due(self) -> list[dict[str, Any]]:
        """The tables due now, each with a run key that stays the same until it loads."""
        return self.run_json("due")

    def analyze(self) -> list[dict[str, Any]]:
        """Retry analysis of the failed runs not yet analysed; the verdicts it recorded."""
        return self.run_json("analyze")

    def history(self, table: str, limit: int = 1) -> list[dict[str, Any]]:
        """The table's runs, newest first."""
        return self.run_json("history", table, "--limit", str(limit))

    def load(
        self,
        context: dg.AssetExecutionContext,
        table: str,
        *,
        full_refresh: bool = False,
        checks: Optional[list[str]] = None,
    ) -> dg.PipesClientCompletedInvocation:
        """Runs `dataloader load` for the table through Dagster Pipes: its materialization,
        asset checks and log lines arrive in Dagster; a failed load fails the step.

        `checks` names the asset checks the asset declares: DataLoader reports exactly those
        (one that no longer applies to the table is reported failed, saying so). `None`: every
        check that applies."""
        command = [self.binary, "load"]
        if full_refresh:
            command.append("--full-refresh")
        return dg.PipesSubprocessClient(env=self.command_env()).run(
            command=command,
            context=context,
            extras={"table": table} if checks is None else {"table": table, "checks": checks},
        )
