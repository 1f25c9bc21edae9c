"""`python -m cloud_reconstructor`: REST API that turns base (+ enhancement) layers into images."""

import logging
import sys

from cloud_reconstructor.api import create_app
from cloud_reconstructor.settings import ReconstructorSettings
from service_common.serve import serve


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s reconstructor %(levelname)s %(name)s: %(message)s")
    settings = ReconstructorSettings()
    return serve(lambda: create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    sys.exit(main())
