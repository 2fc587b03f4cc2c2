"""Human feedback: pairs of answers for people to judge, a local review page, and their choices
brought back as preference pairs.

    python -m llm_pipeline.cli.review export \\
        --model data/06_models/sft_model/<version>/sft_model \\
        --prompts data/03_primary/preferences_train.jsonl --out review/queue.jsonl --limit 50
    python -m llm_pipeline.cli.review serve --queue review/queue.jsonl \\
        --decisions review/decisions.jsonl --reviewer alice
    python -m llm_pipeline.cli.review import --queue review/queue.jsonl \\
        --decisions review/decisions.jsonl --to data/01_raw/preferences/human_review

The queue holds ``{id, prompt, answer_a, answer_b, model}`` rows; which sampled answer is A is
drawn at random, so position says nothing. The page (``review.html``) shows one pair at a time;
keys: ``a``/``1`` A is better, ``b``/``2`` B is better, ``x`` both are bad, ``u`` undo the last
choice, arrows move. Each choice is appended to the decisions file with the reviewer and the UTC
time; the last word on a pair counts. Import writes the pairs people preferred into the raw
preferences folder (``origin: human``, reviewer and time kept), which the next ``kedro run``
ingests; pairs marked both bad are counted, not written.

The page writes only for the reviewer who opened it: the server makes a secret when it starts and
puts it in the page it serves; every API request must carry it (``X-Review-Token``), name the
server's own address in ``Host`` (no DNS rebinding), come from the page's own ``Origin`` when it
names one, and post ``application/json`` (a cross-site form or ``no-cors`` fetch can do neither).
Anything else is refused (403, or 415 for another content type) and nothing is written.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import re
import secrets
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
# Where review.html receives the session's secret (a meta tag the page's script reads).
TOKEN_SLOT = "__REVIEW_TOKEN__"
TOKEN_HEADER = "X-Review-Token"
# A decision is a few dozen bytes; anything much larger is not from the page.
MAX_BODY_BYTES = 64 * 1024


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


class RefusedRequest(Exception):
    """A request the page did not make: its status and a short reason, and nothing written."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ReviewServer(ThreadingHTTPServer):
    """The review page's server: the session's secret, and the ``Host`` names it answers to
    (its bind address, 127.0.0.1 and localhost, each with its port)."""

    def __init__(self, address: tuple[str, int], session: ReviewSession):
        super().__init__(address, make_handler(session))
        self.token = secrets.token_urlsafe(32)
        bind_host, port = self.server_address[:2]
        self.allowed_hosts = {f"{name}:{port}" for name in (bind_host, "127.0.0.1", "localhost")}


def check_request(
    server: ReviewServer, headers: Any, *, needs_token: bool, needs_json: bool
) -> None:
    """Raise :class:`RefusedRequest` unless the request comes from the page this server served."""
    host = (headers.get("Host") or "").strip().lower()
    if host not in server.allowed_hosts:
        # A page on another name that resolves here (DNS rebinding) sends its own name.
        raise RefusedRequest(HTTPStatus.FORBIDDEN, f"host {host!r} is not this review server")
    origin = headers.get("Origin")
    if origin is not None and origin.strip().lower() != f"http://{host}":
        raise RefusedRequest(HTTPStatus.FORBIDDEN, f"origin {origin!r} is not the review page")
    if needs_json:
        media_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise RefusedRequest(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"content type must be application/json, not {media_type or 'none'!r}",
            )
    if needs_token:
        sent = (headers.get(TOKEN_HEADER) or "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(sent, server.token.encode()):
            raise RefusedRequest(
                HTTPStatus.FORBIDDEN, f"missing or wrong {TOKEN_HEADER}: open the page again"
            )


def make_handler(session: ReviewSession) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server: ReviewServer

        def do_GET(self) -> None:
            is_api = self.path.startswith("/api/")
            if not self._allowed(needs_token=is_api, needs_json=False):
                return
            if self.path in ("/", "/index.html"):
                page = PAGE.read_text(encoding="utf-8").replace(TOKEN_SLOT, self.server.token)
                self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
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
            try:
                length = int(self.headers.get("Content-Length") or "0")
            except ValueError:
                self._send_json(HTTPStatus.BAD_REQUEST, {"error": "bad Content-Length"})
                return
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True
                self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
                return
            # Read the body before any answer, so that a refusal reaches the client whole
            # (closing a socket with unread data resets the connection).
            raw = self.rfile.read(length)
            if not self._allowed(needs_token=True, needs_json=True):
                return
            if self.path != "/api/decision":
                self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                decision = session.record(str(body.get("id")), str(body.get("choice")))
            except ValueError as error:  # json.JSONDecodeError is a ValueError
                self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
                return
            self._send_json(HTTPStatus.OK, decision)

        def _allowed(self, *, needs_token: bool, needs_json: bool) -> bool:
            try:
                check_request(
                    self.server, self.headers, needs_token=needs_token, needs_json=needs_json
                )
            except RefusedRequest as refused:
                logger.warning("Refused %s %s: %s", self.command, self.path, refused.reason)
                self._send_json(refused.status, {"error": refused.reason})
                return False
            return True

        def _send_json(self, status: HTTPStatus, body: Any) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            # No other site may frame the page and steer the reviewer's keys.
            self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
            self.send_header("X-Frame-Options", "DENY")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug(format, *args)

    return Handler


def review_server(session: ReviewSession, port: int = 0) -> ReviewServer:
    """The page and its API on 127.0.0.1 (``port`` 0 picks a free one), with a new secret;
    not started yet."""
    return ReviewServer(("127.0.0.1", port), session)


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
