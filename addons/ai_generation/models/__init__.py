from . import (
    ai_credit_account,
    ai_credit_ledger_line,
    ai_generation_alert,
    ai_generation_event,
    ai_generation_idempotency,
    ai_generation_price,
    ai_generation_request,
    ir_config_parameter,
    ir_http,
    res_company,
    res_config_settings,
    res_users,
)
