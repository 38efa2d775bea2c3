"""Indicators over a whole panel, equal to the ``ta`` values the backtrader path reads.

``feeds.indicators`` computes each spec per code on that code's own bars (a halt is a missing
row, not a gap filled with the last price), with ``ta`` — which is pandas underneath:
``rolling(n).mean()``, ``rolling(n).std(ddof=0)``, ``rolling(n).max()``,
``ewm(span|alpha, adjust=False).mean()`` plus element-wise arithmetic. Here:

1. the panel is *packed*: code by code, its bars in time order followed by NaN, one row per code
   (``Packed``) — each row is exactly the series ``feeds.indicators`` sees for that code;
2. element-wise steps (``diff``, ``shift``, ``where``, ratios) are the same IEEE operations pandas
   performs, in numpy or fused into the kernels (RSI, ATR, ROC), so they give the same bits;
3. the window steps run in numba kernels, one code per iteration and the codes spread over the
   cores. They follow pandas' own recurrences operation for operation — Kahan-compensated running
   sums for the rolling mean, pandas' normalised recursion (and its centre-of-mass
   parameterisation) for ``ewm``, an exact monotonic queue for rolling extremes — so every value
   equals the pandas one, not just approximately. The rolling standard deviation (Bollinger bands
   only) is left to pandas itself, called once on all codes;
4. the result is unpacked to the sessions it belongs to (NaN where a code has no bar).

``tests/research/test_panel_indicators.py`` compares every spec form with ``feeds.indicators``
column by column, bit for bit, on real KRX bars and on random series with NaN gaps; a pandas
upgrade that changed an algorithm would fail there first.

Spec strings and column names are those of ``feeds.indicators`` (one vocabulary).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba as nb
import numpy as np

from feeds.indicators import IndicatorSpec, parse_indicator_spec, parse_indicator_specs

if TYPE_CHECKING:
    from research.panel import Panel


# ----------------------------------------------------------------------------------- kernels
# Each kernel takes a (codes, bars) C-contiguous float64 array, one packed series per row.

@nb.njit(parallel=True, cache=True)
def rolling_mean(x: np.ndarray, n: int, minp: int) -> np.ndarray:
    """``Series.rolling(n, min_periods=minp).mean()`` per row (Kahan sums, pandas' sign rule)."""
    rows, cols = x.shape
    out = np.empty_like(x)
    for r in nb.prange(rows):
        v = x[r]
        nobs = 0
        neg = 0
        s = 0.0
        comp_add = 0.0
        comp_rem = 0.0
        for i in range(cols):
            if i >= n:                      # the value leaving the window
                old = v[i - n]
                if old == old:
                    nobs -= 1
                    y = -old - comp_rem
                    t = s + y
                    comp_rem = t - s - y
                    s = t
                    if math.copysign(1.0, old) < 0:
                        neg -= 1
            val = v[i]
            if val == val:
                nobs += 1
                y = val - comp_add
                t = s + y
                comp_add = t - s - y
                s = t
                if math.copysign(1.0, val) < 0:
                    neg += 1
            if nobs >= minp and nobs > 0:
                res = s / nobs
                if neg == 0 and res < 0:
                    res = 0.0
                elif neg == nobs and res > 0:
                    res = 0.0
                out[r, i] = res
            else:
                out[r, i] = np.nan
    return out


def rolling_std(x: np.ndarray, n: int, minp: int, ddof: int) -> np.ndarray:
    """``rolling(n, min_periods=minp).std(ddof)`` per row, by pandas itself.

    pandas 3's rolling variance is not the textbook Welford-Kahan recurrence of earlier versions
    (the values differ in the last bits), so this one step stays on pandas — called on all codes at
    once, still one vectorised call (Bollinger bands only).
    """
    import pandas as pd

    frame = pd.DataFrame(np.ascontiguousarray(x.T))
    return np.ascontiguousarray(frame.rolling(n, min_periods=minp).std(ddof=ddof).to_numpy().T)


@nb.njit(parallel=True, cache=True)
def rolling_extreme(x: np.ndarray, n: int, minp: int, is_max: bool) -> np.ndarray:
    """``rolling(n, min_periods=minp).max()`` (or ``.min()``) per row: a monotonic queue of the
    window's candidates; extremes are exact, so any correct algorithm gives pandas' values."""
    rows, cols = x.shape
    out = np.empty_like(x)
    for r in nb.prange(rows):
        v = x[r]
        queue = np.empty(cols, dtype=np.int64)     # indices, values monotonic from head to tail
        head = 0
        tail = 0
        nobs = 0
        for i in range(cols):
            if i >= n:
                if v[i - n] == v[i - n]:
                    nobs -= 1
                if head < tail and queue[head] <= i - n:
                    head += 1
            val = v[i]
            if val == val:
                nobs += 1
                while head < tail and ((v[queue[tail - 1]] <= val) if is_max else (v[queue[tail - 1]] >= val)):
                    tail -= 1
                queue[tail] = i
                tail += 1
            out[r, i] = v[queue[head]] if nobs >= minp and nobs > 0 and head < tail else np.nan
    return out


@nb.njit(parallel=True, cache=True)
def ewm_mean(x: np.ndarray, com: float, minp: int) -> np.ndarray:
    """``Series.ewm(com=com, min_periods=minp, adjust=False).mean()`` per row (pandas' recursion)."""
    rows, cols = x.shape
    out = np.empty_like(x)
    minp = max(minp, 1)
    alpha = 1.0 / (1.0 + com)
    factor = 1.0 - alpha
    for r in nb.prange(rows):
        v = x[r]
        if cols == 0:
            continue
        weighted = v[0]
        nobs = 1 if weighted == weighted else 0
        out[r, 0] = weighted if nobs >= minp else np.nan
        old_wt = 1.0
        for i in range(1, cols):
            cur = v[i]
            obs = cur == cur
            if obs:
                nobs += 1
            if weighted == weighted:
                old_wt *= factor ** 1.0
                if obs:
                    if weighted != cur:             # pandas: keeps a constant series exact
                        weighted = old_wt * weighted + alpha * cur
                        weighted /= old_wt + alpha
                    old_wt = 1.0
            elif obs:
                weighted = cur
            out[r, i] = weighted if nobs >= minp else np.nan
    return out


def _interior_nan_rows(x: np.ndarray) -> np.ndarray:
    """Rows with a NaN between two observations (a packed bar series has none)."""
    seen = ~np.isnan(x)
    before = np.maximum.accumulate(seen, axis=1)
    after = np.maximum.accumulate(seen[:, ::-1], axis=1)[:, ::-1]
    return np.flatnonzero((~seen & before & after).any(axis=1))


def _pandas_rows(x: np.ndarray, rows: np.ndarray, op) -> np.ndarray:
    import pandas as pd

    return op(pd.DataFrame(np.ascontiguousarray(x[rows].T))).to_numpy().T


def sma(x: np.ndarray, n: int, minp: int, clean: bool = False) -> np.ndarray:
    """``rolling_mean``; rows with a NaN between observations go through pandas.

    pandas 3.1 removes a value from its running sum slightly differently from the earlier
    recurrence when the window holds NaN (results differ in the last bit). Bar series never have
    NaN inside, so this is a guard, not a path the indicators take.
    """
    out = rolling_mean(x, n, minp)
    rows = [] if clean else _interior_nan_rows(x)
    if len(rows):
        out[rows] = _pandas_rows(x, rows, lambda f: f.rolling(n, min_periods=minp).mean())
    return out


def ewm(x: np.ndarray, com: float, minp: int) -> np.ndarray:
    """``ewm_mean``; rows where pandas departs from its documented recursion go through pandas.

    pandas 3.1 gives other values for centre of mass 1.0 (alpha 0.5) when a NaN sits *between*
    observations (``Series([1, 2, nan, 4]).ewm(alpha=0.5, adjust=False).mean()`` ends in 3.375,
    where the recursion — and pandas itself for any other alpha — give 3.1667). The ta
    indicators never feed such series (NaN only lead), so this too is a guard.
    """
    out = ewm_mean(x, com, minp)
    if com == 1.0:
        rows = _interior_nan_rows(x)
        if len(rows):
            out[rows] = _pandas_rows(x, rows, lambda f: f.ewm(com=com, min_periods=minp, adjust=False).mean())
    return out


@nb.njit(parallel=True, cache=True, error_model="numpy")
def rsi_rows(close: np.ndarray, n: int, com: float) -> np.ndarray:
    """ta's ``RSIIndicator`` per row in one pass: the same element-wise steps (``diff``; gains and
    losses by ``where``, the loss negated as pandas does, so it is -0.0 on a rise) feeding two
    ``ewm_mean`` recursions, then ``where(loss == 0, 100, 100 - 100 / (1 + gain / loss))``.

    The first difference is NaN and ``where`` turns it into 0.0, so neither average ever sees a NaN
    between observations: this fused form needs none of ``ewm``'s guards.
    """
    rows, cols = close.shape
    out = np.empty_like(close)
    alpha = 1.0 / (1.0 + com)
    factor = 1.0 - alpha
    for r in nb.prange(rows):
        c = close[r]
        up_w = 0.0
        dn_w = 0.0
        up_old = 1.0
        dn_old = 1.0
        nobs = 0
        for i in range(cols):
            d = c[i] - c[i - 1] if i > 0 else np.nan
            up = d if d > 0 else 0.0
            dn = -(d if d < 0 else 0.0)
            nobs += 1
            if i == 0:
                up_w = up
                dn_w = dn
            else:
                up_old *= factor ** 1.0
                if up_w != up:
                    up_w = up_old * up_w + alpha * up
                    up_w /= up_old + alpha
                up_old = 1.0
                dn_old *= factor ** 1.0
                if dn_w != dn:
                    dn_w = dn_old * dn_w + alpha * dn
                    dn_w /= dn_old + alpha
                dn_old = 1.0
            if nobs >= n:
                if dn_w == 0:
                    out[r, i] = 100.0
                else:
                    out[r, i] = 100 - (100 / (1 + up_w / dn_w))
            else:
                out[r, i] = np.nan
    return out


@nb.njit(parallel=True, cache=True)
def atr_rows(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, com: float,
             counts: np.ndarray) -> np.ndarray:
    """``feeds.indicators.wilder_atr`` per row in one pass: true range (the NaN-skipping maximum of
    high − low, |high − previous close|, |low − previous close|), seeded with the mean true range of
    the first ``n`` bars, then ``ewm(alpha=1/n, adjust=False)``; NaN for the first n−1 bars and for
    codes with fewer than n bars.

    Panel prices are whole KRW, so the seed's sum is exact in any order: the same as pandas' mean.
    """
    rows, cols = close.shape
    out = np.full_like(close, np.nan)
    alpha = 1.0 / (1.0 + com)
    factor = 1.0 - alpha
    for r in nb.prange(rows):
        if counts[r] < n or cols < n:
            continue
        h, lo, c = high[r], low[r], close[r]
        total = 0.0
        weighted = 0.0
        old_wt = 1.0
        for i in range(cols):
            tr = h[i] - lo[i]
            if i > 0:
                a = abs(h[i] - c[i - 1])
                b = abs(lo[i] - c[i - 1])
                if tr != tr or a > tr:
                    tr = a if a == a else tr
                if tr != tr or b > tr:
                    tr = b if b == b else tr
            if i < n:
                total += tr
                if i == n - 1:
                    weighted = total / n
                    out[r, i] = weighted
                continue
            old_wt *= factor ** 1.0
            if tr == tr:
                if weighted != tr:
                    weighted = old_wt * weighted + alpha * tr
                    weighted /= old_wt + alpha
                old_wt = 1.0
            out[r, i] = weighted
    return out


@nb.njit(parallel=True, cache=True, error_model="numpy")
def roc_rows(close: np.ndarray, n: int) -> np.ndarray:
    """ta's ``ROCIndicator``: ``((close - close.shift(n)) / close.shift(n)) * 100`` per row, NaN for the
    first n bars (the same three operations per element as pandas)."""
    rows, cols = close.shape
    out = np.full_like(close, np.nan)
    for r in nb.prange(rows):
        for i in range(n, cols):
            before = close[r, i - n]
            out[r, i] = ((close[r, i] - before) / before) * 100
    return out


def _com_from_span(span: int) -> float:
    return float((span - 1) / 2)


def _com_from_alpha(alpha: float) -> float:
    return float((1 - alpha) / alpha)


# ----------------------------------------------------------------------------------- packing

@nb.njit(cache=True)
def pack_rows(values: np.ndarray, has: np.ndarray) -> np.ndarray:
    """(sessions, codes) -> (codes, bars): each code's bars in time order, then NaN."""
    t_n, c_n = values.shape
    out = np.full((c_n, t_n), np.nan)
    k = np.zeros(c_n, np.int64)
    for t in range(t_n):
        for c in range(c_n):
            if has[t, c]:
                out[c, k[c]] = values[t, c]
                k[c] += 1
    return out


@nb.njit(cache=True)
def unpack_rows(rows: np.ndarray, has: np.ndarray) -> np.ndarray:
    """The inverse of ``pack_rows``: back to (sessions, codes), NaN where a code has no bar."""
    t_n, c_n = has.shape
    out = np.full((t_n, c_n), np.nan)
    k = np.zeros(c_n, np.int64)
    for t in range(t_n):
        for c in range(c_n):
            if has[t, c]:
                out[t, c] = rows[c, k[c]]
                k[c] += 1
    return out


@nb.njit(cache=True)
def previous_bar(values: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Each bar's value on the code's previous bar (backtrader's ``line[-1]``); NaN on the first bar
    of a code and where it has no bar."""
    t_n, c_n = values.shape
    out = np.full((t_n, c_n), np.nan)
    last = np.full(c_n, np.nan)
    for t in range(t_n):
        for c in range(c_n):
            if has[t, c]:
                out[t, c] = last[c]
                last[c] = values[t, c]
    return out


class Packed:
    """Each code's bars in time order, then NaN: one row per code (see the module docstring).

    Packed price columns are kept for the next spec.
    """

    def __init__(self, has_bar: np.ndarray) -> None:
        self.has_bar = np.ascontiguousarray(has_bar)
        self.counts = has_bar.sum(axis=0)
        self._cache: dict[str, np.ndarray] = {}

    def pack(self, values: np.ndarray, name: str | None = None) -> np.ndarray:
        """(codes, bars) float64 rows; cached under ``name`` when given."""
        if name is not None and name in self._cache:
            return self._cache[name]
        rows = pack_rows(np.ascontiguousarray(values), self.has_bar)
        if name is not None:
            self._cache[name] = rows
        return rows

    def unpack(self, rows: np.ndarray) -> np.ndarray:
        """Back to (sessions, codes), NaN where a code has no bar."""
        return unpack_rows(np.ascontiguousarray(rows, dtype=np.float64), self.has_bar)


# ----------------------------------------------------------------------------------- ta formulas

def _sma(x: np.ndarray, n: int) -> np.ndarray:
    """SMA of a packed price column (a bar series has no NaN between its bars)."""
    return sma(x, n, n, clean=True)


def _ema(x: np.ndarray, n: int) -> np.ndarray:
    return ewm(x, _com_from_span(n), n)


def _rsi(close: np.ndarray, n: int) -> np.ndarray:
    return rsi_rows(close, n, _com_from_alpha(1 / n))


def _atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, counts: np.ndarray) -> np.ndarray:
    return atr_rows(high, low, close, n, _com_from_alpha(1.0 / n), counts.astype(np.int64))


def _compute(spec: IndicatorSpec, packed: Packed, panel: "Panel") -> list[np.ndarray]:
    def col(name: str) -> np.ndarray:
        return packed.pack(getattr(panel, name), name)

    close = col("close")
    p, k = spec.params, spec.kind
    with np.errstate(divide="ignore", invalid="ignore"):
        if k == "sma":
            return [_sma(close, p[0])]
        if k == "ema":
            return [_ema(close, p[0])]
        if k == "rsi":
            return [_rsi(close, p[0])]
        if k == "roc":
            return [roc_rows(close, p[0])]
        if k == "atr":
            return [_atr(col("high"), col("low"), close, p[0], packed.counts)]
        if k == "volsma":
            return [_sma(col("volume"), p[0])]
        if k == "high":
            return [rolling_extreme(col("high"), p[0], p[0], True)]
        if k == "low":
            return [rolling_extreme(col("low"), p[0], p[0], False)]
        if k == "macd":
            macd = _ema(close, p[0]) - _ema(close, p[1])
            signal = _ema(macd, p[2])
            return [macd, signal, macd - signal]
        if k == "bb":
            mavg = sma(close, p[0], p[0], clean=True)
            mstd = rolling_std(close, p[0], p[0], 0)
            hband = mavg + p[1] * mstd
            lband = mavg - p[1] * mstd
            width = np.where(hband != lband, hband - lband, np.nan)
            return [hband, mavg, lband, (close - lband) / width]
    raise ValueError(f"indicator spec {spec.spec!r} has no panel implementation")  # pragma: no cover


def panel_indicator(panel: "Panel", spec: IndicatorSpec | str, packed: Packed | None = None) -> dict[str, np.ndarray]:
    """Every column of one indicator spec over the panel: name -> day × code float64 (NaN without a bar)."""
    spec = parse_indicator_spec(spec) if isinstance(spec, str) else spec
    packed = packed or Packed(panel.has_bar)
    return {c: packed.unpack(v) for c, v in zip(spec.columns, _compute(spec, packed, panel))}


def add_panel_indicators(panel: "Panel", specs: list[str]) -> list[str]:
    """Compute the columns of ``specs`` the panel does not have yet; returns the new column names."""
    packed: Packed | None = None
    added: list[str] = []
    for spec in parse_indicator_specs(specs):
        if all(c in panel.fields for c in spec.columns):
            continue
        packed = packed or Packed(panel.has_bar)
        new = panel_indicator(panel, spec, packed)
        panel.fields.update(new)
        added += list(new)
    return added
