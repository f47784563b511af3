//! The marketplace's pages of the web board (read-only, from PostgreSQL): the chain's
//! transaction outbox, the notification deliveries and the platform's figures. They are mounted into `jobfleet web`
//! beside the engine's pages, behind the same sign-in, and drawn with the board's layout.

mod deliveries;
mod outbox;
mod stats;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use jobfleet_web::access::{Refusal, Viewer};
use jobfleet_web::render::layout::{Page, Section};
use jobfleet_web::{AppPages, Nav, NavLink};

use crate::config::Settings;

/// What the pages share: a pool that connects on first use, so the board starts (and shows
/// the queues) even while the database is down.
#[derive(Debug)]
struct Db {
    pool: sqlx::PgPool,
}

type Shared = Arc<Db>;

/// Rows shown per page.
const LIMIT: i64 = 200;

/// The marketplace's pages, for `jobfleet web`.
pub fn pages(settings: &Settings) -> anyhow::Result<AppPages> {
    let db: Shared = Arc::new(Db {
        pool: crate::db::lazy_pool(&settings.database)?,
    });
    let router = Router::new()
        .route(outbox::PATH, get(outbox::show))
        .route(deliveries::PATH, get(deliveries::show))
        .route(stats::PATH, get(stats::show))
        .with_state(db);
    Ok(AppPages {
        nav: vec![
            NavLink {
                label: "Chain outbox".into(),
                path: outbox::PATH.into(),
            },
            NavLink {
                label: "Deliveries".into(),
                path: deliveries::PATH.into(),
            },
            NavLink {
                label: "Platform".into(),
                path: stats::PATH.into(),
            },
        ],
        router,
    })
}

/// The board's page shell for one of these pages.
fn page<'a>(viewer: &'a Viewer, nav: &'a Nav, path: &'static str, title: &str) -> Page<'a> {
    Page {
        viewer,
        nav: &nav.0,
        section: Section::App(path),
        title: title.to_owned(),
        flash: None,
        refresh: 0,
    }
}

/// A database error as the page that says so.
fn failed(e: sqlx::Error) -> Refusal {
    tracing::error!(error = %e, "a marketplace page could not read the database");
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "The database failed: {}",
            crate::config::redact_urls(&e.to_string())
        ),
    )
}
