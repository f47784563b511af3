#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod access;
pub mod api;
pub mod bench;
pub mod board;
pub mod cli;
pub mod metrics;
pub mod pages;
pub mod render;
pub mod settings;
pub mod setup;
pub mod state;
pub mod store;

pub use access::Viewer;
pub use board::{AppPages, Nav};
pub use settings::WebSettings;
pub use state::NavLink;
