-- Announced appends: a writer may send a stream's next batch before the previous one has even started.
--
-- A writer pipelines the batches of one stream: the next batch is chained on the head the previous one
-- will leave (StreamAppend::expected_head) and waits for it on the head row's lock. It used to be sent only
-- once the previous statement had run, since before that the previous batch might not hold the head row
-- yet, and the chained batch would find the old head and fail. So the next batch's parameters (a thousand
-- events' payloads to parse) were taken in only after the previous batch's inserts, one after the other.
--
-- Now a transaction first announces the versions it will produce (tally_announce, a quick statement of its
-- own), then appends. An append that finds a head behind its expected version waits until the announcing
-- transaction ends, then decides as before. So the next batch can be sent as soon as the announcement
-- returns, and PostgreSQL parses it while the previous batch inserts.
--
-- The announcement also claims the log and takes the transaction id (tally_claim_log), so a batch sent
-- after it always has a later transaction id than its predecessor: chained batches are never `stale`.

-- The advisory lock key of "the append that brings `p_stream` to `p_version`". A collision costs a wait
-- for an unrelated transaction, never a wrong answer.
create function tally_append_key(p_stream text, p_version bigint) returns bigint
language sql immutable parallel safe as $$
    select hashtextextended(p_stream, p_version)
$$;

-- Announces, for each stream, the version this transaction's append will bring it to. Call it as the
-- transaction's first statement. Never waits: a key already held means another transaction is producing
-- the same version, and one of the two appends will be refused anyway.
create function tally_announce(p_streams text[], p_versions_after bigint[]) returns void
language plpgsql as $$
begin
    perform tally_claim_log();
    perform pg_current_xact_id();
    perform pg_try_advisory_xact_lock(tally_append_key(s, v))
    from unnest(p_streams, p_versions_after) as a (s, v);
end
$$;

-- tally_append as in 0007, waiting for an announced predecessor before it locks any head.
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
    k bigint;
begin
    -- The place in the log comes first, the transaction id second: see tally_claim_log.
    perform tally_claim_log();
    me := pg_current_xact_id();
    -- A head behind the expected version may be an announced predecessor still on its way: wait for its
    -- transaction to end, before locking any head (a waiter holding a head could deadlock with it). No
    -- announcement, no wait: the version check below then refuses the append as before.
    for k in
        select tally_append_key(s.stream_id, e.expected)
        from unnest(p_streams, p_expected) as e (stream_id, expected)
        join streams s on s.stream_id = e.stream_id
        where s.version < e.expected
    loop
        perform pg_advisory_xact_lock_shared(k);
    end loop;
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
