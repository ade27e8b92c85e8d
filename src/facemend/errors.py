"""The one exception type users see: a one-line message, shown without a traceback."""


class FacemendError(Exception):
    """An error in the user's input or configuration, with a message that names what is wrong."""
