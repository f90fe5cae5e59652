"""Joining a community by invite link, and hosting one on this machine."""

from __future__ import annotations

from ..hosting import HostedRelay, host_community
from ..qt import (
    QApplication,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import AppSession, describe_error, relay_from_invite
from .login_dialog import LoginDialog, keyring_available, plain_label


class JoinDialog(QDialog):
    """Join by invite link with the account already signed in to that relay; an invite
    to another relay opens the login dialog to add an account there. Emits
    ``joined(guild_id)``."""

    joined = Signal(object)

    def __init__(self, session: AppSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Join a community")
        self.link = QLineEdit(self)
        self.link.setPlaceholderText("http://relay.example:8470/invite/abc123")
        self.link.setAccessibleName("Invite link")
        self.error = plain_label("", self)
        self.error.setObjectName("ErrorLabel")
        self.error.hide()
        self.join = QPushButton("Join", self)
        self.join.setDefault(True)
        self.join.setAccessibleName("Join community")
        cancel = QPushButton("Cancel", self)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.join)
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label("Enter an invite link someone sent you.", self))
        layout.addWidget(self.link)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.join.clicked.connect(self._join)
        self.link.returnPressed.connect(self._join)
        cancel.clicked.connect(self.reject)

    def _join(self) -> None:
        try:
            relay_url, code = relay_from_invite(self.link.text())
        except ValueError as exc:
            self._show_error(f"Invite link: {exc}")
            return
        if code is None:
            self._show_error("Invite link: this is a relay address without an invite code")
            return
        account = self.session.account_on(relay_url)
        if account is None:
            # Another relay: sign in there first; the login dialog accepts the invite.
            login = LoginDialog(self.session, self.parentWidget(), invite=self.link.text())
            login.signed_in.connect(lambda _account, guild_id: self.joined.emit(guild_id))
            login.open()
            self.accept()
            return
        self.join.setEnabled(False)
        self.session.run(self.session.accept_invite(account, code), self._joined, self._failed)

    def _joined(self, guild_id: int | None) -> None:
        self.joined.emit(guild_id)
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self.join.setEnabled(True)
        self._show_error(f"Could not join: {describe_error(exc)}")

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
        self.link.setFocus()


class HostDialog(QDialog):
    """ "Host a community": name it, pick the owner's login on the bundled relay, get the
    invite link to share (with a Copy button)."""

    hosted = Signal(str)  # invite link

    def __init__(
        self, session: AppSession, relay: HostedRelay, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.relay = relay
        self.setWindowTitle("Host a community")
        self.name = QLineEdit(self)
        self.name.setAccessibleName("Community name")
        self.username = QLineEdit(self)
        self.username.setAccessibleName("Your username on this relay")
        if session.accounts and session.accounts[0].user is not None:
            self.username.setText(session.accounts[0].user.username)
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        self.passphrase = QLineEdit(self)
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Local history passphrase")
        form = QFormLayout()
        form.addRow("Community name", self.name)
        form.addRow("Your username", self.username)
        form.addRow("Password", self.password)
        form.addRow("Passphrase", self.passphrase)
        form.setRowVisible(self.passphrase, not keyring_available())
        self._form = form
        self.status = plain_label(
            "Nexus runs a relay on this computer while the app is open; people join "
            "with the invite link.",
            self,
        )
        self.link = QLineEdit(self)
        self.link.setReadOnly(True)
        self.link.setAccessibleName("Invite link")
        self.link.hide()
        self.copy = QPushButton("Copy", self)
        self.copy.setAccessibleName("Copy invite link")
        self.copy.hide()
        self.host = QPushButton("Host", self)
        self.host.setDefault(True)
        close = QPushButton("Close", self)
        row = QHBoxLayout()
        row.addWidget(self.link, 1)
        row.addWidget(self.copy)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(close)
        buttons.addWidget(self.host)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addLayout(row)
        layout.addLayout(buttons)
        self.host.clicked.connect(self._host)
        self.copy.clicked.connect(self.copy_link)
        close.clicked.connect(self.accept)

    def use_passphrase(self, passphrase: str) -> None:
        """The local-history passphrase is known already (typed at start-up)."""
        self.passphrase.setText(passphrase)
        self._form.setRowVisible(self.passphrase, False)

    def _host(self) -> None:
        if not (self.name.text().strip() and self.username.text() and self.password.text()):
            self.status.setText("Community name, username and password are all needed.")
            return
        if self._form.isRowVisible(self.passphrase) and not self.passphrase.text():
            self.status.setText("Passphrase: choose one to encrypt your local history.")
            return
        self.host.setEnabled(False)
        self.status.setText("Starting the relay…")
        self.session.run(
            host_community(
                self.session,
                self.relay,
                self.name.text().strip(),
                username=self.username.text().strip(),
                password=self.password.text(),
                # Typed here, or known from start-up (the row is hidden then).
                passphrase=self.passphrase.text() or None,
            ),
            self._hosted,
            self._failed,
        )

    def _hosted(self, link: str) -> None:
        self.status.setText("Your community is up. Share this link:")
        self.link.setText(link)
        self.link.show()
        self.copy.show()
        self.copy.setFocus()
        self.hosted.emit(link)

    def _failed(self, exc: Exception) -> None:
        self.host.setEnabled(True)
        self.status.setText(describe_error(exc))

    def copy_link(self) -> None:
        QApplication.clipboard().setText(self.link.text())
        self.copy.setText("Copied")
