"""Human feedback: pairs of answers for people to judge, a local review page, and their choices
brought back as preference pairs.

    python -m llm_pipeline.tools.review export \\
        --model data/06_models/sft_model/<version>/sft_model \\
        --prompts data/03_primary/preferences_train.jsonl --out review/queue.jsonl --limit 50
    python -m llm_pipeline.tools.review serve --queue review/queue.jsonl \\
        --decisions review/decisions.jsonl --reviewer alice
    python -m llm_pipeline.tools.review import --queue review/queue.jsonl \\
        --decisions review/decisions.jsonl --to data/01_raw/preferences/human_review

The queue holds ``{id, prompt, answer_a, answer_b, model}`` rows; which sampled answer is A is
drawn at random, so position says nothing. The page (``review.html``) shows one pair at a time;
keys: ``a``/``1`` A is better, ``b``/``2`` B is better, ``x`` both are bad, ``u`` undo the last
choice, arrows move. Each choice is appended to the decisions file with the reviewer and the UTC
time; the last word on a pair counts. Import writes the pairs people preferred into the raw
preferences folder (``origin: human``, reviewer and time kept), which the next ``kedro run``
ingests; pairs marked both bad are counted, not written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock
from typing import Any

from llm_pipeline.pipelines.feedback.review_queue import review_pairs

logger = logging.getLogger(__name__)

CHOICES = ("a", "b", "both_bad", "undone")
PAGE = Path(__file__).with_name("review.html")


class ReviewError(ValueError):
    """A decisions file that does not fit its queue: names the file, the line and the rule."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


# --- the review page ------------------------------------------------------------------------


class ReviewSession:
    """The queue being judged, and the decisions file every choice is appended to."""

    def __init__(self, queue: Path, decisions: Path, reviewer: str):
        if not reviewer.strip():
            raise ValueError("A reviewer name is needed: it is kept with every choice.")
        self.items = read_jsonl(queue)
        self.ids = {item["id"] for item in self.items}
        self.decisions = decisions
        self.reviewer = reviewer.strip()
        self._lock = Lock()

    def latest(self) -> dict[str, str]:
        """The last choice on each pair so far (an undone pair has none)."""
        if not self.decisions.exists():
            return {}
        latest = {row["id"]: row["choice"] for row in read_jsonl(self.decisions)}
        return {key: choice for key, choice in latest.items() if choice != "undone"}

    def record(self, item_id: str, choice: str) -> dict[str, str]:
        if item_id not in self.ids:
            raise ValueError(f"unknown pair id {item_id!r}")
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {list(CHOICES)}, not {choice!r}")
        decision = {
            "id": item_id,
            "choice": choice,
            "reviewer": self.reviewer,
            "reviewed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._lock:
            self.decisions.parent.mkdir(parents=True, exist_ok=True)
            with self.decisions.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(decision, ensure_ascii=False) + "\n")
        return decision


def make_handler(session: ReviewSession) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
            elif self.path == "/api/queue":
                body = {
                    "reviewer": session.reviewer,
                    "items": session.items,
                    "decisions": session.latest(),
                }
                self._send_json(HTTPStatus.OK, body)
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/api/decision":
                self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                decision = session.record(str(body.get("id")), str(body.get("choice")))
            except (ValueError, json.JSONDecodeError) as error:
                self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
                return
            self._send_json(HTTPStatus.OK, decision)

        def _send_json(self, status: HTTPStatus, body: Any) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    return Handler


def review_server(session: ReviewSession, port: int = 0) -> ThreadingHTTPServer:
    """The page and its API on 127.0.0.1 (``port`` 0 picks a free one); not started yet."""
    return ThreadingHTTPServer(("127.0.0.1", port), make_handler(session))


# --- bringing the choices back ----------------------------------------------------------------


def import_decisions(queue: Path, decisions: Path, to: Path) -> dict[str, Any]:
    """Preference pairs from the last choice on each pair, one new file per reviewer in ``to``.

    Returns a summary: pairs written per file, pairs marked both bad, pairs left undecided.
    """
    items = {item["id"]: item for item in read_jsonl(queue)}
    latest: dict[str, dict[str, str]] = {}
    with decisions.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ReviewError(f"{decisions}:{number}: malformed_json: {error}") from None
            if row.get("id") not in items:
                raise ReviewError(f"{decisions}:{number}: unknown_pair: {row.get('id')!r}")
            if row.get("choice") not in CHOICES or not row.get("reviewer"):
                raise ReviewError(f"{decisions}:{number}: schema: needs a choice and a reviewer")
            latest[row["id"]] = row
    by_reviewer: dict[str, list[dict[str, str]]] = {}
    both_bad = 0
    for item_id, row in latest.items():
        if row["choice"] in ("both_bad", "undone"):
            both_bad += row["choice"] == "both_bad"
            continue
        item = items[item_id]
        chosen, rejected = (
            (item["answer_a"], item["answer_b"])
            if row["choice"] == "a"
            else (item["answer_b"], item["answer_a"])
        )
        by_reviewer.setdefault(row["reviewer"], []).append(
            {
                "prompt": item["prompt"],
                "chosen": chosen,
                "rejected": rejected,
                "origin": "human",
                "reviewer": row["reviewer"],
                "reviewed_at": row["reviewed_at"],
                "review_id": item_id,
            }
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    written = {}
    for reviewer, rows in by_reviewer.items():
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", reviewer)
        path = to / f"{name}-{stamp}.jsonl"
        suffix = 1
        while path.exists():  # never overwrite an earlier import
            path = to / f"{name}-{stamp}-{suffix}.jsonl"
            suffix += 1
        write_jsonl(path, rows)
        written[str(path)] = len(rows)
    return {
        "written": written,
        "both_bad": both_bad,
        "undecided": len(items)
        - len(latest)
        + sum(r["choice"] == "undone" for r in latest.values()),
    }


# --- command line -----------------------------------------------------------------------------


def _prompts_from(path: Path, limit: int | None) -> list[str]:
    """User prompts of a validated preferences or conversations table (first user turn)."""
    prompts = []
    for row in read_jsonl(path):
        prompt = row.get("prompt") or next(
            (t["content"] for t in row.get("messages") or [] if t.get("role") == "user"), None
        )
        if prompt:
            prompts.append(prompt)
    prompts = list(dict.fromkeys(prompts))
    return prompts[:limit] if limit else prompts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="sample answer pairs into a review queue")
    export.add_argument("--model", type=Path, required=True)
    export.add_argument("--prompts", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--limit", type=int, default=50)
    export.add_argument("--seed", type=int, default=0)
    serve = commands.add_parser("serve", help="the review page on 127.0.0.1")
    serve.add_argument("--queue", type=Path, required=True)
    serve.add_argument("--decisions", type=Path, required=True)
    serve.add_argument("--reviewer", required=True)
    serve.add_argument("--port", type=int, default=8765)
    load = commands.add_parser("import", help="choices into data/01_raw/preferences")
    load.add_argument("--queue", type=Path, required=True)
    load.add_argument("--decisions", type=Path, required=True)
    load.add_argument("--to", type=Path, default=Path("data/01_raw/preferences/human_review"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "export":
        from llm_pipeline.pipelines.feedback.sampling import sample_answers

        prompts = _prompts_from(args.prompts, args.limit)
        answers = sample_answers(args.model, prompts, 2, {"seed": args.seed})
        rows = review_pairs(prompts, answers, str(args.model), args.seed)
        write_jsonl(args.out, rows)
        logger.info("%d pairs to review in %s (of %d prompts)", len(rows), args.out, len(prompts))
    elif args.command == "serve":
        server = review_server(ReviewSession(args.queue, args.decisions, args.reviewer), args.port)
        logger.info("Review page: http://127.0.0.1:%d/ (Ctrl-C to stop)", server.server_port)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    else:
        try:
            summary = import_decisions(args.queue, args.decisions, args.to)
        except ReviewError as error:
            logger.error("%s", error)
            return 1
        logger.info("%s", json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
