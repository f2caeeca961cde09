"""Errors the engine raises for models it cannot take. Each names what is wrong.

`TinylabError` is the one base of every user-facing error in the project (engine, lab and search
alike); it lives here, in the bottom layer, so that every layer can subclass it and the command
line can catch all of them in one place."""


class TinylabError(Exception):
    """Base of every user-facing error: the CLI prints it as one message (no traceback), exit 2."""


class EngineError(TinylabError):
    """Base of every user-facing engine error."""


class ModelFormatError(EngineError):
    """The file is not a readable TFLite flatbuffer, or is not an int8 model."""


class UnsupportedOpError(EngineError):
    """The model uses an op, an option or a data type the engine does not implement."""


class DoesNotFitError(EngineError):
    """The model's memory plan or weights exceed a budget."""
