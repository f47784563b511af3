//! What the sender may sign and send, and where: the fee caps every bid respects, the identity
//! of a chain, and the development chains the operator commands act on.
//!
//! The node's estimate is a suggestion from a party we do not control: a compromised or
//! spiking RPC endpoint can answer any base fee and tip, and a transaction signed at that bid
//! pays it. So a first signature and a replacement alike stay under `chain.max_fee_gwei` (the
//! most per gas) and `chain.max_priority_fee_gwei` (the most tip per gas). A bid the caps do
//! not allow is not lowered to fit: a max fee under the base fee is never mined and a lowered
//! tip may never be either, and both would hold a nonce that every later row waits behind.
//! The row waits instead, PENDING, without a nonce, until the estimate comes back under.
//!
//! A chain is its chain id and its genesis hash (`ChainIdentity`); a signed row is sent only on
//! the chain it was signed for (`other_chain`).

use crate::db::outbox::OutboxRow;

/// Wei per gwei.
pub const GWEI: u128 = 1_000_000_000;

/// The caps, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeCaps {
    /// The most a transaction may pay per gas (`max_fee_per_gas`).
    pub max_fee: u128,
    /// The most it may tip per gas (`max_priority_fee_per_gas`).
    pub tip: u128,
}

impl FeeCaps {
    /// The fees of a first signature: the estimate (max fee, tip) as it is, or, when either
    /// part is above its cap, why the row waits.
    pub fn first(&self, estimate: (u128, u128)) -> Result<(u128, u128), String> {
        let (max_fee, tip) = estimate;
        if tip > self.tip {
            return Err(format!(
                "waiting: the node's tip estimate of {} gwei is above chain.max_priority_fee_gwei ({} gwei)",
                gwei(tip),
                gwei(self.tip)
            ));
        }
        if max_fee > self.max_fee {
            return Err(format!(
                "waiting: the node's fee estimate of {} gwei is above chain.max_fee_gwei ({} gwei)",
                gwei(max_fee),
                gwei(self.max_fee)
            ));
        }
        Ok((max_fee, tip.min(max_fee)))
    }

    /// The fees of a replacement: each of (max fee, tip) raised by `bump_percent` over the old
    /// bid, or to the current estimate when that is higher, and the max fee at least the tip.
    /// None when either would exceed its cap: a replacement must raise both bids (nodes refuse
    /// one that does not), so a capped bid would be refused anyway.
    pub fn replacement(
        &self,
        old: (u128, u128),
        now: (u128, u128),
        bump_percent: u64,
    ) -> Option<(u128, u128)> {
        let raise = |old: u128| {
            old.saturating_mul(100 + u128::from(bump_percent))
                .div_ceil(100)
        };
        let tip = raise(old.1).max(now.1);
        let max_fee = raise(old.0).max(now.0).max(tip);
        (max_fee <= self.max_fee && tip <= self.tip).then_some((max_fee, tip))
    }
}

/// Wei per gas as gwei for messages, with up to three decimals.
fn gwei(wei: u128) -> String {
    let whole = wei / GWEI;
    let milli = (wei % GWEI) / 1_000_000;
    if milli == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{milli:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// A chain as the database knows it. Two nodes with the same chain id are different chains
/// when their genesis blocks differ (a development node started afresh, a second checkout's
/// node over the same database): nonces, signed rows, cursors and events belong to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainIdentity {
    pub id: u64,
    /// The genesis block's hash, lowercase 0x-hex.
    pub genesis: String,
}

impl ChainIdentity {
    /// The (chain id, genesis hash) pair the database stores.
    pub fn key(&self) -> (i64, &str) {
        (self.id as i64, &self.genesis)
    }

    /// "31337 (genesis 0x1234abcd…)", for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} (genesis {}…)",
            self.id,
            self.genesis.get(..10).unwrap_or(&self.genesis)
        )
    }
}

/// Chain ids of local development nodes (anvil and hardhat use 31337, ganache and geth's dev
/// mode 1337): the only chains the operator commands that rewrite bookkeeping, deploy or
/// spend act on without `--i-know-this-is-live`.
pub const DEV_CHAIN_IDS: [u64; 2] = [31337, 1337];

/// Why a signed row belongs to another chain than `here` (None: it is this chain's). Its
/// hashes mean nothing on another chain (the same bytes can exist on two chains with one id),
/// so such a row is neither looked up, nor broadcast, nor replaced here.
pub fn other_chain(row: &OutboxRow, here: &ChainIdentity) -> Option<String> {
    let chain = (
        row.chain_id.unwrap_or_default(),
        row.genesis_hash.as_deref().unwrap_or(""),
    );
    (chain != here.key()).then(|| {
        format!(
            "signed for chain {} (genesis {}), the node is on chain {}: sent only where it was signed",
            chain.0,
            if chain.1.is_empty() { "unknown" } else { chain.1 },
            here.describe()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: FeeCaps = FeeCaps {
        max_fee: 1_000,
        tip: 100,
    };

    #[test]
    fn replacements_raise_both_bids_and_respect_both_caps() {
        // 20% over the old bids when the market has not moved.
        assert_eq!(CAPS.replacement((100, 10), (50, 5), 20), Some((120, 12)));
        // The current estimate when it is higher.
        assert_eq!(CAPS.replacement((100, 10), (300, 30), 20), Some((300, 30)));
        // Rounded up, so a small bid still rises.
        assert_eq!(CAPS.replacement((1, 1), (0, 0), 20), Some((2, 2)));
        // Above the fee cap: no replacement.
        assert_eq!(CAPS.replacement((900, 10), (0, 0), 20), None);
        assert_eq!(CAPS.replacement((100, 10), (2_000, 10), 20), None);
        // Above the tip cap: none either, though the max fee would fit.
        assert_eq!(CAPS.replacement((500, 90), (0, 0), 20), None);
        assert_eq!(CAPS.replacement((500, 10), (500, 101), 20), None);
    }

    #[test]
    fn a_first_signature_takes_the_estimate_only_under_both_caps() {
        let caps = FeeCaps {
            max_fee: 1_000 * GWEI,
            tip: 100 * GWEI,
        };
        assert_eq!(caps.first((30 * GWEI, 2 * GWEI)), Ok((30 * GWEI, 2 * GWEI)));
        // Exactly at the caps is allowed.
        assert_eq!(
            caps.first((1_000 * GWEI, 100 * GWEI)),
            Ok((1_000 * GWEI, 100 * GWEI))
        );
        // The node: base fee 5000 gwei and tip 3000 gwei estimate 13000 gwei.
        let why = caps.first((13_000 * GWEI, 3_000 * GWEI)).unwrap_err();
        assert!(why.contains("tip estimate of 3000 gwei"), "{why}");
        assert!(
            why.contains("chain.max_priority_fee_gwei (100 gwei)"),
            "{why}"
        );
        let why = caps.first((13_000 * GWEI, 2 * GWEI)).unwrap_err();
        assert!(
            why.contains("fee estimate of 13000 gwei is above chain.max_fee_gwei (1000 gwei)"),
            "{why}"
        );
        assert_eq!(gwei(1_500_000_000), "1.5");
        assert_eq!(gwei(1), "0");
    }
}
