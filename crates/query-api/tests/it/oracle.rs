//! The expected answers, computed without the read models: the domain's fold of the store's events up
//! to a version, and the posted legs of its transfers summed directly.

use chrono::{DateTime, Utc};
use tally_domain::{AccountCode, Envelope, Event, Ledger, apply};
use tally_eventstore::EventStore;

/// The ledger's state as of stream version `through`.
pub async fn replay(store: &EventStore, ledger: &str, through: i64) -> Ledger {
    let mut state = Ledger::default();
    let events = store
        .read_stream_range(ledger, 0, through)
        .await
        .expect("the store answers");
    for recorded in events {
        let envelope = Envelope {
            event_type: &recorded.event_type,
            schema_version: recorded.schema_version,
            recorded_at: recorded.recorded_at,
        };
        let event = Event::decode(envelope, recorded.payload).expect("a known event");
        apply(&mut state, &event);
    }
    state
}

/// Posted balance of `code` on its normal side, over transfers effective at or before `as_of`.
pub fn balance(state: &Ledger, code: &str, as_of: Option<DateTime<Utc>>) -> i128 {
    let code = AccountCode::parse(code).expect("a code");
    let normal = state.accounts[&code].account_type.normal_side();
    let mut sum = 0i128;
    for record in state.transfers.values() {
        let Some(posted) = &record.posted else {
            continue;
        };
        if as_of.is_some_and(|at| record.effective_at > at) {
            continue;
        }
        for (leg, amount) in record.legs.iter().zip(posted) {
            if leg.account == code {
                sum += if leg.side == normal {
                    amount.get()
                } else {
                    -amount.get()
                };
            }
        }
    }
    sum
}
