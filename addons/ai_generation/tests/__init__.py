from . import (
    test_alerts,
    test_callbacks,
    test_crons,
    test_http_api,
    test_http_callbacks,
    test_ledger,
    test_security,
    test_views,
)
