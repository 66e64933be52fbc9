//! Running totals of an account and the balances derived from them.

use crate::account::{Account, AccountCode, CurrencyCode, Limits, Side};
use crate::amount::i128_string;
use crate::command::{LegSpec, distinct_accounts};
use crate::error::LimitKind;
use serde::{Deserialize, Serialize};

/// The four running sums an account keeps. Balances are derived from them, never stored separately, so
/// they cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Totals {
    #[serde(with = "i128_string")]
    pub debits_posted: i128,
    #[serde(with = "i128_string")]
    pub credits_posted: i128,
    #[serde(with = "i128_string")]
    pub debits_pending: i128,
    #[serde(with = "i128_string")]
    pub credits_pending: i128,
}

/// Whether a movement reserves an amount (pending) or posts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Posted,
}

impl Totals {
    /// Adds (`delta > 0`) or removes (`delta < 0`) an amount on one side; `None` on overflow.
    pub(crate) fn moved(self, side: Side, phase: Phase, delta: i128) -> Option<Self> {
        let mut t = self;
        let slot = match (side, phase) {
            (Side::Debit, Phase::Posted) => &mut t.debits_posted,
            (Side::Credit, Phase::Posted) => &mut t.credits_posted,
            (Side::Debit, Phase::Pending) => &mut t.debits_pending,
            (Side::Credit, Phase::Pending) => &mut t.credits_pending,
        };
        *slot = slot.checked_add(delta)?;
        Some(t)
    }

    fn net(debits: i128, credits: i128, normal: Side) -> Option<i128> {
        match normal {
            Side::Debit => debits.checked_sub(credits),
            Side::Credit => credits.checked_sub(debits),
        }
    }

    /// Settled balance on the normal side.
    pub fn posted(&self, normal: Side) -> Option<i128> {
        Self::net(self.debits_posted, self.credits_posted, normal)
    }

    /// Net effect of open reservations on the normal side.
    pub fn pending(&self, normal: Side) -> Option<i128> {
        Self::net(self.debits_pending, self.credits_pending, normal)
    }

    fn pending_outflow(&self, normal: Side) -> i128 {
        match normal {
            Side::Debit => self.credits_pending,
            Side::Credit => self.debits_pending,
        }
    }

    fn pending_inflow(&self, normal: Side) -> i128 {
        match normal {
            Side::Debit => self.debits_pending,
            Side::Credit => self.credits_pending,
        }
    }

    /// What may still be spent: posted minus reservations that would take money out.
    pub fn available(&self, normal: Side) -> Option<i128> {
        self.posted(normal)?
            .checked_sub(self.pending_outflow(normal))
    }

    /// The highest the balance could reach if every reservation into the account were posted.
    fn potential(&self, normal: Side) -> Option<i128> {
        self.posted(normal)?
            .checked_add(self.pending_inflow(normal))
    }

    /// The first limit these totals cross, with the balance that crosses it. Overflowing arithmetic
    /// counts as crossing: such a balance could never be reported.
    pub(crate) fn crossed(&self, normal: Side, limits: &Limits) -> Option<Crossing> {
        let available = self.available(normal);
        if let Some(floor) = limits.floor
            && available.is_none_or(|a| a < floor)
        {
            return Some(Crossing {
                kind: LimitKind::Floor,
                limit: floor,
                balance: available,
            });
        }
        let potential = self.potential(normal);
        if let Some(ceiling) = limits.ceiling
            && potential.is_none_or(|p| p > ceiling)
        {
            return Some(Crossing {
                kind: LimitKind::Ceiling,
                limit: ceiling,
                balance: potential,
            });
        }
        None
    }

    pub fn is_zero(&self) -> bool {
        self.debits_posted == self.credits_posted
            && self.debits_pending == 0
            && self.credits_pending == 0
    }
}

/// A limit that totals cross: which one, its value, and the balance that crosses it (`None` when that
/// balance does not fit in 128 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Crossing {
    pub kind: LimitKind,
    pub limit: i128,
    pub balance: Option<i128>,
}

/// The balances of one account after a command, as returned to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBalance {
    pub account: AccountCode,
    pub currency: CurrencyCode,
    /// Settled balance on the account's normal side.
    #[serde(with = "i128_string")]
    pub posted: i128,
    /// Net reserved amount on the normal side.
    #[serde(with = "i128_string")]
    pub pending: i128,
    /// Posted minus pending outflows.
    #[serde(with = "i128_string")]
    pub available: i128,
}

impl AccountBalance {
    /// Balances of an account; the decide step guarantees the totals stay within `i128`.
    pub fn of(account: &Account) -> Self {
        Self::with_totals(account, &account.totals)
    }

    /// Balances of an account if its totals were `t`: what a command about to be accepted will leave.
    pub(crate) fn with_totals(account: &Account, t: &Totals) -> Self {
        let normal = account.account_type.normal_side();
        Self {
            account: account.code.clone(),
            currency: account.currency.code.clone(),
            posted: t.posted(normal).unwrap_or(i128::MAX),
            pending: t.pending(normal).unwrap_or(i128::MAX),
            available: t.available(normal).unwrap_or(i128::MIN),
        }
    }
}

/// An account's balances right after an event, as the event states them: one per account of its legs, in
/// leg order without repeats (the legs name the account and currency). Written as the posted balance alone
/// when nothing is reserved on the account (`"1200"`), as is usual, and as `["posted", "pending",
/// "available"]` otherwise, so that stating them costs a transfer event few bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceAfter {
    pub posted: i128,
    pub pending: i128,
    pub available: i128,
}

impl BalanceAfter {
    fn of(b: &AccountBalance) -> Self {
        Self {
            posted: b.posted,
            pending: b.pending,
            available: b.available,
        }
    }

    fn nothing_reserved(&self) -> bool {
        self.pending == 0 && self.available == self.posted
    }
}

impl Serialize for BalanceAfter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        if self.nothing_reserved() {
            return s.collect_str(&self.posted);
        }
        let mut t = s.serialize_tuple(3)?;
        for v in [self.posted, self.pending, self.available] {
            t.serialize_element(&v.to_string())?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for BalanceAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        fn number<E: serde::de::Error>(s: &str) -> Result<i128, E> {
            s.parse().map_err(E::custom)
        }
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BalanceAfter;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a balance as a string, or [posted, pending, available] as strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BalanceAfter, E> {
                let posted = number(v)?;
                Ok(BalanceAfter {
                    posted,
                    pending: 0,
                    available: posted,
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BalanceAfter, A::Error> {
                let mut next = |i: usize| -> Result<i128, A::Error> {
                    let text: std::borrow::Cow<'de, str> = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self_expecting()))?;
                    number(&text)
                };
                let (posted, pending, available) = (next(0)?, next(1)?, next(2)?);
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(4, &self_expecting()));
                }
                Ok(BalanceAfter {
                    posted,
                    pending,
                    available,
                })
            }
        }
        fn self_expecting() -> &'static str {
            "three balances"
        }
        d.deserialize_any(Visitor)
    }
}

/// The balances an event states, given back their accounts and currencies from its legs.
pub(crate) fn balances_with_accounts(
    legs: &[LegSpec],
    after: &[BalanceAfter],
) -> Vec<AccountBalance> {
    distinct_accounts(legs)
        .zip(after)
        .map(|(leg, b)| AccountBalance {
            account: leg.account.clone(),
            currency: leg.currency.clone(),
            posted: b.posted,
            pending: b.pending,
            available: b.available,
        })
        .collect()
}

/// The form events state balances in.
pub(crate) fn balances_after(balances: &[AccountBalance]) -> Vec<BalanceAfter> {
    balances.iter().map(BalanceAfter::of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_after_are_short_when_nothing_is_reserved() {
        let posted_only = BalanceAfter {
            posted: -1200,
            pending: 0,
            available: -1200,
        };
        let reserved = BalanceAfter {
            posted: 100,
            pending: 0,
            available: 70,
        };
        let text = serde_json::to_string(&[posted_only, reserved]).expect("serialises");
        assert_eq!(text, r#"["-1200",["100","0","70"]]"#);
        let back: Vec<BalanceAfter> = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, vec![posted_only, reserved]);
        for bad in [r#"12"#, r#"["1","2"]"#, r#"["1","2","3","4"]"#, r#""x""#] {
            assert!(serde_json::from_str::<BalanceAfter>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn available_subtracts_only_outflows() {
        let t = Totals {
            debits_posted: 100,
            credits_posted: 0,
            debits_pending: 7,
            credits_pending: 30,
        };
        assert_eq!(t.posted(Side::Debit), Some(100));
        assert_eq!(t.pending(Side::Debit), Some(-23));
        assert_eq!(t.available(Side::Debit), Some(70));
        assert_eq!(t.available(Side::Credit), Some(-107));
    }

    #[test]
    fn limits_see_reservations() {
        let t = Totals {
            debits_posted: 10,
            credits_pending: 11,
            ..Totals::default()
        };
        let floor = Limits::new(Some(0), None).expect("valid");
        assert_eq!(
            t.crossed(Side::Debit, &floor),
            Some(Crossing {
                kind: LimitKind::Floor,
                limit: 0,
                balance: Some(-1)
            })
        );
        let ceiling = Limits::new(None, Some(5)).expect("valid");
        assert_eq!(
            t.crossed(Side::Debit, &ceiling),
            Some(Crossing {
                kind: LimitKind::Ceiling,
                limit: 5,
                balance: Some(10)
            })
        );
    }
}
