"""Odoo-free logic of the addon: state machine, credit policy, validation, alert rules, AMQP publishing.

Nothing in this package imports odoo, so it is tested directly with plain pytest (tests/addon_logic/).
Modules inside use relative imports only: the tests load the package under another name.
"""
