"""Message formatting: what a reader sees, and what a hostile sender cannot do.

Each feature is checked with an ordinary input and with hostile ones. Where
safety matters the output is parsed (stdlib html.parser) and its elements and
attributes are checked, not only searched for substrings.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.formatting import _PLAIN, _SANITIZER, _render_markdown, mentions, render

ALLOWED_TAGS = {
    "p",
    "br",
    "s",
    "strong",
    "em",
    "code",
    "pre",
    "a",
    "blockquote",
    "ul",
    "ol",
    "li",
    "span",
}
REL = "noopener noreferrer nofollow"
VOID = {"br"}
BLOCK_CONTAINERS = {"blockquote", "ul", "ol"}


@dataclass
class Parsed:
    """Elements (tag, attrs) in document order, and text with its open tags."""

    elements: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    chunks: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def tags(self) -> list[str]:
        return [tag for tag, _ in self.elements]

    def attrs_of(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.chunks)

    def text_in(self, tag: str) -> str:
        return "".join(text for stack, text in self.chunks if tag in stack)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parsed = Parsed()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.parsed.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.parsed.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in output"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        # Newlines between block elements are layout of the HTML source, not
        # text a reader sees.
        if data.strip("\n") or (self.stack and self.stack[-1] not in BLOCK_CONTAINERS):
            self.parsed.chunks.append((tuple(self.stack), data))

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"comment in output: {data!r}")


def parse(output: str) -> Parsed:
    collector = _Collector()
    collector.feed(output)
    collector.close()
    assert not collector.stack, f"unclosed {collector.stack} in output"
    return collector.parsed


def assert_safe(output: str) -> Parsed:
    """The output holds only allowed elements, attributes and link targets."""
    parsed = parse(output)
    for tag, attrs in parsed.elements:
        assert tag in ALLOWED_TAGS, f"<{tag}> in {output!r}"
        assert not any(name.startswith("on") for name in attrs), output
        if tag == "a":
            assert set(attrs) <= {"href", "rel"}, output
            assert attrs["rel"] == REL, output
            href = attrs.get("href")
            if href is not None:
                assert href.lower().startswith(("http://", "https://", "mailto:")), output
        elif tag == "span":
            assert attrs == {"class": "mention"}, output
        elif tag == "ol":
            assert set(attrs) <= {"start"}, output
            assert all((value or "").isdigit() for value in attrs.values()), output
        else:
            assert attrs == {}, output
    return parsed


# Bold and italic


def test_bold_and_italic():
    parsed = assert_safe(render("**bold** and *italic* and __also bold__ and _also italic_"))
    assert parsed.attrs_of("strong") and parsed.text_in("strong") == "boldalso bold"
    assert parsed.text_in("em") == "italicalso italic"


@pytest.mark.parametrize(
    "body, literal",
    [
        ("**<script>alert(1)</script>**", "<script>alert(1)</script>"),
        ("*<img src=x onerror=alert(1)>*", "<img src=x onerror=alert(1)>"),
        ('_" onmouseover="alert(1)_', '" onmouseover="alert(1)'),
    ],
)
def test_bold_and_italic_keep_markup_inside_as_text(body, literal):
    parsed = assert_safe(render(body))
    assert parsed.tags() in (["p", "strong"], ["p", "em"])
    assert parsed.text == literal


def test_unbalanced_emphasis_stays_literal():
    parsed = assert_safe(render("**not closed and *half"))
    assert parsed.tags() == ["p"]
    assert parsed.text == "**not closed and *half"


# Inline code


@pytest.mark.parametrize(
    "body, code",
    [
        ("run `ls -la` now", "ls -la"),
        ("`<script>alert(1)</script>`", "<script>alert(1)</script>"),
        ("`</code><script>alert(1)</script>`", "</code><script>alert(1)</script>"),
        ("`**not bold** [not](https://a.link) &amp;`", "**not bold** [not](https://a.link) &amp;"),
        ("`` `backticks` ``", "`backticks`"),
    ],
)
def test_inline_code_is_literal(body, code):
    parsed = assert_safe(render(body))
    assert parsed.text_in("code") == code
    assert not {"script", "strong", "a"} & set(parsed.tags())


# Code blocks


def test_fenced_code_block_keeps_html_and_markdown_as_text():
    body = '```html\n<b onclick="alert(1)">hi</b>\n<script>x()</script>\n**no** @bob\n```'
    parsed = assert_safe(render(body, frozenset({"bob"})))
    assert parsed.tags() == ["pre", "code"]
    assert (
        parsed.text_in("code")
        == '<b onclick="alert(1)">hi</b>\n<script>x()</script>\n**no** @bob\n'
    )


def test_fence_info_string_cannot_inject_attributes():
    parsed = assert_safe(render('```" onmouseover="alert(1)" x\ncode\n```'))
    assert parsed.elements == [("pre", {}), ("code", {})]
    assert parsed.text_in("code") == "code\n"


def test_unclosed_fence_runs_to_the_end():
    parsed = assert_safe(render("```\n</pre><img src=x onerror=alert(1)>"))
    assert parsed.text_in("code") == "</pre><img src=x onerror=alert(1)>"


def test_indented_code_block():
    parsed = assert_safe(render("    <i>indented</i>"))
    assert parsed.tags() == ["pre", "code"]
    assert parsed.text_in("code") == "<i>indented</i>\n"


# Links


@pytest.mark.parametrize(
    "body, href, text",
    [
        (
            "[the docs](https://example.com/docs?a=1&b=2)",
            "https://example.com/docs?a=1&b=2",
            "the docs",
        ),
        ("[mail me](mailto:ops@example.com)", "mailto:ops@example.com", "mail me"),
        ("<https://example.com/x>", "https://example.com/x", "https://example.com/x"),
        ("<ops@example.com>", "mailto:ops@example.com", "ops@example.com"),
        ("[**bold** link](HTTP://EXAMPLE.COM)", "HTTP://EXAMPLE.COM", "bold link"),
    ],
)
def test_links_get_href_and_rel(body, href, text):
    parsed = assert_safe(render(body))
    assert parsed.attrs_of("a") == [{"href": href, "rel": REL}]
    assert parsed.text_in("a") == text


@pytest.mark.parametrize(
    "body",
    [
        "[x](javascript:alert(1))",
        "[x](jAvAsCrIpT:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](java&#x09;script:alert(1))",
        "[x](java&Tab;script:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](&#x6A;avascript:alert(1))",
        "[x](javascript&colon;alert(1))",
        "[x](javascript&#58;alert(1))",
        "[x](\\javascript:alert(1))",
        "[x](<javascript:alert(1)>)",
        "[x]( javascript:alert(1) )",
        "[x](java\nscript:alert(1))",
        "[x](%6Aavascript:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[x](DaTa:text/html,<script>alert(1)</script>)",
        "[x](vbscript:msgbox(1))",
        "[x](VBScript:msgbox(1))",
        "[x](file:///etc/passwd)",
        "[x](//evil.example/path)",
        "[x](/relative/path)",
        "<javascript:alert(1)>",
        "<data:text/html,x>",
        "javascript:alert(1)",
        "jaVasCript://example.com/%0Aalert(1)",
    ],
)
def test_links_with_other_schemes_stay_text(body):
    parsed = assert_safe(render(body))
    assert "a" not in parsed.tags()
    assert parsed.text.strip()


@pytest.mark.parametrize(
    "markup, kept",
    [
        ('<a href="javascript:alert(1)" onclick="x()" title="t">x</a>', [("a", {"rel": REL})]),
        ('<a href="jAvAsCrIpT:alert(1)">x</a>', [("a", {"rel": REL})]),
        ('<a href="data:text/html,x">x</a>', [("a", {"rel": REL})]),
        ('<a href="/relative">x</a>', [("a", {"rel": REL})]),
        (
            '<a href="https://e.com" rel="opener">x</a>',
            [("a", {"href": "https://e.com", "rel": REL})],
        ),
        ('<img src=x onerror=alert(1)><script>alert(1)</script><h1 id="x">t</h1>', []),
        ('<span class="mention evil" style="x">@a</span>', [("span", {"class": "mention"})]),
        ('<code class="language-html">x</code>', [("code", {})]),
    ],
)
def test_sanitizer_layer_holds_on_its_own(markup, kept):
    # The Markdown layer never emits these; the sanitizer must still stop them
    # should a parser bug or a future rule let one through.
    assert parse(_SANITIZER.clean(markup)).elements == kept


@pytest.mark.parametrize(
    "body",
    [
        '[x](https://e.com "title" onclick=alert(1))',
        '[x](https://e.com "title")',
        "[x](https://e.com 'it\" onclick=\"alert(1)')",
        '[x](https://e.com/"onmouseover="alert(1))',
        '[x](<https://e.com/" onmouseover="alert(1)>)',
        '<https://e.com/"onmouseover="alert(1)">',
        'https://e.com/"onmouseover="alert(1)"',
        "https://e.com/'onmouseover='alert(1)'",
        "[x](https://e.com/&quot;onmouseover=&quot;alert(1))",
    ],
)
def test_quotes_in_urls_and_titles_cannot_add_attributes(body):
    parsed = assert_safe(render(body))
    links = parsed.attrs_of("a")
    assert links
    for attrs in links:
        assert set(attrs) == {"href", "rel"}
        assert attrs["href"].startswith("https://e.com")
        assert '"' not in attrs["href"]


# Bare URLs (linkify)


@pytest.mark.parametrize(
    "body, href, text",
    [
        ("see https://example.com/a?b=1&c=2 now", "https://example.com/a?b=1&c=2", None),
        ("www.example.com/path", "http://www.example.com/path", "www.example.com/path"),
        ("example.org", "http://example.org", "example.org"),
        ("write to ops@example.com", "mailto:ops@example.com", "ops@example.com"),
    ],
)
def test_bare_urls_become_links_with_rel(body, href, text):
    parsed = assert_safe(render(body))
    assert parsed.attrs_of("a") == [{"href": href, "rel": REL}]
    if text is not None:
        assert parsed.text_in("a") == text


@pytest.mark.parametrize(
    "body",
    [
        "https://example.com/<script>alert(1)</script>",
        "https://example.com/<img src=x onerror=alert(1)>",
        "http://<script>alert(1)</script>.com",
    ],
)
def test_bare_urls_do_not_swallow_markup(body):
    parsed = assert_safe(render(body))
    assert not {"script", "img"} & set(parsed.tags())
    assert parsed.text == body


def test_bare_url_inside_code_is_not_linked():
    parsed = assert_safe(render("`https://example.com`"))
    assert "a" not in parsed.tags()


# Quotes


def test_quote_with_formatting_and_line_breaks():
    parsed = assert_safe(render("> first **line**\n> second\n\nafter"))
    assert parsed.tags() == ["blockquote", "p", "strong", "br", "p"]
    assert parsed.text_in("blockquote").strip() == "first line\nsecond"


@pytest.mark.parametrize(
    "body, literal",
    [
        ('> <div onclick="alert(1)">hi</div>', '<div onclick="alert(1)">hi</div>'),
        ("> > <blockquote><script>alert(1)</script>", "<blockquote><script>alert(1)</script>"),
        (
            "> </blockquote><img src=x onerror=alert(1)>",
            "</blockquote><img src=x onerror=alert(1)>",
        ),
    ],
)
def test_quote_keeps_html_inside_as_text(body, literal):
    parsed = assert_safe(render(body))
    assert set(parsed.tags()) <= {"blockquote", "p"}
    assert parsed.text_in("blockquote").strip() == literal


# Lists


def test_lists():
    parsed = assert_safe(render("- one\n- two\n\n3. third\n4. fourth"))
    assert parsed.tags() == ["ul", "li", "li", "ol", "li", "li"]
    assert parsed.attrs_of("ol") == [{"start": "3"}]
    assert [text for stack, text in parsed.chunks if stack[-1] == "li"] == [
        "one",
        "two",
        "third",
        "fourth",
    ]


def test_list_item_keeps_html_as_text():
    parsed = assert_safe(render("- <li onclick=alert(1)>x</li>"))
    assert parsed.tags() == ["ul", "li"]
    assert parsed.text_in("li") == "<li onclick=alert(1)>x</li>"


# Raw HTML and features that are not part of the subset


@pytest.mark.parametrize(
    "body",
    [
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">click</a>',
        "<a href>empty</a>",
        "<script>alert(1)</script>",
        "<svg/onload=alert(1)>",
        "<iframe src=https://evil.example></iframe>",
        "<!-- hidden --> text",
        "<style>body{display:none}</style>",
        '<p class="x" onclick=alert(1)>para</p>',
        "<div>\n\n*md inside html block*\n\n</div>",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ],
)
def test_raw_html_is_visible_text(body):
    parsed = assert_safe(render(body))
    # "a": a URL inside the markup is still linked, as text anywhere would be.
    assert set(parsed.tags()) <= {"p", "br", "em", "a"}
    # What the reader sees is what was typed (entities are Markdown entities:
    # "&lt;" shows as "<", and still as text).
    expected = body.replace("&lt;", "<").replace("&gt;", ">").replace("*", "")
    assert parsed.text.replace("\n", "") == expected.replace("\n", "")


@pytest.mark.parametrize(
    "body, literal",
    [
        ("# not a heading", "# not a heading"),
        ("title\n===", "title\n==="),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "| a | b |\n|---|---|\n| 1 | 2 |"),
        ("---", "---"),
        ("[ref]: https://example.com", "[ref]: https://example.com"),
    ],
)
def test_features_outside_the_subset_stay_literal(body, literal):
    parsed = assert_safe(render(body))
    assert set(parsed.tags()) <= {"p", "br", "a"}
    assert parsed.text == literal


@pytest.mark.parametrize(
    "body, struck, text",
    [
        ("~~gone~~", "gone", "gone"),
        ("keep ~~this **and bold**~~ here", "this and bold", "keep this and bold here"),
        ("~~a~~ and ~~b~~", "ab", "a and b"),
        ("~~<script>x</script>~~", "<script>x</script>", "<script>x</script>"),
    ],
)
def test_strikethrough(body, struck, text):
    parsed = assert_safe(render(body))
    assert parsed.text_in("s") == struck
    assert parsed.text == text


@pytest.mark.parametrize("body", ["~single~", "a ~~ b ~~ c", "`~~code~~`", "```\n~~fenced~~\n```"])
def test_what_is_not_strikethrough_stays_literal(body):
    parsed = assert_safe(render(body))
    assert "s" not in parsed.tags()
    assert "~" in parsed.text


def test_images_are_not_rendered():
    parsed = assert_safe(render("![alt](https://example.com/x.png) ![y](javascript:alert(1))"))
    assert "img" not in parsed.tags()


# Mentions


def test_mentions_lists_lowercase_names():
    body = "hi @Alice, @bob. and @carol-x+y_z.; ping @Dave!"
    assert mentions(body) == {"alice", "bob", "carol-x+y_z", "dave"}


@pytest.mark.parametrize(
    "body",
    [
        "mail alice@example.com",
        "`@bob` in code",
        "```\n@bob\n```",
        "    @bob in an indented block",
        "[@bob](https://example.com)",
        "https://example.com/@bob",
        "@",
        "@...",
        "no at sign",
    ],
)
def test_mentions_ignores_emails_code_and_links(body):
    assert mentions(body) == set()


def test_mention_spans_only_for_members():
    parsed = assert_safe(render("@Bob and @eve, and @bob.", frozenset({"bob"})))
    assert parsed.attrs_of("span") == [{"class": "mention"}, {"class": "mention"}]
    assert [t for stack, t in parsed.chunks if "span" in stack] == ["@Bob", "@bob"]
    assert parsed.text == "@Bob and @eve, and @bob."


def test_no_mention_spans_without_members():
    assert "span" not in parse(render("hi @bob")).tags()


def test_mention_spans_never_inside_code_or_links():
    body = "`@bob` and\n```\n@bob\n```\n[@bob](https://example.com) https://example.com/@bob"
    parsed = assert_safe(render(body, frozenset({"bob"})))
    assert "span" not in parsed.tags()
    assert "@bob" in parsed.text_in("code")


def test_mention_inside_formatting_and_quotes():
    parsed = assert_safe(render("> **@bob** _@bob_", frozenset({"bob"})))
    assert len(parsed.attrs_of("span")) == 2


@pytest.mark.parametrize(
    "body, members",
    [
        ('@bob"onclick="alert(1)', frozenset({"bob"})),
        ("@bob<script>alert(1)</script>", frozenset({"bob"})),
        ("@bob", frozenset({'bob"><script>alert(1)</script>'})),
        ('@x" class="evil', frozenset({"x"})),
    ],
)
def test_mention_spans_cannot_be_abused(body, members):
    parsed = assert_safe(render(body, members))
    assert parsed.text == body
    assert "script" not in parsed.tags()


# Unicode and whitespace


@pytest.mark.parametrize(
    "body",
    [
        "abc\u202edef",  # right-to-left override
        "zero\u200bwidth\u200cnon\u200djoiner\u2060word",
        "family 👨\u200d👩\u200d👧 flag 🇳🇱 skin 👋🏽",
        "שלום עולם \u200f!",
        "مرحبا **بالعالم**",
        "e\u0301 combining",
        "\ufeffbom",
    ],
)
def test_unicode_survives(body):
    parsed = assert_safe(render(body))
    assert parsed.text == body.replace("**", "")


def test_lone_surrogate_does_not_break_rendering():
    parsed = assert_safe(render("a\ud800b *c*"))
    assert parsed.text == "a\ufffdb c"
    assert mentions("\udfff@bob") == {"bob"}


def test_whitespace():
    assert render("") == ""
    assert render(" \n\n \t\n") == ""
    assert render("\n\nhello\n\n\n") == "<p>hello</p>\n"
    assert parse(render("one\ntwo\r\nthree")).tags() == ["p", "br", "br"]
    parsed = parse(render("a\n\n\n\nb"))
    assert parsed.tags() == ["p", "p"]


# Hostile sizes and nesting


@pytest.mark.parametrize(
    "body",
    [
        ">" * 5000,
        "> " * 5000,
        "*" * 5000,
        "*a" * 5000,
        "_" * 5000,
        "**" * 2500 + "x" + "**" * 2500,
        "[" * 5000,
        "[a](" * 2500,
        "`" * 5000,
        "- " * 5000,
        "1. " * 3000,
        "<" * 5000,
        "&" * 5000,
        "\\" * 5000,
        "@" * 5000,
        "```\n" * 2500,
        "> - " * 2500,
        ("> " * 30) + "<script>alert(1)</script>",
    ],
)
def test_huge_and_deeply_nested_input_renders(body):
    parsed = assert_safe(render(body, frozenset({"a"})))
    assert "script" not in parsed.tags()
    mentions(body)


# The fast path for plain text


PLAIN_BODIES = [
    "hello",
    "hello there",
    "ok. see you tomorrow.",
    "it's fine, really!",
    "what time is it?",
    "well-known  double  spaces",
    "Grüße aus Köln",
    "日本語のテキスト",
    "Привет мир",
    "version 2 of 3",
    "a",
    "x 1.",
]


@pytest.mark.parametrize("body", PLAIN_BODIES)
def test_fast_path_matches_full_rendering(body):
    assert _PLAIN.fullmatch(body), "expected this body to take the fast path"
    assert render(body) == _render_markdown(body)


@pytest.mark.parametrize(
    "body",
    [
        "1. first",
        "2024. a year",
        "example.com",
        "a.b",
        " leading",
        "trailing ",
        "tab\there",
        "line\nbreak",
        "- item",
        "snake_case",
        "non\u00a0breaking",
        "@bob",
        "ftp:x",
        "",
    ],
)
def test_fast_path_declines_what_it_cannot_do(body):
    assert not _PLAIN.fullmatch(body)


# Pieces of chat text: what the fast path admits, and some that mean
# something to Markdown, linkify or HTML. Every sequence of up to three of them
# is tried, which includes list markers ("1" ". " "x"), domain names ("x" "."
# "io"), URLs, emphasis, entities and trailing spaces, so loosening the fast-path
# pattern shows up here as a mismatch.
TEXT_PIECES = ["x", "io", "Zoë", "日本", "1", " ", ".", ". ", ",", "'", "-", "!", "²", "\u0301"]
TEXT_PIECES += ["\u00a0", "@", "http", "://x", "_", "_x_", "*", "&amp;", "<b>", "\n", "\t"]


def test_fast_path_agrees_with_full_rendering_on_piece_combinations():
    checked = 0
    for size in (1, 2, 3):
        for pieces in itertools.product(TEXT_PIECES, repeat=size):
            body = "".join(pieces)
            if _PLAIN.fullmatch(body):
                assert render(body) == _render_markdown(body), body
                checked += 1
    assert checked > 500


@settings(
    database=None,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(
        st.sampled_from(
            [
                "*",
                "_",
                "`",
                "```",
                "[",
                "](",
                ")",
                "<",
                ">",
                "&",
                "#",
                "\\",
                "\n",
                " ",
                "@bob",
                "https://",
                "javascript:",
                "data:",
                "e.com",
                '"',
                "'",
                "onclick=",
                "<script>",
                "<img src=x onerror=alert(1)>",
                "&#x09;",
                "&colon;",
                "- ",
                "1. ",
                "    ",
                "x",
                "\u202e",
                "\t",
            ]
        ),
        max_size=40,
    ).map("".join)
)
def test_generated_hostile_input_stays_safe(body):
    parsed = assert_safe(render(body, frozenset({"bob"})))
    assert not {"script", "img"} & set(parsed.tags())
