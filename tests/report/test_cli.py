"""`genai-otel report` against a stand-in Prometheus HTTP API: exit codes and messages, no tracebacks."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from genai_otel.cli import main as cli_main
from genai_otel.stack.runner import free_port


class StandIn:
    """Answers every query with `answer(query) -> (status, body)` and keeps the queries it got."""

    def __init__(self, answer) -> None:  # type: ignore[no-untyped-def]
        self.queries: list[dict[str, str]] = []
        queries = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                queries.append({"path": urllib.parse.urlsplit(self.path).path, **params})
                status, body = answer(params)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def empty_prometheus() -> Iterator[StandIn]:
    def answer(params: dict[str, str]) -> tuple[int, object]:
        kind = "matrix" if "step" in params else "vector"
        return 200, {"status": "success", "data": {"resultType": kind, "result": []}}

    stand_in = StandIn(answer)
    yield stand_in
    stand_in.close()


def test_unreachable_prometheus_is_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    assert cli_main(["report", "--prometheus", f"http://127.0.0.1:{port}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"genai-otel report: cannot reach Prometheus at http://127.0.0.1:{port}: ")
    assert "Traceback" not in captured.err


def test_a_refused_query_is_exit_2_with_prometheus_s_reason(capsys: pytest.CaptureFixture[str]) -> None:
    stand_in = StandIn(
        lambda params: (400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
    )
    try:
        assert cli_main(["report", "--prometheus", stand_in.url]) == 2
    finally:
        stand_in.close()
    err = capsys.readouterr().err
    assert err.startswith(
        f"genai-otel report: Prometheus at {stand_in.url} refused 'sum by (provider, model) ("
    )
    assert err.endswith("': parse error\n")


def test_no_data_is_exit_1(empty_prometheus: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli_main(["report", "--prometheus", empty_prometheus.url, "--range", "2h", "--at", "1700000000"]) == 1
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"genai-otel report: no LLM metrics in {empty_prometheus.url} over the range "
        "(is the genai-otel processor scraped, and has traffic flowed?)\n"
    )
    instant = [q for q in empty_prometheus.queries if q["path"] == "/api/v1/query"]
    (hourly,) = [q for q in empty_prometheus.queries if q["path"] == "/api/v1/query_range"]
    assert len(instant) == 11
    assert {q["time"] for q in instant} == {"1700000000.0"}
    assert hourly == {
        "path": "/api/v1/query_range",
        "query": "sum(increase(llm_cost_usd_total[1h]))",
        "start": "1699996400.0",
        "end": "1700000000.0",
        "step": "3600",
    }


def test_not_prometheus_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    stand_in = StandIn(lambda params: (200, ["not", "the", "api"]))
    try:
        assert cli_main(["report", "--prometheus", stand_in.url]) == 2
    finally:
        stand_in.close()
    assert capsys.readouterr().err.startswith(f"genai-otel report: Prometheus at {stand_in.url} failed ")


@pytest.mark.parametrize(
    "bad", [["--range", "0m"], ["--range", "2y"], ["--at", "yesterday"], ["--top-users", "0"]]
)
def test_bad_options_are_exit_2(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["report", "--prometheus", "http://127.0.0.1:1", *bad])
    assert exited.value.code == 2
    assert "genai-otel report: error: " in capsys.readouterr().err
