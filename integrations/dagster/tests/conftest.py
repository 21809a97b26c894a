"""Fixtures over real servers: PostgreSQL and MariaDB on 127.0.0.1 (see docs/testing.md), the
dataloader binary the suite built, a SQLite control database and a lakehouse per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pymysql
import pytest

from dagster_dataloader import DataloaderResource


@pytest.fixture(scope="session")
def dataloader_bin() -> str:
    binary = os.environ.get("DATALOADER_BIN") or shutil.which("dataloader")
    if not binary or not os.path.exists(binary):
        pytest.fail("set DATALOADER_BIN to the dataloader binary (scripts/test.sh builds it)")
    return binary


@pytest.fixture
def pg_schema():
    """A fresh schema in PostgreSQL's `test` database; dropped afterwards."""
    schema = f"dg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield conn, schema
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def dataloader(tmp_path: Path, dataloader_bin: str) -> DataloaderResource:
    return DataloaderResource(
        binary=dataloader_bin,
        control_db=f"sqlite://{tmp_path}/dataloader.db",
        lake_root=str(tmp_path / "lakehouse"),
    )


def run_cli(dataloader: DataloaderResource, *args: str) -> str:
    """A plain dataloader command; its stdout."""
    return dataloader.run(*args)


def apply_yaml(dataloader: DataloaderResource, tmp_path: Path, text: str) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(text)
    run_cli(dataloader, "apply", "-f", str(path))


@pytest.fixture
def mariadb_user():
    """A MariaDB user with a password, so that a wrong one is refused; dropped afterwards."""
    user = f"dl_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-password'")
        cur.execute(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY 'right-password'")
    try:
        yield user
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            cur.execute(f"DROP USER IF EXISTS '{user}'@'localhost'")
        conn.close()


def wrong_password_table(dataloader: DataloaderResource, tmp_path: Path, user: str, monkeypatch) -> str:
    """A table whose connection gives `user` a wrong password (by reference); its destination."""
    monkeypatch.setenv("DL_TEST_WRONG_PASSWORD", "wrong-password")
    apply_yaml(
        dataloader,
        tmp_path,
        f"""
connections:
  maria: {{type: mysql, host: 127.0.0.1, port: 3306, database: test, user: {user}, password: "env:DL_TEST_WRONG_PASSWORD"}}
tables:
  - source: test.anything
    connection: maria
    destination: bronze.maria.anything
    strategy: full
    schedule: "0 2 * * *"
""",
    )
    return "bronze.maria.anything"
