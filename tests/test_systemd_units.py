"""The systemd units the project ships (deploy/systemd) and their environment file: each unit
parses, every ExecStart/ExecStop names an onemap command and options that exist, the database
units do not inherit the API's pooled DATABASE_URL, every setting in deploy/onemap.env is one
the service reads, and ``systemd-analyze verify`` passes where it is installed."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from api.cli import app
from geo import settings as settings_module
from geo.settings import PROJECT_ROOT

UNITS = PROJECT_ROOT / "deploy" / "systemd"
ENV_FILE = PROJECT_ROOT / "deploy" / "onemap.env"
INSTALLED_AT = "/opt/onemap"
ONEMAP = f"{INSTALLED_AT}/.venv/bin/onemap"
#: commands being written alongside these units: checked only once the CLI has them
OPTIONAL = {("db", "replica"), ("deploy", "balancer")}


def parse(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(path.read_text(encoding="utf-8"))
    return unit


def unit_files() -> list[Path]:
    return sorted(p for p in UNITS.iterdir() if p.suffix in (".service", ".timer"))


def commands(unit: configparser.ConfigParser) -> list[list[str]]:
    if not unit.has_section("Service"):
        return []
    return [
        shlex.split(unit["Service"][key])
        for key in ("ExecStart", "ExecStop")
        if key in unit["Service"]
    ]


def test_the_expected_units_are_shipped():
    assert {p.name for p in unit_files()} == {
        "onemap@.service",
        "onemap-db.service",
        "onemap-replica.service",
        "onemap-backup.service",
        "onemap-backup.timer",
    }


@pytest.mark.parametrize("path", unit_files(), ids=lambda p: p.name)
def test_each_unit_parses_and_runs_onemap_commands_that_exist(path):
    unit = parse(path)
    assert unit["Unit"]["Description"]
    runner = CliRunner()
    for words in commands(unit):
        assert words[0] == ONEMAP, words
        sub = [w for w in words[1:] if not w.startswith("-") and "%" not in w]
        sub = sub[: next((i for i, w in enumerate(sub) if w.isdigit()), len(sub))]
        options = [w.split("=")[0] for w in words[1:] if w.startswith("--")]
        group = tuple(sub[:2])
        if group in OPTIONAL:
            parent = runner.invoke(app, [sub[0], "--help"], prog_name="onemap")
            if f" {sub[1]} " not in parent.output:
                continue  # not written yet: nothing to check against
        said = runner.invoke(app, [*sub, "--help"], prog_name="onemap")
        assert said.exit_code == 0, f"{path.name}: onemap {' '.join(sub)}: {said.output}"
        assert "Usage: onemap " + " ".join(sub) in " ".join(said.output.split())
        for option in options:
            assert option in said.output, f"{path.name}: onemap {' '.join(sub)} has no {option}"


def test_the_console_script_answers():
    """The units run the installed console script, not ``python -m``."""
    script = Path(sys.executable).parent / "onemap"
    said = subprocess.run([script, "db", "backup", "--help"], capture_output=True, text=True)
    assert said.returncode == 0 and "--verify" in said.stdout


def test_the_api_template_is_hardened_and_restarts():
    service = parse(UNITS / "onemap@.service")["Service"]
    assert service["ExecStart"] == f"{ONEMAP} serve --port %i"
    assert service["User"] == "onemap"
    assert service["EnvironmentFile"] == "/etc/onemap/onemap.env"
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    writable = service["ReadWritePaths"].split()
    env = environment()
    for setting in ("ONEMAP_TILE_CACHE", "ONEMAP_PHOTOS", "ONEMAP_RASTERS"):
        assert any(env[setting].startswith(folder) for folder in writable), setting


def test_units_driving_the_private_cluster_drop_the_pooled_url():
    """With DATABASE_URL set, `onemap db up` would only check that server: the units that
    drive the private cluster must not inherit the API's pgbouncer URL."""
    for path in unit_files():
        unit = parse(path)
        runs_db = any(words[1:2] == ["db"] for words in commands(unit))
        if runs_db and "EnvironmentFile" in unit["Service"]:
            unset = unit["Service"].get("UnsetEnvironment", "").split()
            assert {"DATABASE_URL", "ONEMAP_DB_URL"} <= set(unset), path.name


def test_the_timer_starts_the_backup_nightly():
    timer = parse(UNITS / "onemap-backup.timer")
    assert timer["Timer"]["OnCalendar"] == "*-*-* 02:30:00"
    assert timer["Timer"]["Persistent"] == "true"
    assert (UNITS / "onemap-backup.service").exists()  # the timer's unit, by its name
    assert parse(UNITS / "onemap-backup.service")["Service"]["Type"] == "oneshot"


def environment() -> dict[str, str]:
    pairs = {}
    for line in ENV_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and key == key.strip() and key.isupper(), line
            pairs[key] = value
    return pairs


def known_settings() -> set[str]:
    """Every environment variable the settings classes read."""
    names = set()
    for cls in vars(settings_module).values():
        if not (
            isinstance(cls, type) and issubclass(cls, BaseSettings) and cls is not BaseSettings
        ):
            continue
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            if alias is None:
                names.add(f"{prefix}{field_name}".upper())
            else:
                choices = getattr(alias, "choices", [alias])
                names |= {str(c).upper() for c in choices}
    return names


def test_every_setting_in_the_environment_file_exists():
    unknown = set(environment()) - known_settings()
    assert unknown == set()
    assert {"DATABASE_URL", "ONEMAP_HOME", "ONEMAP_PUBLIC_URL"} <= set(environment())
    # the secret is left for the installer to set: commented out, never a usable example value
    assert "# ONEMAP_ID_HASH_KEY=<" in ENV_FILE.read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_passes(tmp_path):
    """verify checks every directive and that each command is executable: the units are
    copied with /opt/onemap pointing at this checkout."""
    for path in UNITS.iterdir():
        text = path.read_text(encoding="utf-8").replace(INSTALLED_AT, str(PROJECT_ROOT))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    names = [
        str(tmp_path / (p.name.replace("@.", "@8001.") if "@." in p.name else p.name))
        for p in unit_files()
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_the_environment_file_gives_valid_settings(monkeypatch):
    """Read as the service would read it: no value is refused, and each lands where meant."""
    from geo.settings import Settings

    for key in ("ONEMAP_ID_HASH_KEY", "ONEMAP_DEMO", "ONEMAP_DB_URL", "ONEMAP_DB_READ_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environment().items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    assert settings.database.url.endswith("@127.0.0.1:6432/onemap")
    assert settings.database.listen_url.endswith("@127.0.0.1:54329/onemap")
    assert settings.database.read_url.endswith("@127.0.0.1:54330/onemap")
    assert settings.database.pgbouncer is True
    assert settings.database.home == Path("/var/lib/onemap")
    assert settings.service.tile_cache == Path("/var/cache/onemap/tiles")
    assert not settings.secrets.has_own_key  # so `onemap serve` refuses until it is set
