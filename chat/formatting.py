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
from collections.abc import Iterator, Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = ["mentions", "render"]

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


_SANITIZER = nh3.Cleaner(
    tags={
        "p",
        "br",
        "strong",
        "em",
        "s",
        "code",
        "pre",
        "a",
        "blockquote",
        "ul",
        "ol",
        "li",
        "span",
    },
    # The "*" entry replaces ammonia's default attributes allowed on every tag
    # (title, lang) with none. "start" keeps "3. third" from reading as "1.".
    attributes={"*": set(), "a": {"href"}, "ol": {"start"}},
    allowed_classes={"span": {"mention"}},
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
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


def render(body: str, mentioned: set[str] | frozenset[str] = frozenset()) -> str:
    """Render a message body as sanitized HTML for display.

    `mentioned` holds lowercase usernames (as returned by `mentions`) of the
    users who really are room members; only their `@name` gets a
    `<span class="mention">`, and never inside code or link text.
    """
    if _PLAIN.fullmatch(body):
        # Nothing in it can be markup; escape anyway so that a mistake in the
        # pattern costs a mismatch with the slow path, not an injection.
        return "<p>" + html.escape(body, quote=False) + "</p>\n"
    return _render_markdown(body, mentioned)


def _render_markdown(body: str, mentioned: set[str] | frozenset[str] = frozenset()) -> str:
    body = _SURROGATE.sub("\ufffd", body)
    return _SANITIZER.clean(_MD.render(body, {"mentioned": mentioned}))


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


def _token(kind: str, nesting: int, level: int, **fields: Any) -> Token:
    tag = "" if kind == "text" else "span"
    return Token(kind, tag, nesting, level=level, **fields)


_MD = _build_markdown()
