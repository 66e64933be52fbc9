-- The event store: the append-only log of every change, the per-stream heads used for optimistic
-- concurrency, and the guard that keeps recorded events from being edited.

create table events (
    -- The global order of the log. Readers of the whole log page by (tx, position), see events_log_order.
    position bigint generated always as identity primary key,
    stream_id text not null,
    -- Dense per stream, starting at 1: a gap is how verification detects a deleted event.
    version bigint not null check (version >= 1),
    event_id uuid not null,
    event_type text not null,
    schema_version int not null check (schema_version >= 1),
    payload jsonb not null,
    -- actor, client, correlation_id, causation_id, traceparent: who did it, from where, and why.
    metadata jsonb not null,
    recorded_at timestamptz not null,
    -- Set only on events that create a transfer; see events_stream_transfer_key.
    transfer_id uuid,
    -- hash = sha256(prev_hash || canonical event bytes); the first event of a stream chains from 32 zero
    -- bytes. The encoding is documented in crates/eventstore/src/hash.rs.
    prev_hash bytea not null check (octet_length(prev_hash) = 32),
    hash bytea not null check (octet_length(hash) = 32),
    -- The writing transaction. Readers of the global log return only events of transactions older than the
    -- oldest one still in flight, so an event that commits late with a lower position is never skipped.
    tx xid8 not null default pg_current_xact_id(),
    -- A retried append of the same events must not take effect twice.
    constraint events_event_id_key unique (event_id),
    -- Two writers racing for the same slot of a stream: only one may win. Also serves reads of a stream.
    constraint events_stream_version_key unique (stream_id, version)
);

-- A transfer id is the client's idempotency key: it takes effect at most once per ledger, forever, whichever
-- process or transaction tries it. Partial, because most events carry no transfer.
create unique index events_stream_transfer_key on events (stream_id, transfer_id)
    where transfer_id is not null;

-- The order in which the global log is read (commit-safe: see EventStore::read_all), so a page is an index
-- range scan instead of a sort of the whole table.
create index events_log_order on events (tx, position);

-- Recorded events are never edited: corrections are new events. This guard stops ordinary writes, including
-- mistakes made by hand in psql. It is not a security boundary (the table owner can drop a trigger); the
-- hash chain is what makes tampering detectable. The escape hatch `set local tally.allow_tamper = 'on'`
-- exists so tests can simulate an attacker and check that verification catches the edit.
create function events_reject_changes() returns trigger
language plpgsql as $$
begin
    if current_setting('tally.allow_tamper', true) = 'on' then
        if tg_op = 'DELETE' then
            return old;
        end if;
        return new;
    end if;
    raise exception 'events are immutable: % is not allowed on events', tg_op
        using errcode = 'restrict_violation',
              hint = 'append a correcting event instead';
end
$$;

create trigger events_immutable
    before update or delete on events
    for each row execute function events_reject_changes();

-- Row triggers do not fire on truncate.
create trigger events_immutable_truncate
    before truncate on events
    for each statement execute function events_reject_changes();

-- One row per stream: its current version and the hash of its last event. Appenders lock this row, so
-- writers of one stream are serialised and a stale expected version is detected in one lookup; the next
-- event's prev_hash is read here rather than from the events table.
create table streams (
    stream_id text primary key,
    version bigint not null check (version >= 0),
    head_hash bytea not null check (octet_length(head_hash) = 32),
    -- The transaction that last appended. An append from an older transaction is refused, so a stream's
    -- versions follow the (tx, position) order in which the global log is read.
    last_tx xid8 not null default pg_current_xact_id(),
    updated_at timestamptz not null default now()
);
