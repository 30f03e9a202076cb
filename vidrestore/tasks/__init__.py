"""Restoration tasks, one module each, registered by name (see :mod:`vidrestore.tasks.base`).

Importing this package registers the built-in tasks, in the order the CLI lists them.
"""
# ruff: noqa: I001, E402 - the imports register the tasks: their order is the CLI's
from vidrestore.tasks.base import Degradation, Task, TaskOption, get_task, register, task_names, unregister
from vidrestore.tasks import superres  # noqa: F401
from vidrestore.tasks import inpaint  # noqa: F401
from vidrestore.tasks import deblur  # noqa: F401
from vidrestore.tasks import interpolate  # noqa: F401
from vidrestore.tasks import denoise  # noqa: F401
from vidrestore.tasks import edit  # noqa: F401

__all__ = ["Degradation", "Task", "TaskOption", "get_task", "register", "task_names", "unregister"]
