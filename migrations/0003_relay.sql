-- The outbox relay: where each relay has published up to, and a wake-up call when events are appended.

create table relay_checkpoints (
    relay text primary key,
    -- The position of the last event published with a confirm; the next read of the global log starts
    -- after it (see EventStore::read_all for why this is an event's position, not a high-water mark).
    position bigint not null,
    updated_at timestamptz not null default now()
);

-- Wakes the relay as soon as an append commits (notifications are delivered at commit and collapsed per
-- transaction), so it need not poll the table in a tight loop.
create function events_notify_append() returns trigger
language plpgsql as $$
begin
    perform pg_notify('tally_events', '');
    return null;
end
$$;

create trigger events_notify_append
    after insert on events
    for each statement execute function events_notify_append();
