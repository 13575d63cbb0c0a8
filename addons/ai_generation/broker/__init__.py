"""Broker I/O of the addon (pika, no Odoo): the topology, a long-lived publisher with confirms, and the
background thread that owns one publisher per Odoo process so no HTTP request waits for RabbitMQ.

The message itself is built by ``pure.amqp`` (no I/O). Modules inside use relative imports only: the tests
load the package under another name, without Odoo.
"""

from . import topology
from .background import BackgroundPublisher, background_publisher
from .publisher import Publisher, PublishError
