"""Errors raised by the qa package; each message says what to do next. They sit under
`index.errors.CiteqaError`, the one root that every interface turns into text (the whole tree is
in the docstring of `index.errors`)."""

# Re-exported for the UI, which imports qa only.
from index.errors import CiteqaError as CiteqaError


class CiteqaQAError(CiteqaError):
    """Base class for every error the qa package raises on purpose."""


class QuestionError(CiteqaQAError):
    """The question cannot be answered as asked (empty, too long)."""


class ModelFileError(CiteqaQAError):
    """The language model file is missing, incomplete or not the genuine one."""


class GenerationError(CiteqaQAError):
    """The language model failed while writing an answer."""


class ModelWorkerError(GenerationError):
    """The model's process crashed, was killed, or gave no answer in time; the next question
    gets a fresh one."""


class UploadError(CiteqaQAError):
    """Articles cannot be added from the web page (the index holds articles from elsewhere)."""


class ChatRequestError(CiteqaQAError):
    """A chat-completions request that cannot be answered as sent (a missing question, an
    unknown model...): `status` is the HTTP status to answer with, `param` the request field at
    fault and `code` a short machine-readable reason, as OpenAI's API gives them."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str = "invalid_value",
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.code = code
        self.status = status


class ConversationStoreError(CiteqaQAError):
    """Saved conversations cannot be read or written (the file is damaged or not writable)."""


class BusyError(CiteqaQAError):
    """Too many questions are waiting already (the chat API's and MCP's queue is full); the
    client should try again shortly."""
