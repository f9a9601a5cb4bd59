"""An MCP client for tests/mcp.rs, on the official Python SDK (`mcp` from PyPI).

    MCPT=path/to/mcpt client.py stdio ORCHESTRATOR_URL TARGET_URL FORBIDDEN_URL MAX_RPS [TOKEN]
    client.py http MCP_URL TARGET_URL FORBIDDEN_URL MAX_RPS [TOKEN]

It connects over the transport, then drives a session the way an assistant would and writes
one JSON object with what it saw to the file $MCPT_CLIENT_OUT; the Rust test checks the figures.
Everything it does is bounded in time (anyio timeouts); nothing goes beyond loopback except
the one refused call at FORBIDDEN_URL, which the server must refuse before sending anything.
"""

import json
import os
import sys
import time

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TOOLS = {
    "run_load_test",
    "get_execution",
    "wait_for_execution",
    "cancel_execution",
    "adjust_execution",
    "get_report",
    "list_executions",
    "compare_executions",
    "list_nodes",
    "cluster_health",
}


def payload(result):
    """A tool result's JSON: its structured content, else its first text item."""
    structured = getattr(result, "structured_content", None) or getattr(
        result, "structuredContent", None
    )
    if structured is not None:
        return structured
    for item in result.content:
        text = getattr(item, "text", None)
        if text is not None:
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return text
    return None


def error_text(result):
    return " ".join(getattr(i, "text", "") for i in result.content)


def is_error(result):
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


async def call(session, name, args, **kw):
    with anyio.fail_after(120):
        return await session.call_tool(name, args, **kw)


async def run_and_wait(session, target, rps, seconds, out, label, progress=None):
    started = await call(
        session,
        "run_load_test",
        {
            "name": f"mcp-{label}",
            "targets": [{"url": target}],
            "rps": rps,
            "duration_s": seconds,
            "pattern": "constant",
        },
    )
    assert not is_error(started), error_text(started)
    execution_id = payload(started)["execution_id"]
    waited = await call(
        session,
        "wait_for_execution",
        {"execution_id": execution_id, "timeout_s": seconds + 60},
        progress_callback=progress,
    )
    assert not is_error(waited), error_text(waited)
    out[f"{label}_final"] = payload(waited)
    return execution_id


async def drive(session, target, forbidden, max_rps, out):
    t0 = time.monotonic()
    with anyio.fail_after(30):
        init = await session.initialize()
    out["server"] = getattr(init, "server_info", None) and init.server_info.name
    out["protocol_version"] = getattr(init, "protocol_version", None)
    out["initialize_ms"] = round((time.monotonic() - t0) * 1000, 1)

    tools = (await session.list_tools()).tools
    out["tools"] = sorted(t.name for t in tools)
    out["missing_tools"] = sorted(TOOLS - set(out["tools"]))
    out["schemas"] = {
        t.name: getattr(t, "input_schema", None) or getattr(t, "inputSchema", None)
        for t in tools
    }

    # Guardrails: each refused as a tool error naming the limit, before anything is sent.
    refused = {}
    for label, args in [
        ("allowlist", {"targets": [{"url": forbidden}], "rps": 5, "duration_s": 2}),
        ("max_rps", {"targets": [{"url": target}], "rps": max_rps * 10, "duration_s": 2}),
    ]:
        r = await call(session, "run_load_test", args)
        refused[label] = {"is_error": is_error(r), "text": error_text(r)}
    out["refused"] = refused

    # A run followed live: progress notifications every second until it ends.
    notes = []

    async def on_progress(progress, total, message):
        notes.append({"at": round(time.monotonic(), 3), "progress": progress, "total": total, "message": message})

    main = await run_and_wait(session, target, 50, 7, out, "main", on_progress)
    out["main_id"] = main
    out["progress"] = notes

    report = await call(session, "get_report", {"execution_id": main})
    assert not is_error(report), error_text(report)
    out["report"] = payload(report)

    view = await call(session, "get_execution", {"execution_id": main})
    out["execution"] = payload(view)

    # The report as a resource, from the listing.
    listing = await session.list_resources()
    uris = [str(r.uri) for r in listing.resources]
    out["resources"] = uris
    uri = f"mcpt://executions/{main}/report"
    out["resource_listed"] = uri in uris
    read = await session.read_resource(uri)
    contents = read.contents[0]
    out["resource_mime"] = getattr(contents, "mime_type", None) or getattr(contents, "mimeType", None)
    out["resource_report"] = json.loads(contents.text)

    # Two runs at different rates, compared.
    slow = await run_and_wait(session, target, 20, 3, out, "slow")
    fast = await run_and_wait(session, target, 40, 3, out, "fast")
    compared = await call(session, "compare_executions", {"a": slow, "b": fast})
    assert not is_error(compared), error_text(compared)
    out["compare"] = payload(compared)

    for name in ["list_executions", "list_nodes", "cluster_health"]:
        r = await call(session, name, {})
        assert not is_error(r), f"{name}: {error_text(r)}"
        out[name] = payload(r)

    # Round trips of get_execution (the HTTP note's latency figure).
    times = []
    for _ in range(200):
        t = time.perf_counter()
        await call(session, "get_execution", {"execution_id": main})
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    out["get_execution_ms"] = {
        "p50": round(times[len(times) // 2], 3),
        "p99": round(times[int(len(times) * 0.99) - 1], 3),
        "max": round(times[-1], 3),
    }


async def main():
    mode, endpoint, target, forbidden, max_rps = sys.argv[1:6]
    token = sys.argv[6] if len(sys.argv) > 6 else None
    out = {"mode": mode}
    with anyio.fail_after(240):
        if mode == "stdio":
            # The server is `$MCPT mcp --orchestrator ENDPOINT [--token TOKEN]`, spawned here.
            args = ["mcp", "--orchestrator", endpoint] + (["--token", token] if token else [])
            # The stdio server enforces its own configuration's caps: the same as the
            # orchestrator's here.
            env = {"MCPT_LOG": "warn", "MCP_MCP_MAX_RPS": max_rps}
            params = StdioServerParameters(command=os.environ["MCPT"], args=args, env=env)
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as session:
                    await drive(session, target, forbidden, float(max_rps), out)
        else:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with create_mcp_http_client(headers=headers) as http:
                async with streamable_http_client(endpoint, http_client=http) as (read, write):
                    async with ClientSession(read, write) as session:
                        await drive(session, target, forbidden, float(max_rps), out)
    # The figures go to a file (MCPT_CLIENT_OUT): a full stdout pipe would stall the client.
    with open(os.environ["MCPT_CLIENT_OUT"], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    anyio.run(main)
