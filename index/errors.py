"""The root of every error citeqa raises on purpose, and the index package's errors.

Each message is meant for the user and says what to do next; each interface (a command line,
the web page) turns `CiteqaError` into text in one place. The tree:

    CiteqaError                      here: the bottom layer, so that qa can build on it
    ├── CiteqaIndexError             here: SettingsError, IndexNotBuiltError, IndexMismatchError,
    │   │                            ArticleLoadError, ModelNotFoundError, IndexDamagedError,
    │   │                            IndexBusyError, IndexServerError, IndexWriteError
    │   └── FetchError               index.fetch: a URL that cannot be fetched or read
    │       └── BlockedAddressError  index.fetch: a URL or redirect to a private address
    └── CiteqaQAError                qa.errors: QuestionError, ModelFileError, GenerationError
        │                            (ModelWorkerError), UploadError, ChatRequestError,
        │                            ConversationStoreError, BusyError
        └── EvalDataError            qa.eval.data (ConversationDataError, qa.eval.conversations)

`prompts.PromptError` stays outside on purpose: it means a template and its caller disagree, a
bug for the tests to catch rather than something the user can act on, so it reaches the
interfaces as an unexpected error (logged with its traceback).
"""


class CiteqaError(Exception):
    """Base class for every error citeqa raises on purpose; its message is for the user."""


class CiteqaIndexError(CiteqaError):
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
