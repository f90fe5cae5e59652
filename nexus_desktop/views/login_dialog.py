"""First run and "Add an account": a relay (by invite link or address), a username and a
password — never an e-mail — and, where the OS has no keyring, a passphrase that
encrypts the local history."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from nexus_client import InvalidInput, NexusError, StoreLocked, Unauthorized

from ..qt import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from ..session import Account, AppSession, describe_error, relay_from_invite

if TYPE_CHECKING:
    from ..hosting import HostedRelay
    from .join_dialog import HostDialog

# The relay's field names → the field a person sees.
_FIELD_LABELS = {"login": "Username", "username": "Username", "password": "Password"}


def keyring_available() -> bool:
    """Whether the OS offers a keyring to keep the local store's key in."""
    import keyring  # its backends load only when someone logs in
    import keyring.backends.fail

    try:
        return not isinstance(keyring.get_keyring(), keyring.backends.fail.Keyring)
    except Exception:  # a broken keyring backend is as good as none
        return False


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


class LoginDialog(QDialog):
    """Emits ``signed_in(account, guild_id)`` after success; ``guild_id`` is the
    community the invite led to (None without an invite). ``accept()``s then."""

    signed_in = Signal(object, object)

    def __init__(
        self,
        session: AppSession,
        parent: QWidget | None = None,
        *,
        invite: str = "",
        hosted_relay: HostedRelay | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.account: Account | None = None
        self.guild_id: int | None = None
        self._register = False
        self._known_passphrase: str | None = None
        self._hosted_relay = hosted_relay
        self.host_dialog: HostDialog | None = None
        self.setWindowTitle("Welcome to Nexus")
        self.setObjectName("LoginDialog")
        self.setMinimumWidth(480)  # the address field shows a whole invite link

        self.title = plain_label("Log in to a relay", self)
        self.title.setObjectName("DialogTitle")
        self.address = QLineEdit(invite, self)
        self.address.setPlaceholderText("http://relay.example:8470/invite/abc123")
        self.address.setAccessibleName("Invite link or relay address")
        self.username = QLineEdit(self)
        self.username.setAccessibleName("Username")
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        self.passphrase = QLineEdit(self)
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Local history passphrase")
        self.passphrase_note = plain_label(
            "This computer has no keyring to keep secrets in. Choose a passphrase: it "
            "encrypts the history Nexus keeps on this computer, and you type it each "
            "time Nexus starts. It never leaves this computer.",
            self,
        )
        self.passphrase_note.setObjectName("Hint")

        form = QFormLayout()
        form.addRow("Invite link or relay address", self.address)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        form.addRow("Passphrase", self.passphrase)
        form.addRow(self.passphrase_note)
        self._form = form
        needs_passphrase = not keyring_available()
        form.setRowVisible(self.passphrase, needs_passphrase)
        form.setRowVisible(self.passphrase_note, needs_passphrase)

        self.error = plain_label("", self)
        self.error.setObjectName("ErrorLabel")
        self.error.setAccessibleName("Error")
        self.error.hide()
        self.progress = plain_label("", self)
        self.progress.setObjectName("Hint")
        self.progress.hide()

        self.submit = QPushButton("Log in", self)
        self.submit.setDefault(True)
        self.submit.setAccessibleName("Log in")
        self.switch_mode = QPushButton("Need an account? Create one", self)
        self.switch_mode.setFlat(True)
        self.switch_mode.setAccessibleName("Switch between log in and create an account")
        self.cancel = QPushButton("Cancel", self)
        buttons = QHBoxLayout()
        buttons.addWidget(self.switch_mode)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel)
        buttons.addWidget(self.submit)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)

        # No relay to join yet? On the first run, hosting one's own is the other way in.
        self.host_button: QPushButton | None = None
        if hosted_relay is not None and not invite:
            self.host_button = QPushButton("Host a community on this computer instead…", self)
            self.host_button.setFlat(True)
            self.host_button.setAccessibleName("Host a community on this computer")
            self.host_button.clicked.connect(self.open_host_dialog)
            layout.addWidget(plain_label("No invite link yet?", self))
            layout.addWidget(self.host_button)

        self.submit.clicked.connect(self._submit)
        self.switch_mode.clicked.connect(lambda: self.set_register(not self._register))
        self.cancel.clicked.connect(self.reject)
        for field in (self.address, self.username, self.password, self.passphrase):
            field.returnPressed.connect(self._submit)
        self.setTabOrder(self.address, self.username)
        self.setTabOrder(self.username, self.password)
        self.setTabOrder(self.password, self.passphrase)
        self.setTabOrder(self.passphrase, self.submit)
        (self.username if invite else self.address).setFocus()

    def use_passphrase(self, passphrase: str) -> None:
        """The passphrase is known already (typed at start-up): do not ask again."""
        self.passphrase.setText(passphrase)
        self._form.setRowVisible(self.passphrase, False)
        self._form.setRowVisible(self.passphrase_note, False)
        self._known_passphrase = passphrase

    def open_host_dialog(self) -> HostDialog:
        """ "Host a community" from here: once it is up, its owner account is the one
        signed in, and this dialog is done when that one closes."""
        from .join_dialog import HostDialog

        assert self._hosted_relay is not None
        dialog = HostDialog(self.session, self._hosted_relay, self)
        if self._known_passphrase is not None:
            dialog.use_passphrase(self._known_passphrase)
        elif self.needs_passphrase and self.passphrase.text():
            dialog.passphrase.setText(self.passphrase.text())
        dialog.finished.connect(lambda _code: self._host_dialog_closed())
        self.host_dialog = dialog
        dialog.open()
        return dialog

    def _host_dialog_closed(self) -> None:
        assert self._hosted_relay is not None
        account = self.session.account_on(self._hosted_relay.url)
        if self._hosted_relay.running and account is not None:
            self.account = account
            self.signed_in.emit(account, None)
            self.accept()

    @property
    def needs_passphrase(self) -> bool:
        return self._form.isRowVisible(self.passphrase)

    def set_register(self, register: bool) -> None:
        """Switch between "Create an account" and "Log in"."""
        self._register = register
        action = "Create account" if register else "Log in"
        self.title.setText("Create an account" if register else "Log in to a relay")
        self.submit.setText(action)
        self.submit.setAccessibleName(action)
        self.switch_mode.setText(
            "Already have an account? Log in" if register else "Need an account? Create one"
        )

    # Submitting -------------------------------------------------------------------

    def _submit(self) -> None:
        if not self.submit.isEnabled():
            return
        try:
            relay_url, code = relay_from_invite(self.address.text())
        except ValueError as exc:
            self.show_error(f"Invite link or relay address: {exc}", self.address)
            return
        for field, name in ((self.username, "Username"), (self.password, "Password")):
            if not field.text():
                self.show_error(f"{name}: this field is required", field)
                return
        passphrase = self.passphrase.text() if self.needs_passphrase else self._known_passphrase
        if self.needs_passphrase and not passphrase:
            self.show_error("Passphrase: choose one to encrypt your local history", self.passphrase)
            return
        self._set_busy(f"Connecting to {relay_url}…")
        self.session.run(self._sign_in(relay_url, code, passphrase), self._succeeded, self._failed)

    async def _sign_in(
        self, relay_url: str, code: str | None, passphrase: str | None
    ) -> tuple[Account, int | None]:
        account = await self.session.add_account(
            relay_url,
            self.username.text().strip(),
            self.password.text(),
            register=self._register,
            passphrase=passphrase,
        )
        guild_id = await self.session.accept_invite(account, code) if code else None
        return account, guild_id

    def _succeeded(self, result: tuple[Account, int | None]) -> None:
        self.account, self.guild_id = result
        self.session.save_account_list()
        self._set_busy(None)
        self.signed_in.emit(self.account, self.guild_id)
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self._set_busy(None)
        if isinstance(exc, InvalidInput) and exc.fields:
            field_name, messages = next(iter(exc.fields.items()))
            label = _FIELD_LABELS.get(field_name, field_name)
            widget = self.password if field_name == "password" else self.username
            self.show_error(f"{label}: {' '.join(messages)}", widget)
        elif isinstance(exc, Unauthorized):
            self.show_error("Username or password: the relay did not accept them", self.password)
        elif isinstance(exc, StoreLocked):
            self.show_error(
                "Passphrase: it does not open this account's local history", self.passphrase
            )
        elif isinstance(exc, NexusError) and not isinstance(exc, InvalidInput):
            self.show_error(f"Could not reach the relay: {describe_error(exc)}", self.address)
        else:
            self.show_error(describe_error(exc), self.address)

    def show_error(self, text: str, field: QLineEdit | None = None) -> None:
        self.error.setText(text)
        self.error.show()
        if field is not None:
            field.setFocus()
            field.selectAll()

    def _set_busy(self, message: str | None) -> None:
        busy = message is not None
        for widget in (self.address, self.username, self.password, self.passphrase):
            widget.setReadOnly(busy)
        self.submit.setEnabled(not busy)
        self.switch_mode.setEnabled(not busy)
        self.progress.setText(message or "")
        self.progress.setVisible(busy)
        if busy:
            self.error.hide()


class PassphraseDialog(QDialog):
    """Asks for the passphrase that opens the saved accounts' local history."""

    def __init__(self, prompt: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Unlock Nexus")
        self.field = QLineEdit(self)
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setAccessibleName("Passphrase")
        self.error = plain_label("", self)
        self.error.setObjectName("ErrorLabel")
        self.error.hide()
        unlock = QPushButton("Unlock", self)
        unlock.setDefault(True)
        unlock.clicked.connect(self.accept)
        quit_button = QPushButton("Quit", self)
        quit_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(quit_button)
        buttons.addWidget(unlock)
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label(prompt, self))
        layout.addWidget(self.field)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.field.returnPressed.connect(self.accept)

    async def ask(self, error: str = "") -> str | None:
        """Show the dialog and wait for it without a nested event loop (``exec`` would
        re-enter asyncio); None if the person chose Quit."""
        self.error.setText(error)
        self.error.setVisible(bool(error))
        self.field.clear()
        answered: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def finished(code: int) -> None:
            if not answered.done():
                answered.set_result(code)

        self.finished.connect(finished)
        self.open()
        code = await answered
        self.finished.disconnect(finished)
        return self.field.text() if code == QDialog.DialogCode.Accepted.value else None
