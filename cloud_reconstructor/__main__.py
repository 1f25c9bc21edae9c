"""`python -m cloud_reconstructor`: REST API that turns base (+ enhancement) layers into images."""

import logging
import sys

import uvicorn

from cloud_reconstructor.api import create_app
from cloud_reconstructor.settings import ReconstructorSettings
from service_common.settings import GrpcTransportError


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s reconstructor %(levelname)s %(name)s: %(message)s")
    settings = ReconstructorSettings()
    try:
        app = create_app(settings)
    except GrpcTransportError as exc:  # neither certificates nor the plaintext switch: say so, start nothing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
