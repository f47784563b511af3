//! The board's pages, one file per page: the overview, a queue, a job, the schedules, the
//! workers, the audit log, and signing in and out. Each reads Redis for what it shows and
//! nothing more; an action is a POST with the session's CSRF token, recorded in the audit log,
//! answered with a redirect back and a message.

pub mod audit;
pub mod job;
pub mod login;
pub mod overview;
pub mod queue;
pub mod schedules;
pub mod workers;

use axum::http::StatusCode;
use jobfleet_engine::queue::QueueError;

use crate::access::{Refusal, Viewer};
use crate::render::layout::{Page, Section};
use crate::state::WebState;
use crate::store::StoreError;

/// A store error as the page that says so.
pub fn failed(e: QueueError) -> Refusal {
    match e {
        QueueError::NotFound(id) => Refusal(
            StatusCode::NOT_FOUND,
            format!("No job with id {id}: it may have finished or been removed."),
        ),
        QueueError::Invalid(why) => Refusal(StatusCode::UNPROCESSABLE_ENTITY, why),
        QueueError::InvalidQueue(e) => Refusal(StatusCode::NOT_FOUND, e.to_string()),
        e => {
            tracing::error!(error = %e, "a page could not read the store");
            Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The store failed: {e}"),
            )
        }
    }
}

/// An error of the board's own records as the page that says so.
pub fn store_failed(e: StoreError) -> Refusal {
    match e {
        StoreError::Invalid(why) => Refusal(StatusCode::UNPROCESSABLE_ENTITY, why),
        e => {
            tracing::error!(error = %e, "a page could not read the board's records");
            Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The store failed: {e}"),
            )
        }
    }
}

/// The shell of a page of one of the board's sections.
pub fn page<'a>(
    app: &'a WebState,
    viewer: &'a Viewer,
    section: Section,
    title: impl Into<String>,
    flash: Option<String>,
) -> Page<'a> {
    Page {
        viewer,
        nav: &app.nav,
        section,
        title: title.into(),
        flash,
        refresh: 0,
    }
}
