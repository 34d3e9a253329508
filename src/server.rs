//! `serve`: opens the store, bootstraps it, starts the listeners and the
//! admin socket, and shuts everything down gracefully.

use crate::config::Config;

/// Runs the server until SIGTERM or ctrl-c.
#[allow(unused_variables, clippy::todo)]
pub async fn serve(config: Config) -> anyhow::Result<()> {
    todo!()
}
