"""`python -m cloud_reconstructor`: REST API that turns base (+ enhancement) layers into images."""

import logging

import uvicorn

from cloud_reconstructor.api import create_app
from cloud_reconstructor.settings import ReconstructorSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s reconstructor %(levelname)s %(name)s: %(message)s")
    settings = ReconstructorSettings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="info")


if __name__ == "__main__":
    main()
