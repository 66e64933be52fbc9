//! Command API: decides ledger commands through the group-commit writer and answers over HTTPS.
