-- Snapshots of a stream's folded state, so a writer or a replay starts from the latest one instead of
-- from the first event of a long stream.

create table snapshots (
    stream_id text not null,
    -- The stream version the state includes: replay resumes after it.
    version bigint not null check (version >= 1),
    -- The shape of `state`, so a reader can discard a snapshot it no longer understands and replay instead.
    schema_version int not null check (schema_version >= 1),
    state jsonb not null,
    created_at timestamptz not null default now(),
    -- One snapshot per stream version; the latest is the first entry of this index for the stream.
    primary key (stream_id, version)
);
