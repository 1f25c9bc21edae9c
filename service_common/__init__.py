"""What the three services share, and nothing else uses: access control (API keys, scopes, rate limits,
audit, camera tokens: `access`; their FastAPI dependencies: `guard`), request hardening (streaming body
limits, error bodies: `http`), TLS and certificates (`tls`), the Redis password file (`redis_auth`),
the capture-time window (`capture_time`).

Services import this package and `facecodec`; this package imports no service and no `devstack`, and
`facecodec` (the codec library) never imports it (tests/test_layers.py). Importing the package itself
loads nothing: `access`, `tls` and the rest work without FastAPI (the launcher and the CLIs use them).
"""
