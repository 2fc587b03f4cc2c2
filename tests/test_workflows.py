"""GitHub workflows: actionlint (with shellcheck) finds nothing, retrain.yml does what the README
says, and its "should we retrain?" step decides from real `dvc status` output."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from support import PROJECT_ROOT, copy_project, run_command, tool

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
NEEDS_RETRAIN = PROJECT_ROOT / ".github" / "scripts" / "needs_retrain.py"


def lint(path: Path) -> tuple[int, str]:
    """actionlint's exit code and messages for one workflow file, with shellcheck on `run:`."""
    for name in ("actionlint", "shellcheck"):
        if not Path(tool(name)).exists():
            pytest.fail(f"{name} is missing from {tool(name)}: pip install -e '.[dev]'")
    args = [tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck"), "-pyflakes="]
    result = run_command([*args, str(path)], cwd=PROJECT_ROOT)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda path: path.name)
def test_actionlint_finds_nothing(path):
    exit_code, messages = lint(path)
    assert exit_code == 0, f"actionlint on {path.name}:\n{messages}"


def test_actionlint_reports_a_broken_workflow_and_a_shellcheck_finding(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: cp $HOME/a b\n      - run: echo ${{ github.nonexistent }}\n"
    )
    exit_code, messages = lint(broken)
    assert exit_code == 1
    assert "SC2086" in messages
    assert "nonexistent" in messages


# --- retrain.yml, as YAML -------------------------------------------------------------------


@pytest.fixture(scope="module")
def retrain() -> dict:
    return yaml.safe_load((WORKFLOWS / "retrain.yml").read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as the boolean true.
    return workflow.get("on", workflow.get(True))


def steps(workflow: dict) -> list[dict]:
    return workflow["jobs"]["retrain"]["steps"]


def step_index(workflow: dict, text: str) -> int:
    """The position of the one step whose `run:` script contains ``text``."""
    found = [i for i, step in enumerate(steps(workflow)) if text in step.get("run", "")]
    assert len(found) == 1, f"expected one step running {text!r}, found {len(found)}"
    return found[0]


def test_retrain_runs_weekly_and_by_hand(retrain):
    on = triggers(retrain)
    assert on["schedule"][0]["cron"].split()[4] == "1"
    assert "workflow_dispatch" in on


def test_retrain_decides_from_dvc_status_then_runs_pushes_publishes_and_commits(retrain):
    pull = step_index(retrain, "dvc pull")
    decide = step_index(retrain, ".github/scripts/needs_retrain.py")
    repro = step_index(retrain, "dvc repro")
    push = step_index(retrain, "dvc push")
    publish = step_index(retrain, "dvc metrics diff")
    commit = step_index(retrain, "git commit")
    assert pull < decide < repro < push < publish < commit
    assert steps(retrain)[decide]["id"] == "decide"
    assert (PROJECT_ROOT / ".github/scripts/needs_retrain.py").is_file()
    for index in (repro, push, publish, commit):
        assert steps(retrain)[index]["if"] == "steps.decide.outputs.retrain == 'true'"


def test_retrain_publishes_metrics_and_parameters_difference_to_the_summary(retrain):
    script = steps(retrain)[step_index(retrain, "dvc metrics diff")]["run"]
    assert "dvc params diff --md" in script
    assert "dvc metrics diff --md" in script
    assert script.rstrip().endswith('>> "$GITHUB_STEP_SUMMARY"')


def test_retrain_commits_the_lock_file_and_every_uncached_output(retrain):
    script = steps(retrain)[step_index(retrain, "git commit")]["run"]
    assert "git add dvc.lock" in script
    assert script.rstrip().endswith("git push")
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    uncached = [
        path
        for stage in stages.values()
        for entry in stage.get("outs", []) + stage.get("metrics", [])
        if isinstance(entry, dict)
        for path, options in entry.items()
        if options and options.get("cache") is False
    ]
    assert uncached
    for path in uncached:
        # Otherwise a fresh clone lacks it and `dvc status` reports its stage on every run.
        assert path in script, f"{path} (cache: false in dvc.yaml) is not committed"


def test_retrain_takes_tracking_server_and_remote_from_secrets_and_moves_no_alias(retrain):
    env = retrain["jobs"]["retrain"]["env"]
    for name in ("MLFLOW_TRACKING_URI", "DVC_REMOTE_URL"):
        assert env[name] == f"${{{{ secrets.{name} }}}}"
    configure = steps(retrain)[step_index(retrain, "dvc remote add")]["run"]
    assert '"$DVC_REMOTE_URL"' in configure
    assert "conf/local/mlflow.yml" in configure
    scripts = " ".join(step.get("run", "") for step in steps(retrain))
    assert "alias" not in scripts
    assert "champion" not in scripts


# --- needs_retrain.py on real `dvc status --json` -------------------------------------------

STAGE = """\
stages:
  ingest:
    cmd: python src/ingest.py
    deps:
      - data/01_raw
      - src/ingest.py
    params:
      - conf/base/parameters_ingest.yml:
    outs:
      - data/02_intermediate
    metrics:
      - data/08_reporting/metrics.json:
          cache: false
"""

INGEST = """\
import json, pathlib, shutil
shutil.copytree("data/01_raw", "data/02_intermediate", dirs_exist_ok=True)
pathlib.Path("data/08_reporting").mkdir(parents=True, exist_ok=True)
pathlib.Path("data/08_reporting/metrics.json").write_text(json.dumps({"rows": 1}))
"""


def dvc(repo: Path, *args: str) -> None:
    result = run_command([tool("dvc"), *args], cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr


def git(repo: Path, *args: str) -> None:
    result = run_command(["git", *args], cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def retrained_repo(tmp_path) -> Path:
    """A git + DVC project whose one stage has run and whose lock file is committed."""
    repo = tmp_path / "repo"
    (repo / "data/01_raw").mkdir(parents=True)
    (repo / "data/01_raw/faq.txt").write_text("Shipping takes 3 days.\n")
    (repo / "conf/base").mkdir(parents=True)
    (repo / "conf/base/parameters_ingest.yml").write_text("ingest:\n  min_chars: 5\n")
    (repo / "src").mkdir()
    (repo / "src/ingest.py").write_text(INGEST)
    (repo / "dvc.yaml").write_text(STAGE)
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "add", "-q", "data/01_raw")
    dvc(repo, "repro", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first run")
    return repo


def needs_retrain(repo: Path, tmp_path: Path) -> tuple[dict[str, str], str]:
    """Run the workflow's step as GitHub does: its outputs and its job summary."""
    outputs, summary = tmp_path / "github_output", tmp_path / "step_summary"
    outputs.write_text("")
    summary.write_text("")
    result = run_command(
        [sys.executable, str(NEEDS_RETRAIN), "--dvc", tool("dvc")],
        cwd=repo,
        GITHUB_OUTPUT=str(outputs),
        GITHUB_STEP_SUMMARY=str(summary),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pairs = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return pairs, summary.read_text()


def test_nothing_changed_means_no_retraining_and_the_summary_says_why(retrained_repo, tmp_path):
    outputs, summary = needs_retrain(retrained_repo, tmp_path)
    assert outputs == {"retrain": "false"}
    assert "Retraining skipped" in summary
    assert "nothing to retrain" in summary


def test_new_raw_data_means_retraining(retrained_repo, tmp_path):
    (retrained_repo / "data/01_raw/returns.txt").write_text("Returns are free for 30 days.\n")
    dvc(retrained_repo, "add", "-q", "data/01_raw")
    outputs, summary = needs_retrain(retrained_repo, tmp_path)
    assert outputs == {"retrain": "true"}
    assert "| ingest | data changed | `data/01_raw modified` |" in summary
    assert "parameters changed" not in summary


def test_a_changed_parameter_means_retraining(retrained_repo, tmp_path):
    (retrained_repo / "conf/base/parameters_ingest.yml").write_text("ingest:\n  min_chars: 9\n")
    outputs, summary = needs_retrain(retrained_repo, tmp_path)
    assert outputs == {"retrain": "true"}
    assert "| ingest | parameters changed |" in summary
    assert "conf/base/parameters_ingest.yml: ingest modified" in summary
    assert "data changed" not in summary


def test_a_project_never_run_retrains_every_stage(tmp_path):
    raw = tmp_path / "raw"
    (raw / "documents").mkdir(parents=True)
    (raw / "documents/faq.txt").write_text("Shipping takes 3 days.\n")
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project", raw)
    git(project, "init", "-q")
    dvc(project, "init", "-q")
    outputs, summary = needs_retrain(project, tmp_path)
    assert outputs == {"retrain": "true"}
    for stage in yaml.safe_load((project / "dvc.yaml").read_text())["stages"]:
        assert f"| {stage} | outputs missing or changed |" in summary
    # Read from dvc.yaml: a parameters file that no run recorded yet is still parameters.
    assert "| ingest | parameters changed | `conf/base/parameters_ingest.yml new` |" in summary
    assert "| ingest | data changed | `data/01_raw modified` |" in summary
    assert "| ingest | code changed | `src/llm_pipeline/pipelines/ingest modified` |" in summary


# --- retrain.yml's own scripts, run step by step as a runner would ---------------------------

PROJECT_FILES = {
    "dvc.yaml": """\
stages:
  ingest:
    cmd: python src/ingest.py
    deps:
      - data/01_raw
      - src/ingest.py
    params:
      - conf/base/parameters_ingest.yml:
    outs:
      - data/02_intermediate
      - data/08_reporting/data_report.json:
          cache: false
      - data/08_reporting/promotion_decision.json:
          cache: false
    metrics:
      - data/08_reporting/metrics.json:
          cache: false
""",
    "src/ingest.py": """\
import json, pathlib, shutil, yaml
scale = yaml.safe_load(open("conf/base/parameters_ingest.yml"))["ingest"]["scale"]
shutil.copytree("data/01_raw", "data/02_intermediate", dirs_exist_ok=True)
reports = pathlib.Path("data/08_reporting")
reports.mkdir(parents=True, exist_ok=True)
(reports / "data_report.json").write_text(json.dumps({"files": 1}))
(reports / "metrics.json").write_text(json.dumps({"perplexity": 10.0 / scale}))
(reports / "promotion_decision.json").write_text(json.dumps({"promote": True}))
""",
    "conf/base/parameters_ingest.yml": "ingest:\n  scale: 1\n",
    "conf/local/.gitkeep": "",
    "data/01_raw/faq.txt": "Shipping takes 3 days.\n",
}


@pytest.fixture
def origin(tmp_path) -> tuple[Path, Path]:
    """A bare git origin of a project whose raw data is in a DVC remote, and that remote."""
    seed, remote = tmp_path / "seed", tmp_path / "dvc_remote"
    for name, text in PROJECT_FILES.items():
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_text(text)
    shutil.copy2(PROJECT_ROOT / ".gitignore", seed / ".gitignore")
    (seed / ".github/scripts").mkdir(parents=True)
    shutil.copy2(NEEDS_RETRAIN, seed / ".github/scripts" / NEEDS_RETRAIN.name)
    git(seed, "init", "-q", "-b", "main")
    dvc(seed, "init", "-q")
    dvc(seed, "config", "core.analytics", "false")
    dvc(seed, "add", "-q", "data/01_raw")
    dvc(seed, "remote", "add", "--local", "seed", str(remote))
    dvc(seed, "push", "-q", "-r", "seed")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "Data: first export")
    git(tmp_path, "clone", "-q", "--bare", str(seed), "origin.git")
    return tmp_path / "origin.git", remote


def run_retrain_workflow(retrain: dict, origin: Path, remote: Path, runner: Path) -> str:
    """Every `run:` step of retrain.yml but the set-up (this environment is set up) in a fresh
    clone of ``origin``, with `if:` and step outputs honoured; returns the job summary."""
    git(origin.parent, "clone", "-q", str(origin), str(runner))
    secrets = {"MLFLOW_TRACKING_URI": f"sqlite:///{runner.parent / 'mlflow.db'}"}
    secrets["DVC_REMOTE_URL"] = str(remote)
    env = {
        name: secrets.get(name, "") if "secrets." in value else value
        for name, value in retrain["jobs"]["retrain"]["env"].items()
        if name not in ("KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK")  # set by run_command
    }
    summary = runner.parent / f"{runner.name}_summary.md"
    summary.write_text("")
    outputs: dict[str, dict[str, str]] = {}
    for number, step in enumerate(steps(retrain)):
        script = step.get("run", "")
        if not script or "make setup" in script or not step_runs(step.get("if"), outputs):
            continue
        script = script.replace("${{ github.run_id }}", "4242")
        assert "${{" not in script, f"an expression this test cannot fill in: {script}"
        output_file = runner.parent / f"{runner.name}_output_{number}"
        output_file.write_text("")
        result = run_command(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=runner,
            GITHUB_OUTPUT=str(output_file),
            GITHUB_STEP_SUMMARY=str(summary),
            GITHUB_PATH=str(runner.parent / "github_path"),
            **env,
        )
        assert result.returncode == 0, f"{step.get('name')}:\n{result.stdout}{result.stderr}"
        if "id" in step:
            lines = output_file.read_text().splitlines()
            outputs[step["id"]] = dict(line.split("=", 1) for line in lines)
    return summary.read_text()


def step_runs(condition: str | None, outputs: dict[str, dict[str, str]]) -> bool:
    if condition is None:
        return True
    match = re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+) == '(\w+)'", condition)
    assert match, f"a condition this test cannot evaluate: {condition}"
    step_id, name, value = match.groups()
    return outputs.get(step_id, {}).get(name) == value


def table_rows(markdown: str) -> set[tuple[str, ...]]:
    """The cells of every Markdown table row, without the padding."""
    return {
        tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
        for line in markdown.splitlines()
        if line.startswith("|")
    }


def test_retrain_workflow_retrains_once_then_skips_then_retrains_on_new_parameters(
    retrain, origin, tmp_path
):
    bare, remote = origin
    first = run_retrain_workflow(retrain, bare, remote, tmp_path / "run1")
    assert "| ingest | outputs missing or changed |" in first
    assert "## Metrics of the first recorded run" in first
    assert ("Path", "perplexity") in table_rows(first)
    assert ("data/08_reporting/metrics.json", "10.0") in table_rows(first)
    assert '"promote": true' in first
    log = run_command(["git", "log", "--format=%s", "main"], cwd=bare).stdout
    assert log.startswith("Retrain: data and model versions of run 4242")

    # A new runner: a fresh clone, the outputs from the DVC remote and the committed files.
    second = run_retrain_workflow(retrain, bare, remote, tmp_path / "run2")
    assert "Retraining skipped" in second
    assert "Metrics" not in second
    assert run_command(["git", "rev-list", "--count", "main"], cwd=bare).stdout.strip() == "2"

    change = tmp_path / "change"
    git(tmp_path, "clone", "-q", str(bare), str(change))
    (change / "conf/base/parameters_ingest.yml").write_text("ingest:\n  scale: 2\n")
    git(change, "commit", "-qam", "Parameters: scale 2")
    git(change, "push", "-q")
    third = run_retrain_workflow(retrain, bare, remote, tmp_path / "run3")
    assert (
        "| ingest | parameters changed | `conf/base/parameters_ingest.yml: ingest modified` |"
        in third
    )
    rows = {row[:2] + row[3:] for row in table_rows(third)}  # without the column of the commit
    assert ("conf/base/parameters_ingest.yml", "ingest.scale", "2") in rows
    assert ("data/08_reporting/metrics.json", "perplexity", "5.0", "-5.0") in rows
