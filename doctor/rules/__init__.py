"""The rule bundles: 1xx routing, 2xx KV-transfer consistency, 3xx resources, 4xx schema, 5xx live.

Listed by module so the registry imports them in one place; each module holds one rule class named after its code.
"""

RULE_MODULES = (
    "routing.DG101",
    "routing.DG102",
    "routing.DG103",
    "routing.DG104",
    "routing.DG105",
    "routing.DG106",
    "kv.DG201",
    "kv.DG202",
    "kv.DG203",
    "kv.DG204",
    "kv.DG205",
    "kv.DG206",
    "kv.DG207",
    "resources.DG301",
    "resources.DG302",
    "resources.DG303",
    "schema.DG401",
    "schema.DG402",
    "schema.DG403",
    "schema.DG404",
    "live.DG501",
    "live.DG502",
    "live.DG503",
    "live.DG504",
    "live.DG505",
)
