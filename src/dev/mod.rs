//! Stand-ins for the demo and the tests, kept apart from what runs in production: nothing
//! outside `dev` and the `demo`/`chain deploy` commands uses them.
//!
//! - `kubo`: a Kubo RPC stand-in (add, pin, unpin, cat) for the snapshot jobs, as no IPFS
//!   daemon can be installed here;
//! - `sink`: an SMTP and HTTP receiver that prints what the notification jobs deliver;
//! - `seed`: the demo's users, markets and votes;
//! - `deploy`: deploying the contracts to a local development node (anvil).
//!
//! The failpoints of the transaction sender (`chain::failpoint`) stay beside the code they
//! interrupt: they are inert unless `JOBFLEET_FAILPOINTS` is set.

pub mod deploy;
pub mod kubo;
pub mod seed;
pub mod sink;
