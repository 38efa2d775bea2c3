"""Strategies declared as data: what to buy, when to sell — one declaration, two engines.

A ``StrategySpec`` says *what* a strategy does in terms both engines understand:

* an **entry** — one of
  - ``ScreenEntry``: every ``rebalance_every`` bars, the codes passing a screen, ranked, top N,
    bought at market (sized by the config's sizer) into the slots not already held;
  - ``TargetEntry``: the Trade Targets (Data1) as written — a DAY limit buy at each target's buy
    price while its allocation lasts, and a DAY limit take-profit sell at
    ``avg_price × (1 + target_return)`` while shares are held;
  - ``HoldEntry``: equal slots of the starting equity, bought at market on the first bar, topped
    up at market until each slot is used at cost;
* **exits** — ``ExitWhen(screen)``: sell the whole position at market when a screen holds on the
  code's bar (for example ``below("close", "sma_20")``, a trend break).

What a spec does not say comes from the run's config, the same for both engines: the sizer
(``risk.sizer``), the risk limits with the stop-loss and the daily-loss kill switch
(``risk.limits``), the Trade Targets file (``strategy.targets``) and the broker rules
(``broker``). ``strategies.declared.DeclaredStrategy`` runs a spec bar by bar on backtrader (and
KIS); ``research`` runs it on a whole panel at once. A spec holds nothing but data and screens, so
the fast engine can check every part of it and name any it cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass

from strategies.screens import Screen, Screener


@dataclass(frozen=True)
class ScreenEntry:
    """Screen → rank → top N, market buys on rebalance bars (bar 1 is the first bar of the run).

    ``screener.top_n`` is both the ranking cut and the number of positions held: a busy code among
    the top N is skipped, not replaced by the next one down.
    """

    screener: Screener
    rebalance_every: int = 1

    def __post_init__(self) -> None:
        if self.rebalance_every < 1:
            raise ValueError(f"rebalance_every must be at least 1, got {self.rebalance_every}")


@dataclass(frozen=True)
class TargetEntry:
    """Trade Targets executed as written; ``repeat`` buys a target again after it was sold out."""

    repeat: bool = False


@dataclass(frozen=True)
class HoldEntry:
    """Equal weight at cost, bought at market; ``topup=False`` buys once on the first bar."""

    topup: bool = True


Entry = ScreenEntry | TargetEntry | HoldEntry


@dataclass(frozen=True)
class ExitWhen:
    """Sell everything held of a code at market when ``screen`` holds on its bar."""

    screen: Screen
    label: str = "exit"


@dataclass(frozen=True)
class StrategySpec:
    """A declared strategy: an entry and its exits (see the module docstring)."""

    entry: Entry
    exits: tuple[ExitWhen, ...] = ()

    @property
    def screens(self) -> list[Screen]:
        out = [e.screen for e in self.exits]
        if isinstance(self.entry, ScreenEntry) and self.entry.screener.screen is not None:
            out.insert(0, self.entry.screener.screen)
        return out

    @property
    def indicators(self) -> tuple[str, ...]:
        """Indicator specs the spec reads (sizer and config indicators come on top)."""
        specs: list[str] = []
        if isinstance(self.entry, ScreenEntry):
            specs += self.entry.screener.indicators
        for e in self.exits:
            specs += e.screen.indicators
        return tuple(dict.fromkeys(specs))

    @property
    def fields(self) -> tuple[str, ...]:
        """Every column the spec reads (prices, indicator columns, other fields)."""
        names: list[str] = []
        if isinstance(self.entry, ScreenEntry):
            names += self.entry.screener.fields
        for e in self.exits:
            names += e.screen.fields
        return tuple(dict.fromkeys(names))

    def describe(self) -> str:
        e = self.entry
        if isinstance(e, ScreenEntry):
            s = e.screener
            head = (f"every {e.rebalance_every} bar(s): {s.screen.name if s.screen else 'all codes'}, "
                    f"ranked by {getattr(s.rank_by, '__name__', s.rank_by)} "
                    f"({'desc' if s.descending else 'asc'}), top {s.top_n or 'all'}")
        elif isinstance(e, TargetEntry):
            head = f"Trade Targets (limit buy at target price, take-profit limit){' repeated' if e.repeat else ''}"
        else:
            head = f"equal weight at cost{' with top-up' if e.topup else ''}"
        exits = "; ".join(f"exit ({x.label}) when {x.screen.name}" for x in self.exits)
        return head + (f"; {exits}" if exits else "")
