"""The trading journal on SQLite and on a real PostgreSQL server (every test runs on both: ``db_url``).

What the broker relies on, backend by backend: the schema comes from the journal's own Alembic
migrations (and equals what the code declares and what ``create_all`` used to build), a journal from
before migrations is stamped, one from before scopes or from a newer krx-trader is refused; an intent's
rows read back as written, timestamps KST-aware; a fill and a notice are recorded once by construction
and a duplicate leaves nothing behind (no aborted transaction on PostgreSQL); scopes never see each
other; the restart queries of ``recovery.py``/``reconcile.py`` answer from a reopened journal; several
threads write at once; and an unusable URL is one message naming the setting, password hidden.
"""

from __future__ import annotations

import os
import stat
import threading
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from brokers.kis.journal import FillRow, Journal, JournalSchemaError, JournalScope, NoticeRow, metadata
from configs.errors import InputError
from feeds.cache import BarCache
from feeds.master import StockMaster
from market.calendar import KST
from migrations import migrate

DAY = date(2025, 3, 5)
T0 = datetime(2025, 3, 5, 9, 0, 1, 123456, tzinfo=KST)
PAPER = JournalScope.of("paper", "50000001", "01", "app-key-1")
REAL = JournalScope.of("real", "50000001", "01", "app-key-1")
OTHER = JournalScope.of("paper", "50000002", "01", "app-key-1")


class Clock:
    """A settable clock for the journal (``now``): each call one millisecond later."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.t += timedelta(milliseconds=1)
            return self.t


@pytest.fixture
def opened():
    """``open(url, **kw)`` → a Journal that is closed after the test (PostgreSQL connections are counted)."""
    journals: list[Journal] = []

    def open_(url: str, **kw) -> Journal:
        j = Journal(url, **kw)
        journals.append(j)
        return j

    yield open_
    for j in journals:
        j.close()


def _new(j: Journal, code: str = "005930", state: str = "QUEUED", day: date = DAY, **kw):
    return j.new_intent(kind=kw.pop("kind", "new"), code=code, side=kw.pop("side", "buy"), qty=kw.pop("qty", 10),
                        price=kw.pop("price", 70_000), ord_dvsn="00", bt_ref=kw.pop("bt_ref", 1), session_day=day,
                        state=state, **kw)


def _fill(key: str, odno: str, qty: int, ts: datetime = T0, price: float = 70_000.0) -> FillRow:
    return FillRow(key, odno, ts, "005930", "buy", qty, price, commission=98, tax=0, source="notice")


# ---------------------------------------------------------------- schema, by migrations only
def _schema(url: str, skip: tuple[str, ...] = ()) -> dict:
    """Every journal table as the server reports it: columns (type, nullability), key, indexes, uniques."""
    engine = sa.create_engine(url)
    try:
        insp = sa.inspect(engine)
        out = {}
        for t in sorted(set(insp.get_table_names()) - set(skip)):
            out[t] = dict(
                columns=[(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                pk=insp.get_pk_constraint(t)["constrained_columns"],
                indexes=sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
                uniques=sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)))
        return out
    finally:
        engine.dispose()


def test_a_new_journal_is_built_by_its_migrations_as_declared(db_url, new_db_url, opened):
    j = opened(db_url)
    assert migrate.revision(j.engine, "journal") == migrate.head("journal") == "0001"
    with j.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == "krx_journal_version")] == []
    # and exactly what the code built before migrations (metadata.create_all), column by column
    legacy = new_db_url("legacy")
    engine = sa.create_engine(legacy)
    metadata.create_all(engine)
    engine.dispose()
    assert _schema(db_url, skip=("krx_journal_version",)) == _schema(legacy)
    assert set(_schema(legacy)) == {"intents", "fills", "fill_notices", "events"}


def test_a_journal_from_before_migrations_is_stamped_and_kept(db_url, opened):
    engine = sa.create_engine(db_url)                      # what the code did before: create_all, no version table
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(metadata.tables["intents"]).values(
            id="i-1", **PAPER.row(), session_day=DAY.isoformat(), created_at=T0, updated_at=T0, bt_ref=3, kind="new",
            code="005930", side="buy", qty=10, price=0, ord_dvsn="01", state="ACCEPTED", odno="0000012345",
            filled_qty=0, filled_value=0, reason=""))
    engine.dispose()
    j = opened(db_url, scope=PAPER)
    assert migrate.revision(j.engine, "journal") == "0001"
    [old] = j.open_intents()
    assert old.id == "i-1" and old.odno == "0000012345" and old.created_at == T0
    assert j.record("i-1", {"state": "PARTIAL"}, fill=_fill("k1", "0000012345", 4))
    assert j.totals("i-1")[0] == 4


def test_a_journal_from_before_scopes_is_refused(db_url):
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE intents (id VARCHAR(36) PRIMARY KEY, session_day VARCHAR(10), "
                             "state VARCHAR(12))"))
    engine.dispose()
    with pytest.raises(JournalSchemaError, match="broker.kis.journal_url .*older krx-trader") as err:
        Journal(db_url)
    assert isinstance(err.value, InputError), "run.py prints it as one line, not a traceback"


def test_a_database_with_only_some_journal_tables_is_refused(db_url):
    engine = sa.create_engine(db_url)
    metadata.tables["intents"].create(engine)
    engine.dispose()
    with pytest.raises(InputError, match="has the table.s. intents but not fills, fill_notices, events"):
        Journal(db_url)


def test_a_journal_newer_than_the_code_is_refused(db_url):
    j = Journal(db_url)
    with j.engine.begin() as conn:
        conn.execute(sa.text("update krx_journal_version set version_num = '9999'"))
    migrate.forget(j.engine)
    j.close()
    with pytest.raises(InputError, match="journal schema revision '9999', newer than this version"):
        Journal(db_url)


def test_the_journal_and_the_market_data_share_a_database(db_url, opened):
    with BarCache(db_url) as cache:
        j = opened(db_url, scope=PAPER)
        _new(j)
        with StockMaster(db_url) as master:
            assert migrate.revision(master.engine, "data") == migrate.head("data")
        assert migrate.revision(cache.engine, "journal") == migrate.head("journal")
    migrate.forget()                                       # as a second process: both found current, untouched
    BarCache(db_url).close()
    assert len(opened(db_url, scope=PAPER).open_intents()) == 1
    tables = set(sa.inspect(j.engine).get_table_names())
    assert {"krx_data_version", "krx_journal_version", "bars", "stocks", "intents", "fills"} <= tables


def test_journal_first_then_market_data(db_url, opened):
    j = opened(db_url, scope=PAPER)
    with BarCache(db_url) as cache:                       # the journal's tables are not a "bar cache before migrations"
        assert migrate.revision(cache.engine, "data") == migrate.head("data")
    assert migrate.revision(j.engine, "journal") == migrate.head("journal")


# ---------------------------------------------------------------- rows, times, idempotency
def test_an_intent_lifecycle_reads_back_as_written_with_kst_times(db_url, opened):
    j = opened(db_url, scope=PAPER, now=Clock())
    i = _new(j, bt_ref=7)
    sent = datetime(2025, 3, 5, 0, 0, 2, 500000, tzinfo=timezone.utc)        # 09:00:02.5 KST, given in UTC
    assert j.record(i.id, {"state": "SENDING", "sent_at": sent}, event=("send", "buy 10"))
    assert j.record(i.id, {"state": "ACCEPTED", "odno": "0000011111", "branch": "06010", "ord_time": "090002"})
    got = j.intent(i.id)
    assert (got.state, got.odno, got.branch, got.ord_time, got.bt_ref) == ("ACCEPTED", "0000011111", "06010",
                                                                          "090002", 7)
    assert got.sent_at == sent and got.sent_at.utcoffset() == timedelta(hours=9)
    assert got.sent_at.hour == 9 and got.sent_at.microsecond == 500000
    assert got.created_at == i.created_at and got.created_at.tzinfo is not None
    assert got.updated_at > got.created_at
    naive = datetime(2025, 3, 5, 9, 3)                                        # naive = KST wall time
    assert j.record(i.id, {"state": "PARTIAL"}, fill=_fill("k1", "0000011111", 4, ts=naive))
    [row] = j.fills_for(intent_id=i.id)
    assert row["ts"] == naive.replace(tzinfo=KST) and row["ts"].utcoffset() == timedelta(hours=9)
    assert [f["fill_key"] for f in j.all_fills(since=datetime(2025, 3, 5, 0, 2, tzinfo=timezone.utc))] == ["k1"]
    assert j.all_fills(since=datetime(2025, 3, 5, 0, 4, tzinfo=timezone.utc)) == []
    [ev] = j.events(kinds=["send"])
    assert ev["intent_id"] == i.id and ev["ts"].tzinfo is not None and ev["payload"] == {}


def test_a_fill_and_a_notice_are_recorded_once_and_a_duplicate_leaves_nothing(db_url, opened):
    j = opened(db_url, scope=PAPER)
    i = _new(j, state="ACCEPTED")
    notice = NoticeRow("n1", "0000011111", T0, 4, 70_000.0)
    assert j.record(i.id, {"state": "PARTIAL", "filled_qty": 4}, notice=notice, fill=_fill("k1", "0000011111", 4),
                    event=("notice", "first"))
    # the same notice again, now with a fill that would be new: refused as a whole
    assert not j.record(i.id, {"state": "FILLED", "filled_qty": 10}, notice=notice,
                        fill=_fill("k2", "0000011111", 6), event=("notice", "again"))
    # the same fill under another notice: refused as a whole too
    assert not j.record(i.id, {"state": "FILLED"}, notice=NoticeRow("n2", "0000011111", T0, 6, 70_000.0),
                        fill=_fill("k1", "0000011111", 4))
    assert j.intent(i.id).state == "PARTIAL" and j.intent(i.id).filled_qty == 4
    assert j.totals(i.id) == (4, 280_000.0, 4, 280_000.0) and j.notice_keys(i.id) == {"n1"}
    assert [e["message"] for e in j.events(kinds=["notice"])] == ["first"]
    # the connections the refusals used are clean: the next writes, from the same pool, go through
    for _ in range(3):
        j.log("after", "still writable")
    assert j.record(i.id, {"state": "FILLED"}, notice=NoticeRow("n2", "0000011111", T0, 6, 70_000.0),
                    fill=_fill("k2", "0000011111", 6))
    assert j.totals(i.id)[:3] == (10, 700_000.0, 10) and len(j.events(kinds=["after"])) == 3


def test_an_integrity_error_that_is_no_duplicate_is_raised(db_url, opened):
    j = opened(db_url, scope=PAPER)
    i = _new(j)
    bad = FillRow("k1", "1", T0, None, "buy", 1, 1.0, 0, 0, "notice")           # code is NOT NULL: a bug, not a repeat
    with pytest.raises(sa.exc.IntegrityError):
        j.record(i.id, {"state": "PARTIAL"}, fill=bad)
    assert j.intent(i.id).state == "QUEUED" and j.all_fills() == []
    assert j.record(i.id, {"state": "PARTIAL"}, fill=_fill("k1", "1", 1))


def test_scopes_never_see_each_other(db_url, opened):
    journals = {s: opened(db_url, scope=s) for s in (PAPER, REAL, OTHER)}
    for n, (scope, j) in enumerate(journals.items()):
        i = _new(j, state="ACCEPTED")
        j.record(i.id, {"odno": "0000000042"}, fill=_fill("same-key", "0000000042", n + 1),
                 notice=NoticeRow("same-notice", "0000000042", T0, n + 1, 70_000.0))
        j.log("mine", scope.env)
    for n, (scope, j) in enumerate(journals.items()):
        [mine] = j.open_intents()
        assert mine.env == scope.env and mine.account == scope.account
        assert [i.id for i in j.intents_for_day(DAY)] == [mine.id]
        assert j.claimed_odnos(DAY) == {42: mine.id}
        assert [f["qty"] for f in j.all_fills()] == [n + 1] and [f["qty"] for f in j.fills_for(odno="0000000042")] == [n + 1]
        assert [e["message"] for e in j.events(kinds=["mine"])] == [scope.env] and j.event_count() == 1
    reader = opened(db_url)                                 # unbound: the dashboard reads everything, writes no intent
    assert len(reader.open_intents()) == 3 and len(reader.all_fills()) == 3
    with pytest.raises(RuntimeError, match="not bound"):
        _new(reader)
    assert "50000001" not in PAPER.account + PAPER.app_key + REAL.account


def test_restart_reads_what_recovery_and_reconcile_ask(db_url, opened):
    """A trader writes and dies; the next process finds its open, unanswered and given-up intents."""
    a = opened(db_url, scope=PAPER, now=Clock())
    unanswered = _new(a, state="QUEUED")
    a.record(unanswered.id, {"state": "SENDING", "sent_at": T0})              # POST on the wire, no answer
    partial = _new(a, code="000660", state="QUEUED")
    a.record(partial.id, {"state": "ACCEPTED", "odno": "0000000007"})
    a.record(partial.id, {"state": "PARTIAL", "filled_qty": 3, "filled_value": 30_000},
             notice=NoticeRow("n7", "0000000007", T0, 3, 10_000.0), fill=_fill("f7", "0000000007", 3, price=10_000.0))
    revision = _new(a, kind="revise", state="QUEUED", replaces=partial.id, orig_odno="0000000007")
    given_up = _new(a, state="QUEUED")
    a.record(given_up.id, {"state": "NOT_PLACED", "reason": "window closed"})
    yesterday = _new(a, state="QUEUED", day=DAY - timedelta(days=1))
    a.record(yesterday.id, {"state": "NOT_PLACED"})
    done = _new(a, state="QUEUED")
    a.record(done.id, {"state": "ACCEPTED", "odno": "0000000008"})
    a.record(done.id, {"state": "FILLED"}, fill=_fill("f8", "0000000008", 10))
    a.close()

    b = opened(db_url, scope=PAPER)                                          # the restarted process
    assert [i.id for i in b.open_intents()] == [unanswered.id, partial.id, revision.id]
    sending = b.intent(unanswered.id)
    assert sending.state == "SENDING" and sending.odno is None and sending.sent_at == T0
    assert [i.id for i in b.intents_in_states(["NOT_PLACED"]) if i.day == DAY] == [given_up.id]
    assert b.totals(partial.id) == (3, 30_000.0, 3, 30_000.0) and b.notice_keys(partial.id) == {"n7"}
    assert b.intent(b.intent(revision.id).replaces).odno == "0000000007"
    assert b.claimed_odnos(DAY) == {7: partial.id, 8: done.id}
    assert not b.record(partial.id, {"state": "FILLED"}, notice=NoticeRow("n7", "0000000007", T0, 3, 10_000.0))


def test_threads_write_at_once(db_url, opened):
    """Order workers, the ws thread and the strategy thread: their own rows, and a race on one notice."""
    j = opened(db_url, scope=PAPER)
    shared = _new(j, state="ACCEPTED")
    threads, per_thread = 6, 15
    start = threading.Barrier(threads)
    won: list[bool] = []
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait()
            for k in range(per_thread):
                i = _new(j, code=f"{t:06d}", bt_ref=k)
                j.record(i.id, {"state": "PARTIAL"}, notice=NoticeRow(f"n-{t}-{k}", f"{t}{k}", T0, 1, 1.0),
                         fill=_fill(f"f-{t}-{k}", f"{t}{k}", 1), event=("notice", f"{t}/{k}"))
                j.log("tick", f"{t}/{k}")
                if k % 5 == 0:        # every thread also delivers the same notice of the shared order
                    won.append(j.record(shared.id, {"state": "PARTIAL"},
                                        notice=NoticeRow(f"shared-{k}", "1", T0, 1, 1.0),
                                        fill=_fill(f"shared-{k}", "1", 1)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not errors, errors
    n = threads * per_thread
    assert len(j.intents_for_day(DAY)) == n + 1
    assert sum(won) == 3 and len(won) == 3 * threads, "each shared notice booked by exactly one thread"
    assert len(j.all_fills()) == n + 3 and j.totals(shared.id)[0] == 3
    assert len(j.events(kinds=["notice"])) == n and len(j.events(kinds=["tick"])) == n


# ---------------------------------------------------------------- unusable URLs and files
def test_files_are_owner_only_and_a_file_that_is_no_database_is_left_alone(tmp_path, opened):
    j = opened(f"sqlite:///{tmp_path / 'sub' / 'j.sqlite'}", scope=PAPER)
    j.log("x", "y")
    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE(os.stat(tmp_path / "sub" / f"j.sqlite{suffix}").st_mode) == 0o600, suffix
    notes = tmp_path / "notes.txt"
    notes.write_text("not a journal\n")
    os.chmod(notes, 0o644)
    with pytest.raises(InputError, match=r"broker.kis.journal_url 'sqlite:///.*notes.txt': cannot open it \(file is "
                                         r"not a database\)"):
        Journal(f"sqlite:///{notes}")
    assert stat.S_IMODE(os.stat(notes).st_mode) == 0o644 and notes.read_text() == "not a journal\n"


@pytest.mark.parametrize("url, says", [
    ("not a url", "is not a usable database URL"),
    ("postgresql+psycopg://trader:s3cret-pw@127.0.0.1:1/krx", "cannot open it"),
    ("mysql+pymysql://trader:s3cret-pw@127.0.0.1:1/krx", "is not installed"),
])
def test_an_unusable_url_is_one_message_naming_the_setting(url, says):
    with pytest.raises(InputError) as err:
        Journal(url)
    message = str(err.value)
    assert message.startswith("broker.kis.journal_url") and says in message
    assert "s3cret-pw" not in message and "\n" not in message


def test_a_journal_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="--journal 'sqlite:///.*file/j.sqlite': cannot create the journal file"):
        Journal(f"sqlite:///{tmp_path / 'file' / 'j.sqlite'}", what="--journal")
