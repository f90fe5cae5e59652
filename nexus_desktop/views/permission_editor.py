"""Permission checkboxes grouped as Discord groups them (General, Membership, Text,
Voice, Advanced). Two modes: on/off for a role's permissions, and allow/inherit/deny
for a channel overwrite."""

from __future__ import annotations

from nexus_protocol.permissions import ALL_PERMISSIONS, Permissions

from ..qt import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
    Signal,
)

P = Permissions
GROUPS: dict[str, list[Permissions]] = {
    "General": [
        P.VIEW_CHANNEL, P.MANAGE_CHANNELS, P.MANAGE_ROLES, P.MANAGE_GUILD_EXPRESSIONS,
        P.CREATE_GUILD_EXPRESSIONS, P.VIEW_AUDIT_LOG, P.VIEW_GUILD_INSIGHTS,
        P.MANAGE_WEBHOOKS, P.MANAGE_GUILD, P.VIEW_CREATOR_MONETIZATION_ANALYTICS,
    ],
    "Membership": [
        P.CREATE_INSTANT_INVITE, P.CHANGE_NICKNAME, P.MANAGE_NICKNAMES, P.KICK_MEMBERS,
        P.BAN_MEMBERS, P.MODERATE_MEMBERS,
    ],
    "Text": [
        P.SEND_MESSAGES, P.SEND_MESSAGES_IN_THREADS, P.CREATE_PUBLIC_THREADS,
        P.CREATE_PRIVATE_THREADS, P.EMBED_LINKS, P.ATTACH_FILES, P.ADD_REACTIONS,
        P.USE_EXTERNAL_EMOJIS, P.USE_EXTERNAL_STICKERS, P.MENTION_EVERYONE,
        P.MANAGE_MESSAGES, P.MANAGE_THREADS, P.READ_MESSAGE_HISTORY, P.SEND_TTS_MESSAGES,
        P.SEND_VOICE_MESSAGES, P.SEND_POLLS, P.USE_APPLICATION_COMMANDS, P.USE_EXTERNAL_APPS,
    ],
    "Voice": [
        P.CONNECT, P.SPEAK, P.STREAM, P.USE_EMBEDDED_ACTIVITIES, P.USE_SOUNDBOARD,
        P.USE_EXTERNAL_SOUNDS, P.USE_VAD, P.PRIORITY_SPEAKER, P.MUTE_MEMBERS,
        P.DEAFEN_MEMBERS, P.MOVE_MEMBERS, P.REQUEST_TO_SPEAK,
    ],
    "Advanced": [P.ADMINISTRATOR, P.MANAGE_EVENTS, P.CREATE_EVENTS],
}  # fmt: skip
# A permission added to the protocol later still appears, under Advanced.
_LISTED = {p for group in GROUPS.values() for p in group}
GROUPS["Advanced"] += [p for p in Permissions if p not in _LISTED]

ALLOW, INHERIT, DENY = "allow", "inherit", "deny"
_CHOICES = [("✓ Allow", ALLOW), ("/ Inherit", INHERIT), ("✗ Deny", DENY)]


def permission_label(permission: Permissions) -> str:
    return (permission.name or "").replace("_", " ").title()


class PermissionEditor(QScrollArea):
    """Every permission of ``scope``; ``tri_state`` shows allow/inherit/deny choices."""

    changed = Signal()

    def __init__(
        self,
        *,
        tri_state: bool = False,
        scope: Permissions = ALL_PERMISSIONS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.tri_state = tri_state
        self.setWidgetResizable(True)
        self.setAccessibleName("Permissions")
        body = QWidget()
        layout = QVBoxLayout(body)
        self.checks: dict[Permissions, QCheckBox] = {}
        self.choices: dict[Permissions, QComboBox] = {}
        for group_name, permissions in GROUPS.items():
            shown = [p for p in permissions if p & scope]
            if not shown:
                continue
            box = QGroupBox(group_name + " permissions")
            form = QFormLayout(box)
            for permission in shown:
                label = permission_label(permission)
                if tri_state:
                    combo = QComboBox()
                    for text, value in _CHOICES:
                        combo.addItem(text, value)
                    combo.setCurrentIndex(1)
                    combo.setAccessibleName(label)
                    combo.currentIndexChanged.connect(self.changed)
                    self.choices[permission] = combo
                    form.addRow(label, combo)
                else:
                    check = QCheckBox(label)
                    check.setAccessibleName(label)
                    check.toggled.connect(self.changed)
                    self.checks[permission] = check
                    form.addRow(check)
            layout.addWidget(box)
        layout.addStretch(1)
        self.setWidget(body)

    # On/off mode (roles) ------------------------------------------------------------------

    def set_permissions(self, value: int) -> None:
        for permission, check in self.checks.items():
            check.setChecked(bool(value & permission))

    def permissions(self) -> Permissions:
        value = P(0)
        for permission, check in self.checks.items():
            if check.isChecked():
                value |= permission
        return value

    def check(self, permission: Permissions) -> QCheckBox:
        return self.checks[permission]

    # Allow/inherit/deny mode (channel overwrites) -------------------------------------------

    def set_overwrite(self, allow: int, deny: int) -> None:
        for permission, combo in self.choices.items():
            state = ALLOW if allow & permission else DENY if deny & permission else INHERIT
            combo.setCurrentIndex(combo.findData(state))

    def set_choice(self, permission: Permissions, state: str) -> None:
        combo = self.choices[permission]
        combo.setCurrentIndex(combo.findData(state))

    def overwrite(self) -> tuple[Permissions, Permissions]:
        allow, deny = P(0), P(0)
        for permission, combo in self.choices.items():
            if combo.currentData() == ALLOW:
                allow |= permission
            elif combo.currentData() == DENY:
                deny |= permission
        return allow, deny
