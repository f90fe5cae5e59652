"""Create a community: a name, and which account owns it when there are several."""

from __future__ import annotations

from typing import Any

from nexus_protocol.models import Guild

from ..qt import (
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import AppSession
from .form_status import FormStatus, run_operation


class CreateCommunityDialog(QDialog):
    """``created(guild_id)`` fires once the relay made it (the rail shows it through the
    gateway's GUILD_CREATE as usual)."""

    created = Signal(object)

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.guild: Guild | None = None
        self.setWindowTitle("Create a community")
        self.setAccessibleName("Create a community")
        intro = QLabel("Your community is free, with no limits on members or features.")
        intro.setWordWrap(True)
        self.name = QLineEdit()
        self.name.setAccessibleName("Community name")
        self.name.setMaxLength(100)
        self.name.setPlaceholderText("My community")
        self.account = QComboBox()
        self.account.setAccessibleName("Account")
        for index, account in enumerate(session.accounts):
            self.account.addItem(account.label, index)
        self.status = FormStatus()
        self.create_button = QPushButton("Create")
        self.create_button.setAccessibleName("Create community")
        self.create_button.setDefault(True)
        self.create_button.clicked.connect(self._create)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setProperty("secondary", True)
        self.cancel_button.clicked.connect(self.reject)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("", self.status.field_error_label("name"))
        if len(session.accounts) > 1:
            form.addRow("Account", self.account)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.create_button)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.status)

    def _create(self) -> None:
        name = self.name.text().strip()
        if len(name) < 2:
            label = self.status.field_labels["name"]
            label.setText("Give it a name of at least 2 characters.")
            label.show()
            self.name.setFocus()
            return
        index = self.account.currentData()
        if index is None:
            self.status.setText("Add an account first.")
            return
        client = self.session.accounts[index].client

        def done(guild: Any) -> None:
            self.guild = guild
            self.created.emit(guild.id)
            self.accept()

        run_operation(
            self.session,
            client.create_guild(name),
            self.status,
            [self.create_button],
            done,
            busy_text="Creating…",
            done_text="Created.",
        )
