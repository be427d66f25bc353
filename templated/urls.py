"""URLs a rendered HTML part may link to: caller-supplied values in `href` or `src` must not
carry a script (`javascript:`), or any scheme but the safe ones.

Template authors write `href="{{ link | safe_url }}"` to turn an unsafe value into a harmless
`about:blank`; whatever they write, a rendered HTML part whose link or source attribute
uses an unsafe scheme is refused at render, naming the variable that brought it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "poster"})
# Browsers drop these before reading a scheme ("java\nscript:", " javascript:").
_IGNORED = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
BLANK = "about:blank"


def scheme(url: str) -> str | None:
    """The URL's scheme as a browser reads it (lowercase), or None for a relative URL."""
    found = _SCHEME.match(_IGNORED.sub("", url))
    return found.group(1).lower() if found else None


def is_safe(url: str) -> bool:
    """Relative URLs, the safe schemes and `about:blank` are; anything else (javascript:,
    data:...) is not."""
    found = scheme(url)
    return found is None or found in SAFE_SCHEMES or url.strip().lower() == BLANK


def safe_url(value: Any) -> str:
    """The template filter: the URL when it is safe, else `about:blank`."""
    text = str(value)
    return text if is_safe(text) else BLANK


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.unsafe: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None and not is_safe(value):
                self.unsafe.append(value)


def unsafe_links(html: str) -> list[str]:
    """The link and source attribute values of `html` (entities decoded) that are unsafe."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.unsafe
