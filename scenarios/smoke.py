"""Smoke scenario: a short run that exercises every user behaviour once or more.

Text and video chats (offer/answer and ICE candidates), interests, three languages (a
rare one makes some users wait, so give-ups happen), typing indicators, chats ended by
next, leave and disconnect, and searches abandoned by leave or disconnect.

    chatload run smoke                       # 30 s against the embedded reference server
    locust -f scenarios/smoke.py -H ws://127.0.0.1:8080/ws -u 40 -r 10 -t 30s   # web UI or --headless

Every default below can be overridden with CHATLOAD_SCENARIO_PARAMS (JSON) or
`chatload run --param KEY=VALUE`; the keys are the fields of harness.behaviour.BehaviourParams.
"""
from harness import behaviour, locust_plugin  # noqa: F401 - the plugin registers Locust event hooks
from harness.users import ChatUser

#: Suggested run shape for `chatload run` and for the docs (Locust's -u/-r/-t win).
RUN_DEFAULTS = {"users": 40, "spawn_rate": 10, "duration_s": 30}

PARAMS = behaviour.configure(
    mode_mix={"text": 0.5, "video": 0.5},
    interest_share=0.3,
    interest_vocabulary=20,  # small, so interests are often shared in a small crowd
    lang_mix={"en": 0.8, "es": 0.15, "de": 0.05},
    chat_median_s=2.0,
    chat_sigma=0.6,
    chat_max_s=8.0,
    message_rate_per_s=2.0,
    typing_share=0.7,
    end_next=0.7,
    end_leave=0.15,
    end_disconnect=0.15,
    give_up_share=0.25,
    patience_mean_s=0.5,
    give_up_disconnect_share=0.5,
    think_time_s=(0.1, 0.5),
)


class SmokeChatter(ChatUser):
    """A chatter with the smoke scenario's parameters."""
