from . import controllers, demo, models, report, wizard
from .pure import log_redaction

# Odoo logs a refused query with its parameters at ERROR: keep prompts out of those lines.
log_redaction.install()
