"""Hostile markdown: whatever a message holds, the HTML we hand Qt is allow-listed, loads
nothing, stays shallow, and lays out in bounded time."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QTextCursor, QTextFormat
from PySide6.QtWidgets import QApplication

from nexus_desktop.markdown import (
    COPY_CODE_HREF,
    MAX_DEPTH,
    SPOILER_HREF,
    SafeTextDocument,
    code_blocks,
    has_spoilers,
    plain_text,
    render_markdown,
    safe_link,
)
from nexus_desktop.themes import (
    BUILTIN_DIR,
    ThemeError,
    add_theme_dir,
    apply_theme,
    find_theme,
    remove_theme_dir,
)

HOSTILE = {
    "deep_quotes": "> " * 500 + "deep quote",
    "deep_quotes_lines": "\n".join(">" * n + " level" for n in range(1, 500)),
    "deep_lists": "- " * 500 + "deep item",
    "deep_indented_lists": "\n".join("  " * n + "- item" for n in range(500)),
    "huge_code": "```python\n" + "x = 1  # padding padding padding\n" * 60_000 + "```",
    "file_link": "[x](file:///etc/passwd)",
    "file_autolink": "<file:///etc/passwd> and file:///etc/shadow",
    "image": "![img](http://evil/x.png)",
    "image_file": "![img](file:///etc/passwd)",
    "raw_img": '<img src="http://evil/x.png">',
    "raw_img_file": "<img src=file:///etc/passwd onerror=alert(1)>",
    "script": "<script>alert(1)</script>",
    "style": "<style>body{background:url(http://evil/x)}</style>",
    "javascript": "[click](javascript:alert(1)) <javascript:alert(1)>",
    "javascript_case": "[click](JaVaScRiPt:alert(1))",
    "data_uri": "[d](data:text/html;base64,PHNjcmlwdD4=) ![i](data:image/png;base64,AAAA)",
    "relative": "[r](/etc/passwd) [r2](../x) [r3](//evil/x)",
    "bidi": "file\u202egnp.exe \u2066isolated\u2069 \u202dforced\u202c",
    "zalgo": "Z" + "\u0301\u0302\u0303\u0304" * 400 + "algo",
    "nested_emphasis": "*" * 5000 + "x" + "*" * 5000,
    "many_links": " ".join(f"[l{i}](http://e/{i})" for i in range(3000)),
    "entity": "&lt;img src=x&gt; &#60;script&#62;",
    "html_table": "<table>" * 300 + "x",
    "mention_spam": "<@1>" * 5000,
}


@pytest.fixture(scope="module")
def qt_app() -> QApplication:
    app = QApplication.instance() or QApplication(["nexus-tests"])
    assert isinstance(app, QApplication)
    return app


class RecordingDocument(SafeTextDocument):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def loadResource(self, type: int, name: object) -> object:
        self.requests.append(str(name))
        return super().loadResource(type, name)  # type: ignore[arg-type]


def _depth(html: str, tag: str) -> int:
    depth = deepest = 0
    for match in re.finditer(rf"<(/?){tag}\b", html):
        depth += -1 if match.group(1) else 1
        deepest = max(deepest, depth)
    return deepest


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_message_renders_safely(qt_app: QApplication, name: str) -> None:
    started = time.perf_counter()
    html = render_markdown(HOSTILE[name], mentions={1: "alice"}, me=1)
    doc = RecordingDocument()
    doc.setHtml(html)
    doc.setTextWidth(600)
    height = doc.size().height()
    elapsed = time.perf_counter() - started

    lowered = html.lower()
    assert "<img" not in lowered
    assert "<script" not in lowered and "<style" not in lowered and "<table" not in lowered
    for href in re.findall(r'href="([^"]*)"', lowered):
        # The app's own anchors (spoilers, code blocks' Copy) are the only other kind.
        own = href == SPOILER_HREF or re.fullmatch(re.escape(COPY_CODE_HREF) + r"\d+", href)
        assert own or href.startswith(("http://", "https://", "mailto:")), href
    assert not re.search(r"(file|javascript|data):", " ".join(re.findall(r'href="[^"]*"', lowered)))
    assert "src=" not in lowered.replace("&lt;img src=", "")  # only as escaped text
    assert _depth(html, "blockquote") <= MAX_DEPTH
    assert _depth(html, "ul") + _depth(html, "ol") <= MAX_DEPTH * 2
    assert "\u202e" not in html and "\u2066" not in html and "\u202d" not in html
    assert doc.requests == []
    assert height > 0
    # A generous bound against runaway layout; the bench measures real speed.
    assert elapsed < 2.0, f"{name} took {elapsed:.2f} s"


def test_raw_html_is_shown_as_text() -> None:
    html = render_markdown("<b>not bold</b> <script>x</script>")
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
    assert "&lt;script&gt;" in html


def test_discord_flavour() -> None:
    html = render_markdown(
        "**b** *i* __u__ ~~s~~ `c` ||secret|| <@1> <@2> <#3> <@&4> > x",
        mentions={1: "alice", 2: "bob"},
        me=1,
        channels={3: "general"},
        roles={4: "mods"},
    )
    for fragment in ("<b>b</b>", "<i>i</i>", "<u>u</u>", "<s>s</s>", ">c</code>"):
        assert fragment in html
    assert "secret" in html and "||" not in html
    assert "@alice" in html and "@bob" in html and "#general" in html and "@mods" in html
    # "me" is highlighted more strongly than another member.
    me_span = html[: html.index("@alice")].rsplit("<span", 1)[1]
    bob_span = html[: html.index("@bob")].rsplit("<span", 1)[1]
    assert me_span != bob_span


def test_code_block_is_highlighted_inline_and_long_ones_are_cut() -> None:
    html = render_markdown("```python\ndef f():\n    return 1\n```")
    assert "<pre" in html and 'style="color:' in html.replace(": ", ":")
    assert "class=" not in html  # inline styles only, no style sheet
    long = render_markdown("```\n" + "line\n" * 5000 + "```")
    assert "code cut" in long and long.count("line") < 1000


def test_links_kept_only_for_safe_schemes() -> None:
    html = render_markdown("[ok](https://example.org/a?b=1) mailto:me@example.org http://x.y")
    assert 'href="https://example.org/a?b=1"' in html
    assert 'href="mailto:me@example.org"' in html
    assert 'href="http://x.y"' in html
    assert safe_link("file:///etc/passwd") is None
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("data:text/html,x") is None
    assert safe_link("/relative") is None


def test_document_loads_no_resource_even_when_asked(qt_app: QApplication) -> None:
    # Bypass render_markdown on purpose: even hand-written HTML asking for images gets
    # nothing from the safe document (Qt asks; the answer is empty).
    doc = RecordingDocument()
    doc.setHtml('<img src="file:///etc/passwd" width="10"><img src="http://evil/x.png">')
    doc.setTextWidth(600)
    doc.size()
    assert doc.requests, "Qt should have asked for the images"
    assert doc.resource(2, "http://evil/x.png") is None  # 2: QTextDocument.ImageResource


def test_spoilers_are_hidden_anchors_until_revealed(qt_app: QApplication) -> None:
    hidden = render_markdown("see ||the `end` <@1> https://example.org|| now", mentions={1: "ann"})
    assert f'href="{SPOILER_HREF}"' in hidden
    # Nothing inside shows through its own colours or opens by a click: no code style,
    # no mention highlight, no second link.
    inside = hidden[hidden.index(SPOILER_HREF) : hidden.index("</a>")]
    assert "<code" not in inside and "<span style" not in inside and "href=" not in inside[14:]
    shown = render_markdown("see ||the end|| now", reveal_spoilers=True)
    assert SPOILER_HREF not in shown and "the end" in shown
    assert has_spoilers("a ||b|| c") and not has_spoilers("a || b") and not has_spoilers("x")


def test_code_blocks_get_a_copy_button_naming_each_block() -> None:
    text = "one\n```py\nprint(1)\n```\ntwo\n```\nplain\n  indented\n```"
    html = render_markdown(text)
    assert f'href="{COPY_CODE_HREF}0"' in html and f'href="{COPY_CODE_HREF}1"' in html
    assert code_blocks(text) == ["print(1)", "plain\n  indented"]
    assert code_blocks("no code `inline` here") == []


def test_plain_text_drops_markers_and_keeps_spoilers_hidden() -> None:
    text = "**bold** _it_ ~~gone~~ `x = 1` ||secret|| <@5> [site](https://example.org)\n> quote"
    flat = plain_text(text, mentions={5: "bob"})
    assert flat == "bold it gone x = 1 ▒▒▒ @bob site quote"
    assert "secret" not in flat and "*" not in flat
    assert len(plain_text("word " * 500, limit=50)) == 50


# Spoiler colours follow the theme ---------------------------------------------------------


def wcag_contrast(one: QColor, other: QColor) -> float:
    """WCAG 2.x contrast ratio, written out here so the app's own formula is checked."""

    def luminance(colour: QColor) -> float:
        def linear(value: int) -> float:
            c = value / 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        return (
            0.2126 * linear(colour.red())
            + 0.7152 * linear(colour.green())
            + 0.0722 * linear(colour.blue())
        )

    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def spoiler_box(doc: SafeTextDocument, background: QColor, word: str) -> Counter[str]:
    """Paint ``doc`` on ``background`` as the message list does and count the colours
    inside ``word``'s box (one pixel in from its edges)."""
    image = QImage(320, int(doc.size().height()) + 2, QImage.Format.Format_RGB32)
    image.fill(background)
    painter = QPainter(image)
    doc.drawContents(painter)
    painter.end()
    block = doc.begin()
    line = block.layout().lineAt(0)
    start = block.text().index(word)
    left, _ = line.cursorToX(start)
    right, _ = line.cursorToX(start + len(word))
    top = doc.documentLayout().blockBoundingRect(block).top() + line.y()
    return Counter(
        QColor(image.pixel(x, y)).name()
        for x in range(int(left) + 1, int(right) - 1)
        for y in range(int(top) + 1, int(top + line.height()) - 1)
    )


def laid_out(html: str) -> SafeTextDocument:
    doc = SafeTextDocument()
    doc.setDocumentMargin(0)
    doc.setHtml(html)
    doc.setTextWidth(320)
    return doc


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast"])
def test_spoilers_are_opaque_when_hidden_and_readable_when_revealed(
    qt_app: QApplication, theme: str
) -> None:
    palette_file = find_theme(theme)[1]
    variables = json.loads(palette_file.read_text())["vars"]
    background = QColor(variables["main_bg"])
    hover = QColor(variables["hover_bg"])  # a message under the pointer
    try:
        apply_theme(qt_app, theme)
        text_colour = qt_app.palette().color(QPalette.ColorRole.Text)

        # Hidden: one solid block of the theme's spoiler colour; no letter shows.
        hidden = laid_out(render_markdown("see ||secret|| now"))
        assert set(spoiler_box(hidden, background, "secret")) == {variables["spoiler_hidden"]}
        assert QColor(variables["spoiler_hidden"]) != background

        # Revealed: the theme's text colour on a tinted background, at least 4.5:1
        # (WCAG AA), on a resting and on a hovered message.
        revealed = laid_out(render_markdown("see ||secret|| now", reveal_spoilers=True))
        cursor = QTextCursor(revealed)
        cursor.setPosition(revealed.toPlainText().index("secret") + 1)
        assert not cursor.charFormat().hasProperty(QTextFormat.Property.ForegroundBrush)
        for under in (background, hover):
            colours = spoiler_box(revealed, under, "secret")
            tint, _count = colours.most_common(1)[0]
            assert QColor(tint) != under, "a revealed spoiler is marked by its background"
            assert len(colours) > 1, "the revealed text is drawn"
            ratio = wcag_contrast(text_colour, QColor(tint))
            assert ratio >= 4.5, f"{theme}: revealed spoiler text at {ratio:.2f}:1 on {tint}"
    finally:
        apply_theme(qt_app, "dark")


def test_a_theme_switch_recolours_spoilers(qt_app: QApplication) -> None:
    try:
        apply_theme(qt_app, "dark")
        dark_hidden = render_markdown("||plot twist||")
        dark_revealed = laid_out(render_markdown("a ||plot twist|| b", reveal_spoilers=True))
        apply_theme(qt_app, "light")
        # Rendered afresh with the light theme's block colour (not the dark one cached).
        light_hidden = render_markdown("||plot twist||")
        assert light_hidden != dark_hidden and "#b5bac1" in light_hidden
        # A document laid out under the dark theme and kept (message rows are cached)
        # still reads on the light background: its text takes the light palette.
        light_bg = QColor("#ffffff")
        colours = spoiler_box(dark_revealed, light_bg, "plot")
        tint = QColor(colours.most_common(1)[0][0])
        text_colour = qt_app.palette().color(QPalette.ColorRole.Text)
        assert wcag_contrast(text_colour, tint) >= 4.5
    finally:
        apply_theme(qt_app, "dark")


def test_a_theme_with_unreadable_spoilers_is_refused(qt_app: QApplication, tmp_path: Path) -> None:
    folder = tmp_path / "themes"
    folder.mkdir()
    dark = json.loads((BUILTIN_DIR / "dark.json").read_text())
    sheet = (BUILTIN_DIR / "dark.qss").read_text()
    for name, key, value in (
        ("glare", "spoiler_revealed", "#e0ffffff"),  # a near-white tint under light text
        ("seethrough", "spoiler_hidden", "#801e1f22"),  # hidden text would show
        ("nonsense", "spoiler_hidden", "blurple-ish"),
    ):
        palette = {**dark, "vars": {**dark["vars"], key: value}}
        (folder / f"{name}.json").write_text(json.dumps(palette, indent=2))
        (folder / f"{name}.qss").write_text(sheet)
    add_theme_dir(folder)
    try:
        apply_theme(qt_app, "dark")
        before = render_markdown("||kept||")
        for name, key in (
            ("glare", "spoiler_revealed"),
            ("seethrough", "spoiler_hidden"),
            ("nonsense", "spoiler_hidden"),
        ):
            with pytest.raises(ThemeError) as refused:
                apply_theme(qt_app, name)
            text = (folder / f"{name}.json").read_text()
            line = text[: text.index(f'"{key}"')].count("\n") + 1
            assert str(refused.value).startswith(f"{folder / f'{name}.json'}:{line}:")
            if name == "glare":
                assert "4.5:1" in str(refused.value)
        assert render_markdown("||kept||") == before  # the dark theme's colours stay
    finally:
        remove_theme_dir(folder)
        apply_theme(qt_app, "dark")


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast"])
def test_quotes_and_notes_read_in_every_theme(qt_app: QApplication, theme: str) -> None:
    background = QColor(json.loads(find_theme(theme)[1].read_text())["vars"]["main_bg"])
    try:
        apply_theme(qt_app, theme)
        text_colour = qt_app.palette().color(QPalette.ColorRole.Text)
        long_code = "```\n" + "line\n" * 5000 + "```"
        for source, words in (("> quoted words", "quoted"), (long_code, "code cut")):
            doc = laid_out(render_markdown(source))
            cursor = QTextCursor(doc)
            cursor.setPosition(doc.toPlainText().index(words) + 1)
            # No colour of its own: the theme's text colour, which reads on its background.
            assert not cursor.charFormat().hasProperty(QTextFormat.Property.ForegroundBrush)
            assert wcag_contrast(text_colour, background) >= 4.5
    finally:
        apply_theme(qt_app, "dark")
