-- Each account keeps the business time of the last entry of its statement. Before booking a group of
-- postings the projector needs, per account, that time (to tell an appended entry from a backdated one)
-- and the running balance after it, which is the account's net posted total. It used to find the last
-- entry with an ordered, limit-1 lookup in `read.entries`, which the planner could answer from either of
-- two indexes; with statistics from when the table was small it cached the one that scans and sorts the
-- whole statement, and a group's lookup grew with the account (up to 150 ms under the benchmark's load).
-- Kept on the account row, it is one primary-key read whatever the plan. Entries booked later at the same
-- business time have higher versions, so they still follow it.
alter table read.accounts add column last_entry_at timestamptz;

update read.accounts a
set last_entry_at = e.at
from (select ledger_id, account, max(effective_at) as at from read.entries group by ledger_id, account) e
where e.ledger_id = a.ledger_id and e.account = a.code;
