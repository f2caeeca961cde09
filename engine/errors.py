"""Errors the engine raises for models it cannot take. Each names what is wrong."""


class EngineError(Exception):
    """Base of every user-facing engine error."""


class ModelFormatError(EngineError):
    """The file is not a readable TFLite flatbuffer, or is not an int8 model."""


class UnsupportedOpError(EngineError):
    """The model uses an op, an option or a data type the engine does not implement."""


class DoesNotFitError(EngineError):
    """The model's memory plan or weights exceed a budget."""
