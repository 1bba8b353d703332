"""Message formatting: a small Markdown subset rendered to sanitized HTML.

A message body is user text. It is stored exactly as sent and rendered here
for display: bold, italic, inline code, code blocks, links (written or bare
URLs), quotes and lists. Two layers keep the output safe:

1. markdown-it-py with raw HTML disabled, so markup typed by the user can only
   ever come out as escaped, visible text; links are accepted only with the
   http, https and mailto schemes (anything else stays literal text).
2. nh3 (ammonia) over the result with an explicit allowlist of tags,
   attributes and URL schemes. It adds rel="noopener noreferrer nofollow" to
   every link. The first layer should never produce anything this one
   removes; it is there so that a parser bug or a rule enabled later cannot
   turn into markup the page trusts.

The output is meant to be stored in `Message.html` and inserted into pages as
trusted markup; nothing else from a body may be.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Sequence
from html.parser import HTMLParser
from typing import Any, Literal

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = ["excerpt", "mentions", "render"]

# Only these schemes may become links. markdown-it hands validateLink the
# normalized (percent-encoded) URL, so tabs, newlines and entities that tried
# to break up "javascript:" are already either decoded or encoded by then and
# cannot sneak past a prefix check.
_LINK_SCHEMES = ("http:", "https:", "mailto:")


def _validate_link(url: str) -> bool:
    return url.lower().startswith(_LINK_SCHEMES)


def _build_markdown() -> MarkdownIt:
    # "zero" enables nothing but paragraphs and text; every feature is opted in
    # below, so a markdown-it upgrade cannot quietly add headings, images,
    # tables or raw HTML to what users can post.
    md = MarkdownIt(
        "zero",
        {
            "html": False,
            "linkify": True,
            # Chat, not documents: a single newline is a line break.
            "breaks": True,
            # Deeper quotes/lists than this are not conversation; the limit
            # also bounds the work on hostile input like 5,000 ">".
            "maxNesting": 20,
        },
    )
    md.enable(
        [
            "emphasis",
            "strikethrough",
            "backticks",
            "fence",
            "code",
            "link",
            "autolink",
            "linkify",
            "blockquote",
            "list",
            "newline",
            "escape",
            "entity",
        ]
    )
    md.validateLink = _validate_link  # type: ignore[method-assign]
    # After text_join, so each run of plain text is a single token.
    md.core.ruler.push("mentions", _highlight_mentions)
    return md


_TAGS = {"p", "br", "strong", "em", "s", "code", "pre", "a", "blockquote", "ul", "ol", "li", "span"}

_SANITIZER = nh3.Cleaner(
    tags=_TAGS,
    # The "*" entry replaces ammonia's default attributes allowed on every tag
    # (title, lang) with none. "start" keeps "3. third" from reading as "1.".
    attributes={"*": set(), "a": {"href"}, "ol": {"start"}},
    allowed_classes={"span": {"mention"}},
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
)

# Excerpts (search results): the same markup without links, since the whole
# excerpt sits inside a link to the message, plus <mark> for what matched.
_EXCERPT_SANITIZER = nh3.Cleaner(
    tags=(_TAGS - {"a"}) | {"mark"},
    attributes={"*": set(), "ol": {"start"}},
    allowed_classes={"span": {"mention"}},
    url_schemes=set(),
    link_rel=None,
)

# Django's username charset is letters, digits and @.+-_. A mention is "@" at
# the start or after a non-word character; it stops at the next "@", because a
# name running on through one would read as an email address ("@bob@alice"
# mentions bob). Usernames containing "@" therefore cannot be mentioned.
_MENTION = re.compile(r"(?<!\w)@([\w.+-]+)")

# Bodies the slow path would turn into "<p>" + body + "</p>\n" unchanged:
# starts with a letter (so never a list marker), then letters, digits, spaces
# and a little punctuation that means nothing to Markdown, linkify or HTML. A
# "." must end the body or be followed by a space, so no domain name
# ("example.com") and no list marker ("1. ") can form; no trailing space
# (Markdown strips it). tests/chat/test_formatting.py checks that both paths
# agree, on every short combination of plain and significant text pieces.
_PLAIN = re.compile(r"[^\W\d_](?:[^\W_]|[ ,!?'-]|\.(?= |\Z))*(?<! )")

# JSON allows lone surrogates ("\ud800"); they cannot be encoded as UTF-8, and
# the sanitizer would raise on them.
_SURROGATE = re.compile("[\ud800-\udfff]")


ME_PREFIX = "/me "


def render(body: str, mentioned: set[str] | frozenset[str] = frozenset()) -> str:
    """Render a message body as sanitized HTML for display.

    `mentioned` holds lowercase usernames (as returned by `mentions`) of the
    users who really are room members; only their `@name` gets a
    `<span class="mention">`, and never inside code or link text.
    """
    if body.startswith(ME_PREFIX):
        # A `/me` action (integrations.commands): the page shows it after the
        # author's name; the body keeps the command, for edits and search.
        body = body[len(ME_PREFIX) :]
    if _PLAIN.fullmatch(body):
        # Nothing in it can be markup; escape anyway so that a mistake in the
        # pattern costs a mismatch with the slow path, not an injection.
        return "<p>" + html.escape(body, quote=False) + "</p>\n"
    return _render_markdown(body, mentioned)


def _render_markdown(body: str, mentioned: set[str] | frozenset[str] = frozenset()) -> str:
    body = _SURROGATE.sub("\ufffd", body)
    return _SANITIZER.clean(_MD.render(body, {"mentioned": mentioned}))


Segment = tuple[str, bool]

_VOID = frozenset({"br"})
_WHITESPACE = re.compile(r"\s+")


class _Tokens(HTMLParser):
    """Rendered HTML as a flat list of ("start", tag, attrs), ("end", tag), ("text", text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple[str, str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tokens.append(("start", tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tokens.append(("start", tag, attrs))
        if tag not in _VOID:
            self.tokens.append(("end", tag, []))

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.tokens.append(("end", tag, []))

    def handle_data(self, data: str) -> None:
        self.tokens.append(("text", data, []))


def excerpt(
    html_text: str,
    pattern: re.Pattern[str] | None,
    window: Callable[[str, int, int], tuple[int, int]],
) -> tuple[str, list[Segment]]:
    """The part of a rendered message around its first match, as HTML and as text.

    `html_text` is the output of render(); only its text nodes are searched,
    so a match never falls inside a tag or an attribute, and every match in
    the kept part is wrapped in <mark>. `window(text, start, end)` picks the
    bounds of the text to keep around the first match; "…" marks a cut.
    Elements left with no text in the window are dropped, links keep their
    text but not their anchor. The HTML is sanitized once more on the way
    out (the render allowlist less links, plus <mark>), so whatever this
    function gets wrong cannot become markup the page trusts. The text is the
    same excerpt as (text, highlighted) segments, whitespace runs made one space.
    """
    parser = _Tokens()
    parser.feed(html_text)
    parser.close()
    tokens = parser.tokens
    text = "".join(value for kind, value, _ in tokens if kind == "text")
    matches = [(m.start(), m.end()) for m in pattern.finditer(text)] if pattern else []
    start, end = matches[0] if matches else (0, 0)
    lo, hi = window(text, start, end)
    matches = [(max(s, lo), min(e, hi)) for s, e in matches if s < hi and e > lo]

    out: list[str] = []
    # Open elements: [tag, attrs, written yet]. A start tag is written only
    # once text inside it falls in the window.
    stack: list[list[Any]] = []
    last_text = -1
    pos = 0

    def open_pending() -> None:
        for entry in stack:
            if not entry[2]:
                out.append(_start_tag(entry[0], entry[1]))
                entry[2] = True

    for kind, value, attrs in tokens:
        if kind == "start":
            if value == "a":
                continue
            if value in _VOID:
                if lo < pos < hi:
                    open_pending()
                    out.append(f"<{value}>")
                continue
            stack.append([value, attrs, False])
        elif kind == "end":
            if value == "a" or not stack:
                continue
            tag, _, written = stack.pop()
            if written:
                out.append(f"</{tag}>")
        else:
            node_start, pos = pos, pos + len(value)
            cut_start, cut_end = max(node_start, lo), min(pos, hi)
            if cut_start >= cut_end:
                continue
            open_pending()
            if last_text < 0 and lo > 0:
                out.append(ELLIPSIS)
            for piece_start, piece_end, marked in _pieces(cut_start, cut_end, matches):
                piece = html.escape(text[piece_start:piece_end], quote=False)
                out.append(f"<mark>{piece}</mark>" if marked else piece)
            last_text = len(out)
    if hi < len(text) and last_text >= 0:
        out.insert(last_text, ELLIPSIS)

    segments: list[Segment] = [(ELLIPSIS, False)] if lo > 0 else []
    segments += [(text[s:e], marked) for s, e, marked in _pieces(lo, hi, matches)]
    if hi < len(text):
        segments.append((ELLIPSIS, False))
    return _EXCERPT_SANITIZER.clean("".join(out)), _plain_segments(segments)


ELLIPSIS = "…"


def _start_tag(tag: str, attrs: list[tuple[str, str | None]]) -> str:
    written = "".join(f' {name}="{html.escape(value or "", quote=True)}"' for name, value in attrs)
    return f"<{tag}{written}>"


def _pieces(lo: int, hi: int, matches: list[tuple[int, int]]) -> Iterator[tuple[int, int, bool]]:
    """[lo, hi) split at the matches: (start, end, inside a match)."""
    pos = lo
    for start, end in matches:
        start, end = max(start, lo), min(end, hi)
        if start >= end:
            continue
        if start > pos:
            yield pos, start, False
        yield start, end, True
        pos = end
    if pos < hi:
        yield pos, hi, False


def _plain_segments(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for value, marked in segments:
        value = _WHITESPACE.sub(" ", value)
        if not value:
            continue
        if merged and merged[-1][1] == marked:
            merged[-1] = (merged[-1][0] + value, marked)
        else:
            merged.append((value, marked))
    if merged:
        merged[0] = (merged[0][0].lstrip(), merged[0][1])
        merged[-1] = (merged[-1][0].rstrip(), merged[-1][1])
    return [(value, marked) for value, marked in merged if value]


def mentions(body: str) -> set[str]:
    """Return the lowercase usernames a body mentions with `@name`.

    Mentions inside inline code, code blocks and link text do not count
    (so "https://example.com/@bob" mentions nobody). A trailing "." is
    punctuation: "thanks @bob." mentions bob.
    """
    if "@" not in body:
        return set()
    names: set[str] = set()
    for inline in _MD.parse(_SURROGATE.sub("\ufffd", body)):
        if inline.type == "inline" and inline.children:
            for token in _mentionable(inline.children):
                names.update(name.lower() for _, _, name in _scan(token.content))
    return names


def _scan(text: str) -> Iterator[tuple[int, int, str]]:
    """Yield (start, end, name) for each `@name` in plain text."""
    for match in _MENTION.finditer(text):
        name = match.group(1).rstrip(".")
        if name:
            yield match.start(), match.start() + 1 + len(name), name


def _mentionable(children: Sequence[Token]) -> Iterator[Token]:
    """Yield the text tokens of an inline run that are outside links.

    Code spans are their own token type (code_inline) and code blocks are not
    inline at all, so neither is ever yielded.
    """
    link_depth = 0
    for token in children:
        if token.type == "link_open":
            link_depth += 1
        elif token.type == "link_close":
            link_depth -= 1
        elif token.type == "text" and not link_depth and "@" in token.content:
            yield token


def _highlight_mentions(state: StateCore) -> None:
    """Core rule: wrap `@name` of room members in a mention span.

    Working on text tokens rather than on the HTML means a name inside an
    attribute, a code span or escaped markup can never be matched.
    """
    mentioned: set[str] | frozenset[str] = state.env.get("mentioned") or frozenset()
    if not mentioned:
        return
    for inline in state.tokens:
        if inline.type != "inline" or not inline.children:
            continue
        targets = {id(token) for token in _mentionable(inline.children)}
        if not targets:
            continue
        children: list[Token] = []
        for token in inline.children:
            if id(token) in targets:
                children.extend(_split_mentions(token, mentioned))
            else:
                children.append(token)
        inline.children = children


def _split_mentions(token: Token, mentioned: set[str] | frozenset[str]) -> list[Token]:
    text = token.content
    pieces: list[Token] = []
    done = 0
    for start, end, name in _scan(text):
        if name.lower() not in mentioned:
            continue
        if start > done:
            pieces.append(_text(text[done:start], token.level))
        pieces.append(_token("mention_open", 1, token.level, attrs={"class": "mention"}))
        pieces.append(_text(text[start:end], token.level + 1))
        pieces.append(_token("mention_close", -1, token.level))
        done = end
    if not pieces:
        return [token]
    if done < len(text):
        pieces.append(_text(text[done:], token.level))
    return pieces


def _text(content: str, level: int) -> Token:
    return _token("text", 0, level, content=content)


def _token(kind: str, nesting: Literal[-1, 0, 1], level: int, **fields: Any) -> Token:
    tag = "" if kind == "text" else "span"
    return Token(kind, tag, nesting, level=level, **fields)


_MD = _build_markdown()
