from . import (
    test_alerts,
    test_back_office,
    test_callbacks,
    test_crons,
    test_http_api,
    test_http_callbacks,
    test_ledger,
    test_rpc_surface,
    test_security,
    test_views,
    test_worker_secret,
)
