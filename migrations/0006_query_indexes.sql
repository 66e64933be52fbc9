-- Indexes for the query API (issue 6).

-- Live updates and cache refreshes look for the transfers a range of ledger versions changed (a post or
-- void of a pending transfer, a reversal, changes an old row), not only the ones it created.
create index transfers_by_version on read.transfers (ledger_id, version);
