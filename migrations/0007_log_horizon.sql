-- The horizon of the global log, decided by the event store's own writers only.
--
-- Readers of the log (the relay) must never pass an event that commits later with a lower (tx, position).
-- They used to read below the oldest transaction in flight anywhere on the server
-- (pg_snapshot_xmin(pg_current_snapshot())), so any write transaction in any database, the projector's
-- included, held the log back while it ran. The horizon is now the oldest transaction in flight that can
-- still add events: one holding a row-exclusive lock on `events` (tally_log_horizon).
--
-- That is only sound if a transaction holds the lock before it has a transaction id: a transaction that got
-- its id first and took the lock later could be passed over in between and then commit events below the
-- horizon. tally_claim_log takes the lock while the transaction has no id yet, and remembers it in a
-- transaction-local setting; if the transaction already has an id without having claimed, it refuses.
-- tally_append claims before it takes its id, and a statement trigger makes every other insert into
-- `events` claim too (an INSERT holds the lock from its start, before its first row takes an id).

create function tally_claim_log() returns void
language plpgsql as $$
begin
    if current_setting('tally.log_claimed', true) = 'on' then
        return;
    end if;
    if pg_current_xact_id_if_assigned() is not null then
        raise exception 'this transaction wrote before it appended events'
            using errcode = '55000',
                  hint = 'append first, or call tally_claim_log() before writing anything else';
    end if;
    lock table events in row exclusive mode;
    perform set_config('tally.log_claimed', 'on', true);
end
$$;

create function events_claim_log() returns trigger
language plpgsql as $$
begin
    perform tally_claim_log();
    return null;
end
$$;

create trigger events_claim_log
    before insert on events
    for each statement execute function events_claim_log();

-- Everything in the log below this transaction id is final: no transaction that can still add events has a
-- lower id. Call it in a statement of its own, and read the log in a later statement (a newer snapshot): a
-- writer that ends between this statement's snapshot and its look at the locks is then visible to the read.
-- The oldest writer is found among the snapshot's in-flight ids, by the locks of its virtual transaction;
-- with none, the horizon is the snapshot's xmax (every id below it has ended).
create function tally_log_horizon() returns xid8
language sql volatile as $$
    select coalesce(
        (select min(x)
         from pg_snapshot_xip(snap.s) as x
         where x::xid in (
             select t.transactionid
             from pg_locks r
             join pg_locks t on t.virtualtransaction = r.virtualtransaction and t.locktype = 'transactionid'
             where r.locktype = 'relation'
               and r.database = (select oid from pg_database where datname = current_database())
               and r.relation = 'events'::regclass
               and r.mode = 'RowExclusiveLock')),
        pg_snapshot_xmax(snap.s))
    from (select pg_current_snapshot() as s) as snap
$$;

-- tally_append as in 0005, except that it claims its place in the log before it takes its transaction id.
create or replace function tally_append(
    p_streams text[],
    p_expected bigint[],
    p_prev_hash bytea[],
    p_head_after bytea[],
    p_counts int[],
    -- One entry per event, streams' events concatenated in the order of p_streams.
    p_event_stream int[],
    p_versions bigint[],
    p_event_ids uuid[],
    p_event_types text[],
    p_schema_versions int[],
    p_payloads jsonb[],
    p_metadatas jsonb[],
    p_recorded_ats timestamptz[],
    p_transfer_ids uuid[],
    p_prev_hashes bytea[],
    p_hashes bytea[]
) returns table (stream_index int, status text, version bigint, head_hash bytea, positions bigint[])
language plpgsql as $$
declare
    me xid8;
    genesis constant bytea := decode(repeat('00', 32), 'hex');
    n int := coalesce(array_length(p_streams, 1), 0);
    accepted int[] := '{}';
    i int;
    v bigint;
    h bytea;
    in_order boolean;
begin
    -- The place in the log comes first, the transaction id second: see tally_claim_log.
    perform tally_claim_log();
    me := pg_current_xact_id();
    for i in 1 .. n loop
        if p_expected[i] = 0 then
            insert into streams (stream_id, version, head_hash) values (p_streams[i], 0, genesis)
            on conflict (stream_id) do nothing;
            if not found then
                select s.version into v from streams s where s.stream_id = p_streams[i];
                return query select i, 'conflict'::text, coalesce(v, 0), null::bytea, null::bigint[];
                continue;
            end if;
            h := genesis;
        else
            select s.version, s.head_hash, s.last_tx <= me into v, h, in_order
            from streams s where s.stream_id = p_streams[i] for no key update;
            if not found then
                return query select i, 'conflict'::text, 0::bigint, null::bytea, null::bigint[];
                continue;
            end if;
            if v <> p_expected[i] then
                return query select i, 'conflict'::text, v, null::bytea, null::bigint[];
                continue;
            end if;
            if not in_order then
                return query select i, 'stale'::text, v, null::bytea, null::bigint[];
                continue;
            end if;
        end if;
        if p_prev_hash[i] is distinct from h then
            -- A claimed stream's placeholder must not outlive this statement unless it is appended to: no
            -- committed head row may say 0 (the caller only retries with the genesis hash, which matches).
            if p_expected[i] = 0 then
                delete from streams s where s.stream_id = p_streams[i] and s.version = 0;
            end if;
            return query select i, 'hash'::text, p_expected[i], h, null::bigint[];
            continue;
        end if;
        accepted := accepted || i;
    end loop;

    if cardinality(accepted) = 0 then
        return;
    end if;

    -- `order by` makes positions ascend with versions within each stream.
    return query
    with inserted as (
        insert into events (stream_id, version, event_id, event_type, schema_version, payload, metadata,
                            recorded_at, transfer_id, prev_hash, hash)
        select p_streams[b.idx], b.version, b.event_id, b.event_type, b.schema_version, b.payload,
               b.metadata, b.recorded_at, b.transfer_id, b.prev_hash, b.hash
        from unnest(p_event_stream, p_versions, p_event_ids, p_event_types, p_schema_versions, p_payloads,
                    p_metadatas, p_recorded_ats, p_transfer_ids, p_prev_hashes, p_hashes)
             as b (idx, version, event_id, event_type, schema_version, payload, metadata, recorded_at,
                   transfer_id, prev_hash, hash)
        where b.idx = any (accepted)
        order by b.idx, b.version
        returning events.stream_id, events.version, events.position
    )
    select a.idx, 'ok'::text, p_expected[a.idx] + p_counts[a.idx], p_head_after[a.idx],
           array_agg(ins.position order by ins.version)
    from unnest(accepted) as a (idx)
    join inserted ins on ins.stream_id = p_streams[a.idx]
    group by a.idx;

    update streams s
    set version = p_expected[a.idx] + p_counts[a.idx], head_hash = p_head_after[a.idx], last_tx = me,
        updated_at = now()
    from unnest(accepted) as a (idx)
    where s.stream_id = p_streams[a.idx];
end
$$;
