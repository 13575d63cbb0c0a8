from . import api, callbacks
