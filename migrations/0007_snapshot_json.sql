-- Snapshots are written far more often than they are read (the writer saves one whenever the state has
-- grown by half; a writer reads one only when it starts), and they are only ever read whole and parsed in
-- Rust. Parsing each multi-megabyte state into jsonb on insert cost PostgreSQL more CPU than the appends it
-- was saving time for (a profile of the append benchmark: ~16 % of the machine in jsonb_in). `json` only
-- validates the text. lz4 compresses the toasted text several times faster than the default pglz.
-- Both casts between json and jsonb are assignment casts, so code written for the jsonb column still works.
alter table snapshots alter column state type json using state::json;
alter table snapshots alter column state set compression lz4;
