"""Who may do what, shared by the cloud services: API keys with scopes, per-key rate limits, and the
audit trail. Services import this library, never each other."""

from service_common.access.audit import AuditEntry, AuditLog
from service_common.access.keys import SCOPES, ApiKey, KeyStore, bootstrap_admin, new_token
from service_common.access.ratelimit import RateLimiter

__all__ = ["SCOPES", "ApiKey", "AuditEntry", "AuditLog", "KeyStore", "RateLimiter", "bootstrap_admin", "new_token"]
