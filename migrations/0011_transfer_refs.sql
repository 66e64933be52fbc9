-- The writer keeps only pending and recent transfers in memory and recalls any other from its events when a
-- command names it: the event that created a transfer is found by events_stream_transfer_key, the events
-- that changed it (posted, voided or expired it if pending, reversed it) by this index. Partial: those
-- events are rare, so appending ordinary transfers pays only for the predicate.
--
-- The expression mirrors `Event::changed_transfer` in crates/domain; the writer's recall tests
-- (crates/writer/tests) go through it for voided and reversed transfers.
create function tally_transfer_ref(event_type text, payload jsonb) returns uuid
language sql immutable parallel safe
as $$
    select case event_type
        when 'TransferReversed' then (payload -> 'reversal' ->> 'original')::uuid
        else (payload ->> 'id')::uuid
    end
$$;

create index events_transfer_ref on events (stream_id, tally_transfer_ref(event_type, payload))
    where event_type in ('PendingTransferPosted', 'PendingTransferVoided', 'PendingTransferExpired',
                         'TransferReversed');
