//! IPFS: the CIDs of snapshot blocks, the snapshot documents, a Kubo RPC client, and a Kubo
//! stand-in for the tests and the demo.
//!
//! `cid` is the one place where bytes become a CID; `document` builds the deterministic JSON
//! of a market's day (split into parts of at most one block); `client` talks to the Kubo
//! endpoints in order; `standin` serves the same RPC subset from memory.

pub mod cid;
pub mod client;
pub mod document;
pub mod settings;

pub use client::{IpfsError, KuboClient, Unpinned};
pub use document::Window;
