# Odoo finds the commands of an addon that has a cli/ folder by importing the addon.
from ..core.command import Celery  # noqa: F401
