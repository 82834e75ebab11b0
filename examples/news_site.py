"""A news site's recommendation service on slatestream: catalog, requests, impressions, clicks.

    SLATESTREAM_BROKER_URL=kafka://127.0.0.1:9092 .venv/bin/python examples/news_site.py --rounds 10

What a real service does, with simulated readers standing in for people (docs/tutorial.md):

1. **Catalog**: publish every article as an `Item` (title and section as text fields, the
   section as an attribute); the worker embeds them.
2. **Requests**: for each reader visiting the front page, a `RankRequest` (scenario
   `front_page`, today's articles as candidates, k slots); the worker answers with a slate.
3. **Impressions**: the page shows the slate; `impression_for(slate, shown=k)` turns it into an
   Impression carrying each shown item's position and **propensity**, copied from the slate
   (leave them out and every offline evaluation of this log is biased).
4. **Clicks**: a reader clicks what they like; `click_for(slate, item_id)`.

Readers are simulated: each has a favourite section and clicks an article of it with
probability 0.5 (another section: 0.03), times a position bias 1 / (1 + position / 2), drawn
from a generator seeded by --seed. The worker only sees the events, so its learning shows up
as the click-through rate of later rounds rising above the first ones. `--report FILE`
writes the per-round figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from online.events import Item, RankRequest, Slate
from streams.client import SlatestreamClient, click_for, impression_for
from streams.settings import StreamSettings

SECTIONS: dict[str, tuple[str, ...]] = {
    "politics": ("parliament", "election", "minister", "vote", "coalition", "budget", "senate", "policy"),
    "sport": ("match", "goal", "league", "coach", "final", "season", "striker", "tournament"),
    "technology": ("software", "chip", "startup", "robot", "network", "battery", "smartphone", "cloud"),
    "culture": ("film", "festival", "novel", "museum", "concert", "theatre", "painter", "album"),
    "business": ("market", "shares", "profit", "merger", "inflation", "bank", "retail", "exports"),
    "science": ("climate", "genome", "telescope", "vaccine", "fossil", "physics", "species", "ocean"),
}
SCENARIO = "front_page"


def make_catalog(per_section: int, rng: np.random.Generator) -> list[Item]:
    """`per_section` articles in each section: a title of four of its words, the section as text and
    attribute. Ids "a-<section>-<n>"."""
    articles = []
    for section, words in SECTIONS.items():
        for n in range(per_section):
            title = " ".join(str(word) for word in rng.choice(words, size=4, replace=False))
            articles.append(Item(item_id=f"a-{section}-{n}", fields={"title": title.capitalize(), "section": section},
                                 attributes={"section": section}))
    return articles


@dataclass(frozen=True)
class Reader:
    """A simulated reader: who, and which section they click."""

    user_id: str
    favourite: str

    def click_probability(self, section: str, position: int) -> float:
        """Chance of a click on an article of `section` shown at `position` (0 = top)."""
        return (0.5 if section == self.favourite else 0.03) / (1.0 + position / 2.0)


def make_readers(count: int, rng: np.random.Generator) -> list[Reader]:
    sections = list(SECTIONS)
    return [Reader(f"reader-{n}", sections[int(rng.integers(len(sections)))]) for n in range(count)]


@dataclass
class RoundResult:
    """One round: slates served, articles shown, clicks, and how many shown were a reader's favourite."""

    round: int
    slates: int
    shown: int
    clicks: int
    favourites_shown: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.shown if self.shown else 0.0


def serve_round(client: SlatestreamClient, readers: list[Reader], candidates: tuple[str, ...],
                section_of: dict[str, str], number: int, slots: int, rng: np.random.Generator,
                timeout_s: float) -> RoundResult:
    """Every reader visits once, one after the other: request, show, click.

    One visit at a time keeps each request's impression and clicks before the next request in
    event time, which is how `slatestream evaluate` groups a replayed log into rounds.
    """
    result = RoundResult(number, 0, 0, 0, 0)
    for reader in readers:
        request = RankRequest(request_id=f"round{number}-{reader.user_id}", user_id=reader.user_id,
                              scenario=SCENARIO, candidates=candidates, k=slots)
        slate: Slate = client.request_slate(request, timeout_s)
        impression = impression_for(slate, shown=slots)  # positions and propensities copied from the slate
        client.publish(impression)
        result.slates += 1
        for shown in impression.shown:
            section = section_of[shown.item_id]
            result.shown += 1
            result.favourites_shown += section == reader.favourite
            if rng.random() < reader.click_probability(section, shown.position):
                client.publish(click_for(slate, shown.item_id))
                result.clicks += 1
    client.flush()
    return result


def main(argv: list[str] | None = None) -> list[RoundResult]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--readers", type=int, default=40)
    parser.add_argument("--per-section", type=int, default=8, help="articles per section")
    parser.add_argument("--slots", type=int, default=5, help="articles on the front page (the slate size k)")
    parser.add_argument("--pause-s", type=float, default=1.0, help="pause between rounds (feedback reaches the state)")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="wait this long for each slate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, default=None, help="write the rounds as JSON here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    catalog = make_catalog(args.per_section, rng)
    readers = make_readers(args.readers, rng)
    section_of = {item.item_id: item.attributes["section"] for item in catalog}
    candidates = tuple(item.item_id for item in catalog)
    results: list[RoundResult] = []
    with SlatestreamClient(StreamSettings()) as client:
        for item in catalog:
            client.publish(item)
        client.flush()
        print(f"published {len(catalog)} articles; {len(readers)} readers, {args.slots} slots, scenario {SCENARIO}")
        time.sleep(args.pause_s)  # the worker embeds the catalog before the first request
        for number in range(args.rounds):
            result = serve_round(client, readers, candidates, section_of, number, args.slots, rng, args.timeout_s)
            results.append(result)
            print(f"round {number:2d}: {result.clicks:3d} clicks / {result.shown} shown, CTR {result.ctr:.3f}, "
                  f"favourite section {result.favourites_shown / result.shown:.0%} of what was shown")
            time.sleep(args.pause_s)
    if args.report is not None:
        args.report.write_text(json.dumps([{**vars(r), "ctr": r.ctr} for r in results], indent=2) + "\n")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
