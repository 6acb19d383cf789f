"""Group commit: many small units of work share one transaction on one connection.

A support intake is a handful of small statements (find the contact, find or open the
conversation, insert the message, record the events); the commit costs more than all of
them. Requests submit their unit of work here and wait; each writer connection takes
everything that queued up for it while it was busy, runs it, inserts the rows the units
deferred (their outbox events) with one statement per table, commits once, and only then
answers every waiting request. Under light load a batch is one unit and nothing waits;
under heavy load batches grow and the cost of a commit is shared. A writer that ends a
batch with little waiting may pause a few milliseconds first (`gather_seconds`, on
PostgreSQL) so that the requests it just answered can come back and join the next one.

Units of one kind (`Batchable`: intake) also share their statements: the writer hands all
of them to one call, inside one SAVEPOINT, which looks up the senders, conversations and
repeats of the whole batch at once. If that call fails it is undone, and each unit runs
alone in its own SAVEPOINT, so a bad unit (or a unique key another process won meanwhile)
still fails alone. Units of other kinds always run alone in their own SAVEPOINT.

What keeps the statements themselves cheap (measured in docs/performance.md):

* `Prepared`: a Core statement compiled once per dialect and run straight on the DBAPI
  cursor. SQLAlchemy's per-execution machinery (building the statement, its cache key, an
  execution context, a CursorResult) costs more than SQLite takes to run the statement,
  and it runs under the GIL that the event loop serving the requests needs too.
* `MatchAny` and `InsertRows`: one statement for many lookups or many rows; on
  PostgreSQL one statement text for any number of them (arrays and unnest()), sent in
  psycopg's binary format.
* Lanes: with several writer connections, a unit with a key (the sender's identity)
  always goes to the same connection, so two open batches never wait on each other's
  row locks for the same contact and conversation (or deadlock on them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Engine, and_, bindparam, func, insert, literal_column, or_, select, true
from sqlalchemy import cast as sql_cast
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from frontdesk.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

UnitOfWork = Callable[[Connection], Any]

# Keys in Connection.info (the DBAPI connection's own dict) while a batch runs on it.
_CURSOR = "frontdesk.writer.cursor"
_DEFERRED = "frontdesk.writer.deferred"

# PostgreSQL's "deadlock detected" and "could not serialize": another process's transaction
# holds rows this batch needs while waiting for rows an earlier unit of this batch locked.
# Rolling back one unit's savepoint cannot break that cycle (the earlier units' locks stay),
# so the whole batch is rolled back and run again in a new transaction.
_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
_ATTEMPTS = 3  # a unit that lost a unique-key race runs again this often
_BATCH_ATTEMPTS = 5  # a batch that lost a deadlock runs again this often


class _BatchConflict(Exception):
    """A unit met a deadlock or serialization failure: the batch must start over."""


# --------------------------------------------------------------------- fast statements


class _Compiled:
    __slots__ = ("binds", "positional", "results", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if any(b.expanding or b.literal_execute for b in compiled.binds.values()):
            raise ValueError("A Prepared statement is compiled once: no expanding IN lists")
        self.sql: str = compiled.string
        self.positional = bool(dialect.positional)
        by_name: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():
            by_name.setdefault(name, bind)
        names = list(compiled.positiontup or ()) if self.positional else list(by_name)
        # (name, processor or None, default value or a marker that it is required)
        self.binds: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
        for name in names:
            bind = by_name[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None and _is_datetime(bind.type):
                # One converter per type for all statements: a unit's `now` then converts
                # once for the message, the conversation and the events alike.
                shared = (dialect.name, repr(bind.type))
                processor = _SHARED_DATETIME.setdefault(shared, _remember_last(processor))
            default = _REQUIRED if bind.required or bind.callable else bind.effective_value
            self.binds.append((name, processor, default))
        if dialect.name == "postgresql":
            # Arrays (core.writer.MatchAny, InsertRows) go in psycopg's binary format: in
            # text format every element is quoted and escaped in Python, ~2 ms for the
            # JSON payloads of one batch's events, against ~0.1 ms.
            for name in names:
                if isinstance(by_name[name].type, ARRAY):
                    self.sql = self.sql.replace(f"%({name})s", f"%({name})b")
        columns: Sequence[Any] = (compiled.effective_returning if compiled.isinsert
                                  or compiled.isupdate or compiled.isdelete
                                  else getattr(statement, "selected_columns", None)) or ()
        processors = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                      for c in columns]
        self.results = processors if any(processors) else None

    def parameters(self, params: Mapping[str, Any]) -> Any:
        values = []
        for name, processor, default in self.binds:
            value = params[name] if default is _REQUIRED else params.get(name, default)
            values.append(value if processor is None else processor(value))
        if self.positional:
            return values
        return dict(zip((b[0] for b in self.binds), values, strict=True))

    def process(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if self.results is None:
            return tuple(row)
        return tuple(v if p is None or v is None else p(v)
                     for p, v in zip(self.results, row, strict=True))


_REQUIRED = object()
_SHARED_DATETIME: dict[tuple[str, str], Callable[[Any], Any]] = {}


def _is_datetime(type_: Any) -> bool:
    try:
        return issubclass(type_.python_type, datetime)
    except NotImplementedError:
        return False


def _remember_last(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A unit stamps one `now` on half a dozen columns; convert it once, not each time.
    (Keyed by identity; the cell holds the value, so its id cannot be reused meanwhile.)"""
    last: list[tuple[Any, Any]] = [(_REQUIRED, None)]

    def process(value: Any) -> Any:
        seen, converted = last[0]
        if seen is value:
            return converted
        converted = processor(value)
        last[0] = (value, converted)
        return converted

    return process


class Prepared:
    """A Core statement compiled once per dialect and executed on the DBAPI cursor.

    Parameters are looked up by bind name (`bindparam("x")`), converted by the column
    types' own bind processors and results by their result processors, so values are
    stored and read exactly as through SQLAlchemy. No expanding IN lists (the statement is
    compiled once): give each variant its own Prepared."""

    __slots__ = ("_by_dialect", "_statement")

    def __init__(self, statement: ClauseElement | Callable[[Dialect], ClauseElement]) -> None:
        # A callable builds the statement for a dialect (for SQL that differs between them).
        self._statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _for(self, conn: Connection) -> _Compiled:
        key = conn.dialect.name
        compiled = self._by_dialect.get(key)
        if compiled is None:
            dialect = conn.dialect
            statement = self._statement
            if not isinstance(statement, ClauseElement):
                statement = statement(dialect)
            compiled = self._by_dialect[key] = _Compiled(statement, dialect)
        return compiled

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        compiled = self._for(conn)
        cursor = raw_cursor(conn)
        cursor.execute(compiled.sql, compiled.parameters(params))
        return cursor

    def one(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        compiled = self._for(conn)
        cursor = raw_cursor(conn)
        cursor.execute(compiled.sql, compiled.parameters(params))
        row = cursor.fetchone()
        return None if row is None else compiled.process(row)

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        compiled = self._for(conn)
        cursor = raw_cursor(conn)
        cursor.execute(compiled.sql, compiled.parameters(params))
        return [compiled.process(row) for row in cursor.fetchall()]

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        row = self.one(conn, params)
        return None if row is None else row[0]

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        compiled = self._for(conn)
        raw_cursor(conn).executemany(compiled.sql, [compiled.parameters(r) for r in rows])


class PreparedFamily:
    """One statement shape for n items (an OR of n lookups, a VALUES list of n rows); each
    size is built and compiled once, on first use. `build(n, dialect)` makes the statement.
    Lookups can pad a chunk to the next power of two (repeating an item changes nothing in
    an OR), so only a handful of sizes ever exist; inserts use exact sizes."""

    __slots__ = ("_build", "_members", "limit")

    def __init__(self, build: Callable[[int, Dialect], ClauseElement], *, limit: int = 64) -> None:
        self._build = build
        self._members: dict[int, Prepared] = {}
        self.limit = limit

    def __call__(self, n: int) -> Prepared:
        member = self._members.get(n)
        if member is None:
            if not 1 <= n <= self.limit:
                raise ValueError(f"{n} items: this statement takes 1 to {self.limit}")
            build = self._build
            member = self._members[n] = Prepared(lambda dialect: build(n, dialect))
        return member

    def chunks(self, items: Sequence[T], *, pad: bool = False) -> list[Sequence[T]]:
        """`items` cut into chunks the family takes; padded to a power of two if asked."""
        out: list[Sequence[T]] = []
        for start in range(0, len(items), self.limit):
            chunk = items[start:start + self.limit]
            if pad:
                size = 1
                while size < len(chunk):
                    size *= 2
                chunk = [*chunk, *[chunk[-1]] * (size - len(chunk))]
            out.append(chunk)
        return out


class MatchAny:
    """The rows of a query whose `keys` columns equal any of many tuples, in one statement.

    PostgreSQL joins the query to unnest() of one array per key column: the same statement
    text for any number of tuples, so psycopg parses it once and the server prepares and
    plans it once (an OR of 64 terms would be re-parsed and re-planned on every call).
    SQLite gets an OR of the tuples instead, one index probe each, compiled per
    power-of-two size; its statements are prepared in-process and cached by text."""

    __slots__ = ("_keys", "_ors", "_query", "_unnest")

    def __init__(self, query: Callable[[Dialect], Any],
                 keys: Callable[[Dialect], Sequence[Any]], *, limit: int = 64) -> None:
        self._query = query
        self._keys = keys
        self._unnest = Prepared(self._build_unnest)
        self._ors = PreparedFamily(self._build_or, limit=limit)

    def _build_unnest(self, dialect: Dialect) -> ClauseElement:
        keys = self._keys(dialect)
        arrays = [bindparam(f"key{i}", type_=ARRAY(key.type)) for i, key in enumerate(keys)]
        wanted = (func.unnest(*arrays).table_valued(*[f"k{i}" for i in range(len(keys))])
                  .render_derived(name="wanted"))
        # Each tuple is looked up on its own, in a LATERAL subquery that OFFSET 0 keeps
        # PostgreSQL from flattening into a join. As a join, the plan it caches for the
        # prepared statement depends on what it believes of the table's size when it makes
        # it: on a new database (tiny tables, no statistics yet) it read all of the table
        # and filtered, for every batch, for the life of the connection. Here each tuple's
        # keys are the inner query's parameters: an index probe, whatever the statistics.
        found = (self._query(dialect)
                 .where(and_(*[key == wanted.c[f"k{i}"] for i, key in enumerate(keys)]))
                 .offset(literal_column("0"))
                 .lateral("found"))
        query: ClauseElement = select(*found.c).select_from(wanted).join(found, true())
        return query

    def _build_or(self, n: int, dialect: Dialect) -> ClauseElement:
        keys = self._keys(dialect)
        query: ClauseElement = self._query(dialect).where(or_(*[
            and_(*[key == bindparam(f"key{i}_{j}") for i, key in enumerate(keys)])
            for j in range(n)
        ]))
        return query

    def rows(self, conn: Connection, tuples: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not tuples:
            return []
        if conn.dialect.name == "postgresql":
            width = len(tuples[0])
            return self._unnest.all(conn, {f"key{i}": [t[i] for t in tuples]
                                           for i in range(width)})
        found: list[tuple[Any, ...]] = []
        for chunk in self._ors.chunks(tuples, pad=True):
            params = {f"key{i}_{j}": value
                      for j, row in enumerate(chunk) for i, value in enumerate(row)}
            found.extend(self._ors(len(chunk)).all(conn, params))
        return found


def raw_cursor(conn: Connection) -> Any:
    """The DBAPI cursor of the running batch, or a new one outside a writer (the demo
    seeds with the same code on a plain connection)."""
    cursor = conn.info.get(_CURSOR)
    if cursor is None:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    return cursor


@contextlib.contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, the block's statements go out without waiting for each other's answer
    (psycopg's pipeline mode): those whose results nobody reads (a lock, an UPDATE, an
    INSERT without RETURNING) travel with the next one that is read, in one round trip.
    An error of any of them is raised at the latest when the block ends.

    Only for statements run on the raw cursor (Prepared, MatchAny, InsertRows): SQLAlchemy
    looks at a cursor's description right after executing, which pipeline mode only knows
    once the answer came back."""
    if conn.dialect.name != "postgresql":
        yield
        return
    with conn.connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
        yield


class InsertRows:
    """Many rows into one table with one statement where the database allows it, with
    the `returning` columns of every row (in no particular order: return a key with them).

    PostgreSQL: INSERT ... SELECT FROM unnest(one array per column) WITH ORDINALITY, in
    the rows' order: one round trip and one parameter per column however many rows there
    are (psycopg's executemany sends and encodes one statement per row, in Python, holding
    the GIL). JSON columns travel as text and are cast, or a JSON list inside a row would
    be taken for another dimension of the array. SQLite: executemany of the one-row
    INSERT, which sqlite3 loops in C; with `returning`, multi-row VALUES of up to 32 rows
    (executemany returns no rows)."""

    __slots__ = ("_columns", "_json", "_one", "_returning", "_table", "_unnest", "_values")

    def __init__(self, table: Any, columns: Sequence[str], *,
                 returning: Sequence[Any] = ()) -> None:
        self._table = table
        self._columns = tuple(columns)
        self._returning = tuple(returning)
        self._one = Prepared(insert(table).values({c: bindparam(c) for c in self._columns}))
        self._unnest = Prepared(self._build_unnest)
        self._values = PreparedFamily(self._build_values, limit=32)
        self._json: dict[str, frozenset[str]] = {}  # per dialect: the JSON columns

    def _is_json(self, name: str, dialect: Dialect) -> bool:
        # Asked for every column of every batch: dialect_impl() each time cost 4 % of the
        # writer thread on PostgreSQL.
        columns = self._json.get(dialect.name)
        if columns is None:
            columns = self._json[dialect.name] = frozenset(
                c for c in self._columns
                if isinstance(self._table.c[c].type.dialect_impl(dialect), sqltypes.JSON))
        return name in columns

    def _build_unnest(self, dialect: Dialect) -> ClauseElement:
        columns = self._table.c
        arrays = [bindparam(c, type_=ARRAY(sqltypes.Text if self._is_json(c, dialect)
                                           else columns[c].type)) for c in self._columns]
        rows = (func.unnest(*arrays).table_valued(*self._columns, with_ordinality="n")
                .render_derived(name="new_rows"))
        values = [sql_cast(rows.c[c], columns[c].type) if self._is_json(c, dialect)
                  else rows.c[c]
                  for c in self._columns]
        statement = insert(self._table).from_select(
            list(self._columns), select(*values).order_by(rows.c.n))
        return statement.returning(*self._returning) if self._returning else statement

    def _build_values(self, n: int, _dialect: Dialect) -> ClauseElement:
        columns = self._table.c
        # Typed binds: only the first row of a multi-row VALUES takes the columns' types.
        return insert(self._table).values([
            {c: bindparam(f"{c}_{i}", type_=columns[c].type) for c in self._columns}
            for i in range(n)
        ]).returning(*self._returning)

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        if not rows:
            return []
        if conn.dialect.name == "postgresql":
            params: dict[str, list[Any]] = {}
            for c in self._columns:
                values = [row[c] for row in rows]
                if self._is_json(c, conn.dialect):
                    values = [None if v is None else json.dumps(v) for v in values]
                params[c] = values
            if self._returning:
                return self._unnest.all(conn, params)
            self._unnest.execute(conn, params)
            return []
        if not self._returning:
            self._one.executemany(conn, rows)
            return []
        found: list[tuple[Any, ...]] = []
        for chunk in self._values.chunks(rows):
            found.extend(self._values(len(chunk)).all(conn, {
                f"{c}_{i}": row[c] for i, row in enumerate(chunk) for c in self._columns}))
        return found


def insert_later(conn: Connection, rows: InsertRows, row: Mapping[str, Any]) -> None:
    """Insert `row` when the unit's batch commits, with the rest of the batch's rows for
    the same table in one statement (outbox events: nothing reads them before the
    commit). Outside a writer this inserts at once; in a unit that fails, not at all."""
    deferred: list[tuple[InsertRows, Mapping[str, Any]]] | None = conn.info.get(_DEFERRED)
    if deferred is None:
        rows.run(conn, [row])
    else:
        deferred.append((rows, row))


# ------------------------------------------------------------------------- the writer


class Batchable(Protocol):
    """A unit of work that can also run together with others of its kind.

    `unit(conn)` runs it alone; `unit.together(conn, units)` runs a whole list of them (all
    of the batch that have the same `together`) and returns one result per unit, in order.
    It must be all or nothing: if it raises, the writer undoes what it did and runs each
    unit alone. Intake uses it to look up the senders and conversations of a whole batch
    with one statement each instead of one per message."""

    together: Callable[[Connection, list[Any]], Sequence[Any]]
    key: Hashable  # units with equal keys run in order on one connection (see submit)

    def __call__(self, conn: Connection) -> Any: ...



class _Pending:
    __slots__ = ("future", "unit")

    def __init__(self, unit: UnitOfWork, future: asyncio.Future[Any]) -> None:
        self.unit = unit
        self.future = future


class _Lane:
    """One writer connection: its queue, its thread, its task."""

    def __init__(self, index: int) -> None:
        self.pending: deque[_Pending] = deque()
        self.wake = asyncio.Event()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"frontdesk-writer-{index}")
        self.task: asyncio.Task[None] | None = None


class GroupCommitWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        connections: int = 1,
        max_batch: int = 512,
        on_commit: Callable[[], None] | None = None,
        gather_seconds: float = 0.0,
        gather_units: int = 16,
    ) -> None:
        self._engine = engine
        self._connections = max(1, connections)
        self._max_batch = max_batch
        self._gather_seconds = gather_seconds
        self._gather_units = gather_units
        self._on_commit = on_commit
        self._lanes: list[_Lane] = []
        self._closing = False

    async def start(self) -> None:
        self._closing = False
        for n in range(self._connections):
            lane = _Lane(n)
            lane.task = asyncio.create_task(self._run(lane), name=f"writer-{n}")
            self._lanes.append(lane)

    async def stop(self) -> None:
        self._closing = True
        for lane in self._lanes:
            lane.wake.set()
        for lane in self._lanes:
            assert lane.task is not None
            try:
                await asyncio.wait_for(lane.task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                lane.task.cancel()
            lane.executor.shutdown(wait=True)
        self._lanes.clear()

    async def submit(self, unit: Callable[[Connection], T], *, key: Hashable = None) -> T:
        """Run `unit` in the next batch and return its result once that batch committed.

        Units with the same `key` (say, the sender's identity; by default the unit's own
        `key` attribute) always run on the same connection, in the order submitted;
        without a key the least busy one is used."""
        lanes = self._lanes
        if self._closing or not lanes:
            raise ServiceUnavailable("The server is shutting down; retry shortly")
        if key is None:
            key = getattr(unit, "key", None)
        if len(lanes) == 1:
            lane = lanes[0]
        elif key is not None:
            lane = lanes[hash(key) % len(lanes)]
        else:
            lane = min(lanes, key=lambda candidate: len(candidate.pending))
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        lane.pending.append(_Pending(unit, future))
        lane.wake.set()
        return await future

    async def _run(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        executor = lane.executor
        connection: Connection | None = None
        loaded = False  # the last batch ran and more work was waiting when it ended
        try:
            while True:
                if not lane.pending:
                    if self._closing:
                        return
                    loaded = False
                    lane.wake.clear()
                    await lane.wake.wait()
                    continue
                pending = lane.pending
                if loaded and self._gather_seconds and len(pending) < self._gather_units:
                    # Under load the requests answered by the last batch come back within
                    # a few milliseconds; without this pause every batch took only the
                    # half that arrived while the other ran, and on PostgreSQL a half-full
                    # batch costs nearly as much as a full one (statements, the commit).
                    await asyncio.sleep(self._gather_seconds)
                loaded = True
                batch = [pending.popleft() for _ in range(min(self._max_batch, len(pending)))]
                try:
                    if connection is None:
                        connection = await loop.run_in_executor(executor, _connect, self._engine)
                    for attempt in range(1, _BATCH_ATTEMPTS + 1):
                        try:
                            outcomes = await loop.run_in_executor(
                                executor, self._run_batch, connection, batch
                            )
                            break
                        except _BatchConflict:
                            if attempt == _BATCH_ATTEMPTS:
                                raise
                            # The other transaction goes on once ours is rolled back; a
                            # random pause keeps two writers from meeting in step again.
                            log.info("batch of %d units lost a deadlock; running it again",
                                     len(batch))
                            await asyncio.sleep(random.uniform(0.001, 0.02) * attempt)
                except Exception as exc:  # the commit itself failed: nothing of it stands
                    log.warning("group commit of %d units failed: %s", len(batch), exc)
                    if connection is not None:
                        await loop.run_in_executor(executor, _discard, connection)
                        connection = None
                    failure = ServiceUnavailable("The database refused the write; retry shortly")
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(failure)
                    continue
                if self._on_commit is not None:
                    self._on_commit()
                for item, (ok, value) in zip(batch, outcomes, strict=True):
                    if item.future.done():  # the request was cancelled meanwhile
                        continue
                    if ok:
                        item.future.set_result(value)
                    else:
                        item.future.set_exception(value)
        finally:
            if connection is not None:
                await loop.run_in_executor(executor, connection.close)

    @staticmethod
    def _run_batch(connection: Connection, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any] | None] = [None] * len(batch)
        info = connection.info
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        dbapi = connection.dialect.loaded_dbapi
        deferred: list[tuple[InsertRows, Mapping[str, Any]]] = []
        info[_CURSOR] = cursor
        # Units that can run together (unit.together, see `Batchable`) do, one call for
        # all of them; the rest, and all of them if that call fails, run one by one.
        groups: dict[Any, list[int]] = {}
        for index, item in enumerate(batch):
            together = getattr(item.unit, "together", None)
            if together is not None:
                groups.setdefault(together, []).append(index)
        try:
            with contextlib.ExitStack() as commit_together, connection.begin():
                for index, item in enumerate(batch):
                    if outcomes[index] is not None:
                        continue
                    together = getattr(item.unit, "together", None)
                    members = groups.get(together) if together is not None else None
                    if members is not None and len(members) > 1:
                        ran = GroupCommitWriter._run_group(
                            connection, cursor, together, [batch[i].unit for i in members])
                        if ran is not None:
                            values, rows = ran
                            for member, value in zip(members, values, strict=True):
                                outcomes[member] = (True, value)
                            deferred.extend(rows)
                            continue
                    for member in members or (index,):
                        outcome = GroupCommitWriter._run_unit(
                            connection, cursor, dbapi, batch[member].unit)
                        outcomes[member] = outcome[:2]
                        if outcome[0]:
                            deferred.extend(outcome[2])
                # The deferred rows and the COMMIT in one round trip (the transaction ends
                # inside the pipeline: the ExitStack is left after `connection.begin()`).
                commit_together.enter_context(pipelined(connection))
                _insert_deferred(connection, deferred)
        finally:
            info.pop(_CURSOR, None)
            info.pop(_DEFERRED, None)
            cursor.close()
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(batch)
        return done

    @staticmethod
    def _run_group(
        connection: Connection, cursor: Any, together: Any, units: list[Any]
    ) -> tuple[list[Any], list[tuple[InsertRows, Mapping[str, Any]]]] | None:
        """All `units` in one call, inside one savepoint. None if it failed: then nothing
        of it stands and the caller runs each unit alone, in its own savepoint, so that a
        bad unit (or a unique key another process won meanwhile) fails alone as ever."""
        deferred: list[tuple[InsertRows, Mapping[str, Any]]] = []
        connection.info[_DEFERRED] = deferred
        cursor.execute("SAVEPOINT frontdesk_group")
        try:
            values = list(together(connection, units))
            if len(values) != len(units):
                raise RuntimeError(f"{len(units)} units gave {len(values)} results")
        except Exception as exc:
            if _is_conflict(exc, connection.dialect.loaded_dbapi):
                raise _BatchConflict from exc
            cursor.execute("ROLLBACK TO SAVEPOINT frontdesk_group")
            cursor.execute("RELEASE SAVEPOINT frontdesk_group")
            log.info("running %d units together failed (%s); running them one by one",
                     len(units), exc)
            return None
        cursor.execute("RELEASE SAVEPOINT frontdesk_group")
        return values, deferred

    @staticmethod
    def _run_unit(
        connection: Connection, cursor: Any, dbapi: Any, unit: UnitOfWork
    ) -> tuple[bool, Any, list[tuple[InsertRows, Mapping[str, Any]]]]:
        # Savepoints go straight to the cursor: through SQLAlchemy each costs as much as
        # the statements of a whole intake on SQLite. One name is enough: units don't nest.
        info = connection.info
        for attempt in range(1, _ATTEMPTS + 1):
            deferred: list[tuple[InsertRows, Mapping[str, Any]]] = []
            info[_DEFERRED] = deferred
            cursor.execute("SAVEPOINT frontdesk_unit")
            try:
                value = unit(connection)
            except Exception as exc:
                if _is_conflict(exc, dbapi):
                    raise _BatchConflict from exc
                cursor.execute("ROLLBACK TO SAVEPOINT frontdesk_unit")
                cursor.execute("RELEASE SAVEPOINT frontdesk_unit")
                # A unique key that another process won meanwhile (the same external id,
                # the same e-mail address) is a race, not an error: run the unit again and
                # it finds the row.
                if attempt < _ATTEMPTS and _is_unique_race(exc, dbapi):
                    continue
                return False, exc, []
            cursor.execute("RELEASE SAVEPOINT frontdesk_unit")
            return True, value, deferred
        raise AssertionError("unreachable")


# A writer connection runs only lookups by a key some index has (the sender's identities,
# their open conversations, repeated external ids) and inserts. PostgreSQL plans a statement
# prepared on a connection once, generically, when it first runs often: on a new database,
# with no statistics yet (or where autovacuum is off, as on the test machines), that plan
# was made while the tables were tiny, read the whole table and hashed it, and was kept for
# the connection's life, which is the process's. Measured: at 10,000 messages each batch's
# repeat check read every message, and PostgreSQL spent 0.9 ms of CPU per message instead
# of 0.6. MatchAny's LATERAL lookups are the main cure; without sequential scans and hash
# or merge joins no generic plan can fall back to reading a table. JIT off: a plan that
# still had to scan would carry the disabled scan's huge cost, which starts LLVM
# compilation (90 ms for one INSERT, measured) on every run.
_WRITER_SETTINGS_POSTGRESQL = ("SET enable_seqscan = off", "SET enable_hashjoin = off",
                               "SET enable_mergejoin = off", "SET jit = off")


def _connect(engine: Engine) -> Connection:
    connection = engine.connect()
    if connection.dialect.name == "postgresql":
        for statement in _WRITER_SETTINGS_POSTGRESQL:
            connection.exec_driver_sql(statement)
        connection.commit()
    return connection


def _discard(connection: Connection) -> None:
    """Drop a connection whose commit failed: its state is unknown, a new one is cheap."""
    try:
        connection.invalidate()
        connection.close()
    except Exception as exc:
        log.debug("closing a failed writer connection: %s", exc)


def _is_unique_race(exc: Exception, dbapi: Any) -> bool:
    return isinstance(exc, SAIntegrityError | dbapi.IntegrityError)


def _is_conflict(exc: Exception, dbapi: Any) -> bool:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(original, "sqlstate", None) in _CONFLICT_SQLSTATES


def _insert_deferred(
    connection: Connection, deferred: list[tuple[InsertRows, Mapping[str, Any]]]
) -> None:
    """One statement per table, keeping the units' order within each."""
    by_table: dict[int, tuple[InsertRows, list[Mapping[str, Any]]]] = {}
    for rows, row in deferred:
        entry = by_table.get(id(rows))
        if entry is None:
            by_table[id(rows)] = (rows, [row])
        else:
            entry[1].append(row)
    for rows, values in by_table.values():
        rows.run(connection, values)
