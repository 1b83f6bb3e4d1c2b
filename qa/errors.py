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
