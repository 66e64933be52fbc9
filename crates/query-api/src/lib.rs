//! Query API: serves balances, statements and reports from the read models through a cache.
