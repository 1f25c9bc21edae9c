"""`python -m cloud_reconstructor`: REST API that turns base (+ enhancement) layers into images."""

import sys

from cloud_reconstructor.api import create_app
from cloud_reconstructor.settings import ReconstructorSettings
from service_common import logs
from service_common.serve import serve


def main() -> int:
    settings = ReconstructorSettings()
    logs.configure("reconstructor", settings.log_format)
    return serve(lambda: create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    sys.exit(main())
