"""The resource on its own: settings from Dagster's EnvVar, and what a broken set-up says."""

import dagster as dg
import pytest

from dagster_dataloader import DataloaderError, DataloaderResource


def test_an_envvar_setting_is_read_from_the_environment_not_passed_as_its_name(monkeypatch, dataloader_bin, tmp_path):
    monkeypatch.setenv("DL_TEST_CONTROL_DB", f"sqlite://{tmp_path}/control.db")
    resource = DataloaderResource(binary=dataloader_bin, control_db=dg.EnvVar("DL_TEST_CONTROL_DB"))
    assert resource.command_env()["DATALOADER_CONTROL_DB"] == f"sqlite://{tmp_path}/control.db"
    assert resource.tables() == []
    assert (tmp_path / "control.db").exists()

    monkeypatch.delenv("DL_TEST_CONTROL_DB")
    with pytest.raises(DataloaderError, match="DL_TEST_CONTROL_DB is not set"):
        resource.command_env()


def test_a_missing_binary_or_a_failing_command_says_what_to_do(dataloader_bin, tmp_path):
    with pytest.raises(DataloaderError, match="set DataloaderResource\\(binary=...\\)"):
        DataloaderResource(binary=str(tmp_path / "no-such-dataloader")).tables()
    broken = DataloaderResource(binary=dataloader_bin, control_db="postgres://nobody:s3cret@127.0.0.1:1/none")
    with pytest.raises(DataloaderError) as failed:
        broken.due()
    assert "dataloader due failed" in str(failed.value)
    assert "s3cret" not in str(failed.value)
