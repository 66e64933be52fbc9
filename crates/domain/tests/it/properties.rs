//! Properties over random command sequences: the ledger balances, limits hold, ids take effect once,
//! frozen and closed accounts refuse postings, and replaying the events rebuilds the state exactly.

use crate::fixtures::*;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tally_domain::*;

/// (code, type, currency, scale, floor, ceiling)
type AccountRow = (
    &'static str,
    AccountType,
    &'static str,
    u8,
    Option<i128>,
    Option<i128>,
);

const ACCOUNTS: &[AccountRow] = &[
    ("assets:cash", AccountType::Asset, "USD", 2, Some(0), None),
    (
        "assets:bank",
        AccountType::Asset,
        "USD",
        2,
        Some(0),
        Some(50_000),
    ),
    (
        "liabilities:card",
        AccountType::Liability,
        "USD",
        2,
        Some(-1_000),
        None,
    ),
    ("equity:capital", AccountType::Equity, "USD", 2, None, None),
    ("revenue:sales", AccountType::Revenue, "USD", 2, None, None),
    ("assets:btc", AccountType::Asset, "BTC", 8, Some(0), None),
    ("equity:btc", AccountType::Equity, "BTC", 8, None, None),
];

#[derive(Debug, Clone)]
enum Op {
    /// Two legs between accounts of one currency; the common case, likely to be accepted.
    Move {
        id: u8,
        from: u8,
        to: u8,
        btc: bool,
        amount: i128,
        pending: Option<i64>,
        back: u16,
    },
    /// Arbitrary legs; mostly refused, which exercises the validation paths.
    Legs {
        id: u8,
        legs: Vec<(u8, bool, i128)>,
        pending: Option<i64>,
    },
    /// Sends an earlier transfer command again, verbatim.
    Repeat {
        index: usize,
    },
    /// Sends an earlier reversal or correction again, verbatim.
    RepeatCorrection {
        index: usize,
    },
    Post {
        id: u8,
        percent: Option<u8>,
    },
    Void {
        id: u8,
    },
    Expire {
        id: u8,
    },
    Advance {
        secs: i64,
    },
    Reverse {
        id: u8,
        original: u8,
    },
    Rebook {
        id: u8,
        original: u8,
        amount: i128,
    },
    Freeze {
        account: u8,
    },
    Unfreeze {
        account: u8,
    },
    Close {
        account: u8,
    },
    SetFloor {
        account: u8,
        floor: i128,
    },
    ClosePeriod {
        back: u16,
    },
}

fn amount() -> impl Strategy<Value = i128> {
    prop_oneof![
        20 => 1i128..10_000,
        1 => (i128::MAX / 2)..=i128::MAX,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u8..24;
    let account = 0u8..ACCOUNTS.len() as u8;
    prop_oneof![
        12 => (id.clone(), 0u8..5, 0u8..5, any::<bool>(), amount(), proptest::option::weighted(0.3, 1i64..120), 0u16..400)
            .prop_map(|(id, from, to, btc, amount, pending, back)| Op::Move { id, from, to, btc, amount, pending, back }),
        2 => (id.clone(), proptest::collection::vec((account.clone(), any::<bool>(), amount()), 0..5), proptest::option::of(1i64..120))
            .prop_map(|(id, legs, pending)| Op::Legs { id, legs, pending }),
        2 => (0usize..64).prop_map(|index| Op::Repeat { index }),
        1 => (0usize..16).prop_map(|index| Op::RepeatCorrection { index }),
        3 => (id.clone(), proptest::option::of(1u8..=100)).prop_map(|(id, percent)| Op::Post { id, percent }),
        1 => id.clone().prop_map(|id| Op::Void { id }),
        1 => id.clone().prop_map(|id| Op::Expire { id }),
        2 => (1i64..90).prop_map(|secs| Op::Advance { secs }),
        2 => (id.clone(), id.clone()).prop_map(|(id, original)| Op::Reverse { id, original }),
        1 => (id.clone(), id, amount()).prop_map(|(id, original, amount)| Op::Rebook { id, original, amount }),
        1 => account.clone().prop_map(|account| Op::Freeze { account }),
        1 => account.clone().prop_map(|account| Op::Unfreeze { account }),
        1 => account.clone().prop_map(|account| Op::Close { account }),
        1 => (account, -2_000i128..2_000).prop_map(|(account, floor)| Op::SetFloor { account, floor }),
        1 => (0u16..400).prop_map(|back| Op::ClosePeriod { back }),
    ]
}

fn account_code(i: u8) -> AccountCode {
    code(ACCOUNTS[i as usize % ACCOUNTS.len()].0)
}

fn account_leg(i: u8, debit: bool, amount: i128) -> LegSpec {
    let (c, _, currency, ..) = ACCOUNTS[i as usize % ACCOUNTS.len()];
    leg(
        c,
        if debit { Side::Debit } else { Side::Credit },
        amount,
        currency,
    )
}

struct Model {
    ledger: Ledger,
    /// The same ledger kept the writer's way: settled transfers forgotten after every command, and
    /// recalled from the log when a command names them.
    forgetful: Ledger,
    log: Vec<Event>,
    now: DateTime<Utc>,
    sent: Vec<CommandKind>,
    corrections: Vec<CommandKind>,
}

impl Model {
    fn new() -> Self {
        let mut model = Self {
            ledger: Ledger::default(),
            forgetful: Ledger::default(),
            log: Vec::new(),
            now: t(1_000),
            sent: Vec::new(),
            corrections: Vec::new(),
        };
        model.must(CommandKind::CreateLedger {
            name: "prop".into(),
        });
        for (c, account_type, currency, scale, floor, ceiling) in ACCOUNTS {
            model.must(CommandKind::OpenAccount {
                code: code(c),
                account_type: *account_type,
                currency: Currency::new(cur(currency), *scale).expect("valid currency"),
                limits: Limits::new(*floor, *ceiling).expect("valid limits"),
                metadata: Metadata::default(),
            });
        }
        // Seed money so that spending is possible.
        model.must(CommandKind::RecordTransfer(spec(
            1_000,
            vec![
                debit("assets:cash", 20_000),
                credit("equity:capital", 20_000),
            ],
        )));
        model.must(CommandKind::RecordTransfer(spec(
            1_001,
            vec![
                leg("assets:btc", Side::Debit, 500_000, "BTC"),
                leg("equity:btc", Side::Credit, 500_000, "BTC"),
            ],
        )));
        model
    }

    fn must(&mut self, kind: CommandKind) {
        let r = self.run(kind);
        assert!(r.is_ok(), "setup command refused: {r:?}");
    }

    fn run(&mut self, kind: CommandKind) -> Result<Vec<Event>, DomainError> {
        let command = Command::new(kind, self.now);
        let result = decide(&self.ledger, &command);
        let named: Vec<TransferId> = command
            .kind
            .existing_transfers()
            .into_iter()
            .chain(command.kind.created_transfers())
            .filter(|id| self.forgetful.transfer(id).is_none())
            .collect();
        self.forgetful.recall(&named, history_of(&self.log, &named));
        assert_eq!(
            decide(&self.forgetful, &command),
            result,
            "a ledger that forgot and recalled transfers decides otherwise"
        );
        if let Ok(events) = &result {
            for e in events {
                apply(&mut self.ledger, e);
                apply(&mut self.forgetful, e);
                self.log.push(e.clone());
            }
            assert_eq!(
                self.forgetful.outcomes(&command.kind),
                self.ledger.outcomes(&command.kind),
                "a ledger that forgot and recalled transfers answers otherwise"
            );
        }
        self.forgetful.forget_settled(2, self.forgetful.version);
        let settled = self
            .forgetful
            .transfers
            .values()
            .filter(|r| r.status != TransferStatus::Pending)
            .count();
        assert!(settled <= 2, "{settled} settled transfers kept");
        result
    }

    fn transfer_command(&self, op: &Op) -> Option<CommandKind> {
        let effective = |back: u16| Some(self.now - chrono::Duration::seconds(i64::from(back)));
        match op {
            Op::Move {
                id: n,
                from,
                to,
                btc,
                amount,
                pending,
                back,
            } => {
                let (from, to) = if *btc {
                    (5 + from % 2, 5 + to % 2)
                } else {
                    (*from, *to)
                };
                let mut s = spec(
                    u128::from(*n),
                    vec![
                        account_leg(from, false, *amount),
                        account_leg(to, true, *amount),
                    ],
                );
                s.pending = pending.map(|timeout_secs| PendingSpec { timeout_secs });
                s.effective_at = if *back > 0 { effective(*back) } else { None };
                Some(CommandKind::RecordTransfer(s))
            }
            Op::Legs {
                id: n,
                legs,
                pending,
            } => {
                let mut s = spec(
                    u128::from(*n),
                    legs.iter()
                        .map(|(a, d, amt)| account_leg(*a, *d, *amt))
                        .collect(),
                );
                s.pending = pending.map(|timeout_secs| PendingSpec { timeout_secs });
                Some(CommandKind::RecordTransfer(s))
            }
            Op::Repeat { index } if !self.sent.is_empty() => {
                Some(self.sent[index % self.sent.len()].clone())
            }
            _ => None,
        }
    }
}

/// What the event store hands the writer to recall `ids`: the events that create or change them and their
/// companions, with versions, in stream order.
fn history_of(log: &[Event], ids: &[TransferId]) -> Vec<(u64, Event)> {
    let version = |i: usize| i as u64 + 1;
    let names = |e: &Event| {
        e.created_transfer()
            .into_iter()
            .chain(e.changed_transfer())
            .any(|t| ids.contains(&t))
    };
    let mut wanted: BTreeSet<u64> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| names(e))
        .map(|(i, _)| version(i))
        .collect();
    let companions: Vec<Companion> = wanted
        .iter()
        .filter_map(|v| log[*v as usize - 1].recall_companion(*v))
        .collect();
    for companion in companions {
        match companion {
            Companion::Version(v) if v as usize <= log.len() => {
                wanted.insert(v);
            }
            Companion::Version(_) => {}
            Companion::Created(t) => wanted.extend(
                log.iter()
                    .enumerate()
                    .filter(|(_, e)| e.created_transfer() == Some(t))
                    .map(|(i, _)| version(i)),
            ),
        }
    }
    wanted
        .into_iter()
        .map(|v| (v, log[v as usize - 1].clone()))
        .collect()
}

fn step(model: &mut Model, op: &Op) {
    let reversal = |n: u8, original: u8| ReversalSpec {
        id: id(u128::from(n)),
        original: id(u128::from(original)),
        reason: reason("test"),
        effective_at: None,
    };
    if let Some(kind) = model.transfer_command(op) {
        let CommandKind::RecordTransfer(s) = &kind else {
            unreachable!("transfer_command builds transfers")
        };
        let before = model.ledger.transfer(&s.id).cloned();
        let blocked = s.legs.iter().any(|l| {
            model
                .ledger
                .account(&l.account)
                .is_some_and(|a| a.status != AccountStatus::Open)
        });
        model.sent.push(kind.clone());
        let result = model.run(kind.clone());
        match before {
            Some(original) if original.request == TransferRequest::Transfer(s.clone()) => {
                assert_eq!(result, Ok(vec![]), "an exact retry takes no effect");
                assert_eq!(
                    model.ledger.outcomes(&kind),
                    vec![original.outcome],
                    "a retry answers the original outcome"
                );
            }
            Some(_) => assert!(
                matches!(result, Err(DomainError::TransferIdConflict { .. })),
                "another body under a used id is a conflict: {result:?}"
            ),
            None if blocked => {
                assert!(result.is_err(), "a frozen or closed account took a posting")
            }
            None => {}
        }
        return;
    }
    let kind = match op {
        Op::Post { id: n, percent } => {
            let amounts = percent.and_then(|p| {
                model.ledger.transfer(&id(u128::from(*n))).map(|r| {
                    r.legs
                        .iter()
                        .map(|l| amt((l.amount.get() / 100 * i128::from(p)).max(1)))
                        .collect()
                })
            });
            CommandKind::PostPending(PostPending {
                id: id(u128::from(*n)),
                amounts,
                effective_at: None,
            })
        }
        Op::Void { id: n } => CommandKind::VoidPending {
            id: id(u128::from(*n)),
        },
        Op::Expire { id: n } => CommandKind::ExpirePending {
            id: id(u128::from(*n)),
        },
        Op::Advance { secs } => {
            model.now += chrono::Duration::seconds(*secs);
            return;
        }
        Op::Reverse { id: n, original } => {
            let kind = CommandKind::ReverseTransfer(reversal(*n, *original));
            model.corrections.push(kind.clone());
            kind
        }
        Op::RepeatCorrection { index } => match model.corrections.len() {
            0 => return,
            len => model.corrections[index % len].clone(),
        },
        Op::Rebook {
            id: n,
            original,
            amount,
        } => {
            let Some(legs) = model
                .ledger
                .transfer(&id(u128::from(*original)))
                .map(|r| r.legs.clone())
            else {
                return;
            };
            let rebook = spec(
                u128::from(*n) + 100,
                legs.into_iter()
                    .map(|l| LegSpec {
                        amount: amt(*amount),
                        ..l
                    })
                    .collect(),
            );
            let kind = CommandKind::ReverseAndRebook {
                reversal: reversal(*n, *original),
                rebook,
            };
            model.corrections.push(kind.clone());
            kind
        }
        Op::Freeze { account } => CommandKind::FreezeAccount {
            code: account_code(*account),
        },
        Op::Unfreeze { account } => CommandKind::UnfreezeAccount {
            code: account_code(*account),
        },
        Op::Close { account } => CommandKind::CloseAccount {
            code: account_code(*account),
        },
        Op::SetFloor { account, floor } => CommandKind::SetAccountLimits {
            code: account_code(*account),
            limits: Limits::new(Some(*floor), None).expect("no ceiling"),
        },
        Op::ClosePeriod { back } => CommandKind::ClosePeriod {
            through: model.now - chrono::Duration::seconds(i64::from(*back)),
        },
        Op::Move { .. } | Op::Legs { .. } | Op::Repeat { .. } => return,
    };
    let _ = model.run(kind);
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Wide {
    hi: u128,
    lo: u128,
}

impl Wide {
    #[track_caller]
    fn add(&mut self, v: i128) {
        let v = u128::try_from(v).expect("totals are never negative");
        let (lo, carry) = self.lo.overflowing_add(v);
        self.lo = lo;
        self.hi += u128::from(carry);
    }
}

#[track_caller]
fn assert_invariants(model: &Model) {
    let ledger = &model.ledger;
    // Every currency balances, settled and reserved alike.
    // Totals are never negative, and a ledger-wide sum can exceed i128, so sum in 256 bits.
    let mut sums: BTreeMap<&CurrencyCode, [Wide; 4]> = BTreeMap::new();
    for acc in ledger.accounts.values() {
        let s = sums.entry(&acc.currency.code).or_default();
        let t = acc.totals;
        for (slot, v) in s.iter_mut().zip([
            t.debits_posted,
            t.credits_posted,
            t.debits_pending,
            t.credits_pending,
        ]) {
            slot.add(v);
        }
    }
    for (currency, [dp, cp, dr, cr]) in sums {
        assert_eq!(dp, cp, "{currency} posted debits and credits differ");
        assert_eq!(dr, cr, "{currency} pending debits and credits differ");
    }
    // No account is outside its limits.
    for acc in ledger.accounts.values() {
        let b = AccountBalance::of(acc);
        if let Some(floor) = acc.limits.floor {
            assert!(
                b.available >= floor,
                "{} available {} below floor {floor}",
                acc.code,
                b.available
            );
        }
        if let Some(ceiling) = acc.limits.ceiling {
            let inflow = match acc.account_type.normal_side() {
                Side::Debit => acc.totals.debits_pending,
                Side::Credit => acc.totals.credits_pending,
            };
            assert!(
                b.posted + inflow <= ceiling,
                "{} above ceiling {ceiling}",
                acc.code
            );
        }
    }
    // A transfer id is created at most once.
    let mut created = BTreeSet::new();
    for e in &model.log {
        if let Some(tid) = e.created_transfer() {
            assert!(created.insert(tid), "transfer {tid} created twice");
        }
    }
    assert_eq!(ledger.version as usize, model.log.len());
}

#[track_caller]
fn assert_replay_is_exact(model: &Model) {
    let mut replayed = Ledger::default();
    for e in &model.log {
        // Through the stored form, as the event store would hand it back.
        let envelope = Envelope {
            event_type: e.event_type(),
            schema_version: e.schema_version(),
            recorded_at: model.now,
        };
        let decoded = Event::decode(envelope, e.to_payload()).expect("stored events decode");
        assert_eq!(&decoded, e);
        apply(&mut replayed, &decoded);
    }
    assert_eq!(replayed, model.ledger, "replay differs from the live state");
    let snapshot = serde_json::to_value(&model.ledger).expect("state serializes");
    let restored: Ledger = serde_json::from_value(snapshot).expect("snapshot loads");
    assert_eq!(restored, model.ledger, "a snapshot loads the same state");
    // The forgetful ledger agrees on everything but what it forgot, and forgot only settled transfers.
    assert_eq!(
        model.forgetful.without_settled(),
        model.ledger.without_settled()
    );
    for (id, record) in &model.forgetful.transfers {
        assert_eq!(Some(record), model.ledger.transfer(id), "transfer {id}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_keep_every_invariant(ops in proptest::collection::vec(op(), 1..80)) {
        let mut model = Model::new();
        for op in &ops {
            step(&mut model, op);
            assert_invariants(&model);
        }
        assert_replay_is_exact(&model);
    }
}
