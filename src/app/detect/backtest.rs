//! `cx-pipeline backtest`: the detector replayed over a deployment's own recorded answers
//! (`survey_facts` in ClickHouse), with drops injected into an in-memory copy, so a team
//! can see what it would have been paged for and how fast an injected drop of a given size
//! is found in *its* data before turning paging on. ClickHouse is only read.
//!
//! The copy is the facts' hourly cross-tab over every dimension; segments of each configured
//! grouping are summed from it, and so are the shared answers the incident rule needs.
//! An injection lowers the NPS of the answers it covers by its size, moving promoters (then
//! passives) to detractors, the remainder carried from cell to cell so the total is exact.

use super::ServiceError;
use crate::config::Validated;
use crate::detect::detector::OverlapRequest;
use crate::detect::{AlertEvent, AlertState, Counts, Detector, SegmentKey};
use crate::model::DIMENSIONS;
use crate::sink::ClickHouseSink;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// The copy refuses to grow past this many (hour, dimension values) cells: narrow the range.
const MAX_CELLS: usize = 5_000_000;

/// The longest injected drop: a replay of a year at most.
const MAX_INJECT_HOURS: u64 = 366 * 24;

/// A drop written as `SEGMENT:POINTS:DURATION@START`, e.g.
/// `team=billing:10:72h@2026-11-20T00:00:00Z` or `channel=CHAT,bucket=PRE_SALES:5:1d@...`.
#[derive(Clone, Debug)]
pub struct Injection {
    pub unit: SegmentKey,
    pub points: f64,
    pub from_hour: i64,
    pub hours: i64,
}

impl std::str::FromStr for Injection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("--inject {s:?}: {why} (SEGMENT:POINTS:DURATION@START)");
        let (spec, start) = s.split_once('@').ok_or_else(|| bad("no @START"))?;
        let mut parts = spec.rsplitn(3, ':');
        let (dur, points, label) = match (parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(p), Some(l)) => (d, p, l),
            _ => return Err(bad("three ':'-separated fields needed")),
        };
        let points: f64 = points.parse().map_err(|_| bad("POINTS is not a number"))?;
        if !(points > 0.0 && points <= 200.0) {
            return Err(bad("POINTS must be in (0, 200]"));
        }
        let hours = humantime::parse_duration(dur)
            .map_err(|e| bad(&format!("DURATION: {e}")))?
            .as_secs()
            / 3600;
        if hours == 0 || hours > MAX_INJECT_HOURS {
            return Err(bad("DURATION must be from 1h to 366 days"));
        }
        let start = humantime::parse_rfc3339_weak(start)
            .map_err(|e| bad(&format!("START: {e}")))?
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| bad("START before 1970"))?;
        let mut pairs = Vec::new();
        for kv in label
            .split(',')
            .filter(|x| !x.is_empty() && *x != "overall")
        {
            let (d, v) = kv
                .split_once('=')
                .ok_or_else(|| bad("SEGMENT is dim=value,..."))?;
            let i = DIMENSIONS
                .iter()
                .position(|x| *x == d)
                .ok_or_else(|| bad(&format!("unknown dimension {d:?}")))?;
            pairs.push((i, v));
        }
        Ok(Injection {
            unit: SegmentKey::of(&pairs),
            points,
            from_hour: i64::try_from(start.as_secs() / 3600).unwrap_or(i64::MAX),
            hours: i64::try_from(hours).unwrap_or(i64::MAX),
        })
    }
}

/// One hour's answers with one combination of dimension values.
#[derive(Clone, Debug, clickhouse::Row, serde::Deserialize)]
pub struct Cell {
    pub hour_s: u32,
    pub values: [String; 7],
    pub p: u64,
    pub q: u64,
    pub d: u64,
}

impl Cell {
    fn hour(&self) -> i64 {
        i64::from(self.hour_s) / 3600
    }

    fn counts(&self) -> Counts {
        Counts::new(self.p, self.q, self.d)
    }

    fn in_segment(&self, k: &SegmentKey) -> bool {
        (0..7).all(|i| k.mask & (1 << i) == 0 || self.values[i] == k.values[i])
    }
}

/// The hourly cross-tab of `survey_facts` over `[from_hour, to_hour)`.
pub async fn cells(
    sink: &ClickHouseSink,
    from_hour: i64,
    to_hour: i64,
) -> Result<Vec<Cell>, ServiceError> {
    let dims = DIMENSIONS.join(", ");
    let sql = format!(
        "SELECT toUInt32(toStartOfHour(submitted_at)) AS h, {dims}, {} FROM {}.survey_facts FINAL \
         WHERE submitted_at >= toDateTime(?) AND submitted_at < toDateTime(?) AND isNotNull(nps_score) \
         GROUP BY h, {dims} ORDER BY h LIMIT {}",
        super::store::class_counts(),
        sink.database(),
        MAX_CELLS + 1
    );
    let secs = |h: i64| u32::try_from((h * 3600).max(0)).unwrap_or(u32::MAX);
    let rows: Vec<Cell> = sink
        .retrying("SELECT", "survey_facts", || {
            sink.client()
                .query(&sql)
                .bind(secs(from_hour))
                .bind(secs(to_hour))
                .fetch_all()
        })
        .await?;
    if rows.len() > MAX_CELLS {
        return Err(ServiceError::Setting(format!(
            "backtest: more than {MAX_CELLS} hourly cells in the range; narrow --from/--to"
        )));
    }
    Ok(rows)
}

/// Lowers the NPS of every cell an injection covers by its size (see the module doc).
pub fn inject(cells: &mut [Cell], injections: &[Injection]) {
    for inj in injections {
        let mut carry = 0.0;
        let span = inj.from_hour..inj.from_hour.saturating_add(inj.hours);
        for c in cells
            .iter_mut()
            .filter(|c| span.contains(&c.hour()) && c.in_segment(&inj.unit))
        {
            let n = c.counts().n() as f64;
            let mut need = inj.points / 100.0 * n + carry;
            let kp = c.p.min((need / 2.0).floor().max(0.0) as u64);
            c.p -= kp;
            c.d += kp;
            need -= 2.0 * kp as f64;
            let kq = c.q.min(need.floor().max(0.0) as u64);
            c.q -= kq;
            c.d += kq;
            need -= kq as f64;
            carry = need.max(0.0);
        }
    }
}

/// Every alert event the detector gives over the cells, hour by hour, with incidents.
pub fn replay(v: &Validated, cells: &[Cell]) -> Result<Vec<AlertEvent>, ServiceError> {
    let masks: Vec<u8> = v.settings.window.groupings.iter().map(|g| g.mask).collect();
    let ds = &v.detector;
    let mut hier = super::hierarchy(v)?;
    for (child, container) in &ds.nesting {
        let (ci, pi) = (dim(child), dim(container));
        let mut seen: HashMap<(&str, &str), u64> = HashMap::new();
        for c in cells {
            *seen.entry((&c.values[ci], &c.values[pi])).or_default() += c.counts().n();
        }
        let mut best: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
        for ((cv, pv), n) in seen {
            let e = best.entry(cv).or_insert((0, pv));
            if n > e.0 || (n == e.0 && pv < e.1) {
                *e = (n, pv);
            }
        }
        for (cv, (_, pv)) in best {
            hier.set_container(child, cv, pv);
        }
    }
    let mut det = Detector::new(ds.params.clone(), hier);
    let mut by_hour: BTreeMap<i64, Vec<&Cell>> = BTreeMap::new();
    for c in cells {
        by_hour.entry(c.hour()).or_default().push(c);
    }
    let (Some(&first), Some(&last)) = (by_hour.keys().next(), by_hour.keys().next_back()) else {
        return Ok(Vec::new());
    };
    let mut events = Vec::new();
    for h in first..=last {
        let mut rows: HashMap<SegmentKey, Counts> = HashMap::new();
        for c in by_hour.get(&h).into_iter().flatten() {
            for &m in &masks {
                let mut values = c.values.clone();
                for (i, x) in values.iter_mut().enumerate() {
                    if m & (1 << i) == 0 {
                        x.clear();
                    }
                }
                rows.entry(SegmentKey { mask: m, values })
                    .or_default()
                    .add(&c.counts());
            }
        }
        let mut rows: Vec<(SegmentKey, Counts)> = rows.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = det.step(h, &rows);
        let overlaps: Vec<(OverlapRequest, Counts)> = det
            .overlap_requests(&out)
            .into_iter()
            .map(|q| {
                let mut c = Counts::default();
                for hour in q.from_hour..q.to_hour {
                    for cell in by_hour.get(&hour).into_iter().flatten() {
                        if cell.in_segment(&q.x) && cell.in_segment(&q.a) {
                            c.add(&cell.counts());
                        }
                    }
                }
                (q, c)
            })
            .collect();
        det.group(&mut out, &overlaps);
        events.extend(out.alerts);
    }
    Ok(events)
}

fn dim(name: &str) -> usize {
    DIMENSIONS.iter().position(|d| *d == name).unwrap_or(0)
}

/// The report: what would have been sent, then how each injected drop was found.
pub fn report(
    events: &[AlertEvent],
    injections: &[Injection],
    from_hour: i64,
    to_hour: i64,
) -> String {
    let mut s = String::new();
    let weeks = ((to_hour - from_hour) as f64 / 168.0).max(1.0 / 168.0);
    let fired: Vec<&AlertEvent> = events
        .iter()
        .filter(|e| e.state == AlertState::Firing)
        .collect();
    let notes: Vec<&AlertEvent> = events.iter().filter(|e| e.notify).collect();
    let pages = notes.iter().filter(|e| e.severity.pages()).count();
    let mut incidents: Vec<&str> = fired.iter().map(|e| e.incident_id.as_str()).collect();
    incidents.sort_unstable();
    incidents.dedup();
    let _ = writeln!(
        s,
        "## Backtest {} to {}\n",
        crate::detect::rfc3339(from_hour * 3600),
        crate::detect::rfc3339(to_hour * 3600)
    );
    let _ = writeln!(s, "| | count | a week |\n|---|---|---|");
    let _ = writeln!(
        s,
        "| segment alerts | {} | {:.2} |",
        fired.len(),
        fired.len() as f64 / weeks
    );
    let _ = writeln!(
        s,
        "| incidents | {} | {:.2} |",
        incidents.len(),
        incidents.len() as f64 / weeks
    );
    let _ = writeln!(
        s,
        "| notifications | {} | {:.2} |",
        notes.len(),
        notes.len() as f64 / weeks
    );
    let _ = writeln!(
        s,
        "| pages (on-call) | {pages} | {:.2} |",
        pages as f64 / weeks
    );
    if !injections.is_empty() {
        let _ = writeln!(s, "\n| injected drop | start | hours | own segment alerted after | severity | incident notified |\n|---|---|---|---|---|---|");
        for inj in injections {
            let label = inj.unit.label();
            let hit = fired.iter().find(|e| {
                let h = e.at / 3600 - 1;
                e.segment == label
                    && h >= inj.from_hour
                    && h < inj.from_hour.saturating_add(inj.hours).saturating_add(24)
            });
            let (after, sev, notified) = hit.map_or(("not found".to_string(), "—", "—"), |e| {
                let incident_notified = events
                    .iter()
                    .any(|x| x.incident_id == e.incident_id && x.notify);
                (
                    format!("{} h", (e.at / 3600).saturating_sub(inj.from_hour)),
                    e.severity.as_str(),
                    if incident_notified { "yes" } else { "no" },
                )
            });
            let _ = writeln!(
                s,
                "| {label} −{} points | {} | {} | {after} | {sev} | {notified} |",
                inj.points,
                crate::detect::rfc3339(inj.from_hour * 3600),
                inj.hours
            );
        }
    }
    let _ = writeln!(
        s,
        "\n| notification | segment | severity | reason | incident |\n|---|---|---|---|---|"
    );
    for e in notes.iter().take(100) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            crate::detect::rfc3339(e.at),
            e.segment,
            e.severity.as_str(),
            if e.reason.is_empty() {
                "opened"
            } else {
                e.reason.as_str()
            },
            e.incident_id
        );
    }
    s
}

/// Reads, injects, replays, reports (stdout, and `out` when given).
pub async fn run(
    v: Validated,
    from_s: i64,
    to_s: i64,
    injections: Vec<Injection>,
    out: Option<&std::path::Path>,
) -> Result<(), ServiceError> {
    if v.clickhouse.url.is_empty() {
        return Err(ServiceError::Setting(
            "clickhouse.url must be set: the backtest reads survey_facts".into(),
        ));
    }
    let metrics = crate::metrics::DetectorMetrics::new();
    let sink = ClickHouseSink::connect(&v.clickhouse, metrics.sink.clone()).await?;
    let (from_hour, to_hour) = (from_s.div_euclid(3600), to_s.div_euclid(3600));
    let mut cells = cells(&sink, from_hour, to_hour).await?;
    inject(&mut cells, &injections);
    let events = replay(&v, &cells)?;
    let text = report(&events, &injections, from_hour, to_hour);
    println!("{text}");
    if let Some(p) = out {
        std::fs::write(p, &text)
            .map_err(|e| ServiceError::Setting(format!("writing {}: {e}", p.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(hour: i64, team: &str, p: u64, q: u64, d: u64) -> Cell {
        let mut values: [String; 7] = Default::default();
        values[2] = team.into();
        Cell {
            hour_s: u32::try_from(hour * 3600).unwrap_or(0),
            values,
            p,
            q,
            d,
        }
    }

    #[test]
    fn an_injection_lowers_exactly_the_answers_it_covers_by_its_size() {
        let inj: Injection = "team=billing:10:2h@2026-11-20T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let h = inj.from_hour;
        let mut cells = vec![
            cell(h - 1, "billing", 50, 30, 20),
            cell(h, "billing", 50, 30, 20),
            cell(h + 1, "billing", 33, 30, 20),
            cell(h + 1, "returns", 50, 30, 20),
            cell(h + 2, "billing", 50, 30, 20),
        ];
        let before: Vec<Counts> = cells.iter().map(Cell::counts).collect();
        inject(&mut cells, &[inj]);
        let score = |c: &Counts| c.score_sum();
        // Outside the span or the segment: untouched; answers are never created or lost.
        for i in [0, 3, 4] {
            assert_eq!(cells[i].counts(), before[i]);
        }
        for (c, b) in cells.iter().zip(&before) {
            assert_eq!(c.counts().n(), b.n());
        }
        // Inside: 10 points of 183 answers = 18.3 score units, to within one answer.
        let lost: f64 = [1, 2]
            .iter()
            .map(|&i| score(&before[i]) - score(&cells[i].counts()))
            .sum();
        assert!((lost - 18.3).abs() <= 1.0, "{lost}");
    }

    #[test]
    fn injections_are_parsed_or_refused_by_name() {
        let i: Injection = "channel=CHAT,bucket=PRE_SALES:5:1d@2026-11-20T06:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.unit.label(), "channel=CHAT,bucket=PRE_SALES");
        assert_eq!((i.points, i.hours), (5.0, 24));
        for bad in [
            "team=billing:10:72h",
            "teem=billing:10:72h@2026-11-20T00:00:00Z",
            "team=billing:ten:72h@2026-11-20T00:00:00Z",
            "team=billing:10:30m@2026-11-20T00:00:00Z",
            "team=billing:10:400d@2026-11-20T00:00:00Z",
        ] {
            let e = bad.parse::<Injection>().err().unwrap_or_default();
            assert!(e.contains("--inject"), "{bad}: {e}");
        }
    }
}
