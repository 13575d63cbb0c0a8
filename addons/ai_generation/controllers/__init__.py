from . import api, api_fallback, app, callbacks, catalogue
