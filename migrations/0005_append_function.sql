-- Appending in one statement. An append used to be five round trips (begin, lock the head, insert, move
-- the head, commit); with this function it is one call plus commit, and one call can append to several
-- streams, so the writer can group-commit batches of many ledgers in one transaction.
--
-- The caller (crates/eventstore/src/store.rs, the only writer of `events`) computes versions and the hash
-- chain; it passes, per stream, the head hash its events chain from. The function checks, per stream and in
-- the order given (callers sort by stream id, so concurrent callers lock heads in one order and cannot
-- deadlock):
--   - the expected version against the head row, which it locks until the transaction ends ('conflict',
--     with the actual version; a new stream is claimed with a placeholder row at version 0);
--   - that no younger transaction appended to the stream ('stale');
--   - that the head hash is the one the events chain from ('hash', with the actual head: the row is locked
--     by now, so the caller recomputes the chain and calls again for that stream in the same transaction).
-- Streams that pass have their events inserted (one insert for all) and their heads moved (one update); the
-- others are left untouched, so one stream's conflict never fails the others. A unique violation (a
-- transfer id or event id already recorded) raises, which rolls back the whole statement: the caller then
-- appends each stream on its own to find the offender.

create function tally_append(
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
    me xid8 := pg_current_xact_id();
    genesis constant bytea := decode(repeat('00', 32), 'hex');
    n int := coalesce(array_length(p_streams, 1), 0);
    accepted int[] := '{}';
    i int;
    v bigint;
    h bytea;
    in_order boolean;
begin
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
