"""How a contract is written once and implemented by every backend.

A :class:`Contract` is an ordered list of functions (and a few declared constants, such as
``CAN_TRAIN``), each stated once as a stub (signature, defaults, docstring with shapes and dtypes)
with the rule that checks its arguments; it belongs to one module of every backend package (its
``part``: ``boxes``, ``nn``, ``trainer``, ``exporter``). Decorating a stub makes it the public
function, which calls the owning backend's version: the backend of the tensors it receives
(``on_tensors``), or the active backend for functions that build something from plain arguments
(``on_active``); a stub that multissd's own code calls on a backend it has chosen (the trainer's and
the exporter's) is only ``declare``-d. Each backend module marks its versions with the contract's
``implements``, which checks the name, the parameters and their defaults against the stub, gives the
function the stub's docstring, and wraps it with the stub's argument check -- so the checks of a call
run exactly once, in that wrapper, whether the function is reached through ``multissd.*`` or
called on a backend module directly. A backend's private helpers (``_encode``, ``_nms``, ...) are
never checked. :meth:`Contract.missing` says what a backend module lacks.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable

from multissd import registry
from multissd.registry import get_backend

__all__ = ["Contract"]


class Contract:
    """An ordered set of functions that every backend's module ``part`` (one of
    :data:`multissd.registry.PARTS`) implements, in the same order, with the same names and
    parameters, and the constants it defines (name -> type)."""

    def __init__(self, part: str):
        if part not in registry.PARTS:
            raise ValueError(f"Expected a backend part, one of {list(registry.PARTS)}; received {part!r}")
        self.part = part
        self.stubs: dict[str, Callable] = {}
        self.rules: dict[str, Callable | None] = {}
        self.constants: dict[str, tuple[type, str]] = {}
        self.declared: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        """The contract's function names, in order."""
        return tuple(self.stubs)

    @property
    def public(self) -> tuple[str, ...]:
        """The names of the functions that dispatch (``multissd.<name>``): all but the declared ones."""
        return tuple(name for name in self.stubs if name not in self.declared)

    def _module(self, backend: str):
        return registry.load_part(backend, self.part)

    def constant(self, name: str, kind: type, doc: str) -> None:
        """Declare that every backend's module defines ``name``, a value of type ``kind`` (``doc``
        says what it means)."""
        self.constants[name] = (kind, doc)

    def declare(self, stub: Callable) -> Callable:
        """Decorator: a contract function that multissd calls on a backend module it has loaded
        (``registry.load_part(name, part).<function>``), never through a public dispatcher. The
        stub stays importable for its documentation; calling it says where the versions are."""
        name = self._register(stub, None)
        self.declared.add(name)

        @functools.wraps(stub)
        def call(*args, **kwargs):
            raise TypeError(f"multissd.{self.part}.{name} is the contract, not an implementation: call a "
                            f"backend's, multissd.registry.load_part(backend, {self.part!r}).{name}")
        return call

    def missing(self, module) -> list[str]:
        """What ``module`` (a backend's ``part``) lacks of the contract: every function not defined or
        not marked with :meth:`implements`, every constant not defined or of another type."""
        problems = []
        for name in self.stubs:
            value = getattr(module, name, None)
            if value is None:
                problems.append(f"{name} is not defined")
            elif getattr(value, "__doc__", None) != self.stubs[name].__doc__:
                problems.append(f"{name} is not marked with @implements (its docstring is not the contract's)")
        for name, (kind, _) in self.constants.items():
            if not isinstance(getattr(module, name, None), kind):
                problems.append(f"{name} is not a {kind.__name__}")
        return problems

    def _register(self, stub: Callable, check: Callable | None) -> str:
        self.stubs[stub.__name__] = stub
        self.rules[stub.__name__] = check
        return stub.__name__

    def on_tensors(self, check: Callable | None = None):
        """Decorator: the stub becomes a function that runs on the backend of the tensors it receives
        (the active backend when it receives none). ``check(**arguments)`` validates a call's
        arguments (see :meth:`implements`)."""
        def decorate(stub):
            name = self._register(stub, check)

            @functools.wraps(stub)
            def call(*args, **kwargs):
                backend = registry.tensor_backend((*args, *kwargs.values())) or get_backend()
                return getattr(self._module(backend), name)(*args, **kwargs)
            return call
        return decorate

    def on_active(self, check: Callable | None = None):
        """Decorator: the stub becomes a function that runs on the active backend
        (:func:`multissd.get_backend`): layers, models, tensors made from NumPy data."""
        def decorate(stub):
            name = self._register(stub, check)

            @functools.wraps(stub)
            def call(*args, **kwargs):
                return getattr(self._module(get_backend()), name)(*args, **kwargs)
            return call
        return decorate

    def implements(self, func):
        """Decorator for a backend's version of a contract function (or class).

        Checks that it is in the contract and has the stub's parameters (names, order, defaults);
        gives it the stub's docstring; and, where the stub has an argument rule, returns a wrapper
        that binds each call's arguments, runs the rule on them (``ValueError``/``TypeError`` for bad
        input; the rule may return normalised values, e.g. a threshold as a float) and calls ``func``.
        """
        name = func.__name__
        if name not in self.stubs:
            raise TypeError(f"{func.__module__}.{name} is not a function of the multissd {self.part} contract")
        stub = self.stubs[name]
        target = func.__init__ if inspect.isclass(func) else func
        expected = [(p.name, p.default) for p in inspect.signature(stub).parameters.values()]
        received = [(p.name, p.default) for p in inspect.signature(target).parameters.values() if p.name != "self"]
        if [n for n, _ in expected] != [n for n, _ in received]:
            raise TypeError(f"{func.__module__}.{name} has parameters {[n for n, _ in received]}; the contract "
                            f"says {[n for n, _ in expected]}")
        if expected != received:
            raise TypeError(f"{func.__module__}.{name} has defaults {received}; the contract says {expected}")
        func.__doc__ = stub.__doc__
        rule = self.rules[name]
        if rule is None or inspect.isclass(func):
            return func
        return _checked(func, rule)


def _checked(func: Callable, rule: Callable) -> Callable:
    """``func`` behind its argument rule: each call's arguments are bound to ``func``'s parameters
    (with its defaults), ``rule(**arguments)`` checks them and may return normalised values, and
    ``func`` is called with the result. The binding is written out (not ``Signature.bind``) because it
    runs on every call, five times per forward pass in ``multibox_prior`` alone."""
    parameters = list(inspect.signature(func).parameters.values())
    names = [p.name for p in parameters]
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}

    @functools.wraps(func)
    def checked(*args, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{func.__name__}() takes {len(names)} arguments; received {len(args)}")
        arguments = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names or key in arguments:
                problem = "an unexpected" if key not in names else "a second value for"
                raise TypeError(f"{func.__name__}() got {problem} argument {key!r}")
            arguments[key] = value
        for name in names:
            if name not in arguments:
                if name not in defaults:
                    raise TypeError(f"{func.__name__}() is missing the argument {name!r}")
                arguments[name] = defaults[name]
        arguments.update(rule(**arguments) or {})
        return func(**arguments)
    return checked
