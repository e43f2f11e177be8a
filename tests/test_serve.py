"""`clone serve`: OpenAI-style streaming completion, queued concurrent requests, 400 on bad input."""

from __future__ import annotations

import http.client
import json
import threading

import pytest

from clone.costmodel import CostShape
from clone.runtime.backends import TorchBackend
from clone.runtime.deploy import Deployment
from clone.runtime.policies import make_policy
from clone.runtime.server import make_server
from clone.runtime.simboard import SimulatedBoard


@pytest.fixture(scope="module")
def server(smollm2):
    board = SimulatedBoard("jetson-orin-nano-8gb")
    dep = Deployment(TorchBackend(smollm2.model, 256), smollm2.tokenizer, board, make_policy("max"),
                     CostShape(smollm2.model.config))
    srv = make_server(dep, "127.0.0.1", 0, model_name="smollm2")
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(5)
    dep.close()


def post(srv, body, raw: bytes | None = None):
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=120)
    data = raw if raw is not None else json.dumps(body).encode()
    conn.request("POST", "/v1/completions", body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, resp.getheader("Content-Type"), resp.read()
    conn.close()
    return out


def test_streaming_completion(server):
    status, ctype, body = post(server, {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0,
                                        "stream": True, "ttft_ms": 500, "tpot_ms": 100})
    assert status == 200 and ctype.startswith("text/event-stream")
    events = [l[len("data: "):] for l in body.decode().split("\n\n") if l.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text.strip().startswith("Paris")
    last = chunks[-1]
    assert last["usage"]["completion_tokens"] <= 4 and last["clone"]["ttft_met"] is True
    assert all(c["object"] == "text_completion" for c in chunks)


def test_concurrent_requests_queue_and_match_sequential(server):
    prompts = ["Once upon a time", "The best way to learn"]
    seq = [json.loads(post(server, {"prompt": p, "max_tokens": 6, "temperature": 0})[2])["choices"][0]["text"]
           for p in prompts]
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        status, _, body = post(server, {"prompt": prompts[i], "max_tokens": 6, "temperature": 0, "stream": i == 1})
        assert status == 200
        if i == 1:
            events = [l[6:] for l in body.decode().split("\n\n") if l.startswith("data: ")][:-1]
            results[i] = "".join(json.loads(e)["choices"][0]["text"] for e in events)
        else:
            results[i] = json.loads(body)["choices"][0]["text"]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [results[0], results[1]] == seq


@pytest.mark.parametrize("body,raw,msg", [
    (None, b"{not json", "invalid JSON"),
    ({"prompt": "hi", "max_tokens": 0}, None, "max_tokens"),
    ({"prompt": "hi", "temperature": 9}, None, "temperature"),
    ({"prompt": ""}, None, "prompt"),
    ({"prompt": "hi", "stream": "yes"}, None, "stream"),
])
def test_bad_request_400_then_good_one_succeeds(server, body, raw, msg):
    status, ctype, out = post(server, body, raw)
    assert status == 400 and ctype == "application/json"
    assert msg in json.loads(out)["error"]["message"]
    status, _, out = post(server, {"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0})
    assert status == 200 and json.loads(out)["choices"][0]["text"]
