//! A source fed by a task of its own (network feeds): `next_event` is a channel receive, so it is
//! cancel-safe and never waits on the network itself, and dropping the source stops the task.
//! One task may feed several sources (several markets on one connection): it stops once the
//! last of them is dropped.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::source::{Source, SourceError, SourceInfo};
use super::types::MarketEvent;

/// Where a feed task sends what it produced; an `Err` ends the run.
pub type EventSender = mpsc::Sender<Result<MarketEvent, SourceError>>;

pub struct TaskSource {
    info: SourceInfo,
    events: mpsc::Receiver<Result<MarketEvent, SourceError>>,
    _task: Arc<AbortOnDrop>,
}

/// The feed task, stopped when the last source it feeds is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TaskSource {
    /// Spawns the feed built by `feed` from the sending end of a `queue`-long channel.
    pub fn spawn<F>(info: SourceInfo, queue: usize, feed: impl FnOnce(EventSender) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut sources = Self::spawn_shared(vec![info], queue, |mut senders| feed(senders.remove(0)));
        sources.remove(0)
    }

    /// Spawns one feed for several sources, one per `infos` entry in that order: `feed` gets
    /// a `queue`-long channel's sending end for each.
    pub fn spawn_shared<F>(infos: Vec<SourceInfo>, queue: usize, feed: impl FnOnce(Vec<EventSender>) -> F) -> Vec<Self>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (senders, receivers): (Vec<_>, Vec<_>) = infos.iter().map(|_| mpsc::channel(queue)).unzip();
        let task = Arc::new(AbortOnDrop(tokio::spawn(feed(senders))));
        infos
            .into_iter()
            .zip(receivers)
            .map(|(info, events)| Self {
                info,
                events,
                _task: task.clone(),
            })
            .collect()
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
