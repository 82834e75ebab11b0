"""Dataset adapters: files -> the project's own events (online.events), in log order.

- `obd`: Open Bandit Dataset CSVs (obp 0.4.1 layout), as events or as columnar arrays.
- `mind`: MIND news-recommendation TSVs (behaviors.tsv, news.tsv).
- `event_log`: the project's own JSON-lines event files (reader and writer).

Adapters read files; they never import Kafka or Faust (online/ stays pure).
"""

from online.datasets.event_log import (
    AnyEvent,
    EventLogError,
    parse_event_lines,
    read_events,
    write_events,
)
from online.datasets.mind import MindBehavior, mind_events, read_mind_behaviors, read_mind_news
from online.datasets.obd import (
    OBDArrays,
    OBDRow,
    load_obd_arrays,
    obd_events,
    obd_items,
    obd_paths,
    read_obd_rows,
)

__all__ = [
    "AnyEvent",
    "EventLogError",
    "MindBehavior",
    "OBDArrays",
    "OBDRow",
    "load_obd_arrays",
    "mind_events",
    "obd_events",
    "obd_items",
    "obd_paths",
    "parse_event_lines",
    "read_events",
    "read_mind_behaviors",
    "read_mind_news",
    "read_obd_rows",
    "write_events",
]
