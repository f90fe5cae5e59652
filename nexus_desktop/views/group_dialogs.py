"""Choosing people for an encrypted group DM: "New group" (2 to 9 people) and "Add
people" to a group. Both offer the people you share a community with (the relay lets
you add anyone you could DM), with a type-ahead filter and a checkbox each."""

from __future__ import annotations

from collections.abc import Collection

from ..qt import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    Qt,
    QVBoxLayout,
    QWidget,
)
from ..session import Account, AppSession

MAX_OTHERS = 9  # a group DM holds 10 people: you and nine others


def shared_people(session: AppSession) -> list[tuple[Account, int, str, str]]:
    """(account, user id, name, community names) of everyone who shares a community with
    one of your accounts, bots and yourself left out, by name."""
    found: dict[tuple[int, int], tuple[Account, int, str, list[str]]] = {}
    for account, guild in session.all_guilds():
        me = account.user.id if account.user else None
        for member in session.members(guild.id):
            user = member.user
            if user is None or user.id == me or user.bot:
                continue
            name = member.nick or user.global_name or user.username
            entry = found.setdefault((id(account), user.id), (account, user.id, name, []))
            entry[3].append(guild.name)
    return sorted(
        ((a, uid, name, ", ".join(guilds)) for a, uid, name, guilds in found.values()),
        key=lambda c: c[2].casefold(),
    )


class PeoplePicker(QDialog):
    """Tick between ``minimum`` and ``maximum`` people of one account. ``exclude``: user
    ids not offered (a group's members); ``account``: only that account's contacts."""

    def __init__(
        self,
        session: AppSession,
        *,
        title: str,
        hint: str,
        action: str,
        minimum: int,
        maximum: int,
        account: Account | None = None,
        exclude: Collection[int] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.minimum, self.maximum = minimum, maximum
        layout = QVBoxLayout(self)
        explanation = QLabel(hint)
        explanation.setWordWrap(True)
        layout.addWidget(explanation)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Type a name")
        self.filter.setAccessibleName("Find people")
        layout.addWidget(self.filter)
        self.people = QListWidget()
        self.people.setAccessibleName("People")
        layout.addWidget(self.people, 1)
        self.count_label = QLabel("")
        self.count_label.setObjectName("PickerCount")
        layout.addWidget(self.count_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText(action)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._candidates = [
            c
            for c in shared_people(session)
            if (account is None or c[0] is account) and c[1] not in exclude
        ]
        self._ticked: dict[tuple[int, int], Account] = {}
        self.filter.textChanged.connect(self._fill)
        self.people.itemChanged.connect(self._item_changed)
        self._fill("")

    def _fill(self, text: str) -> None:
        """Show the people whose name contains ``text``; ticks survive filtering."""
        self.people.blockSignals(True)
        self.people.clear()
        needle = text.casefold().strip()
        for account, user_id, name, guilds in self._candidates:
            if needle and needle not in name.casefold():
                continue
            item = QListWidgetItem(f"{name}  ·  {guilds}")
            item.setData(Qt.ItemDataRole.UserRole, (account, user_id))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            ticked = (id(account), user_id) in self._ticked
            item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
            self.people.addItem(item)
        if self.people.count():
            self.people.setCurrentRow(0)
        self.people.blockSignals(False)
        self._update()

    def _item_changed(self, item: QListWidgetItem) -> None:
        account, user_id = item.data(Qt.ItemDataRole.UserRole)
        key = (id(account), int(user_id))
        if item.checkState() == Qt.CheckState.Checked:
            self._ticked[key] = account
        else:
            self._ticked.pop(key, None)
        self._update()

    def visible_names(self) -> list[str]:
        return [
            self.people.item(row).text().split("  ·  ")[0] for row in range(self.people.count())
        ]

    def tick(self, user_id: int, ticked: bool = True) -> bool:
        """Tick (or untick) someone listed now; False if they are not listed."""
        for row in range(self.people.count()):
            item = self.people.item(row)
            if item.data(Qt.ItemDataRole.UserRole)[1] == user_id:
                item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
                return True
        return False

    def problem(self) -> str:
        """Why the choice cannot be used yet ("" when it can)."""
        accounts = {id(a) for a in self._ticked.values()}
        count = len(self._ticked)
        if len(accounts) > 1:
            return "Choose people from one account: a group lives on one relay."
        if count < self.minimum:
            return f"Choose at least {self.minimum}."
        if count > self.maximum:
            return f"At most {self.maximum}: a group holds ten people."
        return ""

    def _update(self) -> None:
        problem = self.problem()
        count = len(self._ticked)
        self.count_label.setText(f"{count} chosen. {problem}".strip())
        self.ok.setEnabled(not problem)

    def chosen(self) -> tuple[Account, list[int]] | None:
        """The account and the ticked people, if the choice is usable."""
        if self.problem() or not self._ticked:
            return None
        account = next(iter(self._ticked.values()))
        return account, sorted(user_id for _, user_id in self._ticked)


def new_group_dialog(session: AppSession, parent: QWidget | None = None) -> PeoplePicker:
    return PeoplePicker(
        session,
        title="New group",
        hint=(
            "Start an end-to-end encrypted group with 2 to 9 people from communities you"
            " share. Only the members can read it."
        ),
        action="Create group",
        minimum=2,
        maximum=MAX_OTHERS,
        parent=parent,
    )


def add_people_dialog(
    session: AppSession, account: Account, members: Collection[int], parent: QWidget | None = None
) -> PeoplePicker:
    """``members``: everyone in the group but you."""
    return PeoplePicker(
        session,
        title="Add people",
        hint=(
            "Add people to this group. They can read what is sent from now on, not the"
            " messages before they joined."
        ),
        action="Add",
        minimum=1,
        maximum=max(MAX_OTHERS - len(members), 0),
        account=account,
        exclude=members,
        parent=parent,
    )
