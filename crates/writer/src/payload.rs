//! The writer's side of the event codec, whose shapes the domain's `codec` module owns: events written as
//! the store's canonical payload text, and stored events read back into events.

use crate::error::WriteError;
use tally_domain::{Envelope, Event, LedgerId};
use tally_eventstore::{CanonicalJson, RecordedEvent};

/// The canonical payload text of `event`, written straight from its [`tally_domain::Payload`].
pub(crate) fn payload(event: &Event) -> CanonicalJson {
    CanonicalJson::to_canonical(&event.payload())
        // A payload is plain data and cannot fail to serialise; should it, the `Value` form answers.
        .unwrap_or_else(|_| CanonicalJson::from_value(&event.to_payload()))
}

/// A stored event of `ledger` with its stream version, upcast to its current shape.
pub(crate) fn decode(
    ledger: &LedgerId,
    recorded: RecordedEvent,
) -> Result<(u64, Event), WriteError> {
    let envelope = Envelope {
        event_type: &recorded.event_type,
        schema_version: recorded.schema_version,
        recorded_at: recorded.recorded_at,
    };
    let version = recorded.version as u64;
    Event::decode(envelope, recorded.payload)
        .map(|event| (version, event))
        .map_err(|e| WriteError::Corrupt {
            ledger: ledger.to_string(),
            reason: format!("version {version}: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::collections::BTreeMap;
    use tally_domain::{
        AccountCode, AccountType, Amount, BalanceAfter, Correction, Currency, CurrencyCode,
        LegSpec, Limits, Metadata, ReasonCode, ReversalSpec, Side, TransferId, TransferSpec,
    };
    use uuid::Uuid;

    fn leg(account: &str, side: Side) -> LegSpec {
        LegSpec {
            account: AccountCode::parse(account).expect("code"),
            side,
            amount: Amount::new(12_345).expect("amount"),
            currency: CurrencyCode::parse("EUR").expect("currency"),
        }
    }

    fn metadata() -> Metadata {
        // Keys that sort differently by bytes and by length, and text that needs escaping.
        let map = BTreeMap::from([
            (
                "zeta".to_owned(),
                "quote \" backslash \\ newline \n é 😀".to_owned(),
            ),
            ("Alpha".to_owned(), "tab \t control \u{1}".to_owned()),
            ("a".to_owned(), String::new()),
        ]);
        Metadata::parse(map).expect("metadata")
    }

    fn spec(n: u128) -> TransferSpec {
        TransferSpec {
            id: TransferId(Uuid::from_u128(n)),
            legs: vec![
                leg("assets:bank:checking", Side::Debit),
                leg("revenue:sales", Side::Credit),
            ],
            effective_at: Some(
                Utc.timestamp_opt(1_700_000_000, 123_456_000)
                    .single()
                    .expect("timestamp"),
            ),
            description: "a description".into(),
            metadata: metadata(),
            pending: None,
        }
    }

    #[test]
    fn payloads_are_the_canonical_text_of_the_tagged_forms_content() {
        let at = Utc
            .timestamp_opt(1_700_000_100, 0)
            .single()
            .expect("timestamp");
        let reversal = ReversalSpec {
            id: TransferId(Uuid::from_u128(3)),
            original: TransferId(Uuid::from_u128(1)),
            reason: ReasonCode::parse("wrong_amount").expect("reason"),
            effective_at: None,
        };
        let events = [
            Event::LedgerCreated {
                name: "Books \"2026\"".into(),
                created_at: at,
            },
            Event::AccountOpened {
                code: AccountCode::parse("assets:bank:checking").expect("code"),
                account_type: AccountType::Asset,
                currency: Currency::new(CurrencyCode::parse("EUR").expect("currency"), 2)
                    .expect("currency"),
                limits: Limits::new(Some(-100), None).expect("limits"),
                metadata: metadata(),
            },
            Event::TransferPosted {
                transfer: spec(1),
                recorded_at: at,
                correction: None,
                balances: vec![
                    BalanceAfter {
                        posted: i128::MAX,
                        pending: -7,
                        available: i128::MIN,
                    },
                    BalanceAfter {
                        posted: -12_345,
                        pending: 0,
                        available: -12_345,
                    },
                ],
            },
            Event::TransferPosted {
                transfer: spec(2),
                recorded_at: at,
                correction: Some(Correction {
                    of: TransferId(Uuid::from_u128(1)),
                    reversal: TransferId(Uuid::from_u128(3)),
                    reason: ReasonCode::parse("duplicate_charge").expect("reason"),
                }),
                balances: Vec::new(),
            },
            Event::TransferReversed {
                legs: spec(1).legs,
                reversal,
                effective_at: at,
                recorded_at: at,
                balances: Vec::new(),
            },
            Event::PendingTransferPosted {
                id: TransferId(Uuid::from_u128(4)),
                amounts: vec![
                    Amount::new(1).expect("amount"),
                    Amount::new(2).expect("amount"),
                ],
                effective_at: at,
                recorded_at: at,
            },
            Event::PeriodClosed {
                through: at,
                recorded_at: at,
            },
        ];
        for event in events {
            let tagged = serde_json::to_value(&event).expect("events serialise");
            assert_eq!(
                payload(&event),
                CanonicalJson::from_value(&tagged["data"]),
                "{event:?}"
            );
            assert_eq!(event.to_payload(), tagged["data"], "{event:?}");
        }
    }
}
