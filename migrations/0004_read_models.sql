-- Read models, kept by the projector (and only by it) in their own schema. Every row carries the ledger
-- version that last changed it; amounts are numeric(39) because they are 128-bit integers.

create schema if not exists read;

create table read.ledgers (
    ledger_id text primary key,
    name text not null,
    created_at timestamptz not null,
    closed_through timestamptz,
    version bigint not null
);

create table read.accounts (
    ledger_id text not null,
    -- "C" collation so `code like 'assets:%'` and range scans for prefixes use the primary key index.
    code text collate "C" not null,
    account_type text not null,
    normal_side text not null,
    currency text not null,
    scale smallint not null,
    status text not null,
    floor numeric(39),
    ceiling numeric(39),
    metadata jsonb not null,
    debits_posted numeric(39) not null default 0,
    credits_posted numeric(39) not null default 0,
    debits_pending numeric(39) not null default 0,
    credits_pending numeric(39) not null default 0,
    version bigint not null,
    primary key (ledger_id, code)
);

create table read.transfers (
    ledger_id text not null,
    transfer_id uuid not null,
    status text not null,
    legs jsonb not null,
    posted_amounts jsonb,
    effective_at timestamptz not null,
    recorded_at timestamptz not null,
    expires_at timestamptz,
    description text not null,
    metadata jsonb not null,
    -- Corrections: a reversal names what it reverses; a rebook names what it corrects and why.
    reverses uuid,
    corrects uuid,
    reason text,
    reversed_by uuid,
    -- The version that created the transfer orders listings; `version` is the last change.
    created_version bigint not null,
    version bigint not null,
    primary key (ledger_id, transfer_id)
);

-- Transfer listings page by creation order.
create index transfers_by_creation on read.transfers (ledger_id, created_version);

-- Posted movements per account. `balance_after` is the running posted balance (normal side) in business
-- time order (effective_at, version, leg), so the balance as of any instant is one index lookup.
create table read.entries (
    ledger_id text not null,
    account text collate "C" not null,
    effective_at timestamptz not null,
    version bigint not null,
    leg int not null,
    transfer_id uuid not null,
    side text not null,
    amount numeric(39) not null,
    balance_after numeric(39) not null,
    recorded_at timestamptz not null,
    primary key (ledger_id, account, effective_at, version, leg)
);

-- Statement pages for "known at" reads filter by the version that recorded the entry.
create index entries_by_version on read.entries (ledger_id, account, version);

-- Posted debits and credits per account and business day (UTC).
create table read.daily_volumes (
    ledger_id text not null,
    account text collate "C" not null,
    day date not null,
    currency text not null,
    debits numeric(39) not null default 0,
    credits numeric(39) not null default 0,
    entries bigint not null default 0,
    primary key (ledger_id, account, day)
);

-- How far each projection has applied each ledger; updated in the same transaction as the read models,
-- so a crash can never apply an event twice or skip one.
create table read.checkpoints (
    projection text not null,
    ledger_id text not null,
    version bigint not null,
    position bigint not null,
    updated_at timestamptz not null default now(),
    primary key (projection, ledger_id)
);
