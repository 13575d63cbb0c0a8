"""Odoo-free logic of the addon, without I/O: state machine, credit policy, validation, alert rules,
the job message. (Broker I/O lives in ..broker.)

Nothing in this package imports odoo, so it is tested directly with plain pytest (tests/addon_logic/).
Modules inside use relative imports only: the tests load the package under another name.
"""
