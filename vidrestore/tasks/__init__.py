"""Restoration tasks, one module each, registered by name (see :mod:`vidrestore.tasks.base`).

Importing this package registers the built-in tasks, in the order the CLI lists them.
"""
from vidrestore.tasks.base import Degradation, Task, TaskOption, get_task, register, task_names, unregister
from vidrestore.tasks import superres  # noqa: E402,F401,I001 - registers; the order is the CLI's
from vidrestore.tasks import inpaint  # noqa: E402,F401,I001
from vidrestore.tasks import deblur  # noqa: E402,F401,I001
from vidrestore.tasks import interpolate  # noqa: E402,F401,I001
from vidrestore.tasks import denoise  # noqa: E402,F401,I001

__all__ = ["Degradation", "Task", "TaskOption", "get_task", "register", "task_names", "unregister"]
