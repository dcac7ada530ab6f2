"""peak_hour: the peak hour of 3 million daily users, in real time, about 53,500 online.

Population-driven and open-model (scenarios/peak_hour.toml; docs/scale.md). Two things
make the full size reachable on one machine:
- the **pre-fill** (`swarm.prefill`, default: the preview's online figure at the window's
  start): the people already online when the hour opens, arriving over `swarm.prefill_ramp_s`
  real seconds instead of over the hour before (harness/prefill.py);
- the **loopback spread** (`swarm.targets`, e.g. `127.0.0.1:PORT-PORT+4`): each connection
  goes to the next target, so no (address, port) runs out of its 28,000 ephemeral ports
  (harness/loopback_spread.py).
`swarm.idle=true` makes every visitor only connect and hold its socket (memory per idle
connection; run the server with `--idle-timeout 0`).

    chatload plan peak_hour
    python benchmarks/swarm_scale.py                  # server, swarm, figures (docs/scale.md)
    chatload run peak_hour --target ws://127.0.0.1:8080/ws --workers 4 --users 60000 \\
        --duration 10m --param swarm.targets=127.0.0.1:8080-8084
"""
from harness import locust_plugin  # noqa: F401 - registers the plugin's Locust event hooks
from harness import swarm_params
from harness.loopback_spread import Spread
from harness.prefill import expected_online, with_prefill
from harness.population.model import Plan
from harness.visitor import POP, PopulationUser, configure, run_defaults

#: swarm.* first: they leave CHATLOAD_SCENARIO_PARAMS before `configure` checks the rest.
SWARM = swarm_params.take_from_env({"swarm.prefill_start_s": 5.0, "swarm.prefill_ramp_s": 180.0})
CONFIG = configure("peak_hour")
PREFILL = SWARM.prefill if SWARM.prefill >= 0 else expected_online(CONFIG.model(), CONFIG.start_hour)
#: Suggested run shape for `chatload run` (slots from the plan preview; Locust's -u/-r/-t win).
RUN_DEFAULTS = run_defaults(CONFIG)
#: Flags for the embedded reference server (its time constants scaled by K; bans by address).
SERVER_ARGS = CONFIG.server_args()
SPREAD = Spread(SWARM.targets)


def _add_prefill(plan: Plan) -> Plan:
    assert POP.model is not None
    return with_prefill(plan, POP.model, PREFILL, POP.seed, SWARM.prefill_start_s, SWARM.prefill_ramp_s)


POP.extend_plan = _add_prefill


class PeakHourVisitor(PopulationUser):
    """A user slot of the peak hour: spreads its connections; plays visits, or holds idle."""

    def _target(self) -> str:
        return SPREAD.url(super()._target())

    def _play(self) -> None:
        if not SWARM.idle:
            super()._play()
            return
        if not self._connect():
            return
        while self._alive():  # welcomed, never joins: only the socket's cost
            self._wait(30.0)
