-- Snapshots hold the JSON text of a ledger's state as bytes. They are written far more often than they are
-- read (the writer saves one whenever the state has doubled; a writer reads one only when it starts), and
-- are only ever read whole and parsed in Rust. Parsing each multi-megabyte state into jsonb on insert cost
-- PostgreSQL more CPU than the appends it was saving time for (a profile of the append benchmark: ~16 % of
-- the machine in jsonb_in), and even `json` validates the text, at plan time and again at execution.
-- lz4 compresses the toasted bytes several times faster than the default pglz.
-- Code that still binds jsonb here fails to save its snapshot, which only makes its next load slower.
alter table snapshots alter column state type bytea using convert_to(state::text, 'UTF8');
alter table snapshots alter column state set compression lz4;
