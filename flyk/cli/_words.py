"""Command words per group, for flyk.cli.quickcomplete. Generated: do not edit.

Regenerate: python -m flyk.cli.quickcomplete > flyk/cli/_words.py && ruff format it
"""

WORDS: dict[str, list[str]] = {
    "": ["version", "auth", "apps", "machine", "volumes", "regions", "local", "completion", "ext"],
    "apps": ["create", "list", "show", "destroy"],
    "auth": ["login", "logout", "whoami", "token"],
    "ext": ["k8s"],
    "local": ["serve", "status", "reset"],
    "machine": [
        "run",
        "list",
        "status",
        "start",
        "stop",
        "restart",
        "suspend",
        "cordon",
        "uncordon",
        "destroy",
        "update",
        "wait",
        "exec",
        "leases",
    ],
    "machine leases": ["view", "clear"],
    "regions": ["list"],
    "volumes": ["create", "list", "show", "extend", "destroy"],
}
ALIASES: dict[str, dict[str, str]] = {
    "": {
        "app": "apps",
        "extensions": "ext",
        "m": "machine",
        "machines": "machine",
        "vol": "volumes",
        "volume": "volumes",
    },
    "apps": {"delete": "destroy", "ls": "list", "remove": "destroy", "rm": "destroy"},
    "ext": {"kubernetes": "k8s"},
    "machine": {"lease": "leases", "ls": "list", "remove": "destroy", "rm": "destroy"},
    "regions": {"ls": "list"},
    "volumes": {"delete": "destroy", "ls": "list", "rm": "destroy"},
}
