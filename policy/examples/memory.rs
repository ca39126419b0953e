//! What the compiled default policy and redaction rules hold in memory, counted by a global
//! allocator: live bytes after compiling, the peak while compiling, and what 2,000
//! evaluations add (the regex engines' lazy caches).
//!
//! cargo run --release -p quint-policy --example memory

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use quint_policy::{ActionType, Event, Policy, Source};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        grew(size as isize - layout.size() as isize);
        unsafe { System.realloc(pointer, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn megabytes(bytes: isize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Live bytes and peak above `from` while `build` runs.
fn measure<T>(build: impl FnOnce() -> T) -> (T, isize, isize) {
    let from = LIVE.load(Ordering::Relaxed);
    PEAK.store(from, Ordering::Relaxed);
    let built = build();
    let live = LIVE.load(Ordering::Relaxed) - from;
    (built, live, PEAK.load(Ordering::Relaxed) - from)
}

fn main() {
    let sources = quint_policy::default_pack::default_sources();
    let (policy, live, peak) = measure(|| Policy::compile(&sources).expect("the default pack"));
    println!(
        "policy ({} rules): {:.1} MB live, {:.1} MB peak while compiling",
        policy.rules().len(),
        megabytes(live),
        megabytes(peak)
    );
    let (redactor, live, peak) =
        measure(|| quint_policy::redact::Redactor::builtin(&[7; 32]).expect("built-in rules"));
    println!(
        "redaction rules ({}): {:.1} MB live, {:.1} MB peak while compiling",
        redactor.rule_count(),
        megabytes(live),
        megabytes(peak)
    );
    let (_, live, _) = measure(|| {
        let mut event = Event::new(Source::Hook, "claude-code", ActionType::ProcessExec, "s");
        for i in 0..2000 {
            event.target = Some(format!(
                "git commit -m 'change {i}' && npm test -- --grep x{i} && cat ~/.aws/credentials{i}"
            ));
            std::hint::black_box(policy.evaluate(&event));
            std::hint::black_box(redactor.redact(event.target.as_deref().unwrap_or_default()));
        }
    });
    println!(
        "2,000 evaluations and redactions of commands: +{:.1} MB",
        megabytes(live)
    );
}
