"""Using a registered model: `mlflow models serve` answers a chat request over HTTP on
localhost, and loading it deserialises no pickle (weights are safetensors).

The model is registered with a passage index, as the register stage does when retrieval is on,
by the project's registry dataset in a store under ``tmp_path``, in a subprocess, so no MLflow
state of this process changes.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support import build_tiny_model, command_environment, new_mlflow_store

pytestmark = pytest.mark.slow

NAME = "llm-pipeline"
CHAT = {"messages": [{"role": "user", "content": "Can I return my tent?"}], "max_tokens": 8}

REGISTER = """
import sys
from pathlib import Path
import mlflow
from llm_pipeline.datasets import MlflowRegistryDataset, ModelFolder, RegistryCandidate
from llm_pipeline.retrieval import PassageIndex, RetrievalConfig
passage = {"id": "p1", "source": "returns.md", "title": "Returns", "text": "Returns: 30 days."}
config = RetrievalConfig(
    enabled=True, top_k=1, max_words=60, lexical_weight=0.0, template="Passages:\\n{passages}",
    past_answers=0,
    past_answers_template="Answers:\\n{answers}",
    own_answer_in_training=False,
)
PassageIndex.build([passage], None, config).save(Path("passage_index"))
with mlflow.start_run():
    MlflowRegistryDataset("llm-pipeline").save(
        RegistryCandidate(
            model=ModelFolder(Path(sys.argv[1])),
            aliases=("challenger", "champion"),
            card="# llm-pipeline model card\\n",
            index=Path("passage_index"),
        )
    )
"""

# Every way Python and torch unpickle, made to fail: loading must not need any of them.
NO_PICKLES = """
import io, json, pickle, sys
import torch

def refuse(*args, **kwargs):
    raise AssertionError("model loading tried to unpickle")

class Refused(pickle.Unpickler):
    def __init__(self, *args, **kwargs):
        refuse()

pickle.load = pickle.loads = refuse
pickle.Unpickler = Refused
torch.load = refuse
import mlflow
chat = mlflow.pyfunc.load_model("models:/llm-pipeline@champion")
answer = chat.predict(json.loads(sys.argv[1]))
print(json.dumps(answer["choices"][0]["message"]))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("serving")
    model = build_tiny_model(root / "tiny_model")
    env = command_environment(MLFLOW_TRACKING_URI=f"sqlite:///{new_mlflow_store(root)}")
    result = subprocess.run(
        [sys.executable, "-c", REGISTER, str(model)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {"root": str(root), **env}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, payload: dict, timeout: float = 120) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.load(response)


def test_mlflow_models_serve_answers_a_chat_request_over_http(store):
    port = free_port()
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = [mlflow, "models", "serve", "-m", f"models:/{NAME}@champion"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        command,
        cwd=store["root"],
        env=store,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as ping:
                    if ping.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the model server did not start in 240 s"
            time.sleep(1)

        status, answer = post(f"http://127.0.0.1:{port}/invocations", CHAT)

        assert status == 200
        # One OpenAI-style chat completion.
        message = answer["choices"][0]["message"]
        assert message["role"] == "assistant"
        assert isinstance(message["content"], str)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_loading_the_champion_unpickles_nothing_and_its_weights_are_safetensors(store):
    result = subprocess.run(
        [sys.executable, "-c", NO_PICKLES, json.dumps(CHAT)],
        cwd=store["root"],
        env=store,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["role"] == "assistant"
    # The store's artifacts (./mlruns) hold what was registered.
    names = [path.name for path in Path(store["root"], "mlruns").rglob("*") if path.is_file()]
    assert "model.safetensors" in names
    pickles = [n for n in names if n.endswith((".bin", ".pkl", ".pickle", ".pt", ".pth"))]
    assert pickles == []
