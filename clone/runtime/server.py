"""An OpenAI-completions-compatible HTTP endpoint over a Deployment (`clone serve`).

POST /v1/completions {"prompt", "max_tokens", "temperature", "top_k", "seed", "stream", "ttft_ms",
"tpot_ms", "app_class"}: a text_completion object, or with stream=true server-sent events
`data: {...}` per text chunk and `data: [DONE]`. GET /v1/models lists the one model. Requests queue on
one lock: one generation at a time on one KV cache. Bad JSON or out-of-range parameters get a 400 with
an OpenAI-style {"error": {...}} body; the server keeps serving.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from clone.errors import CloneError
from clone.runtime.deploy import Deployment
from clone.runtime.traces import TraceRequest

MAX_TOKENS_LIMIT = 2048
MAX_BODY_BYTES = 1 << 20


class BadRequest(Exception):
    pass


def parse_completion(body: bytes, profile: Any = None) -> tuple[TraceRequest, dict[str, Any]]:
    try:
        d = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
    if not isinstance(d, dict):
        raise BadRequest("the body must be a JSON object")
    prompt = d.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("prompt must be a non-empty string")

    def num(key: str, default: Any, lo: float, hi: float, integer: bool = False) -> Any:
        v = d.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and int(v) != v):
            raise BadRequest(f"{key} must be {'an integer' if integer else 'a number'}, got {v!r}")
        if not lo <= v <= hi:
            raise BadRequest(f"{key} {v} is out of range [{lo:g}, {hi:g}]")
        return int(v) if integer else float(v)

    max_tokens = num("max_tokens", 16, 1, MAX_TOKENS_LIMIT, integer=True)
    opts = {"temperature": num("temperature", 1.0, 0.0, 2.0), "top_k": num("top_k", None, 1, 1e9, integer=True),
            "seed": num("seed", 0, 0, 2**63 - 1, integer=True), "stream": d.get("stream", False)}
    if not isinstance(opts["stream"], bool):
        raise BadRequest(f"stream must be true or false, got {opts['stream']!r}")
    if d.get("n", 1) != 1:
        raise BadRequest("n must be 1")
    ttft, tpot = num("ttft_ms", None, 1e-3, 1e9), num("tpot_ms", None, 1e-3, 1e9)
    app_class = d.get("app_class", "default")
    if not isinstance(app_class, str):
        raise BadRequest("app_class must be a string")
    cls = profile.default_app_class if profile is not None and app_class == "default" else app_class
    if profile is not None and cls in profile.budgets:
        b = profile.budgets[cls]
        ttft = ttft if ttft is not None else b.ttft_ms
        tpot = tpot if tpot is not None else b.tpot_ms
    return TraceRequest(prompt, max_tokens, app_class, ttft, tpot, 0.0, None, ""), opts


def make_server(dep: Deployment, host: str = "127.0.0.1", port: int = 0, model_name: str = "clone") -> ThreadingHTTPServer:
    lock = threading.Lock()
    profile = getattr(dep.board, "profile", None)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet; errors still go to the client
            pass

        def _json(self, code: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, msg: str, kind: str = "invalid_request_error") -> None:
            self._json(code, {"error": {"message": msg, "type": kind, "code": code}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "clone"}]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/completions":
                self._error(404, f"no route {self.path} (POST /v1/completions)")
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY_BYTES:
                self._error(400, f"Content-Length must be in 1..{MAX_BODY_BYTES}")
                return
            body = self.rfile.read(length)
            try:
                tr, opts = parse_completion(body, profile)
            except BadRequest as exc:
                self._error(400, str(exc))
                return
            cid = f"cmpl-{uuid.uuid4().hex[:16]}"
            created = int(time.time())
            with lock:  # one generation at a time on the one KV cache
                tr.id = cid
                if dep.sim:
                    tr.arrival_s = dep.board.now()
                try:
                    if opts["stream"]:
                        self._stream(dep, tr, opts, cid, created)
                    else:
                        rec = dep.serve(tr, temperature=opts["temperature"], seed=opts["seed"], top_k=opts["top_k"])
                        self._json(200, self._body(cid, created, rec.text, rec))
                except CloneError as exc:
                    self._error(400, str(exc))

        def _body(self, cid: str, created: int, text: str, rec: Any, final: bool = True) -> dict:
            out: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created, "model": model_name,
                                   "choices": [{"text": text, "index": 0, "logprobs": None,
                                                "finish_reason": (("stop" if rec.stop_reason == "eos" else "length")
                                                                  if rec is not None else None)}]}
            if rec is not None:
                out["usage"] = {"prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.output_tokens,
                                "total_tokens": rec.prompt_tokens + rec.output_tokens}
                out["clone"] = {"ttft_ms": rec.ttft_ms, "tpot_ms": rec.tpot_ms, "energy_J": rec.energy_J,
                                "ttft_met": rec.ttft_met, "tpot_met": rec.tpot_met, "device": dep.board.name}
                if rec.expert_weights:
                    out["clone"]["expert_weights"] = json.loads(rec.expert_weights)
            return out

        def _stream(self, dep: Deployment, tr: TraceRequest, opts: dict, cid: str, created: int) -> None:
            gen = dep.stream(tr, temperature=opts["temperature"], seed=opts["seed"], top_k=opts["top_k"])
            first = next(gen, None)  # errors before the first token still get a JSON 400
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            def send(obj: Any) -> None:
                self.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")
                self.wfile.flush()

            alive = True
            for ev in _chain(first, gen):
                if ev.text and alive:
                    try:
                        send(self._body(cid, created, ev.text, None))
                    except OSError:
                        alive = False  # client went away: finish the generation, keep the cache consistent
            rec = dep.records[-1]
            if alive:
                try:
                    send(self._body(cid, created, "", rec))
                    send(b"[DONE]")
                except OSError:
                    pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _chain(first: Any, gen: Any) -> Any:
    if first is not None:
        yield first
    yield from gen
