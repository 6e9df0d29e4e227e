"""The ``segwise`` command line: one verb per job (see ``segwise --help``)."""

__all__: list[str] = []
