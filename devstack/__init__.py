"""The development stack: the process launcher (`python -m devstack.stack up`), the demo
(`python -m devstack.demo`) and the camera replay tool (`python -m devstack.replay`).

It starts the services as processes and talks to them over HTTP, as a person or a camera would.
Nothing but devstack itself, the tests, the benches and the scripts imports it (tests/test_layers.py).
"""
