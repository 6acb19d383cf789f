"""Mail HTML: sanitised for display (nh3, strict allow-list) and turned into readable text.

`sanitize_html` keeps formatting, links and pictures and drops everything that runs or
loads: no script, style element, iframe, object, form, event handler, `javascript:` or
`data:` URL; a picture's source may only be `https:` or an inline part (`cid:`). A `cid:`
picture comes out as `<img data-cid="ID">` (no `src`): the web layer points it at the
stored inline attachment with that Content-ID. The result is still meant to be shown in a
sandboxed frame under a Content-Security-Policy that allows no script (defence in depth).

`html_to_text` is for reading and searching: block elements become lines, list items
"- ", links keep their address, and a `<blockquote>` becomes "> " lines so quoted history
in an HTML-only mail is recognisable to `quotes.split_reply` like a plain-text one.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import unquote

import nh3

_TAGS = {
    "a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "center", "cite", "code",
    "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "figcaption", "figure",
    "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark",
    "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "wbr",
}
_CELL = {"align", "valign", "colspan", "rowspan", "width", "height", "bgcolor", "style"}
_ATTRIBUTES = {
    "*": {"dir", "lang", "title", "style"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height", "border"},
    "font": {"color", "face", "size"},
    "table": {"width", "border", "cellpadding", "cellspacing", "align", "bgcolor"},
    "td": _CELL,
    "th": _CELL,
    "tr": {"align", "valign", "bgcolor"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "ol": {"start", "type"},
    "ul": {"type"},
    "p": {"align"},
    "div": {"align"},
    "blockquote": {"type"},
}
# Classes clients use to mark quoted history and signatures: kept so the agent workspace
# can fold them. No other class survives.
_CLASSES = {
    "div": {"gmail_quote", "gmail_attr", "gmail_signature", "moz-cite-prefix",
            "moz-signature", "yahoo_quoted", "protonmail_quote"},
    "blockquote": {"gmail_quote"},
    "span": {"gmail_signature"},
}
# CSS properties that cannot load anything or cover the page.
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "text-align", "text-decoration", "text-indent", "text-transform",
    "line-height", "letter-spacing", "white-space", "vertical-align", "direction",
    "margin", "margin-top", "margin-bottom", "margin-left", "margin-right",
    "padding", "padding-top", "padding-bottom", "padding-left", "padding-right",
    "border", "border-top", "border-bottom", "border-left", "border-right",
    "border-color", "border-style", "border-width", "border-collapse", "border-spacing",
    "width", "height", "max-width", "min-width", "list-style-type", "display",
}
_DROP_WITH_CONTENT = {
    "script", "style", "title", "head", "iframe", "frame", "frameset", "object", "embed",
    "applet", "noscript", "template", "svg", "math", "select", "textarea", "button",
}
_LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:")


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    v = value.strip()
    low = re.sub(r"[\x00-\x20]", "", v).lower()
    if attr == "src":  # only <img> has it in the allow-list
        return v if low.startswith(("https:", "cid:")) else None
    if attr == "href":
        return v if low.startswith(_LINK_SCHEMES) else None
    if attr == "style":
        if any(bad in low for bad in ("url(", "expression", "\\", "@import", "javascript")):
            return None
        return v
    if attr == "type" and tag == "blockquote":
        return "cite" if low == "cite" else None
    return v


_CID_SRC = re.compile(r'(<img\b[^>]*?)\ssrc="cid:([^"]*)"', re.IGNORECASE)


def _cid_to_placeholder(m: re.Match[str]) -> str:
    content_id = unquote(html.unescape(m.group(2))).strip().strip("<>")
    return f'{m.group(1)} data-cid="{html.escape(content_id, quote=True)}"'


def sanitize_html(source: str) -> str:
    """Mail HTML reduced to what is safe to display (see the module docstring)."""
    cleaned = nh3.clean(
        source,
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        allowed_classes=_CLASSES,
        filter_style_properties=_STYLE_PROPERTIES,
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return _CID_SRC.sub(_cid_to_placeholder, cleaned)


def cid_references(source: str) -> set[str]:
    """The Content-IDs an HTML body refers to (`cid:` URLs), normalised without brackets."""
    found = re.findall(r"""cid:([^"'\s>)]+)""", source, re.IGNORECASE)
    return {unquote(c).strip("<>").lower() for c in found}


_BLOCK = {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
}
_SKIP = {"script", "style", "head", "title", "noscript", "template", "svg", "math", "select"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.quote_depth = 0
        self.line_depth = 0
        self.pre = 0
        self.skip = 0
        self.links: list[str | None] = []
        self.link_text: list[list[str]] = []

    def _break(self) -> None:
        text = "".join(self.current)
        text = text.rstrip() if self.pre else re.sub(r"[ \t\r\n\f\u00a0]+", " ", text).strip()
        prefix = "> " * self.line_depth
        if text or (self.lines and self.lines[-1].strip("> ") != ""):
            self.lines.append((prefix + text).rstrip() if text else prefix.rstrip())
        self.current = []
        self.line_depth = self.quote_depth

    def _write(self, text: str) -> None:
        if not self.current:
            self.line_depth = self.quote_depth
        self.current.append(text)
        if self.link_text:
            self.link_text[-1].append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if tag == "br":
            self._break()
        elif tag in _BLOCK:
            if self.current:
                self._break()
            if tag == "blockquote":
                self.quote_depth += 1
                self.line_depth = self.quote_depth
            elif tag == "li":
                self._write("- ")
            elif tag == "pre":
                self.pre += 1
        elif tag in ("td", "th") and self.current:
            self._write("  ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._write(f"[{alt.strip()}]")
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))
            self.link_text.append([])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag == "a" and self.links:
            href = self.links.pop()
            text = "".join(self.link_text.pop()).strip()
            if href and href.lower().startswith(("http:", "https:")) and text and href != text:
                self._write(f" <{href}>")
        elif tag in _BLOCK:
            self._break()
            if tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)
                self.line_depth = self.quote_depth
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
            if tag in ("p", "div", "table", "blockquote", "h1", "h2", "h3", "ul", "ol"):
                self.lines.append("> " * self.quote_depth if self.quote_depth else "")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            parts = data.split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._break()
                self._write(part)
        else:
            self._write(data)

    def text(self) -> str:
        if self.current:
            self._break()
        lines = [ln.rstrip() for ln in self.lines]
        out: list[str] = []
        for ln in lines:
            blank = ln.strip("> ") == ""
            if blank and (not out or out[-1].strip("> ") == ""):
                continue
            out.append(ln)
        while out and out[-1].strip("> ") == "":
            out.pop()
        return "\n".join(out)


def html_to_text(source: str) -> str:
    """Readable plain text of an HTML document or fragment."""
    parser = _TextExtractor()
    try:
        parser.feed(source)
        parser.close()
    except Exception:  # HTMLParser is lenient; this is a last resort, not a path
        return re.sub(r"<[^>]*>", " ", source)
    return parser.text()
