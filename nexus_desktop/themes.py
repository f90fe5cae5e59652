"""Themes: a palette file (``NAME.json``) plus a Qt style sheet (``NAME.qss``) in the
repo's ``themes/`` folder or a user themes folder. Free for everyone.

The style sheet may use ``@name`` variables: the palette file's ``vars`` plus
``@pad``, ``@pad_small``, ``@pad_large`` and ``@radius``, which compact mode shrinks.
Everything is parsed and checked before anything is applied, so a broken theme raises
``ThemeError`` (naming the file and line) and the previous theme stays on screen.

Two ``vars`` colour spoilers in messages (``SpoilerColours``): ``spoiler_hidden``, the
opaque block a hidden spoiler is, and ``spoiler_revealed``, a translucent tint
(``#AARRGGBB``) behind a revealed one, whose text keeps the theme's text colour. A theme
whose revealed spoilers would read below WCAG AA (4.5:1) is refused; one without these
vars gets colours made from its palette.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .qt import QApplication, QColor, QPalette

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "themes"
_user_dirs: list[Path] = []

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VARIABLE = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")

# Paddings in px, normal then compact: compact mode is a variant of the same sheet.
_SPACING = {
    False: {"pad": "8px", "pad_small": "4px", "pad_large": "12px", "radius": "4px"},
    True: {"pad": "4px", "pad_small": "2px", "pad_large": "6px", "radius": "3px"},
}

_ROLES: dict[str, QPalette.ColorRole] = {
    role.name: role
    for role in QPalette.ColorRole
    if role.name not in ("NColorRoles", "NoRole") and not role.name.startswith("Foreground")
}
_GROUPS = {
    "active": QPalette.ColorGroup.Active,
    "inactive": QPalette.ColorGroup.Inactive,
    "disabled": QPalette.ColorGroup.Disabled,
}

# The app's font size before any scaling, so scaling twice does not compound.
_BASE_FONT_PROPERTY = "nexus_base_font_size"


class ThemeError(ValueError):
    """A theme that cannot be used; the message names the file and, when known, the line."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


#: WCAG AA for body text: revealed spoilers must read at least this well.
MIN_TEXT_CONTRAST = 4.5


@dataclass(frozen=True, slots=True)
class SpoilerColours:
    """How spoilers look. ``hidden`` ("#rrggbb") fills a hidden spoiler and colours its
    text, so nothing shows through. ``revealed`` ("#aarrggbb") is a tint laid over the
    message background behind revealed text, which keeps the palette's text colour:
    rendered messages cached under one theme stay readable under the next."""

    hidden: str = "#1e1f22"
    revealed: str = "#1affffff"


@dataclass(frozen=True)
class Theme:
    name: str
    palette: QPalette
    style_sheet: str
    spoilers: SpoilerColours = field(default_factory=SpoilerColours)


_active_spoilers = SpoilerColours()


def active_spoiler_colours() -> SpoilerColours:
    """The spoiler colours of the theme applied last (the dark theme's before any)."""
    return _active_spoilers


def relative_luminance(colour: QColor) -> float:
    """WCAG 2 relative luminance of an opaque colour."""

    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    return (
        0.2126 * channel(colour.redF())
        + 0.7152 * channel(colour.greenF())
        + 0.0722 * channel(colour.blueF())
    )


def contrast_ratio(one: QColor, other: QColor) -> float:
    """WCAG 2 contrast ratio of two opaque colours, 1.0 to 21.0."""
    lighter, darker = sorted((relative_luminance(one), relative_luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def over(tint: QColor, background: QColor) -> QColor:
    """``tint`` (translucent) painted over an opaque ``background``."""
    alpha = tint.alphaF()
    return QColor.fromRgbF(
        tint.redF() * alpha + background.redF() * (1 - alpha),
        tint.greenF() * alpha + background.greenF() * (1 - alpha),
        tint.blueF() * alpha + background.blueF() * (1 - alpha),
    )


def message_background(palette: QPalette, variables: Mapping[str, str]) -> QColor:
    """What messages are drawn on: the style sheet's ``main_bg``, else the window."""
    colour = QColor(variables.get("main_bg", ""))
    return colour if colour.isValid() else palette.color(QPalette.ColorRole.Window)


def user_theme_dir(data_dir: Path) -> Path:
    """The user's themes folder: ``themes/`` in the app's data directory."""
    return data_dir / "themes"


def add_theme_dir(path: Path) -> None:
    """Also look for themes in ``path`` (the user's themes folder in the data dir)."""
    if path not in _user_dirs:
        _user_dirs.append(path)


def remove_theme_dir(path: Path) -> None:
    """Stop looking for themes in ``path`` (another data directory took over)."""
    if path in _user_dirs:
        _user_dirs.remove(path)


def _theme_dirs() -> list[Path]:
    # User themes come last so a user can shadow a built-in theme by name.
    return [BUILTIN_DIR, *_user_dirs]


def available_themes() -> list[str]:
    """Names of the themes that have both a style sheet and a palette file."""
    names: set[str] = set()
    for folder in _theme_dirs():
        if folder.is_dir():
            names.update(
                p.stem
                for p in folder.glob("*.qss")
                if _NAME.match(p.stem) and p.with_suffix(".json").is_file()
            )
    return sorted(names)


def find_theme(name: str) -> tuple[Path, Path]:
    if not _NAME.match(name):
        raise ValueError(f"not a theme name: {name!r}")
    for folder in reversed(_theme_dirs()):
        qss, palette = folder / f"{name}.qss", folder / f"{name}.json"
        if qss.is_file() and palette.is_file():
            return qss, palette
    raise ValueError(f"no theme called {name!r}; available: {', '.join(available_themes())}")


def _line_of(text: str, needle: str) -> int | None:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else None


def _colour(path: Path, text: str, key: str, value: object) -> QColor:
    colour = QColor(value) if isinstance(value, str) else QColor()
    if not isinstance(value, str) or not colour.isValid():
        raise ThemeError(path, _line_of(text, f'"{key}"'), f"{key}: {value!r} is not a colour")
    return colour


def load_palette(path: Path) -> tuple[QPalette, dict[str, str]]:
    """Parse a palette file: ``{"palette": {Role: "#hex"}, "disabled": {…}, "vars": {…}}``."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ThemeError(path, exc.lineno, f"not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("palette"), dict):
        raise ThemeError(path, 1, 'expected an object with a "palette" object')
    palette = QPalette()
    for group_name in ("palette", "inactive", "disabled"):
        entries = data.get(group_name, {})
        if not isinstance(entries, dict):
            raise ThemeError(path, _line_of(text, f'"{group_name}"'), "must be an object")
        for key, value in entries.items():
            role = _ROLES.get(key)
            if role is None:
                raise ThemeError(path, _line_of(text, f'"{key}"'), f"unknown palette role {key}")
            colour = _colour(path, text, key, value)
            if group_name == "palette":
                palette.setColor(role, colour)  # every group at once
            else:
                palette.setColor(_GROUPS[group_name], role, colour)
    variables = data.get("vars", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ThemeError(path, _line_of(text, '"vars"'), "vars must map names to strings")
    return palette, variables


def render_style_sheet(path: Path, variables: dict[str, str]) -> str:
    """The style sheet with ``@variables`` substituted; unknown variables and unbalanced
    braces are errors (Qt itself would only print a warning and drop the whole sheet)."""
    text = path.read_text(encoding="utf-8")
    depth = 0
    in_comment = False
    out_lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        scan = line
        for char_index, char in enumerate(scan):
            pair = scan[char_index : char_index + 2]
            if in_comment:
                if pair == "*/":
                    in_comment = False
                continue
            if pair == "/*":
                in_comment = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth < 0:
                    raise ThemeError(path, number, "'}' without a matching '{'")

        def substitute(match: re.Match[str], number: int = number) -> str:
            name = match.group(1)
            if name not in variables:
                raise ThemeError(path, number, f"unknown variable @{name}")
            return variables[name]

        out_lines.append(_VARIABLE.sub(substitute, line))
    if depth != 0 or in_comment:
        raise ThemeError(path, len(text.splitlines()), "unclosed '{' or comment at end of file")
    return "\n".join(out_lines)


def load_spoiler_colours(
    path: Path, palette: QPalette, variables: Mapping[str, str]
) -> SpoilerColours:
    """The theme's spoiler colours, checked: a hidden spoiler must be opaque and a
    revealed one readable on the message background (``MIN_TEXT_CONTRAST``)."""
    background = message_background(palette, variables)
    text = palette.color(QPalette.ColorRole.Text)

    def line(key: str) -> int | None:
        return _line_of(path.read_text(encoding="utf-8"), f'"{key}"')

    hidden_value = variables.get("spoiler_hidden")
    if hidden_value is None:
        hidden = over(QColor(text.red(), text.green(), text.blue(), 77), background)
    else:
        hidden = QColor(hidden_value)
        if not hidden.isValid():
            raise ThemeError(path, line("spoiler_hidden"), f"{hidden_value!r} is not a colour")
        if hidden.alpha() != 255:
            raise ThemeError(
                path,
                line("spoiler_hidden"),
                "spoiler_hidden must be opaque, or hidden text would show through",
            )
    revealed_value = variables.get("spoiler_revealed")
    if revealed_value is None:
        revealed = QColor(text.red(), text.green(), text.blue(), 26)
        if contrast_ratio(text, over(revealed, background)) < MIN_TEXT_CONTRAST:
            revealed.setAlpha(0)  # a faint palette: keep revealed text on the plain background
    else:
        revealed = QColor(revealed_value)
        if not revealed.isValid():
            raise ThemeError(path, line("spoiler_revealed"), f"{revealed_value!r} is not a colour")
        ratio = contrast_ratio(text, over(revealed, background))
        if ratio < MIN_TEXT_CONTRAST:
            raise ThemeError(
                path,
                line("spoiler_revealed"),
                f"revealed spoilers would read at {ratio:.1f}:1 against the text colour;"
                f" they need {MIN_TEXT_CONTRAST}:1",
            )
    return SpoilerColours(
        hidden.name(QColor.NameFormat.HexRgb), revealed.name(QColor.NameFormat.HexArgb)
    )


def load_theme(name: str, *, compact: bool = False) -> Theme:
    qss_path, palette_path = find_theme(name)
    palette, variables = load_palette(palette_path)
    style_sheet = render_style_sheet(qss_path, {**variables, **_SPACING[compact]})
    spoilers = load_spoiler_colours(palette_path, palette, variables)
    return Theme(name, palette, style_sheet, spoilers)


def apply_theme(
    app: QApplication, name: str, *, font_scale: float = 1.0, compact: bool = False
) -> None:
    """Apply a theme app-wide. Raises ``ThemeError``/``ValueError`` before changing
    anything if the theme is missing or broken."""
    if not 0.5 <= font_scale <= 3.0:
        raise ValueError(f"font scale {font_scale} is out of range (0.5 to 3.0)")
    theme = load_theme(name, compact=compact)
    font = app.font()
    base = app.property(_BASE_FONT_PROPERTY)
    if not isinstance(base, float):
        base = font.pointSizeF() if font.pointSizeF() > 0 else 10.0
        app.setProperty(_BASE_FONT_PROPERTY, base)
    font.setPointSizeF(round(base * font_scale, 2))
    app.setFont(font)
    global _active_spoilers
    _active_spoilers = theme.spoilers  # before the palette: repaints render with it
    app.setPalette(theme.palette)
    # Dynamic properties let plugins and widgets ask which variant is active.
    app.setProperty("nexus_theme", name)
    app.setProperty("compact", compact)
    app.setStyleSheet(theme.style_sheet)
