"""The one exception users see: a mistake in their input, stated in one line."""


class SimulatorError(ValueError):
    """Bad input (unknown device, malformed spec, impossible shape or sparsity).

    The message is one line that names the file/field/flag, the value and what is allowed.
    The CLI prints it and exits with code 2; it is never a traceback.
    """
