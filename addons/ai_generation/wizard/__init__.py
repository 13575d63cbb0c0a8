from . import ai_credit_operation_wizard
