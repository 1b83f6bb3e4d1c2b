"""Errors raised by the index package; each message says what to do next."""


class CiteqaIndexError(Exception):
    """Base class for every error the index package raises on purpose."""


class SettingsError(CiteqaIndexError):
    """A `CITEQA_*` environment variable has a value that cannot be used."""


class IndexNotBuiltError(CiteqaIndexError):
    """There is no index where the settings point."""


class IndexMismatchError(CiteqaIndexError):
    """The index was built with another embedding model or chunking setup."""


class ArticleLoadError(CiteqaIndexError):
    """An article file or source could not be read."""


class ModelNotFoundError(CiteqaIndexError):
    """The embedding model is not installed or the configured path is wrong."""


class IndexDamagedError(CiteqaIndexError):
    """Index files are missing, truncated or damaged; a rebuild replaces them."""


class IndexBusyError(CiteqaIndexError):
    """Another process is writing the index (`sync` or `rebuild`)."""


class IndexServerError(CiteqaIndexError):
    """The Chroma server named by `CITEQA_CHROMA_URL` cannot be reached or refused a request."""


class IndexWriteError(CiteqaIndexError):
    """The index's folder cannot be written: a full disk, a read-only folder (Chroma writes even
    to open a build)."""
