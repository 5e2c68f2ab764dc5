"""Errors a user can cause and fix; stages turn them into one-line messages and a non-zero exit."""


class PipelineError(Exception):
    """Base class: the message alone tells the user what is wrong and where."""


class ParamsError(PipelineError):
    def __init__(self, key: str, problem: str):
        super().__init__(f"params.yaml: `{key}` {problem}")
        self.key = key


class DataError(PipelineError):
    pass


class ArtifactError(PipelineError):
    pass


class InputError(PipelineError):
    """A file a user gave a command that it cannot use."""
