"""Schema by migrations only: a fresh database, an old bar cache upgraded in place, both backends.

The migrated schema must equal ``feeds/tables.py`` exactly (Alembic's own comparison finds no
difference), a cache written by the code before migrations (one ``bars`` table, no version table, the
key without ``adjusted``) upgrades in place keeping every bar and gaining its coverage, and a
database from a newer version is refused with a message.
"""

from datetime import date, datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from configs.errors import InputError
from migrations import migrate
from feeds.cache import BarCache
from feeds.tables import metadata


def _differences(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    return [d for d in diff if not (d[0] == "remove_table" and d[1].name.endswith("_version"))]


def _legacy_cache(url: str) -> None:
    """The bar cache exactly as feeds/cache.py created it before migrations (metadata.create_all)."""
    md = sa.MetaData()
    t = sa.Table("bars", md, sa.Column("code", sa.String(16), nullable=False),
                 sa.Column("timeframe", sa.String(8), nullable=False), sa.Column("datetime", sa.DateTime, nullable=False),
                 *(sa.Column(c, sa.BigInteger, nullable=False) for c in ("open", "high", "low", "close", "volume")),
                 sa.Column("source", sa.String(255), nullable=False), sa.Column("adjusted", sa.Boolean, nullable=False),
                 sa.PrimaryKeyConstraint("code", "timeframe", "datetime", name="pk_bars"))
    engine = sa.create_engine(url)
    md.create_all(engine)
    rows = [dict(code=code, timeframe="daily", datetime=datetime(2024, 1, d), open=100 + d, high=110 + d, low=90 + d,
                 close=105 + d, volume=1000 * d, source=f"csv:{code}", adjusted=code == "005930")
            for code in ("005930", "000660") for d in (2, 3, 4)]
    with engine.begin() as conn:
        conn.execute(sa.insert(t), rows)
    engine.dispose()


def test_fresh_database_gets_the_whole_schema(db_url):
    with BarCache(db_url) as cache:
        assert migrate.revision(cache.engine) == migrate.head() == "0004"
    assert _differences(db_url) == []


def test_old_cache_upgrades_in_place(db_url):
    _legacy_cache(db_url)
    with BarCache(db_url) as cache:                 # opening it is what upgrades it
        assert migrate.revision(cache.engine) == migrate.head()
        assert cache.row_count() == 6
        assert cache.sources() == {"005930": ("csv:005930", True), "000660": ("csv:000660", False)}
        df = cache.read("000660")
        assert df["close"].tolist() == [107, 108, 109] and df.index[0] == pd.Timestamp("2024-01-02")
        assert cache.coverage("005930", adjusted=True) == {"005930": [(date(2024, 1, 2), date(2024, 1, 4))]}
        assert cache.coverage("000660", adjusted=False) == {"000660": [(date(2024, 1, 2), date(2024, 1, 4))]}
        # the new key: the other series of the same days can now be stored beside the old one
        cache.write({"005930": df}, adjusted=False, source="orig")
        assert cache.row_count() == 9
    assert _differences(db_url) == []


def test_downgrade_and_upgrade_again(db_url):
    with BarCache(db_url) as cache:
        cache.write({"005930": pd.DataFrame({"open": [1], "high": [2], "low": [1], "close": [2], "volume": [5]},
                                            index=pd.DatetimeIndex([datetime(2024, 1, 2)], name="datetime"))})
        migrate.downgrade(cache.engine, "0001")
        assert migrate.revision(cache.engine) == "0001"
        migrate.upgrade(cache.engine)
        assert cache.row_count() == 1 and migrate.revision(cache.engine) == migrate.head()


def test_a_newer_database_is_refused(db_url):
    with BarCache(db_url) as cache:
        with cache.engine.begin() as conn:
            conn.execute(sa.text("update krx_data_version set version_num = '9999'"))
        migrate.forget(cache.engine)
    with pytest.raises(InputError, match="revision '9999', newer than this version"):
        BarCache(db_url)
