"""Themes: a palette file (``NAME.json``) plus a Qt style sheet (``NAME.qss``) in the
repo's ``themes/`` folder or a user themes folder. Free for everyone.

The style sheet may use ``@name`` variables: the palette file's ``vars`` plus
``@pad``, ``@pad_small``, ``@pad_large`` and ``@radius``, which compact mode shrinks.
Everything is parsed and checked before anything is applied, so a broken theme raises
``ThemeError`` (naming the file and line) and the previous theme stays on screen.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Theme:
    name: str
    palette: QPalette
    style_sheet: str


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


def load_theme(name: str, *, compact: bool = False) -> Theme:
    qss_path, palette_path = find_theme(name)
    palette, variables = load_palette(palette_path)
    style_sheet = render_style_sheet(qss_path, {**variables, **_SPACING[compact]})
    return Theme(name, palette, style_sheet)


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
    app.setPalette(theme.palette)
    # Dynamic properties let plugins and widgets ask which variant is active.
    app.setProperty("nexus_theme", name)
    app.setProperty("compact", compact)
    app.setStyleSheet(theme.style_sheet)
