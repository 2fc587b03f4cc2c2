"""The ``ray`` ingest engine on a real three-node Ray cluster on this machine (a head and two
worker nodes, each its own raylet and object store): the same rows, quarantine and accounting
as the local engine, on the sample data with bad input added and on a generated corpus with
planted duplicates and personal data."""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from support import copy_project, run_command, run_ingest, tool

from llm_pipeline.hygiene import near_duplicates, parallel, ray_engine
from llm_pipeline.pipelines.ingest import cluster, nodes

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

# One cluster for the module; its start (several seconds) is shared by every test here.
pytestmark = pytest.mark.xdist_group("ray_cluster")


@pytest.fixture(scope="module")
def ray_cluster():
    try:
        import ray
        from ray.cluster_utils import Cluster

        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False},
        )
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
    except Exception as error:
        pytest.skip(f"Ray could not start a local cluster on this machine: {error!r}")
    yield cluster.address
    ray.shutdown()
    ray_engine._connected.clear()
    cluster.shutdown()


def assert_same_outputs(local: dict, distributed: dict) -> None:
    assert set(local) == set(distributed)
    for name, output in local.items():
        if isinstance(output, pd.DataFrame):
            pd.testing.assert_frame_equal(distributed[name], output, obj=name)
        elif name != "data_report_plot":
            assert json.dumps(distributed[name], default=str) == json.dumps(output, default=str), (
                name
            )


def test_ray_engine_writes_what_the_local_engine_writes_on_sample_data_with_bad_input(
    ray_cluster, small_raw_data, tmp_path, monkeypatch
):
    raw = tmp_path / "01_raw"
    shutil.copytree(small_raw_data, raw)
    bad = ["not json", json.dumps({"text": ""}), json.dumps({"text": "too short"})]
    for index in range(3):
        mail = json.dumps({"text": f"Please mail ann{index}@example.org about order {index}."})
        (raw / "documents" / f"zz_bad_{index}.jsonl").write_text(
            "\n".join([*bad[index:], mail]) + "\n"
        )
    first_chat = (raw / "conversations" / "support_chats.jsonl").read_text().splitlines()[0]
    (raw / "conversations" / "zz_planted.jsonl").write_text(
        "\n".join([json.dumps({"messages": [{"role": "user", "content": "hi"}]}), first_chat])
        + "\n"
    )
    (raw / "documents" / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    # Small chunks and blocks: many tasks even on the sample data, so that all three nodes get
    # some, and the tables pass between nodes in many blocks.
    monkeypatch.setattr(nodes, "_CHUNK_CHARS", 4_000)
    monkeypatch.setattr(near_duplicates, "_BATCH_CHARS", 20_000)
    monkeypatch.setattr(cluster, "BLOCK_BYTES", (4_000, 64_000_000))

    local = run_ingest(raw, tmp_path / "local", engine="local", workers=1)
    distributed = run_ingest(raw, tmp_path / "ray", engine="ray", ray={"address": ray_cluster})

    assert_same_outputs(local, distributed)
    workers = ray_engine.connect({"address": ray_cluster})
    assert len(workers.nodes_used) == 3, "every node of the cluster ran map tasks"
    quarantine = distributed["quarantine"]
    names = quarantine["source"].str.rsplit("/", n=1).str[-1]
    rules = set(zip(names, quarantine["rule"], strict=True))
    assert {
        ("zz_bad_0.jsonl", "malformed_json"),
        ("zz_bad_0.jsonl", "schema"),
        ("zz_bad_2.jsonl", "too_short"),
        ("zz_planted.jsonl", "schema"),
        ("zz_planted.jsonl", "duplicate"),
        ("photo.txt", "binary_file"),
    } <= rules
    assert distributed["ingest_accounting"]["balanced"].all()
    assert sum(c["near"] for c in distributed["data_report"]["duplicates"].values()) > 0
    assert distributed["data_report"]["boilerplate_lines_removed"] > 0


def test_ray_engine_finds_the_same_near_duplicates_on_a_generated_corpus(
    ray_cluster, tmp_path, monkeypatch
):
    from corpus import write_corpus

    # Blocks of about one file: near duplicates of rows in other blocks.
    monkeypatch.setattr(cluster, "BLOCK_BYTES", (10_000, 10_000))

    raw = tmp_path / "01_raw"
    write_corpus(raw, 3.0)

    local = run_ingest(raw, tmp_path / "local", engine="local", workers=1)
    distributed = run_ingest(raw, tmp_path / "ray", engine="ray", ray={"address": ray_cluster})

    assert_same_outputs(local, distributed)
    found = distributed["data_report"]["duplicates"]
    assert found["documents"]["near"] > 0
    assert distributed["data_report"]["pii_found"]["documents"]


def test_near_duplicates_by_bucket_group_bys_match_the_greedy_local_choice(ray_cluster):
    """120 edits of one text (0 to 6 words changed) crowd the same LSH buckets, where the
    kept copy a row is matched to depends on which rows before it were kept; with random texts,
    exact copies and texts without words around them, the group-bys by bucket and by component
    give the local engine's answer, kind by kind."""
    import random

    rng = random.Random(5)
    vocabulary = [f"word{i}" for i in range(400)]
    base = [rng.choice(vocabulary) for _ in range(60)]
    texts = []
    for index in range(120):
        words = list(base)
        for _ in range(index % 7):
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
        texts.append(" ".join(words))
    texts += [" ".join(rng.choices(vocabulary, k=60)) for _ in range(200)]
    texts += ["", "!!!", texts[3], texts[150]]
    rng.shuffle(texts)
    config = near_duplicates.NearDuplicateConfig(
        threshold=0.8, num_perm=128, shingle_words=5, seed=1
    )
    expected = near_duplicates.find_near_duplicates(texts, config)
    signatures, has_shingles = near_duplicates._signatures(texts, config)

    workers = ray_engine.connect({"address": ray_cluster})
    default_parts = workers.parts
    # A second kind holding copies of the first's rows: kinds are never compared, also when
    # all components of both kinds fall in one partition.
    for parts in (default_parts, 1):
        workers.parts = parts
        found = workers.near_duplicates_among(
            {"a": (signatures, has_shingles), "b": (signatures[:100], has_shingles[:100])},
            config,
        )
        assert found["a"] == expected, parts
        assert found["b"] == near_duplicates.find_near_duplicates(texts[:100], config), parts
    workers.parts = default_parts
    assert len(expected) > 20
    assert len({d.kept_index for d in expected}) > 1


def test_each_ray_task_is_sent_only_its_part_of_the_shared_input(ray_cluster):
    """The shared input holds a lock, which cannot be sent anywhere: the map only works if each
    task gets its window of the texts and nothing else."""

    # Defined here, so that Ray sends them by value (workers cannot import a test module).
    def lengths_in_window(shared: tuple, task: range) -> list[int]:
        texts, _ = shared
        return [len(text) for text in texts[task.start : task.stop]]

    def window_of(shared: tuple, task: range) -> tuple[tuple, range]:
        texts, _ = shared
        return (parallel.Window(texts, task.start, task.stop), None), task

    texts = [f"text number {i}" for i in range(100)]
    tasks = [range(start, start + 10) for start in range(0, 100, 10)]
    workers = ray_engine.connect({"address": ray_cluster})

    found = parallel.map_in_order(
        lengths_in_window, tasks, (texts, threading.Lock()), workers, part=window_of
    )

    assert found == [[len(t) for t in texts[r.start : r.stop]] for r in tasks]


def test_kedro_run_on_ray_started_here_or_on_a_running_cluster_writes_the_local_engines_files(
    ray_cluster, small_raw_data, tmp_path
):
    """The commands a user types: with ``ingest.ray.address: null`` and RAY_ADDRESS=local, Ray
    started inside the Kedro process; with the address of a running cluster (the module's three
    nodes), the Kedro process joins it."""
    written = {}
    runs = {
        "local": ("ingest.engine=local", None),
        "ray started here": ("ingest.engine=ray", "1 nodes"),
        "ray cluster": (f"ingest.engine=ray,ingest.ray.address={ray_cluster}", "3 nodes"),
    }
    for name, (params, nodes_seen) in runs.items():
        (tmp_path / name).mkdir()
        project = copy_project(tmp_path / name, small_raw_data)
        result = run_command(
            [tool("kedro"), "run", "--pipeline", "ingest", "--params", params],
            cwd=project,
            RAY_ADDRESS="local",
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        on_ray = re.search(
            r"Ingest runs on Ray: \d+ CPUs on (\d+ nodes)", result.stdout + result.stderr
        )
        assert (on_ray and on_ray.group(1)) == nodes_seen, name
        folder = project / "data" / "02_intermediate"
        # Sources are named by their absolute paths, which differ only in the project folder.
        written[name] = {
            path.name: path.read_text().replace(str(project), "<project>")
            for path in sorted(folder.glob("*.jsonl"))
        }
    assert len(written["local"]) == 9
    assert "<project>/data/01_raw/" in written["local"]["quarantine.jsonl"]
    assert written["ray started here"] == written["local"]
    assert written["ray cluster"] == written["local"]


def test_every_table_an_ingest_node_hands_on_stays_on_the_cluster(
    ray_cluster, small_raw_data, tmp_path, monkeypatch
):
    """Node by node, as Kedro runs them: on the ray engine every table that passes between the
    ingest nodes or is written is a ``ClusterTable`` (blocks in the workers' object stores, their
    references here), and only small things come into the Kedro process: counts, the table of
    files, the report."""
    import yaml
    from support import INGEST_PARAMETERS

    from llm_pipeline.datasets import JSONLinesDataset, RawFolderDataset
    from llm_pipeline.hygiene.ray_engine import ClusterTable
    from llm_pipeline.pipelines.ingest import create_pipeline

    params = {
        **yaml.safe_load(INGEST_PARAMETERS.read_text())["ingest"],
        "engine": "ray",
        "ray": {"address": ray_cluster},
    }
    monkeypatch.setattr(cluster, "BLOCK_BYTES", (4_000, 64_000_000))
    data = {
        f"raw_{kind}": RawFolderDataset(str(small_raw_data / kind)).load() for kind in nodes.KINDS
    }
    data["params:ingest"] = params
    made = {}
    for node in create_pipeline().nodes:
        outputs = node.run({name: data[name] for name in node.inputs})
        data.update(outputs)
        made.update(outputs)
    tables = {name: value for name, value in made.items() if isinstance(value, ClusterTable)}
    small = {name: type(value).__name__ for name, value in made.items() if name not in tables}
    # Tables of rows: 8 read (rows and quarantine of each kind), 5 cleaned, 4 redacted, 5 left
    # by de-duplication, 7 splits, 4 left by the leakage check, the quarantine. The tables of
    # files and the accounting have a row per file.
    assert len(tables) == 34, sorted(tables)
    assert small == {
        **{f"{kind}_files": "DataFrame" for kind in nodes.KINDS},
        "cleaning_counts": "dict",
        "pii_counts": "dict",
        "duplicate_counts": "dict",
        "leakage_counts": "dict",
        "ingest_accounting": "DataFrame",
        "data_report": "dict",
        "data_report_plot": "Figure",
        "text_length_histogram": "DataFrame",
    }
    assert len(tables["ingested_conversations_train"]) > 100
    assert len(tables["ingested_documents_train"].blocks) > 10
    # Written block by block, the same rows as the whole table.
    dataset = JSONLinesDataset(str(tmp_path / "train.jsonl"))
    dataset.save(tables["ingested_conversations_train"])
    written = JSONLinesDataset(str(tmp_path / "train.jsonl")).load()
    pd.testing.assert_frame_equal(
        written[["id", "source", "line"]],
        tables["ingested_conversations_train"].to_pandas()[["id", "source", "line"]],
    )


def test_strict_mode_on_the_ray_engine_names_the_file_line_and_rule(
    ray_cluster, small_raw_data, tmp_path
):
    raw = tmp_path / "01_raw"
    shutil.copytree(small_raw_data, raw)
    (raw / "documents" / "zz_bad.jsonl").write_text('{"text": "fine enough text here"}\nnot json\n')

    with pytest.raises(nodes.IngestError, match=r"zz_bad\.jsonl:2: malformed_json"):
        run_ingest(raw, tmp_path / "ray", engine="ray", strict=True, ray={"address": ray_cluster})


def test_a_candidate_number_maps_back_to_its_row_past_the_repeated_rows():
    import numpy as np

    from llm_pipeline.pipelines.ingest.cluster import _row_of_candidate

    repeated = np.array([0, 3, 4, 9])
    rows = [row for row in range(15) if row not in set(repeated)]
    assert [_row_of_candidate(c, repeated) for c in range(len(rows))] == rows
    assert [_row_of_candidate(c, np.array([], dtype=int)) for c in range(3)] == [0, 1, 2]


def test_quarantine_partitions_cut_the_files_in_order_into_even_shares():
    from collections import Counter

    from llm_pipeline.pipelines.ingest.cluster import _bounds, _cut_by_source, _sorted_rows

    per_source = Counter({"a": 5, "b": 1, "c": 4, "d": 5, "e": 5})
    bounds = _bounds(per_source, 4)
    assert bounds == sorted(bounds) and 1 <= len(bounds) <= 3
    rows = pd.DataFrame(
        {
            "source": [s for s, n in per_source.items() for _ in range(n)][::-1],
            "line": list(range(20)),
        }
    )
    _, *pieces = _cut_by_source(rows, bounds)
    merged = pd.concat([_sorted_rows(piece)[1] for piece in pieces], ignore_index=True)
    expected = rows.sort_values(["source", "line"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, expected)
