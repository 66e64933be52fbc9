-- A statement page shows each entry's transfer description. Reading it through a join cost one transfer
-- lookup per row (random pages of a table as large as the ledger: nine tenths of an uncached page's
-- time); kept on the entry, a page is one index range. Descriptions never change once recorded, so the copy
-- cannot go stale.
alter table read.entries add column description text not null default '';

update read.entries e
set description = t.description
from read.transfers t
where t.ledger_id = e.ledger_id and t.transfer_id = e.transfer_id and t.description <> '';
