//! Settlement of a resolved binary market, in integer wei: pure arithmetic, tested exactly.
//! It stands apart from `chain` and `db`, which both use it, and imports neither.
//!
//! The rule:
//! - the pool is the sum of all stakes; the platform's fee is `floor(pool * fee_bp / 10000)`;
//! - the rest is shared by the winning positions pro rata to their stakes, each getting
//!   `floor(rest * stake / winning_stakes)`;
//! - the wei left over by the flooring (fewer than the number of winners) go one each to the
//!   winners with the largest discarded fractions, ties to the lower position id (the
//!   largest-remainder method: deterministic, and no winner gets more than one extra wei);
//! - losing positions get 0;
//! - when nobody backed the winning outcome, every stake is refunded and no fee is taken.
//!
//! The result always satisfies `sum(payouts) + fee == pool`; `settle` checks it rather than
//! trusting the arithmetic above.

use alloy::primitives::{U256, U512};

/// One position of the market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stake {
    pub position_id: i64,
    pub outcome: bool,
    pub stake: U256,
}

/// What a market pays out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub pool: U256,
    pub fee: U256,
    /// Every position with its payout, in the order given.
    pub payouts: Vec<(i64, U256)>,
    /// True when nobody won and the stakes were refunded.
    pub refunded: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayoutError {
    #[error("fee_bp {0} is not below 10000")]
    Fee(u32),
    #[error("the stakes overflow a uint256")]
    Overflow,
    #[error("payouts {payouts} plus fee {fee} do not equal the pool {pool}")]
    Unbalanced {
        payouts: U256,
        fee: U256,
        pool: U256,
    },
}

pub fn settle(stakes: &[Stake], winning: bool, fee_bp: u32) -> Result<Settlement, PayoutError> {
    if fee_bp >= 10_000 {
        return Err(PayoutError::Fee(fee_bp));
    }
    let pool = sum(stakes.iter().map(|s| s.stake))?;
    let winning_stakes = sum(stakes
        .iter()
        .filter(|s| s.outcome == winning)
        .map(|s| s.stake))?;
    if winning_stakes.is_zero() {
        let payouts = stakes.iter().map(|s| (s.position_id, s.stake)).collect();
        return check(Settlement {
            pool,
            fee: U256::ZERO,
            payouts,
            refunded: true,
        });
    }
    let fee = wide(pool) * wide(U256::from(fee_bp)) / wide(U256::from(10_000u32));
    let fee = narrow(fee);
    let rest = wide(pool - fee);
    let w = wide(winning_stakes);
    // (index, payout, discarded fraction's numerator)
    let mut shares: Vec<(usize, U256, U512)> = Vec::new();
    let mut paid = U256::ZERO;
    for (i, s) in stakes.iter().enumerate() {
        if s.outcome != winning {
            continue;
        }
        let num = rest * wide(s.stake);
        let payout = narrow(num / w);
        paid += payout;
        shares.push((i, payout, num % w));
    }
    let mut left = pool - fee - paid;
    shares.sort_by(|a, b| {
        b.2.cmp(&a.2)
            .then(stakes[a.0].position_id.cmp(&stakes[b.0].position_id))
    });
    for share in shares.iter_mut() {
        if left.is_zero() {
            break;
        }
        share.1 += U256::from(1u8);
        left -= U256::from(1u8);
    }
    let mut payouts: Vec<(i64, U256)> =
        stakes.iter().map(|s| (s.position_id, U256::ZERO)).collect();
    for (i, payout, _) in shares {
        payouts[i].1 = payout;
    }
    check(Settlement {
        pool,
        fee,
        payouts,
        refunded: false,
    })
}

fn sum(mut values: impl Iterator<Item = U256>) -> Result<U256, PayoutError> {
    values
        .try_fold(U256::ZERO, |a, b| a.checked_add(b))
        .ok_or(PayoutError::Overflow)
}

fn check(s: Settlement) -> Result<Settlement, PayoutError> {
    let paid = sum(s.payouts.iter().map(|(_, p)| *p))?;
    if paid.checked_add(s.fee) != Some(s.pool) {
        return Err(PayoutError::Unbalanced {
            payouts: paid,
            fee: s.fee,
            pool: s.pool,
        });
    }
    Ok(s)
}

fn wide(v: U256) -> U512 {
    U512::from(v)
}

/// Every value narrowed here is at most the pool, which fits a U256.
fn narrow(v: U512) -> U256 {
    U256::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stake(id: i64, outcome: bool, wei: u64) -> Stake {
        Stake {
            position_id: id,
            outcome,
            stake: U256::from(wei),
        }
    }

    fn amounts(s: &Settlement) -> Vec<u64> {
        s.payouts.iter().map(|(_, p)| p.to::<u64>()).collect()
    }

    #[test]
    fn winners_share_the_pool_less_the_fee_pro_rata() {
        let s = settle(
            &[
                stake(1, true, 300),
                stake(2, false, 600),
                stake(3, true, 100),
            ],
            true,
            200,
        )
        .unwrap();
        assert_eq!(s.pool, U256::from(1000u32));
        assert_eq!(s.fee, U256::from(20u32));
        assert_eq!(amounts(&s), [735, 0, 245]);
    }

    #[test]
    fn the_remainder_goes_to_the_largest_fractions_then_the_lower_id() {
        // 100 to share among three equal stakes: 33 each and 1 left, to the lowest id.
        let s = settle(
            &[
                stake(9, true, 1),
                stake(4, true, 1),
                stake(7, true, 1),
                stake(1, false, 97),
            ],
            true,
            0,
        )
        .unwrap();
        assert_eq!(amounts(&s), [33, 34, 33, 0]);
        // Fractions differ: 10 * 1/3 = 3.33 and 10 * 2/3 = 6.67, so the extra wei goes to the
        // larger fraction.
        let s = settle(
            &[stake(1, true, 1), stake(2, true, 2), stake(3, false, 7)],
            true,
            0,
        )
        .unwrap();
        assert_eq!(amounts(&s), [3, 7, 0]);
    }

    #[test]
    fn nobody_won_means_refunds_and_no_fee() {
        let s = settle(&[stake(1, false, 5), stake(2, false, 7)], true, 200).unwrap();
        assert!(s.refunded);
        assert_eq!(s.fee, U256::ZERO);
        assert_eq!(amounts(&s), [5, 7]);
    }

    #[test]
    fn huge_stakes_do_not_overflow_and_always_balance() {
        let big = U256::MAX / U256::from(4u8);
        let stakes = [
            Stake {
                position_id: 1,
                outcome: true,
                stake: big,
            },
            Stake {
                position_id: 2,
                outcome: false,
                stake: big,
            },
            Stake {
                position_id: 3,
                outcome: true,
                stake: big - U256::from(12345u32),
            },
        ];
        let s = settle(&stakes, true, 333).unwrap();
        let paid: U256 = s
            .payouts
            .iter()
            .map(|(_, p)| *p)
            .fold(U256::ZERO, |a, b| a + b);
        assert_eq!(paid + s.fee, s.pool);
        assert_eq!(
            settle(&[stake(1, true, 1)], true, 10_000),
            Err(PayoutError::Fee(10_000))
        );
        let overflow = [
            Stake {
                position_id: 1,
                outcome: true,
                stake: U256::MAX,
            },
            stake(2, true, 1),
        ];
        assert_eq!(settle(&overflow, true, 0), Err(PayoutError::Overflow));
    }

    #[test]
    fn many_random_markets_balance_exactly() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let n = (next() % 20 + 1) as i64;
            let stakes: Vec<Stake> = (0..n)
                .map(|i| stake(i, next() % 2 == 0, next() % 1_000_000_007 + 1))
                .collect();
            let s = settle(&stakes, true, (next() % 1000) as u32).unwrap();
            let paid: U256 = s
                .payouts
                .iter()
                .map(|(_, p)| *p)
                .fold(U256::ZERO, |a, b| a + b);
            assert_eq!(paid + s.fee, s.pool);
        }
    }
}
