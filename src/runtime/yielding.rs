//! Yielding to the core's other tasks, for real.
//!
//! monoio puts a task that wakes itself while it is being polled at the
//! *front* of the core's queue (its harness sees the task notified during
//! its own poll and re-runs it first), so the usual `wake_by_ref` then
//! `Pending` yield runs the same task again at once, and a long loop that
//! "yields" between slices never lets anything else run. A flood fanned out
//! in slices then queued slice after slice on every connection while the
//! reactor that writes them never got a turn, and healthy subscribers were
//! closed as slow.
//!
//! So a yielding task leaves its waker with this core's relay, a small task
//! of its own, and wakes the relay instead. The relay is woken from another
//! task, so it goes to the back of the queue; when it runs it wakes the
//! waiting tasks, which go to the back too, behind everything that was
//! queued before them (the reactor first).
//!
//! Runtime layer: used by the reactor and, through
//! [`super::yield_now`], by the application's long loops.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

thread_local! {
    /// Tasks that yielded and wait for the relay.
    static WAITING: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    /// The relay's waker, once the relay runs on this thread.
    static RELAY: Cell<Option<Waker>> = const { Cell::new(None) };
}

/// Lets the core's other tasks run once before coming back.
pub(super) async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        match RELAY.with(Cell::take) {
            Some(relay) => {
                WAITING.with(|w| w.borrow_mut().push(cx.waker().clone()));
                relay.wake();
            }
            // No relay on this thread (not a worker): the plain yield.
            None => cx.waker().wake_by_ref(),
        }
        Poll::Pending
    })
    .await
}

/// The core's relay: wakes the tasks that yielded since it last ran. Runs
/// until the runtime ends.
pub(super) async fn relay() {
    let mut woken = Vec::new();
    poll_fn(|cx| {
        WAITING.with(|w| std::mem::swap(&mut *w.borrow_mut(), &mut woken));
        for waker in woken.drain(..) {
            waker.wake();
        }
        RELAY.with(|r| r.set(Some(cx.waker().clone())));
        Poll::<()>::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_yielding_task_lets_a_task_queued_before_it_run_first() {
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        let seen = order.clone();
        rt.block_on(async move {
            monoio::spawn(relay());
            // Let the relay register itself.
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            let (a, b) = (seen.clone(), seen.clone());
            let looping = monoio::spawn(async move {
                for i in 0..3 {
                    a.borrow_mut().push(format!("loop {i}"));
                    yield_now().await;
                }
            });
            let other = monoio::spawn(async move {
                b.borrow_mut().push("other".to_string());
            });
            looping.await;
            other.await;
        });
        assert_eq!(
            *order.borrow(),
            ["loop 0", "other", "loop 1", "loop 2"],
            "the other task ran at the first yield"
        );
    }
}
