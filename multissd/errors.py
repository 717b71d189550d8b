"""multissd's own errors: the ones it raises on purpose about the user's input.

A mistake of the user's -- an argument out of range, a malformed annotation file, an option that
contradicts a saved run, a framework that is not installed -- raises one of these, with a message
that says what was wrong and what was expected, naming the file, field or option. They subclass the
built-in ``ValueError``, ``TypeError`` and ``ImportError``, so ``except ValueError`` keeps working
for callers. The command lines print them as one ``error: ...`` line; every *other* exception is a
bug of multissd's (or of a framework's) and keeps its traceback (:mod:`multissd.cli`).
"""
from __future__ import annotations

__all__ = ["MultissdError", "InputError", "InputTypeError", "MissingExtraError", "FieldError"]


class MultissdError(Exception):
    """The base of every error multissd raises on purpose about the user's input or environment."""


class InputError(MultissdError, ValueError):
    """A value the user gave is wrong: out of range, the wrong shape, a malformed file."""


class InputTypeError(MultissdError, TypeError):
    """A value the user gave has the wrong type (a list where a tensor was expected, a float where
    an integer was, tensors of two frameworks in one call)."""


class MissingExtraError(MultissdError, ImportError):
    """What was asked for needs a package that is not installed; the message names the pip extra."""


class FieldError(InputError):
    """A setting of a configuration is out of range. The message names the setting as the caller
    knows it: the field (``lr``) when raised from Python, the option (``--lr``) when a command line
    reports it (:meth:`named`)."""

    def __init__(self, field: str, template: str):
        """``template`` says what is wrong, with ``{name}`` where the setting's name goes."""
        self.field = field
        self.template = template
        super().__init__(template.format(name=field))

    def named(self, name: str) -> str:
        """The message with the setting called ``name`` (a command line's flag)."""
        return self.template.format(name=name)

    @classmethod
    def from_message(cls, field: str, message: str, placeholder: str) -> "FieldError":
        """The error of ``message``, which calls the setting ``placeholder`` (a check written for any
        caller, given ``placeholder`` as the name to use)."""
        template = message.replace("{", "{{").replace("}", "}}").replace(placeholder, "{name}")
        return cls(field, template)
