"""Errors raised by the qa package; each message says what to do next."""

from index.errors import CiteqaIndexError


class CiteqaQAError(Exception):
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


# Every error whose message is meant for the user, whichever package raised it.
USER_ERRORS: tuple[type[Exception], ...] = (CiteqaQAError, CiteqaIndexError)
