"""One exception type for bad user input: the CLI turns it into one line and exit code 2."""


class UserError(ValueError):
    """Bad input from the user (a value, a file, a flag). The message names the bad value."""
