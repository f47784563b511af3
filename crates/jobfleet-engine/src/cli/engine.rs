//! What every command needs: the engine's settings, the store on demand, the kinds' registry
//! and, for the commands that run jobs, the application's state.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::config::EngineSettings;
use crate::job::{HandlerSet, Registry};
use crate::queue::{QueueClient, QueueError, StoreSettings};

/// Makes the application's state for a process that runs jobs, from the engine's settings
/// and the process's store connection.
pub type StateFn<S> = Arc<dyn Fn(&EngineSettings, QueueClient) -> anyhow::Result<S> + Send + Sync>;

/// The engine's commands' context: the settings, the kinds, where their specs are, and how
/// to make the application's state.
pub struct Engine<S> {
    /// The engine's sections of the configuration.
    pub settings: EngineSettings,
    handlers: HandlerSet<S>,
    spec_dirs: Vec<PathBuf>,
    state: StateFn<S>,
}

impl<S> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("settings", &self.settings)
            .field("handlers", &self.handlers)
            .field("spec_dirs", &self.spec_dirs)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync + 'static> Engine<S> {
    /// The kinds of `handlers`, their specs in `settings.jobs.dir`, and the state `state`
    /// makes.
    pub fn new<F>(settings: EngineSettings, handlers: HandlerSet<S>, state: F) -> Self
    where
        F: Fn(&EngineSettings, QueueClient) -> anyhow::Result<S> + Send + Sync + 'static,
    {
        Self {
            spec_dirs: vec![settings.jobs.dir.clone()],
            settings,
            handlers,
            state: Arc::new(state),
        }
    }

    /// Reads specs from one more folder; a kind may have its spec in only one of them.
    pub fn spec_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spec_dirs.push(dir.into());
        self
    }

    /// A connection to the configured store.
    pub async fn client(&self) -> anyhow::Result<QueueClient> {
        self.client_in(&self.settings.redis.namespace, self.settings.store())
            .await
    }

    /// `client` in another namespace (the bench's) or with other store settings (the
    /// scheduler waits for every reply).
    pub async fn client_in(
        &self,
        namespace: &str,
        store: StoreSettings,
    ) -> anyhow::Result<QueueClient> {
        let url = &self.settings.redis.url;
        QueueClient::connect(url.expose(), namespace, store)
            .await
            .map_err(|e| match e {
                // A timeout names the address already.
                QueueError::Timeout { .. } => {
                    anyhow::Error::new(e).context("cannot connect to Redis")
                }
                e => anyhow::Error::new(e).context(format!("cannot connect to Redis at {url}")),
            })
    }

    /// The kinds paired with their specs; a spec without a handler, or a handler without a
    /// spec, is an error naming the file.
    pub fn registry(&self) -> anyhow::Result<Arc<Registry<S>>> {
        let dirs: Vec<&std::path::Path> = self.spec_dirs.iter().map(PathBuf::as_path).collect();
        Ok(Arc::new(Registry::load_dirs(&dirs, self.handlers.clone())?))
    }

    /// The application's state for a process that runs jobs.
    pub fn state(&self, client: QueueClient) -> anyhow::Result<Arc<S>> {
        let state = (self.state)(&self.settings, client).context("cannot build the state")?;
        Ok(Arc::new(state))
    }
}
