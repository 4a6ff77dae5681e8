//! A source fed by a task of its own (network feeds): `next_event` is a channel receive, so it is
//! cancel-safe and never waits on the network itself, and dropping the source stops the task.

use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::source::{Source, SourceError, SourceInfo};
use super::types::MarketEvent;

/// Where a feed task sends what it produced; an `Err` ends the run.
pub type EventSender = mpsc::Sender<Result<MarketEvent, SourceError>>;

pub struct TaskSource {
    info: SourceInfo,
    events: mpsc::Receiver<Result<MarketEvent, SourceError>>,
    task: JoinHandle<()>,
}

impl TaskSource {
    /// Spawns the feed built by `feed` from the sending end of a `queue`-long channel.
    pub fn spawn<F>(info: SourceInfo, queue: usize, feed: impl FnOnce(EventSender) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, events) = mpsc::channel(queue);
        let task = tokio::spawn(feed(tx));
        Self { info, events, task }
    }
}

impl Drop for TaskSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Source for TaskSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        match self.events.recv().await {
            Some(Ok(event)) => Ok(Some(event)),
            Some(Err(e)) => Err(e),
            None => Err(SourceError::Fatal(format!("the {} feed stopped", self.info.kind))),
        }
    }
}
