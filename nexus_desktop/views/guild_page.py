"""What every page of the community settings shares: its community, the account that
sees it, an inline status line, and a confirmation hook (tests replace it)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from nexus_protocol.models import Guild

from ..qt import QLabel, QMessageBox, QVBoxLayout, QWidget
from ..session import Account, AppSession
from .form_status import FormStatus, run_operation


def ask_confirmation(parent: QWidget, question: str) -> bool:
    answer = QMessageBox.question(parent, "Are you sure?", question)
    return answer == QMessageBox.StandardButton.Yes


class GuildPage(QWidget):
    """A page about one community. ``confirm`` asks before destructive actions."""

    title = ""
    confirm: Callable[[QWidget, str], bool] = staticmethod(ask_confirmation)

    def __init__(self, session: AppSession, guild_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.guild_id = guild_id
        self.allowed = 0
        self.layout_ = QVBoxLayout(self)
        heading = QLabel(self.title)
        heading.setObjectName("PageTitle")
        self.layout_.addWidget(heading)
        self.status = FormStatus()

    @property
    def account(self) -> Account:
        account = self.session.account_for_guild(self.guild_id)
        if account is None:
            raise LookupError("this community is no longer on a connected account")
        return account

    @property
    def guild(self) -> Guild | None:
        return self.session.guild(self.guild_id)

    def request(
        self, method: str, path: str, json: Any = None, **kwargs: Any
    ) -> Coroutine[Any, Any, Any]:
        return self.session.http(self.account, method, path, json, **kwargs)

    def run(
        self,
        coroutine: Coroutine[Any, Any, Any],
        buttons: Sequence[QWidget] = (),
        on_done: Callable[[Any], None] | None = None,
        **texts: str,
    ) -> None:
        run_operation(self.session, coroutine, self.status, buttons, on_done, **texts)

    def set_allowed(self, permissions: int) -> None:
        """Called with the member's community-wide permissions; disable what they lack."""
        self.allowed = permissions

    def refresh(self) -> None:
        """Re-read the community from the session (after a gateway event)."""
