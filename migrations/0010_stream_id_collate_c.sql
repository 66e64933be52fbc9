-- Stream ids compare byte by byte. They are machine slugs (`[a-z0-9_-]`, see LedgerId), where a linguistic
-- order means nothing, yet under the database's default collation (C.UTF-8 on PostgreSQL 15, a libc locale)
-- every B-tree comparison of two different ids went through strcoll: each appended event descends
-- events_stream_version_key and events_stream_transfer_key, and each appending statement the streams key,
-- comparing its stream id with a dozen others per index on the way. "C" makes those comparisons memcmp.
--
-- Equality is unchanged (both collations are deterministic), and the order is the one writers already
-- lock heads in (they sort stream ids by their bytes). Comparing these columns with text of the default
-- collation takes "C" without a conflict. The indexes on the columns are rebuilt; the table is not
-- rewritten (the type stays text).
alter table events alter column stream_id type text collate "C";
alter table streams alter column stream_id type text collate "C";
