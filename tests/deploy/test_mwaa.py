"""The MWAA upload set: plugins.zip as MWAA unpacks it, a DAG that parses from it, least privilege."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "mwaa"))
from bundle import bundle  # noqa: E402

pytestmark = pytest.mark.matrix


@pytest.fixture(scope="module")
def upload(tmp_path_factory):
    return bundle(tmp_path_factory.mktemp("mwaa") / "upload")


def test_plugins_zip_is_zipped_from_inside_plugins(upload):
    names = zipfile.ZipFile(upload / "plugins.zip").namelist()
    assert {
        ".airflowignore",
        "cots_ssm_plugin.py",
        "cots_ssm/__init__.py",
        "ssm_fleet/__init__.py",
        "ssm_fleet/status.py",
    } <= set(names)
    assert "cots_ssm/jobs/cots_jobs.schema.json" in names, "the jobs file's checks read it at parse time"
    assert (upload / "dags" / "cots_jobs.yaml").is_file(), "the jobs travel with dags/"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("plugins/")]


def test_the_dag_parses_from_the_unpacked_upload_set(upload, tmp_path):
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(upload / "plugins.zip").extractall(plugins)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(upload / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "PYTHONPATH": str(plugins),  # MWAA puts the unpacked plugins folder on sys.path
    }
    script = (
        "try:\n"
        "    from airflow.dag_processing.dagbag import DagBag\n"
        "except ImportError:\n"
        "    from airflow.models.dagbag import DagBag\n"
        "from airflow import plugins_manager\n"
        "bag = DagBag()\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "assert 'cots_nightly_batch' in bag.dags\n"
        "if hasattr(plugins_manager, 'get_operator_extra_links'):  # Airflow 3.2+\n"
        "    extra_links = plugins_manager.get_operator_extra_links()\n"
        "    errors = plugins_manager.get_import_errors()\n"
        "else:  # Airflow 3.0 / 3.1\n"
        "    plugins_manager.initialize_extra_operators_links_plugins()\n"
        "    extra_links, errors = plugins_manager.operator_extra_links, plugins_manager.import_errors\n"
        "links = sorted(type(link).__name__ for link in extra_links)\n"
        "assert not errors, errors\n"
        "print(sorted(bag.dags), links, sorted(p['name'] for p in plugins_manager.get_plugin_info()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'cots_nightly_batch', 'document_indexer'" in result.stdout, "every job of the shipped file"
    assert "CloudWatchOutputLink" in result.stdout and "SsmRunCommandLink" in result.stdout
    assert "['cots_ssm']" in result.stdout, "the plugin scan loads our plugin, and only it, from the zip"


def test_requirements_carry_a_constraint_line(upload):
    lines = [
        line for line in (upload / "requirements.txt").read_text().splitlines() if not line.startswith("#")
    ]
    assert lines[0].startswith("--constraint ")


def startup_exports() -> dict[str, str]:
    exports = {}
    for line in (ROOT / "mwaa" / "startup.sh").read_text().splitlines():
        if line.startswith("export "):
            name, value = line.removeprefix("export ").split("=", 1)
            exports[name] = value.strip("'\"")
    return exports


def test_startup_script_sets_documented_variables_the_config_reads():
    from cots_ssm.config import PREFIX, BatchConfig

    exports = startup_exports()
    documented = (ROOT / "docs" / "configuration.md").read_text()  # the one defaults table
    assert exports and all(name.startswith(PREFIX) and f"`{name}`" in documented for name in exports)
    config = BatchConfig.from_env(exports)
    assert config.schedule == "0 2 * * *" and config.target_tags == {"Role": ["cots"]}
