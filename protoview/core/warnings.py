"""protoview's own warning class (tests turn it into errors)."""


class ProtoviewWarning(UserWarning):
    """Something the user should know that does not stop the work."""
