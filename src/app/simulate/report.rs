//! Scores a simulated year against its ground truth and writes the markdown report
//! (docs/DETECTOR.md). A page is true when, at the hour it fired, an injected drop was active
//! (or had ended less than 24 h before) that moved that segment's NPS by at least a quarter
//! of the segment's δ — the drop took that many points off its share of the segment's
//! answers. Every other page is false, decoys included.

use super::{InjectedDrop, SimResult};
use crate::stats::poisson_interval;
use std::fmt::Write;

const GRACE_H: i64 = 24;
const WITHIN: [i64; 4] = [1, 6, 24, 72];

/// NPS points the injected drops active at `hour` (or ended less than a day before) took
/// off `seg`'s answers, added up.
fn shift(r: &SimResult, seg: usize, hour: i64) -> f64 {
    r.drops
        .iter()
        .filter(|d| hour >= d.start && hour < d.start + d.hours + GRACE_H)
        .map(|d| d.size * d.share.get(&seg).copied().unwrap_or(0.0))
        .sum()
}

pub fn is_true(r: &SimResult, seg: usize, hour: i64) -> bool {
    shift(r, seg, hour) >= r.segs[seg].delta / 4.0
}

/// Hours from a drop's start to the end of the hour its own segment paged (None: missed).
pub fn delay(d: &InjectedDrop, pages: &[(usize, i64)]) -> Option<i64> {
    pages
        .iter()
        .filter(|&&(s, h)| s == d.seg && h >= d.start && h < d.start + d.hours + GRACE_H)
        .map(|&(_, h)| h + 1 - d.start)
        .min()
}

pub struct Score {
    pub pages: usize,
    pub false_pages: usize,
    /// False pages with less than half a point of injected shift behind them.
    pub noise_pages: usize,
    pub per_week: f64,
    pub per_week_ci: (f64, f64),
    pub fdr: f64,
}

pub fn score(r: &SimResult, pages: &[(usize, i64)]) -> Score {
    let in_eval: Vec<&(usize, i64)> = pages
        .iter()
        .filter(|p| p.1 >= r.eval_from && p.1 < r.eval_to)
        .collect();
    let false_pages = in_eval.iter().filter(|p| !is_true(r, p.0, p.1)).count();
    let noise_pages = in_eval.iter().filter(|p| shift(r, p.0, p.1) < 0.5).count();
    let weeks = f64::from(r.config.days) / 7.0;
    let (lo, hi) = poisson_interval(false_pages as u64);
    Score {
        pages: in_eval.len(),
        false_pages,
        noise_pages,
        per_week: false_pages as f64 / weeks,
        per_week_ci: (lo / weeks, hi / weeks),
        fdr: if in_eval.is_empty() {
            0.0
        } else {
            false_pages as f64 / in_eval.len() as f64
        },
    }
}

fn mean_p90(xs: &mut [i64]) -> (String, String) {
    if xs.is_empty() {
        return ("—".into(), "—".into());
    }
    xs.sort_unstable();
    let mean = xs.iter().sum::<i64>() as f64 / xs.len() as f64;
    let p90 = xs[((xs.len() as f64 * 0.9).ceil() as usize).clamp(1, xs.len()) - 1];
    (format!("{mean:.1}"), format!("{p90}"))
}

const BINS: [(f64, f64, &str); 6] = [
    (0.0, 60.0, "5–60"),
    (60.0, 400.0, "60–400 (~200)"),
    (400.0, 2500.0, "400–2.5k (~1,000)"),
    (2500.0, 12000.0, "2.5k–12k (~5,000)"),
    (12000.0, f64::INFINITY, "12k+"),
    (f64::NAN, f64::NAN, ""),
];

fn bin(v: f64) -> &'static str {
    BINS.iter()
        .find(|b| v >= b.0 && v < b.1)
        .map_or("?", |b| b.2)
}

fn row(drops: &[&InjectedDrop], pages: &[(usize, i64)]) -> String {
    let ds: Vec<Option<i64>> = drops.iter().map(|d| delay(d, pages)).collect();
    let n = ds.len().max(1) as f64;
    let recall: Vec<String> = WITHIN
        .iter()
        .map(|w| {
            format!(
                "{:.0}%",
                100.0 * ds.iter().filter(|x| x.is_some_and(|v| v <= *w)).count() as f64 / n
            )
        })
        .collect();
    let mut hit: Vec<i64> = ds.iter().flatten().copied().collect();
    let (mean, p90) = mean_p90(&mut hit);
    format!("{} | {} | {mean} | {p90}", recall.join(" | "), hit.len())
}

pub fn markdown(r: &SimResult, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Reproduce: `{command}` (seed {}, {:.0} s on this machine).\n",
        r.config.seed, r.elapsed_s
    );
    world_and_pages(&mut s, r);
    super::oncall::section(&mut s, r);
    recall_and_delay(&mut s, r);
    targets(&mut s, r);
    decoys(&mut s, r);
    digest(&mut s, r);
    s
}

/// What was simulated, and pages of both against the ground truth.
fn world_and_pages(s: &mut String, r: &SimResult) {
    let det = score(r, &r.detector_pages);
    let rule = score(r, &r.rule_pages);
    let cfg = &r.config;
    let vols: Vec<f64> = r.segs.iter().map(|m| m.per_day).collect();
    let by = |g: &str| r.segs.iter().filter(|m| m.grouping == g).count();
    let _ = writeln!(
        s,
        "Simulated: {} days (after {} days of warm-up), {} segments (overall, {} regions, {} teams, {} agents, {} products, {} tiers, {} channel×bucket), {:.0} answers a day in all; agents {:.0}–{:.0} a day. {} injected drops (5/10/20/30 points, 6 h to 14 days) and {} decoys. Budget {} false page(s) a week.\n",
        cfg.days, cfg.warmup_days, r.segs.len(), by("region"), by("team"), by("agent"), by("product"), by("tier"), by("channel,bucket"),
        vols.first().copied().unwrap_or(0.0),
        r.segs.iter().filter(|m| m.grouping == "agent").map(|m| m.per_day).fold(f64::INFINITY, f64::min),
        r.segs.iter().filter(|m| m.grouping == "agent").map(|m| m.per_day).fold(0.0, f64::max),
        r.drops.len(), r.decoys.len(), cfg.settings.budget_per_week
    );
    let _ = writeln!(
        s,
        "### Segment alerts (the detector) and pages (today's rule)\n\n| | detector | today's rule |\n|---|---|---|"
    );
    let _ = writeln!(s, "| pages | {} | {} |", det.pages, rule.pages);
    let _ = writeln!(
        s,
        "| false pages | {} | {} |",
        det.false_pages, rule.false_pages
    );
    let _ = writeln!(
        s,
        "| … of which with no injected shift at all (< 0.5 point) | {} | {} |",
        det.noise_pages, rule.noise_pages
    );
    let _ = writeln!(
        s,
        "| false pages per week (95% Poisson) | {:.2} ({:.2}–{:.2}) | {:.2} ({:.2}–{:.2}) |",
        det.per_week,
        det.per_week_ci.0,
        det.per_week_ci.1,
        rule.per_week,
        rule.per_week_ci.0,
        rule.per_week_ci.1
    );
    let _ = writeln!(
        s,
        "| false-discovery rate | {:.1}% | {:.1}% |",
        100.0 * det.fdr,
        100.0 * rule.fdr
    );
}

/// Recall and delay over all drops, then by volume and size.
fn recall_and_delay(s: &mut String, r: &SimResult) {
    let all: Vec<&InjectedDrop> = r.drops.iter().collect();
    let _ = writeln!(s, "\n### Recall and delay, all {} drops\n", all.len());
    let _ = writeln!(s, "| who | ≤1 h | ≤6 h | ≤24 h | ≤72 h | detected | mean delay h | p90 h |\n|---|---|---|---|---|---|---|---|");
    let _ = writeln!(s, "| detector | {} |", row(&all, &r.detector_pages));
    let _ = writeln!(
        s,
        "| ideal single CUSUM (knows the truth) | {} |",
        row(&all, &r.ideal_pages)
    );
    let _ = writeln!(s, "| today's rule | {} |", row(&all, &r.rule_pages));
    let _ = writeln!(
        s,
        "\n### By volume of the dropped segment (answers a day) and drop size\n"
    );
    let _ = writeln!(s, "Delays count from the drop's start to the end of the hour its own segment paged; 'detected' counts pages until 24 h after the drop ended.\n");
    let _ = writeln!(s, "| volume | drop | drops | detector ≤1/6/24/72 h | detected | mean | p90 | rule ≤1/6/24/72 h | detected | mean | p90 |\n|---|---|---|---|---|---|---|---|---|---|---|");
    for b in BINS.iter().filter(|b| !b.2.is_empty()) {
        for size in [5.0, 10.0, 20.0, 30.0] {
            let ds: Vec<&InjectedDrop> = r
                .drops
                .iter()
                .filter(|d| d.size == size && bin(r.segs[d.seg].per_day) == b.2)
                .collect();
            if ds.is_empty() {
                continue;
            }
            let dr = row(&ds, &r.detector_pages);
            let rr = row(&ds, &r.rule_pages);
            let _ = writeln!(
                s,
                "| {} | {size:.0} | {} | {} | {} |",
                b.2,
                ds.len(),
                fmt4(&dr),
                fmt4(&rr)
            );
        }
    }
}

/// The sustained drops the delay targets speak of.
fn targets(s: &mut String, r: &SimResult) {
    let _ = writeln!(s, "\n### Against the delay targets (sustained drops: 72 h or longer, volume within ×2 of the target's)\n");
    let _ = writeln!(s, "| target | drops | detector mean / p90 h | detector mean, h at average volume | recall ≤72 h | rule mean / p90 h | rule recall ≤72 h |\n|---|---|---|---|---|---|---|");
    for (vol, size, target) in [
        (1000.0, 10.0, 31.0),
        (5000.0, 10.0, 7.0),
        (5000.0, 20.0, 2.5),
        (200.0, 30.0, 29.0),
    ] {
        let ds: Vec<&InjectedDrop> = r
            .drops
            .iter()
            .filter(|d| {
                d.size == size
                    && d.hours >= 72
                    && (vol / 2.0..vol * 2.0).contains(&r.segs[d.seg].per_day)
            })
            .collect();
        let cell = |pages: &[(usize, i64)]| {
            let hits: Vec<(&&InjectedDrop, i64)> = ds
                .iter()
                .filter_map(|d| delay(d, pages).map(|x| (d, x)))
                .filter(|x| x.1 <= 72)
                .collect();
            let mut hit: Vec<i64> = hits.iter().map(|x| x.1).collect();
            // The same delays in hours at the segment's average volume: answers seen until
            // the page over answers per average hour.
            let flat: Vec<f64> = hits
                .iter()
                .map(|(d, x)| {
                    let seen: u64 = d.trace.iter().take(*x as usize).sum();
                    seen as f64 / (r.segs[d.seg].per_day / 24.0).max(1e-9)
                })
                .collect();
            let flat_mean = if flat.is_empty() {
                "—".to_string()
            } else {
                format!("{:.1}", flat.iter().sum::<f64>() / flat.len() as f64)
            };
            let rec = 100.0 * hit.len() as f64 / ds.len().max(1) as f64;
            let (m, p) = mean_p90(&mut hit);
            (format!("{m} / {p}"), flat_mean, format!("{rec:.0}%"))
        };
        let (dm, dflat, drc) = cell(&r.detector_pages);
        let (rm, _, rrc) = cell(&r.rule_pages);
        let _ = writeln!(s, "| {size:.0} points at {vol:.0}/day within ~{target} h | {} | {dm} | {dflat} | {drc} | {rm} | {rrc} |", ds.len());
    }
}

fn decoys(s: &mut String, r: &SimResult) {
    let _ = writeln!(s, "\n### Decoys (must not page)\n\n| decoy | start | detector false pages | rule false pages |\n|---|---|---|---|");
    for d in &r.decoys {
        let count = |pages: &[(usize, i64)]| {
            pages
                .iter()
                .filter(|&&(sg, h)| {
                    h >= d.start && h < d.start + d.hours + GRACE_H && !is_true(r, sg, h)
                })
                .count()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            d.kind,
            crate::detect::rfc3339(d.start * 3600),
            count(&r.detector_pages),
            count(&r.rule_pages)
        );
    }
}

fn digest(s: &mut String, r: &SimResult) {
    let cfg = &r.config;
    let dg: Vec<&(usize, i64, u32)> = r.digest.iter().filter(|x| x.1 >= r.eval_from).collect();
    let dfalse = dg
        .iter()
        .filter(|&&&(sg, day, period)| {
            let need = r.segs[sg].delta / 4.0;
            let total: f64 = r
                .drops
                .iter()
                .filter(|d| d.start < day + 24 * i64::from(period) && d.start + d.hours > day)
                .map(|d| d.size * d.share.get(&sg).copied().unwrap_or(0.0))
                .sum();
            total < need
        })
        .count();
    let _ = writeln!(
        s,
        "\n### Digest\n\n{} entries flagged over the year (day and week periods, Benjamini–Hochberg at q = {}); {} without a drop of at least δ/4 behind them: false-discovery proportion {:.1}%.",
        dg.len(),
        cfg.settings.digest_fdr,
        dfalse,
        if dg.is_empty() { 0.0 } else { 100.0 * dfalse as f64 / dg.len() as f64 }
    );
}

fn fmt4(row: &str) -> String {
    // "a | b | c | d | n | mean | p90" → "a/b/c/d | n | mean | p90"
    let parts: Vec<&str> = row.split(" | ").collect();
    if parts.len() == 7 {
        format!(
            "{} | {} | {} | {}",
            parts[..4].join("/"),
            parts[4],
            parts[5],
            parts[6]
        )
    } else {
        row.to_string()
    }
}

/// Runs the simulation and prints (and optionally writes) the report.
pub fn print(cfg: &super::SimConfig, out: Option<&std::path::Path>) -> std::io::Result<()> {
    let r = super::run(cfg);
    let command = format!(
        "cx-pipeline simulate-detector --seed {} --days {} --teams {} --agents-per-team {} --drops {}{}",
        cfg.seed,
        cfg.days,
        cfg.teams,
        cfg.agents_per_team,
        cfg.drops,
        if cfg.shifting { " --world shifting" } else { "" }
    );
    let mut md = markdown(&r, &command);
    md.push_str(&probe_section(&cfg.settings, cfg.seed));
    if std::env::var_os("CXP_SIM_DEBUG").is_some() {
        debug_dump(&r);
    }
    println!("{md}");
    if let Some(p) = out {
        std::fs::write(p, &md)?;
    }
    Ok(())
}

/// Every drop, page and resolve on stderr (`CXP_SIM_DEBUG`), for tuning the harness.
fn debug_dump(r: &SimResult) {
    for d in &r.drops {
        eprintln!(
            "drop {} {:.0}/day size {} hours {} start {} delay {:?}",
            r.segs[d.seg].label,
            r.segs[d.seg].per_day,
            d.size,
            d.hours,
            d.start,
            delay(d, &r.detector_pages)
        );
    }
    let active_at = |seg: usize, h: i64| {
        let f = r
            .detector_pages
            .iter()
            .filter(|p| p.0 == seg && p.1 <= h)
            .map(|p| p.1)
            .max();
        let res = r
            .resolves
            .iter()
            .filter(|p| p.0 == seg && p.1 <= h)
            .map(|p| p.1)
            .max();
        f.is_some_and(|f| res.is_none_or(|x| x < f)).then_some(f)
    };
    for d in r.drops.iter().filter(|d| d.seg < 100) {
        let ps: Vec<i64> = r
            .detector_pages
            .iter()
            .filter(|p| p.0 == d.seg)
            .map(|p| p.1)
            .collect();
        let rs: Vec<i64> = r
            .resolves
            .iter()
            .filter(|p| p.0 == d.seg)
            .map(|p| p.1)
            .collect();
        eprintln!(
            "seg {} drop {}..{} size {} pages {ps:?} resolves {rs:?}",
            r.segs[d.seg].label,
            d.start,
            d.start + d.hours,
            d.size
        );
    }
    for d in r
        .drops
        .iter()
        .filter(|d| delay(d, &r.detector_pages).is_none())
    {
        eprintln!(
            "missed {} active at start: {:?}",
            r.segs[d.seg].label,
            active_at(d.seg, d.start)
        );
    }
    let mut durations: Vec<i64> = Vec::new();
    for &(sg, f) in &r.detector_pages {
        if let Some(x) = r
            .resolves
            .iter()
            .filter(|p| p.0 == sg && p.1 > f)
            .map(|p| p.1)
            .min()
        {
            durations.push(x - f);
        }
    }
    durations.sort();
    eprintln!(
        "alerts {} resolved {} median duration {:?}",
        r.detector_pages.len(),
        durations.len(),
        durations.get(durations.len() / 2)
    );
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for &(sg, h) in &r.detector_pages {
        if h >= r.eval_from && !is_true(r, sg, h) {
            *by.entry(r.segs[sg].grouping.clone()).or_default() += 1;
            eprintln!(
                "false page {} at {} ({:.0}/day)",
                r.segs[sg].label, h, r.segs[sg].per_day
            );
        }
    }
    eprintln!("false pages by grouping: {by:?}");
}

/// The delay targets measured on fixed-volume probes (see `probe`).
pub fn probe_section(set: &crate::detect::Params, seed: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### The delay targets on fixed-volume probes\n\n60 team segments per row at a constant volume (baseline NPS 30, δ = 10 as for a team), a sustained drop from a random hour, among 2,000 segments sharing a budget of {} false page(s) a week (105 of non-nested groupings as in the simulated year, the rest agents; those not probed stay silent). Delays count to the end of the hour that paged.\n",
        set.budget_per_week
    );
    let _ = writeln!(
        s,
        "| target | probes | detector mean h | p90 h | paged within 12 days | pages before the drop |\n|---|---|---|---|---|---|"
    );
    let targets = [
        (1000.0, 10.0, 24.0),
        (5000.0, 10.0, 5.5),
        (5000.0, 20.0, 1.5),
        (200.0, 30.0, 16.0),
    ];
    for (i, (vol, size, target)) in targets.into_iter().enumerate() {
        let p = super::probe::run(
            set,
            vol,
            size,
            target,
            60,
            2000,
            seed.wrapping_add(i as u64 + 1),
        );
        let mut hit: Vec<i64> = p.delays.iter().flatten().copied().collect();
        let n = p.delays.len();
        let (mean, p90) = mean_p90(&mut hit);
        let _ = writeln!(
            s,
            "| {:.0} points at {:.0}/day within ~{} h | {n} | {mean} | {p90} | {} | {} |",
            p.size,
            p.per_day,
            p.target_h,
            hit.len(),
            p.false_pages
        );
    }
    s
}
