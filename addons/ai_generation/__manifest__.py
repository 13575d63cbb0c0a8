# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
{
    "name": "AI Generation",
    "summary": "AI generation requests with a fair credit ledger, worker callbacks and live notifications",
    "version": "18.0.1.0.0",
    "category": "Productivity",
    "website": "https://github.com/ai-generation/ai_generation",
    "author": "ai_generation contributors",
    "license": "AGPL-3",
    "application": True,
    "installable": True,
    "post_init_hook": "post_init_hook",
    "depends": ["base", "web", "bus", "base_setup"],
    "external_dependencies": {"python": ["pika", "jsonschema", "requests"]},
    "data": [
        "security/ai_generation_groups.xml",
        "security/ir.model.access.csv",
        "security/ai_generation_rules.xml",
        "data/ir_cron.xml",
        "views/res_config_settings_views.xml",
        "views/ai_generation_views.xml",
        "views/ai_generation_menus.xml",
    ],
}
