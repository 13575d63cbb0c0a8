# Odoo 18.0 (the official image) plus the Python libraries the ai_generation addon imports.
# The addon itself is not copied in: compose mounts ../addons at /mnt/extra-addons.
FROM odoo:18.0

USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pika python3-jsonschema \
    && rm -rf /var/lib/apt/lists/*
USER odoo
