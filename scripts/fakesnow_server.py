"""fakesnow's Snowflake REST API emulation for the Snowflake connector's tests, with two adapters.

Both adapters make fakesnow answer the way the real service does; neither changes what a query
returns:

1. fakesnow builds a timestamp struct ({epoch, fraction[, timezone]}) without a validity bitmap,
   so a NULL timestamp becomes a null inside non-nullable child fields, which arrow-rs' validating
   IPC reader rejects. Snowflake marks the struct itself null; so does this adapter.
2. fakesnow returns every result inline (`rowsetBase64`). Snowflake returns a large result as a
   first part plus result chunks that the client downloads one by one, with the customer key
   (`qrmk`) as SSE-C headers and the chunk gzip-compressed. With `--chunk-rows N`, results longer
   than N rows are split that way and the chunks served from this server.

Usage: python fakesnow_server.py --port PORT [--chunk-rows N]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import secrets

import fakesnow.arrow
import fakesnow.server as server
import pyarrow as pa
import pyarrow.compute as pc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_timestamp_to_sf_struct = fakesnow.arrow.timestamp_to_sf_struct


def timestamp_to_sf_struct(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    struct = _timestamp_to_sf_struct(ts)
    children = [pc.fill_null(struct.field(i), 0) for i in range(struct.type.num_fields)]
    return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=ts.is_null())


fakesnow.arrow.timestamp_to_sf_struct = timestamp_to_sf_struct

CHUNK_ROWS = 0
# chunk key -> (qrmk, gzip-compressed Arrow IPC stream)
chunks: dict[str, tuple[str, bytes]] = {}


def ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


async def query_request(request: Request) -> Response:
    response = await server.query_request(request)
    if not CHUNK_ROWS or response.status_code != 200:
        return response
    body = json.loads(bytes(response.body))
    data = body.get("data") or {}
    if not data.get("rowsetBase64"):
        return response
    table = pa.ipc.open_stream(base64.b64decode(data["rowsetBase64"])).read_all()
    if table.num_rows <= CHUNK_ROWS:
        return response
    qrmk = base64.b64encode(secrets.token_bytes(32)).decode()
    data["rowsetBase64"] = base64.b64encode(ipc(table.slice(0, CHUNK_ROWS))).decode()
    data["qrmk"] = qrmk
    data["chunks"] = []
    for start in range(CHUNK_ROWS, table.num_rows, CHUNK_ROWS):
        part = table.slice(start, CHUNK_ROWS)
        key = secrets.token_hex(8)
        raw = ipc(part)
        chunks[key] = (qrmk, gzip.compress(raw))
        data["chunks"].append(
            {
                "url": f"{request.url.scheme}://{request.url.netloc}/fakesnow-chunks/{key}",
                "rowCount": part.num_rows,
                "uncompressedSize": len(raw),
                "compressedSize": len(chunks[key][1]),
            }
        )
    return JSONResponse(body)


async def chunk(request: Request) -> Response:
    key = request.path_params["key"]
    if key not in chunks:
        return Response(status_code=404)
    qrmk, content = chunks[key]
    if (
        request.headers.get("x-amz-server-side-encryption-customer-key") != qrmk
        or request.headers.get("x-amz-server-side-encryption-customer-algorithm") != "AES256"
    ):
        return Response("missing or wrong SSE-C headers", status_code=403)
    return Response(content, media_type="binary/octet-stream")


def main() -> None:
    global CHUNK_ROWS
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunk-rows", type=int, default=0)
    args = parser.parse_args()
    CHUNK_ROWS = args.chunk_rows
    routes = [
        Route(r.path, query_request, methods=["POST"]) if r.path == "/queries/v1/query-request" else r
        for r in server.routes
    ]
    routes.append(Route("/fakesnow-chunks/{key}", chunk, methods=["GET"]))
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
