//! State size: bytes per open ticket in the join and per open row in the windows, counted
//! by a wrapping allocator (live bytes requested), plus the checkpoint bytes per ticket.
//! Not a timing benchmark; it prints a table.
//!
//! Run: cargo bench --bench state

use cx_pipeline::codec::WireFormat;
use cx_pipeline::config::Config;
use cx_pipeline::generator::{generate, GenConfig};
use cx_pipeline::join::JoinState;
use cx_pipeline::model::Event;
use cx_pipeline::pipeline::dedup::IdSet;
use cx_pipeline::pipeline::dims;
use cx_pipeline::window::WindowState;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live bytes on top of the allocator the binary uses.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to mimalloc; the counter has no effect on the
// returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let st = Config::default()
        .validate()
        .unwrap_or_else(|e| panic!("{e}"))
        .settings;
    println!("| events | open tickets | contacts | join bytes / open ticket | join bytes / contact | checkpoint bytes / ticket | window rows | bytes / window row | `cx_state_bytes` join / counted | ids: counted bytes / id | `cx_state_bytes` ids / counted | revisable surveys | bytes / revisable survey |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for count in [50_000, 200_000, 800_000] {
        let events = generate(
            &GenConfig {
                count,
                malformed_share: 0.0,
                late_share: 0.0,
                ..GenConfig::default()
            },
            WireFormat::Avro,
        );
        let contacts: Vec<_> = events
            .iter()
            .filter_map(|g| match &g.event {
                Event::Interaction(i) => Some(i.clone()),
                Event::Survey(_) => None,
            })
            .collect();
        // The join alone, every contact held (a 7-day lookback spans all of them).
        let before = live();
        let mut j = JoinState::default();
        for i in &contacts {
            j.add_contact(i, i64::MIN, &st.join, &mut Vec::new());
        }
        let join_bytes = live() - before;
        let checkpoint = postcard::to_allocvec(&j).map_or(0, |b| b.len());
        // Every survey settled and held for revision (the contact floor just past the last
        // contact, the revision horizon of 7 days behind it reaching all of them).
        let (revisable, revisable_bytes) = revisable(&events, &mut j, &st.join);
        // Duplicate detection: every event's id remembered (the late horizon spans them all).
        let before = live();
        let mut ids = IdSet::default();
        for g in &events {
            let (id, t) = match &g.event {
                Event::Interaction(i) => (i.interaction_id.as_str(), i.ended_at_ms),
                Event::Survey(s) => (s.response_id.as_str(), s.submitted_at_ms),
            };
            let _ = ids.check(id, id.as_bytes(), t, i64::MIN, usize::MAX);
        }
        let ids_bytes = live() - before;
        // The windows alone: every event folded, rolled up (one drain), nothing closed.
        let before = live();
        let mut w = WindowState::default();
        for g in &events {
            match &g.event {
                Event::Interaction(i) => w.add(i.ended_at_ms, &dims::contact(i), &st.window, |p| {
                    p.add_contact(i.talk_ms as u64, i.hold_ms as u64, i.wrap_ms as u64)
                }),
                Event::Survey(s) => {
                    w.add(s.submitted_at_ms, &dims::survey(s, None), &st.window, |p| {
                        p.add_survey(s.nps_score, s.csat_score, false)
                    })
                }
            }
        }
        let mut emitted = 0usize;
        w.drain_dirty(&st.window, |_| emitted += 1);
        let window_bytes = live() - before;
        println!(
            "| {count} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {:.2} | {:.0} | {:.2} | {} | {:.0} |",
            j.tickets_len(),
            j.contacts_len(),
            join_bytes as f64 / j.tickets_len() as f64,
            join_bytes as f64 / j.contacts_len() as f64,
            checkpoint as f64 / j.tickets_len() as f64,
            w.open_len(),
            window_bytes as f64 / w.open_len().max(1) as f64,
            j.bytes() as f64 / (join_bytes + revisable_bytes) as f64,
            ids_bytes as f64 / ids.len().max(1) as f64,
            ids.bytes() as f64 / ids_bytes.max(1) as f64,
            revisable,
            revisable_bytes as f64 / revisable.max(1) as f64,
        );
        assert_eq!(emitted, w.open_len());
    }
}

/// Parks every survey, settles them all with the floor just past the newest contact, and
/// returns how many stay revisable and the live bytes they added.
fn revisable(
    events: &[cx_pipeline::generator::GenEvent],
    j: &mut JoinState,
    cfg: &cx_pipeline::join::JoinConfig,
) -> (usize, usize) {
    let before = live();
    let mut newest = i64::MIN;
    for (n, g) in events.iter().enumerate() {
        match &g.event {
            Event::Survey(s) => {
                let p = cx_pipeline::join::Pending {
                    lo_ms: s.submitted_at_ms - cfg.lookback_ms,
                    survey: s.clone(),
                    offset: n as i64,
                    late: false,
                };
                let _ = j.park(p, cfg);
            }
            Event::Interaction(i) => newest = newest.max(i.ended_at_ms),
        }
    }
    let floor = newest.max(
        events
            .iter()
            .filter_map(|g| match &g.event {
                Event::Survey(s) => Some(s.submitted_at_ms + cfg.max_wait_ms + 1),
                Event::Interaction(_) => None,
            })
            .max()
            .unwrap_or(newest),
    );
    drop(j.resolve_until(floor, cfg));
    (j.revisable_len(), live().saturating_sub(before))
}
