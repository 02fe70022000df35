"""The one base class of refused input: an upload, a link, a callback URL. The web turns any of
them into the JSON error {"error": {"code", "message"}} with its status, in one handler."""

from __future__ import annotations


class InputError(ValueError):
    """Input we refuse; code is a stable word for clients, str() says why in words, status is
    the HTTP status the API answers with."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status

    def about(self, what: str) -> InputError:
        """The same refusal, its message led by what it is about (a file's name, 'url')."""
        return InputError(self.code, f"{what}: {self}", self.status)
