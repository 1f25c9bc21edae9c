"""The HTTP layer the three services share: access control as FastAPI dependencies (API keys, scopes,
rate limits, audit entries; `guard`) and request hardening (streaming body limits, error bodies; `http`).

Services import this package and `facecodec`; `facecodec` (the codec library) never imports a web
framework or this package.
"""

from service_web.guard import Access, Caller, Require, require

__all__ = ["Access", "Caller", "Require", "require"]
