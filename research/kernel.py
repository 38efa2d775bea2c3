"""The vectorised KRX simulator: one numba loop over sessions, the whole panel in arrays.

This is ``brokers.sim.KRXBroker`` + ``strategies.declared.DeclaredStrategy`` + the Trade Executor's
risk checks (``strategies.base.TargetStrategy``), restated over arrays for daily bars and DAY
orders. It reproduces the event path fill for fill and the equity to the won: every money figure is
computed with the same floating-point operations in the same order as backtrader does them
(``BackBroker._execute`` for cash, ``Position.update`` for average prices, ``_get_value`` for the
equity, the sizers and ``RiskLimits`` for sizes). Where the event path sums whole numbers
(positions × closes, pending buys × prices) the order of a sum cannot change it, so the kernel
keeps running totals instead of re-adding them for every order.

Each session ``t`` runs the phases of a backtrader cycle:

1. **matching** (``_match``) — the DAY orders placed on session ``t-1`` work in session ``t``:
   market orders at the open (with adverse slippage in ticks, capped by the bar's high/low), limit
   orders at the open or at the limit when the bar reaches it, whole shares up to the volume cap;
   a buy that would overdraw the cash is a margin call; what is left expires at the close. Then the
   positions are valued at the closes (a halted code at its last close).
2. **decisions** — the daily-loss kill switch and the stop-losses, then the declared spec: exits,
   then entries (screen → rank → top N, Trade Targets, or equal weight at cost).
3. **orders** (``_buy``/``_sell``) — the strategy's checks (kill switch, sizer, allocation, risk
   limits) and then the broker's (tick grid, price band, buying power reserved at the upper limit
   for market buys, no short selling) exactly as ``TargetStrategy.buy/sell`` and
   ``KRXBroker.submit`` make them; a refusal or rejection is kept with a reason code that
   ``research.engine`` turns into the event path's message.

Inputs come from ``research.rules`` (tick tables, bands and tax rates per session, masks, targets,
parameters). All state lives in arrays passed to the helpers (numba functions cannot share
variables), in the layouts named below.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# ---- integer parameters (ip) -------------------------------------------------------------------
(IP_KIND, IP_TOP_N, IP_EVERY, IP_DESC, IP_TOPUP, IP_REPEAT, IP_ROUND_REJECT, IP_RESERVE_UPPER,
 IP_SLIP_TICKS, IP_SIZER, IP_HAS_EXITS, IP_COMM_NUM, IP_COMM_DEN, IP_RECORD, IP_FS_SIZE,
 IP_N_DATAS) = range(16)
N_IP = 16
KIND_SCREEN, KIND_TARGETS, KIND_HOLD = 0, 1, 2
SIZER_FIXED_FRACTION, SIZER_EQUAL_WEIGHT, SIZER_ATR, SIZER_FIXED_SIZE = 0, 1, 2, 3

# ---- float parameters (fp); NaN switches a limit off --------------------------------------------
FP_CASH, FP_COMM_RATE, FP_VOL_CAP, FP_MAX_POS, FP_MAX_EXP, FP_DAILY_LOSS, FP_STOP, FP_SZ_A, FP_SZ_B = range(9)
N_FP = 9

ETF_TABLE = 3

# ---- scalar state (fs float, st int) ------------------------------------------------------------
S_CASH, S_VALUE, S_RESERVED, S_PEND_BUY_VALUE, S_HELD_VALUE, S_COMMISSION, S_TAX, S_TRADED = range(8)
I_NEXT_REF, I_N_REF, I_N_EV, I_N_SESSION, I_STOPPED, I_ERROR, I_FILLS = range(7)

# ---- records -------------------------------------------------------------------------------------
# orders   int [ref, row, code, side(+1/-1), type(0 market, 1 limit), qty, status, filled, reason,
#               updated_row, pending(1 while working)]
#          float [limit price (NaN: market), created price, executed value, a, b, c, d]
# fills    int [row, code, side, qty, commission, tax, ref]  float [price]
# refusals int [row, code, side, reason]                     float [qty, price, a, b, c]
# events   int [row, code, kind]                             float [a, b]
OI_REF, OI_ROW, OI_CODE, OI_SIDE, OI_TYPE, OI_QTY, OI_STATUS, OI_FILLED, OI_REASON, OI_UPDATED, OI_PENDING = range(11)
OF_LIMIT, OF_CREATED, OF_EXEC_VALUE, OF_A, OF_B, OF_C, OF_D = range(7)
ST_ACCEPTED, ST_COMPLETED, ST_EXPIRED, ST_REJECTED, ST_MARGIN = range(5)
RJ_NONE, RJ_EXPIRED, RJ_OFF_GRID, RJ_BAND, RJ_BUYING_POWER, RJ_MARGIN = range(6)
RF_STOPPED, RF_NO_ROOM, RF_ALLOCATION, RF_EQUITY, RF_POSITION, RF_EXPOSURE, RF_NOTHING_TO_SELL = range(7)
EV_KILL_SWITCH, EV_STOP_LOSS, EV_EXIT = range(3)
ERR_OK, ERR_OVERFLOW, ERR_FRACTIONAL_PRICE = range(3)

_MAX_SAFE = 2 ** 62


# ================================================================================= market rules
@nb.njit(cache=True)
def tick_of(price, tab, bounds, steps, nlev):
    """``market.ticks.tick_size`` for a table id (``research.rules.TICK_TABLES``)."""
    if tab == ETF_TABLE:
        return 5
    k = 0
    for j in range(nlev[tab]):
        if bounds[tab, j] <= price:
            k = j
        else:
            break
    return steps[tab, k]


@nb.njit(cache=True)
def round_down(price, tab, bounds, steps, nlev):
    """``round_to_tick(price, mode='down')``."""
    t = tick_of(price, tab, bounds, steps, nlev)
    v = math.floor(price / t + 1e-9) * t
    return t if v < t else v


@nb.njit(cache=True)
def round_up(price, tab, bounds, steps, nlev):
    """``round_to_tick(price, mode='up')``."""
    t = tick_of(price, tab, bounds, steps, nlev)
    return math.ceil(price / t - 1e-9) * t


@nb.njit(cache=True)
def on_tick(price, tab, bounds, steps, nlev):
    """``market.ticks.is_on_tick``."""
    if price <= 0 or price != float(int(price)):
        return False
    return int(price) % tick_of(price, tab, bounds, steps, nlev) == 0


@nb.njit(cache=True)
def shift_ticks(p, n, tab, bounds, steps, nlev):
    """``market.ticks.shift_ticks``: ``n`` grid steps up (n > 0) or down."""
    p = int(p)
    for _ in range(abs(n)):
        if n > 0:
            p += tick_of(p, tab, bounds, steps, nlev)
        else:
            if p <= 1:
                break
            p -= tick_of(p - 1, tab, bounds, steps, nlev)
    return p


@nb.njit(cache=True)
def band_of(base, rate, tab, bounds, steps, nlev):
    """``market.limits.price_band`` -> (lower, upper), integer arithmetic."""
    bt = tick_of(base, tab, bounds, steps, nlev)
    width = base * rate // 100 // bt * bt
    upper = base + width
    ut = tick_of(upper, tab, bounds, steps, nlev)
    upper = upper // ut * ut
    lower = base - width
    if lower < 1:
        lower = 1
    return lower, upper


@nb.njit(cache=True)
def py_round(x):
    """Python's ``round(float)`` (half to even) as an int."""
    return int(np.rint(x))


@nb.njit(cache=True)
def _fee(value, num, den):
    """``truncate_krw(value × num/den)`` for a whole-KRW ``value``; -1 on overflow."""
    v = np.int64(value)
    if num != 0 and v > _MAX_SAFE // num:
        return -1
    return (v * num) // den


@nb.njit(cache=True)
def _session_band(t, c, close, band_rate, tick_sess, market, bounds, steps, nlev):
    """``KRXBroker.session_band``: the next session's band around today's close."""
    base = py_round(close[t, c])
    if base < 1:
        base = 1
    return band_of(base, band_rate[t], tick_sess[t, market[c]], bounds, steps, nlev)


@nb.njit(cache=True)
def _reserve_price(t, c, limit, close, band_rate, tick_sess, market, bounds, steps, nlev, reserve_upper):
    """``KRXBroker.reserve_price``: a limit buy at its price, a market buy at the upper limit."""
    if limit == limit:
        return limit
    if reserve_upper:
        return float(_session_band(t, c, close, band_rate, tick_sess, market, bounds, steps, nlev)[1])
    return close[t, c]


# ================================================================================= records
@nb.njit(cache=True)
def _grow(a, n):
    if n < a.shape[0]:
        return a
    b = np.zeros((a.shape[0] * 2 + 16, a.shape[1]), dtype=a.dtype)
    b[:a.shape[0]] = a
    return b


@nb.njit(cache=True)
def _refuse(t, c, side, reason, qty, price, a, b, c3, ri, rf, st):
    n = st[I_N_REF]
    if n < ri.shape[0]:
        ri[n, 0] = t
        ri[n, 1] = c
        ri[n, 2] = side
        ri[n, 3] = reason
        rf[n, 0] = qty
        rf[n, 1] = price
        rf[n, 2] = a
        rf[n, 3] = b
        rf[n, 4] = c3
        st[I_N_REF] = n + 1


@nb.njit(cache=True)
def _event(t, c, kind, a, b, ei, ef, st):
    n = st[I_N_EV]
    if n < ei.shape[0]:
        ei[n, 0] = t
        ei[n, 1] = c
        ei[n, 2] = kind
        ef[n, 0] = a
        ef[n, 1] = b
        st[I_N_EV] = n + 1


@nb.njit(cache=True)
def _new_order(t, c, side, typ, qty, limit, created, oi, of, st):
    """An order handed to the broker (it gets the next ref even when rejected, as in backtrader)."""
    n = st[I_N_SESSION]
    oi[n, OI_REF] = st[I_NEXT_REF]
    oi[n, OI_ROW] = t
    oi[n, OI_CODE] = c
    oi[n, OI_SIDE] = side
    oi[n, OI_TYPE] = typ
    oi[n, OI_QTY] = qty
    oi[n, OI_STATUS] = ST_ACCEPTED
    oi[n, OI_FILLED] = 0
    oi[n, OI_REASON] = RJ_NONE
    oi[n, OI_UPDATED] = t
    oi[n, OI_PENDING] = 1
    of[n, OF_LIMIT] = limit
    of[n, OF_CREATED] = created
    of[n, OF_EXEC_VALUE] = 0.0
    of[n, OF_A] = 0.0
    of[n, OF_B] = 0.0
    of[n, OF_C] = 0.0
    of[n, OF_D] = 0.0
    st[I_NEXT_REF] += 1
    st[I_N_SESSION] = n + 1
    return n


@nb.njit(cache=True)
def _reject(n, t, reason, a, b, c3, d, oi, of):
    oi[n, OI_STATUS] = ST_REJECTED
    oi[n, OI_REASON] = reason
    oi[n, OI_PENDING] = 0
    oi[n, OI_UPDATED] = t
    of[n, OF_A] = a
    of[n, OF_B] = b
    of[n, OF_C] = c3
    of[n, OF_D] = d


# ================================================================================= orders
@nb.njit(cache=True)
def _sell(t, c, limit, close, band_rate, tick_sess, market, bounds, steps, nlev, round_reject,
          pos, sell_pending, oi, of, ri, rf, st):
    """``TargetStrategy.sell(size=None[, price, Limit])`` then ``KRXBroker.submit``."""
    sellable = pos[c] - sell_pending[c]
    if sellable <= 0:
        _refuse(t, c, -1, RF_NOTHING_TO_SELL, float(sellable), limit, float(sellable), 0.0, 0.0, ri, rf, st)
        return
    typ = 0 if limit != limit else 1
    n = _new_order(t, c, -1, typ, sellable, limit, limit if typ == 1 else close[t, c], oi, of, st)
    if typ == 1:
        tab = tick_sess[t, market[c]]
        price = limit
        if not on_tick(price, tab, bounds, steps, nlev):
            if round_reject:
                _reject(n, t, RJ_OFF_GRID, price, 0.0, 0.0, 0.0, oi, of)
                return
            price = float(round_up(price, tab, bounds, steps, nlev))
        of[n, OF_LIMIT] = price
        of[n, OF_CREATED] = price
        lo, up = _session_band(t, c, close, band_rate, tick_sess, market, bounds, steps, nlev)
        if price < lo or price > up:
            _reject(n, t, RJ_BAND, price, float(lo), float(up), 0.0, oi, of)
            return
    sell_pending[c] += sellable


@nb.njit(cache=True)
def _capital_left(c, pos, pavg, tgt_cap, buy_pending_value):
    """``TargetStrategy.capital_left`` (only codes with a Trade Target call it)."""
    used = py_round(pos[c] * pavg[c])
    left = tgt_cap[c] - used
    if left < 0:
        left = 0
    x = int(left - buy_pending_value[c])
    return x if x > 0 else 0


@nb.njit(cache=True)
def _buy(t, c, size, limit, atr, close, band_rate, tick_sess, market, bounds, steps, nlev, ip, fp,
         pos, pavg, has_target, tgt_cap, buy_pending, buy_pending_value, fs, oi, of, ri, rf, st):
    """``TargetStrategy.buy(data, size[, price, Limit])`` then ``KRXBroker.submit``.

    ``size`` < 0 asks the sizer. Returns True when an order went to the broker (even if the broker
    then rejected it), False when the strategy refused it — the screen entry counts its slots so.
    """
    if st[I_STOPPED]:
        _refuse(t, c, 1, RF_STOPPED, float(max(size, 0)), limit, 0.0, 0.0, 0.0, ri, rf, st)
        return False
    rate_f = fp[FP_COMM_RATE]
    max_pos = fp[FP_MAX_POS]
    max_exp = fp[FP_MAX_EXP]
    reserve_upper = ip[IP_RESERVE_UPPER] != 0
    expected = limit if limit == limit else close[t, c]
    equity = fs[S_VALUE]
    code_value = pos[c] * close[t, c] + buy_pending[c] * expected
    invested = fs[S_HELD_VALUE] + fs[S_PEND_BUY_VALUE]
    left = -1.0
    if has_target[c]:
        left = float(_capital_left(c, pos, pavg, tgt_cap, buy_pending_value))
    if size < 0:
        # KRXSizer.size_for(data, price=None, exectype=None)
        size = 0
        if expected > 0:
            sizer = ip[IP_SIZER]
            wanted = 0.0
            if sizer == SIZER_FIXED_FRACTION:
                wanted = equity * fp[FP_SZ_A] / expected
            elif sizer == SIZER_EQUAL_WEIGHT:
                slots = fp[FP_SZ_A] if fp[FP_SZ_A] > 0 else float(ip[IP_N_DATAS])
                wanted = equity / slots / expected
            elif sizer == SIZER_ATR:
                a = atr[t, c]
                if a > 0:
                    wanted = equity * fp[FP_SZ_A] / (fp[FP_SZ_B] * a)
            else:
                wanted = float(ip[IP_FS_SIZE])
            if wanted > 0:
                per_share = _reserve_price(t, c, np.nan, close, band_rate, tick_sess, market, bounds, steps,
                                           nlev, reserve_upper)
                free = fs[S_CASH] - fs[S_RESERVED]
                aff = free / (per_share * (1 + rate_f)) if per_share > 0 else 0.0
                m = wanted if wanted < aff else aff
                if left >= 0:
                    lc = left / expected
                    m = m if m < lc else lc
                size = int(math.floor(m + 1e-9))
                if size < 0:
                    size = 0
        room = np.inf
        if max_pos == max_pos:
            room = min(room, equity * max_pos / 100 - code_value)
        if max_exp == max_exp:
            room = min(room, equity * max_exp / 100 - invested)
        room = max(0.0, room)
        if left >= 0:
            room = min(room, left)
        if room != np.inf:
            size = min(size, int(room // expected)) if expected > 0 else 0
        if size == 0:
            _refuse(t, c, 1, RF_NO_ROOM, 0.0, limit, 0.0, 0.0, 0.0, ri, rf, st)
            return False
    val = size * expected
    if left >= 0 and val > left + 1e-6:
        _refuse(t, c, 1, RF_ALLOCATION, float(size), limit, expected, val, left, ri, rf, st)
        return False
    if equity <= 0:
        _refuse(t, c, 1, RF_EQUITY, float(size), limit, equity, 0.0, 0.0, ri, rf, st)
        return False
    if max_pos == max_pos:
        after = code_value + val
        cap = equity * max_pos / 100
        if after > cap + 1e-6:
            _refuse(t, c, 1, RF_POSITION, float(size), limit, after, equity, cap, ri, rf, st)
            return False
    if max_exp == max_exp:
        after = invested + val
        cap = equity * max_exp / 100
        if after > cap + 1e-6:
            _refuse(t, c, 1, RF_EXPOSURE, float(size), limit, after, equity, cap, ri, rf, st)
            return False
    # ---- KRXBroker.submit
    typ = 0 if limit != limit else 1
    n = _new_order(t, c, 1, typ, size, limit, limit if typ == 1 else close[t, c], oi, of, st)
    price = limit
    if typ == 1:
        tab = tick_sess[t, market[c]]
        if not on_tick(price, tab, bounds, steps, nlev):
            if ip[IP_ROUND_REJECT]:
                _reject(n, t, RJ_OFF_GRID, price, 0.0, 0.0, 0.0, oi, of)
                return True
            price = float(round_down(price, tab, bounds, steps, nlev))
        of[n, OF_LIMIT] = price
        of[n, OF_CREATED] = price
        lo, up = _session_band(t, c, close, band_rate, tick_sess, market, bounds, steps, nlev)
        if price < lo or price > up:
            _reject(n, t, RJ_BAND, price, float(lo), float(up), 0.0, oi, of)
            return True
    per_share = _reserve_price(t, c, price, close, band_rate, tick_sess, market, bounds, steps, nlev,
                               reserve_upper)
    need = size * per_share * (1 + rate_f)
    free = fs[S_CASH] - fs[S_RESERVED]
    if need > free + 1e-6:
        _reject(n, t, RJ_BUYING_POWER, float(size), per_share, need, free, oi, of)
        return True
    fs[S_RESERVED] += size * per_share * (1 + rate_f)
    created = of[n, OF_CREATED]
    buy_pending[c] += size
    buy_pending_value[c] += size * created
    fs[S_PEND_BUY_VALUE] += size * created
    return True


# ================================================================================= matching
@nb.njit(cache=True)
def _match(t, k, oi, of, opn, high, low, vol, tick_bar, tax_num, tax_den, market, bounds, steps, nlev,
           ip, fp, pos, avg, pavg, finished, fs, st, fills_i, fills_f, n_fill):
    """``KRXBroker._try_exec`` + ``BackBroker._execute`` for session order ``k``; returns fills count."""
    c = oi[k, OI_CODE]
    side = oi[k, OI_SIDE]
    slip = ip[IP_SLIP_TICKS]
    po = opn[t, c]
    tb = tick_bar[t, market[c]]
    price = np.nan
    if oi[k, OI_TYPE] == 0:
        price = po
        if slip > 0:
            if side > 0:
                mv = shift_ticks(round_up(po, tb, bounds, steps, nlev), slip, tb, bounds, steps, nlev)
                price = min(float(mv), high[t, c])
            else:
                mv = shift_ticks(round_down(po, tb, bounds, steps, nlev), -slip, tb, bounds, steps, nlev)
                price = max(float(mv), low[t, c])
    else:
        lim = of[k, OF_LIMIT]
        if side > 0:
            if lim >= po:
                price = po
                if slip > 0:
                    mv = shift_ticks(round_up(po, tb, bounds, steps, nlev), slip, tb, bounds, steps, nlev)
                    price = min(float(mv), min(high[t, c], lim))
            elif lim >= low[t, c]:
                price = lim
        else:
            if lim <= po:
                price = po
                if slip > 0:
                    mv = shift_ticks(round_down(po, tb, bounds, steps, nlev), -slip, tb, bounds, steps, nlev)
                    price = max(float(mv), lim)
            elif lim <= high[t, c]:
                price = lim
    if price != price:
        return n_fill
    rem = oi[k, OI_QTY] - oi[k, OI_FILLED]
    size = rem
    vol_cap = fp[FP_VOL_CAP]
    if vol_cap == vol_cap:
        allowed = int(vol[t, c] * vol_cap // 100)
        size = max(0, min(allowed, rem))
    if size <= 0:
        return n_fill
    if price != math.floor(price):
        st[I_ERROR] = ERR_FRACTIONAL_PRICE
    gross = size * price
    comm = _fee(gross, ip[IP_COMM_NUM], ip[IP_COMM_DEN])
    tax = 0
    if side < 0:
        tax = _fee(gross, tax_num[t, market[c]], tax_den[t, market[c]])
    if comm < 0 or tax < 0:
        st[I_ERROR] = ERR_OVERFLOW
        comm = max(comm, 0)
        tax = max(tax, 0)
    if side > 0:
        cash = fs[S_CASH] - size * price
        cash = cash - (comm + tax)
        if cash < 0.0:
            oi[k, OI_STATUS] = ST_MARGIN
            oi[k, OI_REASON] = RJ_MARGIN
            oi[k, OI_PENDING] = 0
            oi[k, OI_UPDATED] = t
            return n_fill
        fs[S_CASH] = cash
        old = pos[c]
        new = old + size
        if old == 0:
            avg[c] = price
        else:
            avg[c] = (avg[c] * old + size * price) / new
        pavg[c] = (old * pavg[c] + size * price) / new
        pos[c] = new
    else:
        orig = avg[c]
        pnl = size * (price - orig) * 1.0
        cash = fs[S_CASH] + (size * orig + pnl)
        cash = cash - (comm + tax)
        fs[S_CASH] = cash + 0.0
        pos[c] -= size
        if pos[c] == 0:
            avg[c] = 0.0
            finished[c] = True
    oi[k, OI_FILLED] += size
    of[k, OF_EXEC_VALUE] += size * price
    st[I_FILLS] += 1
    fs[S_COMMISSION] += comm
    fs[S_TAX] += tax
    fs[S_TRADED] += gross
    oi[k, OI_UPDATED] = t
    if oi[k, OI_FILLED] == oi[k, OI_QTY]:
        oi[k, OI_STATUS] = ST_COMPLETED
        oi[k, OI_PENDING] = 0
    if ip[IP_RECORD]:
        fills_i[n_fill, 0] = t
        fills_i[n_fill, 1] = c
        fills_i[n_fill, 2] = side
        fills_i[n_fill, 3] = size
        fills_i[n_fill, 4] = comm
        fills_i[n_fill, 5] = tax
        fills_i[n_fill, 6] = oi[k, OI_REF]
        fills_f[n_fill, 0] = price
    return n_fill + 1


# ================================================================================= the session loop
@nb.njit(cache=True)
def simulate(opn, high, low, close, vol, has, fill_ok, tick_bar, tick_sess, band_rate, tax_num, tax_den,
             bounds, steps, nlev, market, entry_mask, score, code_rank, exit_mask, atr,
             tgt_order, tgt_price, tgt_ret, tgt_cap, tgt_stop, has_target, ip, fp):
    """Run the whole window; see the module docstring. Returns equity, cash and the records."""
    T, N = close.shape
    record = ip[IP_RECORD] != 0
    kind = ip[IP_KIND]
    top_n = ip[IP_TOP_N]
    every = ip[IP_EVERY]
    daily_loss = fp[FP_DAILY_LOSS]
    stop_default = fp[FP_STOP]
    round_reject = ip[IP_ROUND_REJECT] != 0

    fs = np.zeros(8)
    st = np.zeros(7, np.int64)
    fs[S_CASH] = fp[FP_CASH]
    fs[S_VALUE] = fp[FP_CASH]
    st[I_NEXT_REF] = 1
    pos = np.zeros(N, np.int64)
    avg = np.zeros(N)            # backtrader Position.price (0 when flat)
    pavg = np.zeros(N)           # Data2 avg_price (kept after a sell-out)
    finished = np.zeros(N, np.bool_)
    last_close = np.full(N, np.nan)
    last_row = np.full(N, -1, np.int64)
    buy_pending = np.zeros(N, np.int64)
    sell_pending = np.zeros(N, np.int64)
    buy_pending_value = np.zeros(N)
    eq_value = np.empty(T)
    eq_cash = np.empty(T)

    cap = 2 * N + 16                                  # one buy and one sale per code and session
    oi = np.zeros((cap, 11), np.int64)                # this session's orders
    of = np.zeros((cap, 7))
    poi = np.zeros((cap, 11), np.int64)               # last session's, working now
    pof = np.zeros((cap, 7))
    n_pend = 0
    ri = np.zeros((cap, 4), np.int64)
    rf = np.zeros((cap, 5))
    ei = np.zeros((cap, 3), np.int64)
    ef = np.zeros((cap, 2))
    rec = 64 if record else 1
    all_oi = np.zeros((rec, 11), np.int64)
    all_of = np.zeros((rec, 7))
    all_ri = np.zeros((rec, 4), np.int64)
    all_rf = np.zeros((rec, 5))
    all_ei = np.zeros((rec, 3), np.int64)
    all_ef = np.zeros((rec, 2))
    fills_i = np.zeros((cap, 7), np.int64)
    fills_f = np.zeros((cap, 1))
    all_fi = np.zeros((rec, 7), np.int64)
    all_ff = np.zeros((rec, 1))
    n_ord = 0
    n_ref = 0
    n_ev = 0
    n_fill_all = 0

    last_value = np.nan
    slot_value = np.nan
    cand = np.empty(N, np.int64)
    keys = np.empty(N)
    want_c = np.empty(N, np.int64)
    want_room = np.empty(N)

    for t in range(T):
        # ------------------------------------------------------------ 1. matching
        for c in range(N):
            if has[t, c]:
                last_close[c] = close[t, c]
                last_row[c] = t
        n_fill = 0
        for k in range(n_pend):
            if poi[k, OI_PENDING] == 0:
                continue
            c = poi[k, OI_CODE]
            if t > 0 and fill_ok[t - 1] and has[t, c]:
                n_fill = _match(t, k, poi, pof, opn, high, low, vol, tick_bar, tax_num, tax_den, market, bounds,
                                steps, nlev, ip, fp, pos, avg, pavg, finished, fs, st, fills_i, fills_f, n_fill)
            if poi[k, OI_PENDING]:                         # DAY order: expires at the session's close
                poi[k, OI_STATUS] = ST_EXPIRED
                poi[k, OI_REASON] = RJ_EXPIRED
                poi[k, OI_PENDING] = 0
                poi[k, OI_UPDATED] = last_row[c]
        if record:
            for k in range(n_pend):
                all_oi = _grow(all_oi, n_ord)
                all_of = _grow(all_of, n_ord)
                all_oi[n_ord] = poi[k]
                all_of[n_ord] = pof[k]
                n_ord += 1
            for k in range(n_fill):
                all_fi = _grow(all_fi, n_fill_all)
                all_ff = _grow(all_ff, n_fill_all)
                all_fi[n_fill_all] = fills_i[k]
                all_ff[n_fill_all] = fills_f[k]
                n_fill_all += 1
        n_pend = 0

        pv = 0.0
        held_value = 0.0                       # positions × last closes: whole numbers, any order
        for c in range(N):
            if pos[c] != 0:
                lc = last_close[c]
                dvalue = pos[c] * lc
                dun = pos[c] * (lc - avg[c]) * 1.0
                pv = pv + (dvalue - dun) / 1.0
                pv = pv + dun
                held_value += pos[c] * lc
        fs[S_VALUE] = fs[S_CASH] + pv
        fs[S_HELD_VALUE] = held_value
        fs[S_RESERVED] = 0.0
        fs[S_PEND_BUY_VALUE] = 0.0
        st[I_N_SESSION] = 0
        st[I_N_REF] = 0
        st[I_N_EV] = 0
        for c in range(N):
            buy_pending[c] = 0
            sell_pending[c] = 0
            buy_pending_value[c] = 0.0
        value = fs[S_VALUE]

        # ------------------------------------------------------------ 2. kill switch and stop-losses
        if daily_loss == daily_loss:
            start_v = last_value if last_value == last_value else value
            last_value = value
            if st[I_STOPPED] == 0 and start_v > 0:      # RiskLimits.daily_loss_breached: no base, no rule
                loss = (start_v - value) / start_v * 100
                if loss >= daily_loss:
                    st[I_STOPPED] = 1
                    _event(t, -1, EV_KILL_SWITCH, start_v, value, ei, ef, st)
        for c in range(N):
            if pos[c] > 0 and has[t, c]:
                pct = tgt_stop[c] if (has_target[c] and tgt_stop[c] == tgt_stop[c]) else stop_default
                if pct == pct and pavg[c] > 0:
                    stop = pavg[c] * (1 - pct / 100)
                    if close[t, c] <= stop:
                        _event(t, c, EV_STOP_LOSS, close[t, c], stop, ei, ef, st)
                        _sell(t, c, np.nan, close, band_rate, tick_sess, market, bounds, steps, nlev, round_reject,
                              pos, sell_pending, oi, of, ri, rf, st)

        # ------------------------------------------------------------ 3. exits (codes held at the bar's start)
        if ip[IP_HAS_EXITS]:
            for c in range(N):
                if pos[c] > 0 and has[t, c] and sell_pending[c] == 0 and exit_mask[t, c]:
                    _event(t, c, EV_EXIT, close[t, c], 0.0, ei, ef, st)
                    _sell(t, c, np.nan, close, band_rate, tick_sess, market, bounds, steps, nlev, round_reject,
                          pos, sell_pending, oi, of, ri, rf, st)

        # ------------------------------------------------------------ 4. entries
        if kind == KIND_SCREEN:
            if st[I_STOPPED] == 0 and (t + 1) % every == 0:
                n_cand = 0
                for c in range(N):
                    if entry_mask[t, c]:
                        cand[n_cand] = c
                        keys[n_cand] = score[t, c]
                        n_cand += 1
                cs = cand[:n_cand][np.argsort(code_rank[cand[:n_cand]], kind="mergesort")]
                ks = score[t][cs]
                if ip[IP_DESC]:
                    ranked = cs[np.argsort(-ks, kind="mergesort")]
                else:
                    ranked = cs[np.argsort(ks, kind="mergesort")]
                if top_n > 0 and ranked.shape[0] > top_n:
                    ranked = ranked[:top_n]
                busy = 0
                for c in range(N):
                    if pos[c] > 0 or buy_pending[c] > 0:
                        busy += 1
                slots = (top_n - busy) if top_n > 0 else N + 1
                for j in range(ranked.shape[0]):
                    if slots <= 0:
                        break
                    c = ranked[j]
                    if pos[c] > 0 or buy_pending[c] > 0:
                        continue
                    if _buy(t, c, -1, np.nan, atr, close, band_rate, tick_sess, market, bounds, steps, nlev, ip,
                            fp, pos, pavg, has_target, tgt_cap, buy_pending, buy_pending_value, fs, oi, of, ri,
                            rf, st):
                        slots -= 1
        elif kind == KIND_HOLD:
            go = True
            if slot_value != slot_value:
                slot_value = value / ip[IP_N_DATAS]
            elif not ip[IP_TOPUP]:
                go = False
            if go:
                n_want = 0
                for c in range(N):
                    if has[t, c]:
                        used = py_round(pos[c] * pavg[c]) if pos[c] > 0 else 0
                        room = (slot_value - used) / close[t, c]
                        if room >= 1 and buy_pending[c] == 0:
                            want_c[n_want] = c
                            want_room[n_want] = room
                            n_want += 1
                for i in range(n_want):
                    c = want_c[i]
                    per_share = _reserve_price(t, c, np.nan, close, band_rate, tick_sess, market, bounds, steps,
                                               nlev, ip[IP_RESERVE_UPPER] != 0)
                    free = fs[S_CASH] - fs[S_RESERVED]
                    aff = free / (per_share * (1 + fp[FP_COMM_RATE])) if per_share > 0 else 0.0
                    aff_int = int(aff + 1e-9)
                    share = aff_int / (n_want - i)
                    qty = int(math.floor(want_room[i] if want_room[i] < share else share))
                    if qty >= 1:
                        _buy(t, c, qty, np.nan, atr, close, band_rate, tick_sess, market, bounds, steps, nlev, ip,
                             fp, pos, pavg, has_target, tgt_cap, buy_pending, buy_pending_value, fs, oi, of, ri,
                             rf, st)
        elif kind == KIND_TARGETS:
            for j in range(tgt_order.shape[0]):
                c = tgt_order[j]
                if not has[t, c]:
                    continue
                if st[I_STOPPED] == 0 and (not finished[c] or ip[IP_REPEAT]):
                    price = float(tgt_price[c])
                    lo, up = _session_band(t, c, close, band_rate, tick_sess, market, bounds, steps, nlev)
                    if buy_pending[c] == 0 and lo <= price <= up:
                        left = _capital_left(c, pos, pavg, tgt_cap, buy_pending_value)
                        free = fs[S_CASH] - fs[S_RESERVED]
                        aff = free / (price * (1 + fp[FP_COMM_RATE])) if price > 0 else 0.0
                        aff_int = int(aff + 1e-9)
                        share = left / price
                        qty = int(math.floor(share if share < aff_int else aff_int))
                        if qty >= 1:
                            _buy(t, c, qty, price, atr, close, band_rate, tick_sess, market, bounds, steps, nlev,
                                 ip, fp, pos, pavg, has_target, tgt_cap, buy_pending, buy_pending_value, fs, oi, of,
                                 ri, rf, st)
                if pos[c] > 0 and sell_pending[c] == 0:
                    take_profit = pavg[c] * (1 + tgt_ret[c] / 100)
                    lo, up = _session_band(t, c, close, band_rate, tick_sess, market, bounds, steps, nlev)
                    if lo <= take_profit <= up:
                        _sell(t, c, take_profit, close, band_rate, tick_sess, market, bounds, steps, nlev,
                              round_reject, pos, sell_pending, oi, of, ri, rf, st)

        # ------------------------------------------------------------ 5. end of session
        n_pend = st[I_N_SESSION]
        for k in range(n_pend):
            poi[k] = oi[k]
            pof[k] = of[k]
        if record:
            for k in range(st[I_N_REF]):
                all_ri = _grow(all_ri, n_ref)
                all_rf = _grow(all_rf, n_ref)
                all_ri[n_ref] = ri[k]
                all_rf[n_ref] = rf[k]
                n_ref += 1
            for k in range(st[I_N_EV]):
                all_ei = _grow(all_ei, n_ev)
                all_ef = _grow(all_ef, n_ev)
                all_ei[n_ev] = ei[k]
                all_ef[n_ev] = ef[k]
                n_ev += 1
        eq_value[t] = fs[S_VALUE]
        eq_cash[t] = fs[S_CASH]

    if record:                                   # orders placed on the last session never worked
        for k in range(n_pend):
            all_oi = _grow(all_oi, n_ord)
            all_of = _grow(all_of, n_ord)
            all_oi[n_ord] = poi[k]
            all_of[n_ord] = pof[k]
            n_ord += 1
    return (eq_value, eq_cash, all_fi[:n_fill_all], all_ff[:n_fill_all], all_oi[:n_ord], all_of[:n_ord],
            all_ri[:n_ref], all_rf[:n_ref], all_ei[:n_ev], all_ef[:n_ev], st[I_ERROR], st[I_FILLS],
            fs[S_COMMISSION], fs[S_TAX], fs[S_TRADED])
