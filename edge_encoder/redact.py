"""Camera stream URLs without their credentials, for health, metrics and logs.

A source URL may carry credentials in its user info (`rtsp://user:pass@host/...`, where the password
itself may hold `@`, and FFmpeg, like RFC 3986, takes the last `@` before the path as the separator)
or in its query string (`?user=admin&password=...`, `?token=...`). Redacted: the whole user info, and
every query value but those of a few parameters known to select a stream (`channel`, `subtype`, ...):
vendors name their secrets too many ways (`pwd`, `p`, `auth`, `sig`...) for a list of bad names to
be safe. FFmpeg's error texts quote the URL, sometimes altered (decoded, cut): `scrub` redacts every URL
in a text and then each secret of the source, raw and percent-decoded, wherever it still appears.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
# Query parameters that select a stream and carry no secret: their values stay readable.
STREAM_PARAMETERS = frozenset({
    "channel", "chn", "ch", "subtype", "stream", "streamtype", "stream_type", "profile", "track", "camera",
    "cam", "resolution", "fps", "framerate", "codec", "transport", "rtsp_transport", "unicast", "multicast",
    "proto", "mode", "quality", "format",
})
MIN_SCRUBBED = 3
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


def _split(url: str) -> tuple[str, str, str, str, str | None, str | None] | None:
    """(scheme, user info, host and port, path, query, fragment) of a URL (query and fragment None when
    absent); None for something without a scheme (a file path)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host = authority.rpartition("@")
    path_end = min((i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=len(tail))
    path, tail = tail[:path_end], tail[path_end:]
    query: str | None = None
    if tail.startswith("?"):
        query, hashed, fragment = tail[1:].partition("#")
    else:
        _, hashed, fragment = tail.partition("#")
    return scheme, userinfo if at else "", host, path, query, fragment if hashed else None


def _parameters(query: str) -> list[tuple[str, str | None]]:
    """The (name, value) pairs of a query string (value None: a bare word, no `=`)."""
    pairs: list[tuple[str, str | None]] = []
    for part in re.split(r"[&;]", query):
        if part:
            name, sep, value = part.partition("=")
            pairs.append((name, value if sep else None))
    return pairs


def _secret(name: str, value: str | None) -> bool:
    """A bare word (a token on its own), or the value of any parameter but a stream selector."""
    return value is None or unquote(name).strip().lower() not in STREAM_PARAMETERS


def redact_url(url: str) -> str:
    """The URL with its user info, fragment and every query value that may be a secret replaced by `***`."""
    parts = _split(url)
    if parts is None:
        return url
    scheme, userinfo, host, path, query, fragment = parts
    out = f"{scheme}://{MASK + '@' if userinfo else ''}{host}{path}"
    if query is not None:
        out += "?" + "&".join((MASK if value is None else f"{name}={MASK}") if _secret(name, value)
                              else f"{name}={value}" for name, value in _parameters(query))
    if fragment is not None:
        out += "#" + (MASK if fragment else "")
    return out


def secrets_of(url: str) -> set[str]:
    """Every credential a URL carries (user info, user, password, secret query values and bare words,
    fragment), as written and percent-decoded."""
    parts = _split(url)
    if parts is None:
        return set()
    _, userinfo, _, _, query, fragment = parts
    user, _, password = userinfo.partition(":")
    found = {userinfo, user, password, fragment or ""}
    found |= {name if value is None else value for name, value in _parameters(query or "") if _secret(name, value)}
    return {s for secret in found for s in (secret, unquote(secret)) if s}


def scrub(text: str, url: str) -> str:
    """`text` (an error message about `url`) with no credential of `url`, nor of any URL it quotes."""
    text = text.replace(url, redact_url(url))
    # Then each secret on its own, longest first (a password may contain the user name). One or two
    # characters are left alone: they would garble every number in the text and guard nothing.
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        if len(secret) >= MIN_SCRUBBED:
            text = text.replace(secret, MASK)
    return URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
