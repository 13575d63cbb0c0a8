from . import ai_credit_report
