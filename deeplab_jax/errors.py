"""The one exception type for mistakes a user can fix (bad paths, layouts, config values).

`main` prints its message alone, without a traceback, and exits with status 2.
"""


class UserError(Exception):
  """A problem with the user's input: the message says what, where, and what to do."""
