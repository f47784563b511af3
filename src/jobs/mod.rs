//! The marketplace's job kinds, the state they share (`Resources`), and `handlers()`, the one
//! place where they are registered.
//!
//! A handler lives in `src/jobs/<kind>.rs`; its policy (queue, retries, timeout, uniqueness) in
//! `jobs/<kind>.toml`. What a kind is (`Job`, `JobArgs`, `JobContext`, `JobError`) and the
//! registry that pairs kinds with specs belong to the engine (`crate::job`).

pub mod aggregate_votes;
pub mod confirm_transactions;
pub mod dispatch_notifications;
pub mod index_chain_events;
pub mod platform_stats;
pub mod prune_records;
pub mod prune_snapshots;
pub mod rebuild_leaderboard;
pub mod record_sync_run;
pub mod resolve_markets;
pub mod send_notification;
pub mod send_transactions;
pub mod settle_market;
pub mod snapshot_discussions;
pub mod sync_balances;

pub mod resources;

/// The engine's own kinds, which the marketplace runs with specs of its own.
pub use jobfleet_engine::builtin::{Noop, Sleep};

pub use crate::job::{
    HandlerSet, Job, JobArgs, JobContext, JobError, JobSpec, RegistryError, error_chain,
};

pub use resources::Resources;

/// The registry of the marketplace's kinds.
pub type Registry = crate::job::Registry<Resources>;

/// Every job kind this program knows. Add new kinds here, and a spec in `jobs/`.
pub fn handlers() -> HandlerSet<Resources> {
    HandlerSet::new()
        .register::<Noop>()
        .register::<Sleep>()
        .register::<aggregate_votes::AggregateVotes>()
        .register::<rebuild_leaderboard::RebuildLeaderboard>()
        .register::<send_transactions::SendTransactions>()
        .register::<confirm_transactions::ConfirmTransactions>()
        .register::<sync_balances::SyncBalances>()
        .register::<record_sync_run::RecordSyncRun>()
        .register::<resolve_markets::ResolveMarkets>()
        .register::<settle_market::SettleMarket>()
        .register::<index_chain_events::IndexChainEvents>()
        .register::<snapshot_discussions::SnapshotDiscussions>()
        .register::<prune_snapshots::PruneSnapshots>()
        .register::<dispatch_notifications::DispatchNotifications>()
        .register::<send_notification::SendNotification>()
        .register::<prune_records::PruneRecords>()
        .register::<platform_stats::PlatformStats>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_specs_match_the_handlers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
        let reg = Registry::load(&dir, handlers()).unwrap();
        assert_eq!(reg.spec("sleep").unwrap().queue, "default");
        let noop = reg.new_job("noop", serde_json::json!({})).unwrap();
        assert_eq!(noop.max_attempts, 3);
        let e = reg
            .new_job("sleep", serde_json::json!({"ms": "x"}))
            .unwrap_err();
        assert!(e.to_string().contains("sleep"), "{e}");
    }
}
