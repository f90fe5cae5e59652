"""Message markdown → the small, allow-listed HTML subset Qt's rich text shows.

Messages are hostile input. So this module never passes HTML through: markdown-it parses
with HTML off, and a walker over its tokens writes *only* tags it knows (b, i, u, s, code,
pre, blockquote, ul/ol/li, p, br, span with styles we choose, a with http/https/mailto
hrefs). Images become their alt text, nesting deeper than ``MAX_DEPTH`` is flattened
(Qt's layout time doubles per nested block), the source and code blocks are cut to a
size Qt lays out quickly, and ``SafeTextDocument`` refuses every resource load.

markdown-it and Pygments are imported on first use: they cost ~60 ms at start-up and the
first window should not wait for them (DESIGN's measured facts).

Spoilers take their colours from the active theme (``themes.SpoilerColours``). A revealed
spoiler sets only a translucent background and leaves its text to the palette, so a
document laid out under one theme still reads under the next one.
"""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from .qt import QColor, QTextDocument, QUrl
from .themes import SpoilerColours, active_spoiler_colours

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline
    from markdown_it.token import Token

__all__ = [
    "MAX_CODE_CHARS",
    "MAX_DEPTH",
    "MAX_SOURCE_CHARS",
    "SAFE_SCHEMES",
    "SafeTextDocument",
    "code_blocks",
    "has_spoilers",
    "plain_text",
    "plain_tooltip",
    "render_markdown",
    "safe_link",
    "spoiler_styles",
    "warm_up",
]

MAX_DEPTH = 6
MAX_SOURCE_CHARS = 20_000
MAX_CODE_CHARS = 8_000
MAX_CODE_LINES = 200
MAX_COMBINING = 2  # zalgo: more stacked marks than this per character are dropped
SAFE_SCHEMES = ("http", "https", "mailto")
CACHE_SIZE = 1000

# Colours are fallbacks a theme can live with on dark and light backgrounds alike.
MENTION_STYLE = "background-color:#3c4270; color:#c9cdfb;"
MENTION_ME_STYLE = "background-color:#5865f2; color:#ffffff; font-weight:600;"
CODE_STYLE = "background-color:#2b2d31; color:#dbdee1; font-family:monospace;"
CODE_BAR_STYLE = "background-color:#2b2d31; margin:0;"
COPY_BUTTON_STYLE = "background-color:#404249; color:#dbdee1; text-decoration:none;"
# Anchors the app answers itself (message text cannot produce them: ``safe_link`` lets
# only http, https and mailto through). A hidden spoiler is one anchor: clicking it
# reveals the message's spoilers; a code block's Copy button names the block's index.
SPOILER_HREF = "nexus:spoiler"
COPY_CODE_HREF = "nexus:copy-code/"
# Quotes and notes keep the theme's text colour (a fixed grey reads at 2:1 on a light
# theme): the indent marks a quote, italics a note.
QUOTE_STYLE = "margin-left:12px;"
NOTE_STYLE = "font-style:italic;"

# Embedding, override and isolate controls let a message reorder how text around it
# reads (a "txt.exe" that shows as "exe.txt"); marks (LRM/RLM) are harmless and kept.
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_DEEP_PREFIX = re.compile(
    r"^((?:[ \t]*[>*+-][ \t]?){" + str(MAX_DEPTH + 1) + r"})(?:[ \t]*[>*+-][ \t]?)+", re.M
)
_MENTION = re.compile(r"<(@!?|@&|#)(\d{1,20})>")
_BARE_URL = re.compile(r"\b(?:https?://|mailto:)[^\s<>\"']+", re.IGNORECASE)
_TRAILING_PUNCT = ".,:;!?)]}'\""

_CLOSING = {
    "blockquote_close": "</blockquote>",
    "bullet_list_close": "</ul>",
    "ordered_list_close": "</ol>",
}
# markdown-it's own text rule stops only at its terminator characters; ours also stops
# at "|" so the spoiler rule sees "||" in the middle of a word run.
_TERMINATORS = frozenset("\n!#$%&*+-:<=>@[\\]^_`{}~|")

_parser: MarkdownIt | None = None
_cache: OrderedDict[tuple[object, ...], str] = OrderedDict()  # rendered HTML, plain text


def spoiler_styles(colours: SpoilerColours) -> tuple[str, str]:
    """Inline styles of a hidden spoiler (an opaque block, its text the same colour)
    and of a revealed one (a tint behind text in the palette's colour)."""
    tint = QColor(colours.revealed)
    hidden = f"background-color:{colours.hidden}; color:{colours.hidden}; text-decoration:none;"
    revealed = f"background-color:rgba({tint.red()},{tint.green()},{tint.blue()},{tint.alpha()});"
    return hidden, revealed


def safe_link(url: str) -> str | None:
    """The URL if it may become a clickable link (http, https, mailto, absolute), else
    None: no file:, data:, javascript:, relative or scheme-less targets."""
    parsed = QUrl(url.strip(), QUrl.ParsingMode.StrictMode)
    if not parsed.isValid() or parsed.scheme().lower() not in SAFE_SCHEMES:
        return None
    if parsed.scheme().lower() != "mailto" and not parsed.host():
        return None
    return parsed.toString(QUrl.ComponentFormattingOption.FullyEncoded)


def render_markdown(
    text: str,
    *,
    mentions: Mapping[int, str] = {},
    me: int | None = None,
    channels: Mapping[int, str] = {},
    roles: Mapping[int, str] = {},
    reveal_spoilers: bool = False,
    spoilers: SpoilerColours | None = None,
) -> str:
    """``text`` as allow-listed HTML for a QTextDocument. ``mentions`` maps user ids to
    display names (``me`` is highlighted more strongly), ``channels`` and ``roles`` do
    the same for ``<#id>`` and ``<@&id>``; spoilers are coloured with ``spoilers`` or
    the active theme's. Results are kept in a bounded LRU cache."""
    ids = {int(m.group(2)) for m in _MENTION.finditer(text)} if "<" in text else set()
    colours = spoilers or active_spoiler_colours()
    key = (
        text,
        me,
        reveal_spoilers,
        colours,
        tuple(sorted((i, mentions[i]) for i in ids if i in mentions)),
        tuple(sorted((i, channels[i]) for i in ids if i in channels)),
        tuple(sorted((i, roles[i]) for i in ids if i in roles)),
    )
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    html = _HtmlWriter(mentions, me, channels, roles, reveal_spoilers, colours).render(text)
    _cache[key] = html
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return html


def has_spoilers(text: str) -> bool:
    """Whether ``text`` shows at least one spoiler (hidden until revealed)."""
    return "||" in text and SPOILER_HREF in render_markdown(text)


def code_blocks(text: str) -> list[str]:
    """The contents of ``text``'s code blocks, in order, as written (not cut), for the
    blocks' Copy buttons."""
    if "```" not in text and "    " not in text and "\t" not in text:
        return []
    tokens = _markdown().parse(_clean(text))
    return [t.content.rstrip("\n") for t in tokens if t.type in ("fence", "code_block")]


def plain_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` as written. Qt guesses that a tooltip starting with
    something like a tag is rich text, so a name such as ``<img src=…>`` would be drawn
    as markup (and its resources loaded): this one is always rich text, escaped."""
    return "<qt>" + escape(text).replace("\n", "<br>") + "</qt>"


def plain_text(text: str, *, mentions: Mapping[int, str] = {}, limit: int = 200) -> str:
    """``text`` as a reader sees it, on one line and without markdown markers (a reply
    preview's snippet): spoilers stay hidden as "▒▒▒", user mentions show the names in
    ``mentions``, code keeps its text. Cached like ``render_markdown``."""
    ids = {int(m.group(2)) for m in _MENTION.finditer(text)} if "<" in text else set()
    key = ("plain", text, limit, tuple(sorted((i, mentions[i]) for i in ids if i in mentions)))
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    words: list[str] = []
    for block in _markdown().parse(_clean(text[: limit * 4])):
        if block.type in ("fence", "code_block"):
            words.append(block.content)
        hidden = 0
        for token in block.children or []:
            if token.type == "spoiler_open":
                if not hidden:
                    words.append("▒▒▒")
                hidden += 1
            elif token.type == "spoiler_close":
                hidden -= 1
            elif hidden:
                continue
            elif token.type in ("text", "code_inline", "image"):
                words.append(token.content)
            elif token.type in ("softbreak", "hardbreak"):
                words.append(" ")
            elif token.type == "mention":
                kind, target = token.meta["kind"], token.meta["id"]
                name = mentions.get(target, "unknown-user") if kind == "@" else str(target)
                words.append(("#" if kind == "#" else "@") + name)
        words.append(" ")
    flat = " ".join("".join(words).split())[:limit]
    _cache[key] = flat
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return flat


class SafeTextDocument(QTextDocument):
    """A QTextDocument that loads nothing: no images, no style sheets, no files, no
    network, whatever a message's HTML (or a Qt default) asks for."""

    def loadResource(self, type: int, name: QUrl | str) -> Any:
        return None


# Cleaning ----------------------------------------------------------------------------


def _clean(text: str) -> str:
    text = text.translate(_BIDI_CONTROLS)
    if len(text) > MAX_SOURCE_CHARS:
        text = text[:MAX_SOURCE_CHARS] + "\n\n*(message cut: too long to show)*"
    # markdown-it drops what lies deeper than maxNesting; cut runs of quote and list
    # markers first so deep text is still shown, flattened.
    text = _DEEP_PREFIX.sub(r"\1", text)
    if not any(unicodedata.combining(c) for c in text[:MAX_SOURCE_CHARS:7]) and not _has_run(text):
        return text
    out: list[str] = []
    run = 0
    for char in text:
        if unicodedata.combining(char):
            run += 1
            if run > MAX_COMBINING:
                continue
        else:
            run = 0
        out.append(char)
    return "".join(out)


def _has_run(text: str) -> bool:
    """Whether ``text`` may have stacked combining marks (cheap pre-check)."""
    return (
        re.search(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]{3}", text)
        is not None
    )


# Parsing -----------------------------------------------------------------------------


def _markdown() -> MarkdownIt:
    global _parser
    if _parser is None:
        from markdown_it import MarkdownIt

        # commonmark without raw HTML; headings, rules, tables and reference links are
        # not Discord's and only add surprises, so they are off.
        md = MarkdownIt("commonmark", {"html": False, "maxNesting": MAX_DEPTH * 3})
        md.enable("strikethrough")
        md.disable(["html_block", "html_inline", "lheading", "hr", "reference", "heading"])
        md.inline.ruler.at("text", _text_rule)
        md.inline.ruler.before("emphasis", "spoiler", _spoiler_rule)
        md.inline.ruler.before("autolink", "mention", _mention_rule)
        md.validateLink = lambda url: safe_link(url) is not None  # type: ignore[method-assign]
        _parser = md
    return _parser


def warm_up() -> None:
    """Import markdown-it and build the parser now (start-up does it on a worker thread
    while the store key is derived), so the first message painted does not wait."""
    _markdown()


def _text_rule(state: StateInline, silent: bool) -> bool:
    position = state.pos
    end = state.posMax
    src = state.src
    while position < end and src[position] not in _TERMINATORS:
        position += 1
    if position == state.pos:
        return False
    if not silent:
        state.pending += src[state.pos : position]
    state.pos = position
    return True


def _spoiler_rule(state: StateInline, silent: bool) -> bool:
    """``||hidden||`` → spoiler_open … spoiler_close around parsed inline content."""
    start = state.pos
    if not state.src.startswith("||", start):
        return False
    end = state.src.find("||", start + 2, state.posMax)
    if end <= start + 2:
        return False
    if not silent:
        state.push("spoiler_open", "span", 1)
        old_max = state.posMax
        state.pos, state.posMax = start + 2, end
        state.md.inline.tokenize(state)
        state.posMax = old_max
        state.push("spoiler_close", "span", -1)
    state.pos = end + 2
    return True


def _mention_rule(state: StateInline, silent: bool) -> bool:
    match = _MENTION.match(state.src, state.pos, state.posMax)
    if match is None:
        return False
    if not silent:
        token = state.push("mention", "", 0)
        token.meta = {"kind": match.group(1).rstrip("!"), "id": int(match.group(2))}
    state.pos = match.end()
    return True


# Writing -----------------------------------------------------------------------------


class _HtmlWriter:
    def __init__(
        self,
        mentions: Mapping[int, str],
        me: int | None,
        channels: Mapping[int, str],
        roles: Mapping[int, str],
        reveal_spoilers: bool,
        spoilers: SpoilerColours,
    ) -> None:
        self.mentions = mentions
        self.me = me
        self.channels = channels
        self.roles = roles
        self.reveal_spoilers = reveal_spoilers
        self.hidden_style, self.revealed_style = spoiler_styles(spoilers)
        self.out: list[str] = []
        self.depth = 0  # open quotes + lists
        self.skipped: list[bool] = []  # per open container: was its tag flattened?
        self.links: list[bool] = []  # per open link: was it kept as an anchor?
        self.hidden = 0  # open spoilers shown hidden (their content must not show through)
        self.code_count = 0

    def render(self, text: str) -> str:
        tokens = _markdown().parse(_clean(text))
        self.blocks(tokens)
        return "".join(self.out)

    # Blocks ---------------------------------------------------------------------------

    def blocks(self, tokens: Sequence[Token]) -> None:
        out = self.out
        for token in tokens:
            kind = token.type
            if kind in ("blockquote_open", "bullet_list_open", "ordered_list_open"):
                self.depth += 1
                flatten = self.depth > MAX_DEPTH
                self.skipped.append(flatten)
                if not flatten:
                    if kind == "blockquote_open":
                        out.append(f'<blockquote style="{QUOTE_STYLE}">')
                    elif kind == "bullet_list_open":
                        out.append("<ul>")
                    else:
                        start = token.attrs.get("start")
                        first = f' start="{int(start)}"' if isinstance(start, int) else ""
                        out.append(f"<ol{first}>")
            elif kind in ("blockquote_close", "bullet_list_close", "ordered_list_close"):
                self.depth -= 1
                if not self.skipped.pop():
                    out.append(_CLOSING[kind])
            elif kind == "list_item_open":
                out.append("" if self.skipped[-1] else "<li>")
            elif kind == "list_item_close":
                out.append("<br>" if self.skipped[-1] else "</li>")
            elif kind == "paragraph_open":
                if not token.hidden:
                    out.append("<p>")
            elif kind == "paragraph_close":
                out.append("" if token.hidden else "</p>")
            elif kind == "inline":
                self.inline(token.children or [])
            elif kind in ("fence", "code_block"):
                self.code_block(token.content, token.info.strip().split(" ")[0])

    def code_block(self, code: str, language: str) -> None:
        note = ""
        lines = code.split("\n")
        if len(code) > MAX_CODE_CHARS or len(lines) > MAX_CODE_LINES:
            code = "\n".join(lines[:MAX_CODE_LINES])[:MAX_CODE_CHARS]
            note = (
                f'<p style="{NOTE_STYLE}">(code cut: {len(lines):,} lines, '
                f"showing the first {code.count(chr(10)) + 1:,})</p>"
            )
        self.out.append(
            f'<p align="right" style="{CODE_BAR_STYLE}">'
            f'<a href="{COPY_CODE_HREF}{self.code_count}" style="{COPY_BUTTON_STYLE}">'
            "&nbsp;Copy&nbsp;</a></p>"
        )
        self.code_count += 1
        self.out.append(
            f'<pre style="{CODE_STYLE} margin-top:0;">{_highlight(code.rstrip(), language)}</pre>'
        )
        self.out.append(note)

    # Inline ---------------------------------------------------------------------------

    def inline(self, children: Sequence[Token]) -> None:
        out = self.out
        for token in children:
            kind = token.type
            if kind == "text":
                self.text(token.content)
            elif kind == "strong_open":
                out.append("<u>" if token.markup == "__" else "<b>")
            elif kind == "strong_close":
                out.append("</u>" if token.markup == "__" else "</b>")
            elif kind == "em_open":
                out.append("<i>")
            elif kind == "em_close":
                out.append("</i>")
            elif kind == "s_open":
                out.append("<s>")
            elif kind == "s_close":
                out.append("</s>")
            elif kind == "code_inline":
                if self.hidden:
                    out.append(escape(token.content))
                else:
                    out.append(f'<code style="{CODE_STYLE}">{escape(token.content)}</code>')
            elif kind in ("softbreak", "hardbreak"):
                out.append("<br>")
            elif kind == "link_open":
                # Inside a hidden spoiler (itself an anchor) a link is plain text.
                href = None if self.hidden else safe_link(str(token.attrs.get("href", "")))
                self.links.append(href is not None)
                out.append(f'<a href="{escape(href)}">' if href else "<span>")
            elif kind == "link_close":
                out.append("</a>" if self.links and self.links.pop() else "</span>")
            elif kind == "image":
                # Never an image: its alt text stands in, as plain text.
                out.append(escape(token.content or "image"))
            elif kind == "spoiler_open":
                if self.reveal_spoilers:
                    out.append(f'<span style="{self.revealed_style}">')
                elif self.hidden:
                    out.append("<span>")  # already inside a hidden spoiler's anchor
                    self.hidden += 1
                else:
                    out.append(f'<a href="{SPOILER_HREF}" style="{self.hidden_style}">')
                    self.hidden += 1
            elif kind == "spoiler_close":
                if self.reveal_spoilers:
                    out.append("</span>")
                else:
                    self.hidden -= 1
                    out.append("</a>" if not self.hidden else "</span>")
            elif kind == "mention":
                self.mention(token.meta["kind"], token.meta["id"])
            else:
                out.append(escape(token.content))

    def text(self, content: str) -> None:
        if self.links or self.hidden or ("://" not in content and "mailto:" not in content.lower()):
            self.out.append(escape(content))
            return
        position = 0
        for match in _BARE_URL.finditer(content):
            url = match.group(0).rstrip(_TRAILING_PUNCT)
            self.out.append(escape(content[position : match.start()]))
            href = safe_link(url)
            if href:
                self.out.append(f'<a href="{escape(href)}">{escape(url)}</a>')
            else:
                self.out.append(escape(url))
            position = match.start() + len(url)
        self.out.append(escape(content[position:]))

    def mention(self, kind: str, target: int) -> None:
        if self.hidden:
            self.out.append(escape(self._mention_name(kind, target)))
            return
        self.out.append(
            f'<span style="{self._mention_style(kind, target)}">'
            f"{escape(self._mention_name(kind, target))}</span>"
        )

    def _mention_name(self, kind: str, target: int) -> str:
        if kind == "@":
            return "@" + self.mentions.get(target, "unknown-user")
        if kind == "#":
            return "#" + self.channels.get(target, "unknown-channel")
        return "@" + self.roles.get(target, "unknown-role")

    def _mention_style(self, kind: str, target: int) -> str:
        return MENTION_ME_STYLE if kind == "@" and target == self.me else MENTION_STYLE


def _highlight(code: str, language: str) -> str:
    """Pygments spans with inline styles (Qt loads no style sheets of ours)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.lexers.special import TextLexer
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    formatter = HtmlFormatter(nowrap=True, noclasses=True, style="monokai")
    html: str = highlight(code, lexer, formatter)
    return html.rstrip("\n")
