"""`python -m edge_encoder`: REST API for cameras + gRPC fetch service + uploader, one process."""

import logging

import uvicorn

from edge_encoder.api import create_app
from edge_encoder.settings import EdgeSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s edge %(levelname)s %(name)s: %(message)s")
    settings = EdgeSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="info")


if __name__ == "__main__":
    main()
