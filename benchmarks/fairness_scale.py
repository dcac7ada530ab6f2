"""Fairness analysis at a day's scale: one table, parts of 25M tickets, their merge, live dicts.

    python benchmarks/fairness_scale.py             # the figures docs/fairness.md quotes
    python benchmarks/fairness_scale.py --smoke     # tiny sizes, for CI (seconds)
    python benchmarks/fairness_scale.py --only live # one measurement: analyse, partial, merge, live

Prints `name=value` lines:

- `analyse_1m_seconds`: analyse() of 1M synthetic tickets (user-ordered, so the analysis
  also puts them in join order), best of --repeat after one warm-up run; also
  `analyse_1m_cold_seconds`, the first run in the process;
- `partial_25m_seconds`, `partial_25m_peak_rss_mb`, `partial_25m_table_mb`: partial() of 25M
  synthetic tickets in join order (the simulator's order), in a fresh child process; peak
  RSS is the whole process's (table included), sampled every 10 ms;
- `merge_2x25m_seconds`: merge() of two such parts (different seeds), in the parent;
- `live_1m_seconds`: 1M tickets from ledger-shaped records (chat records, give-ups and
  open searches as the workers ship them) to the fairness section: live_tickets(),
  TicketTable.from_records() and the analysis, in a fresh child process once the records
  are built; also `live_1m_convert_seconds` (the first two) and `live_1m_warm_seconds`
  (the same again in that process, reusing the memory the first run freed).
"""
from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fairness_data import synthetic_tickets  # noqa: E402
from harness.fairness import FairnessParams, TicketTable, analyse, merge, partial  # noqa: E402
from harness.fairness.live import live_tickets  # noqa: E402

S = 1_000_000_000


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


class PeakRss:
    """Samples this process's RSS every 10 ms while in the `with` block."""

    def __enter__(self) -> "PeakRss":
        self.peak, self._stop = _rss_mb(), False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.01)

    def __exit__(self, *exc: Any) -> None:
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure_analyse(n: int, repeat: int) -> dict[str, float]:
    tables = [synthetic_tickets(n, seed=1) for _ in range(repeat + 1)]
    cold, _ = timed(lambda: analyse(tables[0]))
    best = min(timed(lambda t=t: analyse(t))[0] for t in tables[1:])
    return {"analyse_cold_seconds": cold, "analyse_seconds": best}


def _partial_child(n: int, seed: int, conn: Any) -> None:
    """In a fresh process: build n tickets, partial() them, send the figures and the part."""
    table = synthetic_tickets(n, seed=seed, order="join")
    gc.collect()
    table_mb = _rss_mb()
    with PeakRss() as peak:
        seconds, part = timed(lambda: partial(table, FairnessParams()))
    conn.send({"seconds": seconds, "peak_rss_mb": peak.peak, "table_mb": table_mb})
    conn.send(part)
    conn.close()


def measure_partial(n: int, seed: int) -> tuple[dict[str, float], Any]:
    ctx = mp.get_context("spawn")            # a fresh interpreter: no memory left over from the parent
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_partial_child, args=(n, seed, child))
    proc.start()
    child.close()
    figures = parent.recv()
    part = parent.recv()
    proc.join()
    return figures, part


def ledger_records(n: int, seed: int = 1) -> tuple[list[dict], list[dict], list[dict], float]:
    """Ledger-shaped records of n synthetic tickets: (chat records, give-ups, open searches, t_end).

    Chat records carry every key ChatRecord.to_dict() writes, user ids look like the
    harness's (`w3-1234.talker`), times are epoch nanoseconds, the partner is named by its
    [user, chat] token, as the live harness learns it.
    """
    t = synthetic_tickets(n, seed=seed)
    t0 = 1_700_000_000 * S
    classes = t.cls_names
    cls_of_user = np.zeros(int(t.user.max()) + 1, dtype=np.int64)
    cls_of_user[t.user] = t.cls
    names = [f"w{u % 4}-{u}.{classes[c]}" for u, c in enumerate(cls_of_user.tolist())]
    chat_of = np.full(t.n, -1, dtype=np.int64)
    paired = np.flatnonzero(np.isfinite(t.t_paired))
    order = paired[np.lexsort((t.t_join[paired], t.user[paired]))]
    first = np.r_[True, t.user[order][1:] != t.user[order][:-1]]
    run_start = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
    chat_of[order] = np.arange(order.size) - run_start
    ns = lambda x: int(t0 + x * S)  # noqa: E731
    langs, modes = t.lang_names, t.mode_names
    records, waits, opens = [], [], []
    for i in range(t.n):
        u = int(t.user[i])
        its = [f"t{k}" for k in t.interests_of(i).tolist()]
        base = {"u": names[u], "cls": classes[t.cls[i]], "mode": modes[t.mode[i]], "lang": langs[t.lang[i]],
                "interests": its, "t_req": ns(t.t_join[i])}
        if chat_of[i] >= 0:
            j = int(t.peer_ticket[i])
            tp = ns(t.t_paired[i])
            records.append({**base, "c": int(chat_of[i]), "t_paired": tp, "pair": f"p{min(i, j)}",
                            "initiator": bool(i < j), "t_tok_sent": tp + 1000, "peer": [names[int(t.peer[i])], int(chat_of[j])],
                            "t_tok": tp + 2000, "sent": 3, "t_last_sent": tp + 5000, "refused": 0, "recv": 3,
                            "recv_max": 2, "dup": 0, "reord": 0, "t_end": ns(t.t_chat_end[i]), "end": "next",
                            "reason": None, "late": 0, "early": None})
        elif np.isfinite(t.t_gave_up[i]):
            waits.append({**base, "t_gave_up": ns(t.t_gave_up[i]), "how": "leave"})
        else:
            opens.append(base)
    return records, waits, opens, t0 / S + float(t.t_end)


def _live_child(n: int, conn: Any) -> None:
    conn.send(_measure_live(n))
    conn.close()


def measure_live(n: int) -> dict[str, float]:
    """_measure_live in a fresh process: no memory left over from the other measurements."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_live_child, args=(n, child))
    proc.start()
    child.close()
    figures = parent.recv()
    proc.join()
    return figures


def _measure_live(n: int) -> dict[str, float]:
    """Records to section twice: the first run meets fresh memory (the costly case on a
    virtual machine that backs pages lazily), the second reuses what the first freed."""
    records, waits, opens, t_end = ledger_records(n)
    gc.collect()
    out: dict[str, float] = {}
    for tag in ("", "_warm"):
        t0 = time.perf_counter()
        tickets = list(live_tickets(records, waits, opens))
        table = TicketTable.from_records(tickets, t_end=t_end)
        t1 = time.perf_counter()
        section = analyse(table, FairnessParams())
        t2 = time.perf_counter()
        assert section["tickets"] == len(tickets) and section["unmatched_paired_tickets"] == 0
        out[f"live{tag}_convert_seconds"], out[f"live{tag}_seconds"] = t1 - t0, t2 - t0
        del tickets, table, section
        gc.collect()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (a few seconds), for CI")
    ap.add_argument("--only", choices=["analyse", "partial", "merge", "live"], action="append")
    ap.add_argument("--repeat", type=int, default=3, help="analyse runs after the warm-up (best is printed)")
    args = ap.parse_args(argv)
    n_small, n_big, n_live = (20_000, 200_000, 20_000) if args.smoke else (1_000_000, 25_000_000, 1_000_000)
    tag_small, tag_big, tag_live = ("smoke", "smoke", "smoke") if args.smoke else ("1m", "25m", "1m")
    only = set(args.only or ["analyse", "partial", "merge", "live"])
    if "analyse" in only:
        r = measure_analyse(n_small, max(args.repeat, 1))
        print(f"analyse_{tag_small}_seconds={r['analyse_seconds']:.3f}")
        print(f"analyse_{tag_small}_cold_seconds={r['analyse_cold_seconds']:.3f}", flush=True)
    if only & {"partial", "merge"}:
        first, part_a = measure_partial(n_big, seed=1)
        print(f"partial_{tag_big}_seconds={first['seconds']:.2f}")
        print(f"partial_{tag_big}_peak_rss_mb={first['peak_rss_mb']:.0f}")
        print(f"partial_{tag_big}_table_mb={first['table_mb']:.0f}", flush=True)
        if "merge" in only:
            _, part_b = measure_partial(n_big, seed=2)
            seconds, section = timed(lambda: merge([part_a, part_b]))
            assert section["tickets"] == 2 * n_big
            print(f"merge_2x{tag_big}_seconds={seconds:.3f}", flush=True)
    if "live" in only:
        r = measure_live(n_live)
        print(f"live_{tag_live}_convert_seconds={r['live_convert_seconds']:.2f}")
        print(f"live_{tag_live}_seconds={r['live_seconds']:.2f}")
        print(f"live_{tag_live}_warm_seconds={r['live_warm_seconds']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
