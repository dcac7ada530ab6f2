"""soak: an hour of steady churn at a modest size, watching worker memory (RSS) and errors over time.

Population-driven and open-model: visitors arrive on the model's schedule (scenarios/soak.toml,
overridable with `--param KEY=VALUE` or `--params FILE.toml`; see docs/scenarios.md).

    chatload plan soak                      # what it asks of the backend and of this machine
    chatload run soak                       # against the embedded reference server
    locust -f scenarios/soak.py -H ws://127.0.0.1:8080/ws -u SLOTS -r SLOTS -t DURATION
"""
from harness import locust_plugin  # noqa: F401 - registers the plugin's Locust event hooks
from harness.visitor import PopulationUser, configure, run_defaults

CONFIG = configure("soak")
#: Suggested run shape for `chatload run` (slots from the plan preview; Locust's -u/-r/-t win).
RUN_DEFAULTS = run_defaults(CONFIG)
#: Flags for the embedded reference server (its time constants scaled by K; bans by address).
SERVER_ARGS = CONFIG.server_args()


class SoakVisitor(PopulationUser):
    """A user slot of the soak scenario."""
