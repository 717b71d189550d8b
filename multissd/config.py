"""The old home of the backend choice, kept so that ``from multissd.config import use_backend``
still works: :mod:`multissd.registry` owns which backends exist and which one is active."""
from multissd.registry import ENV_VAR, get_backend, use_backend

__all__ = ["ENV_VAR", "get_backend", "use_backend"]
