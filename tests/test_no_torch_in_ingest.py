"""`kedro run --pipeline ingest`, the command a user types, never imports torch or transformers.

The CLI also loads every installed Kedro plugin (kedro-mlflow, kedro-viz) and the project's hooks,
so this covers what an in-process session would, and more.
A ``sitecustomize`` on the child's path records, at exit, which heavy modules were loaded and
where the first import of each came from.
"""

from __future__ import annotations

import json

from support import copy_project, run_command, tool

HEAVY = ("torch", "transformers", "trl", "peft", "great_expectations")

RECORDER = """
import atexit, json, os, sys, traceback

_HEAVY = {heavy!r}
_first = {{}}


def _note(event, args):
    if event == "import" and args[0].split(".")[0] in _HEAVY:
        _first.setdefault(args[0].split(".")[0], "".join(traceback.format_stack(limit=25)[:-1]))


def _report():
    loaded = sorted(name for name in _HEAVY if name in sys.modules)
    with open(os.environ["IMPORT_REPORT"], "w") as handle:
        json.dump({{"loaded": loaded, "first_import": _first}}, handle)


sys.addaudithook(_note)
atexit.register(_report)
"""


def test_kedro_run_ingest_imports_no_training_library(small_raw_data, tmp_path):
    (tmp_path / "project").mkdir()
    # No MLflow store yet, as in a new checkout: MLflow makes it in this run (the other tests'
    # project copies start with an empty one, copied).
    project = copy_project(tmp_path / "project", small_raw_data, mlflow_store=False)
    recorder = tmp_path / "recorder"
    recorder.mkdir()
    (recorder / "sitecustomize.py").write_text(RECORDER.format(heavy=HEAVY))
    report = tmp_path / "imports.json"
    result = run_command(
        [tool("kedro"), "run", "--pipeline", "ingest", "--env", "tiny"],
        cwd=project,
        PYTHONPATH=str(recorder),
        IMPORT_REPORT=str(report),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (project / "data/02_intermediate/documents_train.jsonl").exists()
    assert (project / "mlflow.db").is_file()
    imports = json.loads(report.read_text())
    first = "\n".join(f"{name}:\n{stack}" for name, stack in imports["first_import"].items())
    assert imports["loaded"] == [], f"ingest imported {imports['loaded']}; first imports:\n{first}"
