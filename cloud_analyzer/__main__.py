"""`python -m cloud_analyzer`: gRPC Ingest + recognition workers + REST API, one process."""

import logging

import uvicorn

from cloud_analyzer.api import create_app
from cloud_analyzer.settings import AnalyzerSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s analyzer %(levelname)s %(name)s: %(message)s")
    settings = AnalyzerSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="info")


if __name__ == "__main__":
    main()
