//! A small pool of threads for the inference kernels. Decoding one token runs a few hundred
//! short parallel loops (one per matrix product); waking sleeping threads for each would cost
//! more than the loops themselves, so workers spin on their start flag between jobs and only
//! sleep after a while without work, as llama.cpp's thread pool does.
//!
//! [`Pool::run`] publishes a job, raises every worker's start flag, hands out task indices
//! through an atomic counter (the calling thread works too), and returns once every worker
//! has acknowledged the job — so no worker can touch a job after `run` returns, and the next
//! job is published only when all have let go of the last.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Spins of an idle worker before it starts yielding its core (tens of microseconds).
const SPINS: u32 = 1 << 12;
/// Yields of an idle worker before it sleeps (a millisecond or so on an idle machine; on a
/// busy one, yielding lets the other processes run instead of our spinning).
const YIELDS: u32 = 1 << 11;

type Task = dyn Fn(usize) + Sync;

/// One worker's handshake: the job generation it should run, and the last it finished.
#[derive(Default)]
struct Slot {
    go: AtomicU64,
    ack: AtomicU64,
}

struct Shared {
    /// The job's function as two words (a fat pointer), valid between a worker seeing its
    /// `go` flag and writing its `ack`.
    job: [AtomicU64; 2],
    tasks: AtomicUsize,
    next: AtomicUsize,
    slots: Vec<Slot>,
    stop: AtomicBool,
    /// A task panicked on a worker during the current job.
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

/// A fixed set of worker threads (plus the caller) for data-parallel loops.
pub struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    /// The job generation; the lock also serialises callers.
    generation: Mutex<u64>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .finish()
    }
}

fn split(f: &(dyn Fn(usize) + Sync + '_)) -> [u64; 2] {
    // SAFETY: a `&dyn Fn` is two pointer-sized words; they are stored and rebuilt unchanged.
    let words: [usize; 2] =
        unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), [usize; 2]>(f) };
    [words[0] as u64, words[1] as u64]
}

impl Pool {
    /// A pool of `threads` threads in all (the caller counts as one).
    pub fn new(threads: usize) -> Self {
        let workers = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            job: [AtomicU64::new(0), AtomicU64::new(0)],
            tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            slots: (0..workers).map(|_| Slot::default()).collect(),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut handles = Vec::with_capacity(workers);
        for k in 0..workers {
            let s = shared.clone();
            match std::thread::Builder::new()
                .name(format!("duet-kernel-{}", k + 1))
                .spawn(move || worker(&s, k))
            {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Run with the threads that did start; a slot without a thread would
                    // never acknowledge, so the pool shrinks to what exists.
                    tracing::warn!("could not start a kernel thread: {e}");
                    break;
                }
            }
        }
        let started = handles.len();
        if started < workers {
            // Rebuild with exactly the started workers' slots.
            shared.stop.store(true, Ordering::Release);
            for h in handles {
                let _ = h.join();
            }
            return Self::new(started + 1);
        }
        Self {
            shared,
            handles,
            generation: Mutex::new(0),
        }
    }

    /// Threads that run tasks (the caller included).
    pub fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// Runs `f(0)`, …, `f(n − 1)` on the pool's threads and returns when all have finished.
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.handles.is_empty() || n <= 1 {
            (0..n).for_each(f);
            return;
        }
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        let g = *generation;
        let s = &*self.shared;
        let [a, b] = split(f);
        s.job[0].store(a, Ordering::Relaxed);
        s.job[1].store(b, Ordering::Relaxed);
        s.tasks.store(n, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        for slot in &s.slots {
            slot.go.store(g, Ordering::Release);
        }
        if s.sleepers.load(Ordering::Acquire) > 0 {
            let _lock = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        // A panic here must not unwind past the workers still running `f`.
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_tasks(s, n, f)));
        for slot in &s.slots {
            let mut spins = 0u32;
            while slot.ack.load(Ordering::Acquire) != g {
                spins += 1;
                if spins < SPINS {
                    std::hint::spin_loop();
                } else {
                    // The worker was descheduled: let it (or whoever holds the core) run.
                    std::thread::yield_now();
                }
            }
        }
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::AcqRel) {
            panic!("a kernel task panicked on a worker thread");
        }
    }
}

fn run_tasks(s: &Shared, n: usize, f: &(dyn Fn(usize) + Sync + '_)) {
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        f(i);
    }
}

fn worker(s: &Shared, k: usize) {
    let slot = &s.slots[k];
    let mut seen = 0u64;
    loop {
        let mut spins = 0u32;
        let g = loop {
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            let g = slot.go.load(Ordering::Acquire);
            if g != seen {
                break g;
            }
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
                continue;
            }
            if spins < SPINS + YIELDS {
                std::thread::yield_now();
                continue;
            }
            let guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::AcqRel);
            if slot.go.load(Ordering::Acquire) == seen && !s.stop.load(Ordering::Acquire) {
                let _g = s
                    .wake
                    .wait_timeout(guard, std::time::Duration::from_millis(20))
                    .unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::AcqRel);
            spins = 0;
        };
        seen = g;
        let words = [
            s.job[0].load(Ordering::Relaxed) as usize,
            s.job[1].load(Ordering::Relaxed) as usize,
        ];
        // SAFETY: `go == g` was published (Release) after the job words of generation `g`
        // were stored, and `run` does not return — so the job stays alive — until this
        // worker writes `ack = g` below.
        let f = unsafe { std::mem::transmute::<[usize; 2], &Task>(words) };
        let n = s.tasks.load(Ordering::Relaxed);
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_tasks(s, n, f))).is_err() {
            s.panicked.store(true, Ordering::Release);
        }
        slot.ack.store(g, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The pool every quantized model shares, sized by `DUET_THREADS` or the CPUs available.
pub fn global() -> &'static Pool {
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let n = std::env::var("DUET_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Pool::new(n)
    })
}

/// A mutable buffer that the tasks of one [`Pool::run`] write in disjoint parts.
#[derive(Debug, Clone, Copy)]
pub struct Disjoint {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `Disjoint` only hands out parts through `part`, whose contract is that no two live
// parts overlap; the buffer outlives the `run` it is used in (it is borrowed from a slice).
unsafe impl Send for Disjoint {}
// SAFETY: as above.
unsafe impl Sync for Disjoint {}

impl Disjoint {
    /// Wraps `buf` for the duration of one `run`.
    pub fn new(buf: &mut [f32]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// Elements `start..start + len` of the buffer.
    ///
    /// # Safety
    /// No other part in use at the same time may overlap this one, and the slice the
    /// `Disjoint` was made from must still be borrowed by the caller of `run`.
    #[allow(clippy::mut_from_ref)] // disjoint parts of one buffer, by the caller's contract
    pub unsafe fn part(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(
            start + len <= self.len,
            "part {start}+{len} of {}",
            self.len
        );
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
