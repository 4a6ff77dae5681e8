//! A run's engine thread with a Kraken broker: a current-thread tokio runtime on a thread of its
//! own, where the engine, the broker's tasks (the desk, the validation submitter) and the private
//! client's HTTP connections all run. A decision's order is queued to the broker's task, the
//! engine yields, and that task and hyper's connection task run in this thread's next slot: no
//! other thread (an idle vCPU) is woken between the decision and the AddOrder bytes on the wire
//! (BENCHMARKS.md section 10). The dashboard, the store writer, the market data and the alerts
//! stay on `main`'s multi-thread runtime and talk to the engine over the channels they always
//! used (tokio channels work across runtimes).
//!
//! Nothing on this thread may block waiting for one of its own tasks: the engine awaits its
//! broker (`Broker::answer`, `Broker::stop_async`) instead.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::app::AppError;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long the closing thread lets its tasks end (the desk's last requests: the dead man's
/// switch disarmed) after the run let go of them.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// The engine thread of one pair's run.
pub struct EngineThread {
    jobs: mpsc::UnboundedSender<Job>,
    closed: oneshot::Receiver<()>,
}

impl EngineThread {
    /// Starts the thread (`engine PAIR`) and its runtime.
    pub fn start(pair: &str) -> Result<Self, AppError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AppError::runtime(format!("cannot start the engine's runtime: {e}")))?;
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (close, closed) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("engine {pair}"))
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                    // The run let go of its broker: its tasks get a moment to end (each ends
                    // once its broker is dropped).
                    let metrics = tokio::runtime::Handle::current().metrics();
                    let _ = tokio::time::timeout(CLOSE_WITHIN, async {
                        while metrics.num_alive_tasks() > 0 {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    })
                    .await;
                });
                drop(runtime);
                let _ = close.send(());
            })
            .map_err(|e| AppError::runtime(format!("cannot start the engine's thread: {e}")))?;
        Ok(Self { jobs, closed })
    }

    /// Runs `job` on the engine thread and awaits its output.
    pub async fn run<T: Send + 'static>(&self, job: impl Future<Output = T> + Send + 'static) -> Result<T, AppError> {
        let (done, output) = oneshot::channel();
        let job: Job = Box::pin(async move {
            let _ = done.send(job.await);
        });
        self.jobs
            .send(job)
            .map_err(|_| AppError::runtime("the engine's thread has stopped"))?;
        output
            .await
            .map_err(|_| AppError::runtime("the engine's thread stopped before its work was done"))
    }

    /// Lets the thread end once its tasks have (bounded by `CLOSE_WITHIN`), and waits for it
    /// without blocking this thread.
    pub async fn close(self) {
        let Self { jobs, closed } = self;
        drop(jobs);
        let _ = closed.await;
    }
}
