"""The HTTP gateway: rank, feedback and items over HTTP, with Kafka (and the workers) behind it.

    slatestream gateway --port 8080       # then POST /v1/rank, /v1/feedback, /v1/items

`app.py` builds the aiohttp application over a `streams.client.SlatestreamClient`;
`openapi.py` describes it (served at /openapi.json, committed as docs/gateway.openapi.json);
`command.py` is the command. Design notes: docs/gateway.md.
"""
