//! The pieces every page is made of: the page shell with its navigation, numbers and times
//! in words, and the SVG chart of the per-minute history. maud escapes every value it is
//! given, so a kind, an argument or an error from Redis is always shown as text.

pub mod chart;
pub mod format;
pub mod layout;
