//! Stored events of every schema version this service has written still decode.

use crate::fixtures::*;
use serde_json::json;
use tally_domain::*;

fn envelope(event_type: &str, schema_version: i32) -> tally_domain::Envelope<'_> {
    tally_domain::Envelope {
        event_type,
        schema_version,
        recorded_at: t(5),
    }
}

#[test]
fn every_event_round_trips_through_its_stored_form() {
    let events = vec![
        ledger_created(),
        opened("assets:cash", AccountType::Asset, "USD", 2, Some(0)),
        posted(
            1,
            vec![debit("assets:cash", 5), credit("equity:capital", 5)],
        ),
        Event::PendingTransferPosted {
            id: id(1),
            amounts: vec![amt(1), amt(1)],
            effective_at: t(3),
            recorded_at: t(4),
        },
    ];
    for event in events {
        let payload = event.to_payload();
        assert!(
            payload.get("type").is_none(),
            "the type lives in its own column"
        );
        let text = payload.to_string();
        let decoded = Event::decode(
            envelope(event.event_type(), event.schema_version()),
            payload,
        );
        assert_eq!(decoded, Ok(event.clone()));
        let from_text =
            Event::decode_str(envelope(event.event_type(), event.schema_version()), &text);
        assert_eq!(from_text, Ok(event));
    }
}

#[test]
fn a_v1_transfer_from_the_prototype_still_loads() {
    let v1 = json!({
        "type": "TransferPosted",
        "transfer_id": "00000000-0000-0000-0000-000000000007",
        "legs": [
            {"account": "assets:bank:checking", "side": "debit", "amount": "12345"},
            {"account": "revenue:sales", "side": "credit", "amount": "12345"}
        ],
        "currency": "EUR",
        "actor": "user-000000",
        "memo": "first sale"
    });
    let from_text = Event::decode_str(envelope("TransferPosted", 1), &v1.to_string());
    let decoded = Event::decode(envelope("TransferPosted", 1), v1).expect("v1 upcasts");
    assert_eq!(
        from_text.as_ref(),
        Ok(&decoded),
        "the text path upcasts too"
    );
    let mut expected = spec(
        7,
        vec![
            leg("assets:bank:checking", Side::Debit, 12345, "EUR"),
            leg("revenue:sales", Side::Credit, 12345, "EUR"),
        ],
    );
    expected.description = "first sale".into();
    assert_eq!(
        decoded,
        Event::TransferPosted {
            transfer: expected,
            recorded_at: t(5),
            correction: None,
            balances: Vec::new(),
        }
    );
}

#[test]
fn a_version_from_the_future_is_refused_rather_than_misread() {
    let err = Event::decode(envelope("AccountFrozen", 2), json!({"code": "assets:cash"}));
    assert_eq!(
        err,
        Err(UpcastError::FromTheFuture {
            event_type: "AccountFrozen".into(),
            version: 2,
            current: 1,
        })
    );
}

#[test]
fn a_broken_payload_is_a_decode_error_not_a_panic() {
    let err = Event::decode(envelope("AccountFrozen", 1), json!({"code": "Not A Code"}));
    assert!(matches!(err, Err(UpcastError::Shape { .. })), "{err:?}");
    let err = Event::decode(envelope("NoSuchEvent", 1), json!({}));
    assert!(matches!(err, Err(UpcastError::Shape { .. })), "{err:?}");
    let err = Event::decode(envelope("TransferPosted", 1), json!({"legs": []}));
    assert!(matches!(err, Err(UpcastError::Shape { .. })), "{err:?}");
    for (event_type, version, text) in [
        ("AccountFrozen", 1, r#"{"code": "Not A Code"}"#),
        ("NoSuchEvent", 1, "{}"),
        ("AccountFrozen", 1, "{not json"),
        (
            "AccountFrozen",
            1,
            r#"{"code": "assets:cash"}, "type": "AccountClosed""#,
        ),
    ] {
        let err = Event::decode_str(envelope(event_type, version), text);
        assert!(
            matches!(err, Err(UpcastError::Shape { .. })),
            "{text}: {err:?}"
        );
    }
    let err = Event::decode_str(envelope("AccountFrozen", 2), r#"{"code": "assets:cash"}"#);
    assert!(
        matches!(err, Err(UpcastError::FromTheFuture { .. })),
        "{err:?}"
    );
}
