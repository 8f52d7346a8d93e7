"""URLs as slm-swap shows and records them.

An endpoint's URL may carry credentials: user-info (`http://user:password@host/v1`) and query parameters
(`?key=...`, how some gateways take a key). Neither may reach a run file, a console line, an error
message, a trace or a report, which all show a URL through `shown`.
"""

from __future__ import annotations

MASK = "***"


def shown(url: str) -> str:
    """`url` with its user-info, the value of each query parameter (a parameter without a value: all of
    it) and its fragment replaced by `***`; the scheme, host, port, path and parameter names stay.

    The user-info is taken to be everything up to the URL's last `@`, so that a password holding an
    unescaped `@`, `/`, `?` or `#` is hidden whole: a URL with an `@` elsewhere is hidden more, never less.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    if "@" in rest:
        rest = f"{MASK}@{rest.rpartition('@')[2]}"
    rest, hashmark, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    if question:
        rest += "?" + "&".join(_shown_parameter(p) for p in query.split("&"))
    if hashmark and fragment:
        rest += f"#{MASK}"
    return scheme + separator + rest


def _shown_parameter(parameter: str) -> str:
    name, equals, value = parameter.partition("=")
    if not equals:
        return MASK if parameter else parameter
    return f"{name}={MASK if value else ''}"
