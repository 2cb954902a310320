//! Today's Prometheus rule (deploy/prometheus/rules.yml before the detector), replayed on the
//! simulated answers exactly as written: every minute, per region, NPS of the last hour
//! against the last 7 days (which contain that hour), standard error from each window's own
//! mix, at least 30 answers in the hour, held for 30 minutes.

const REGIONS: usize = 5;
const HOUR: usize = 60;
const WEEK: usize = 7 * 24 * 60;

pub struct Minutes {
    minutes: usize,
    counts: Vec<[u16; 3]>,
}

impl Minutes {
    pub fn new(hours: i64) -> Self {
        let minutes = (hours.max(0) as usize) * HOUR;
        Minutes {
            minutes,
            counts: vec![[0; 3]; minutes * REGIONS],
        }
    }

    pub fn add(&mut self, hour: i64, region: usize, minute: i64, class: usize) {
        let m = hour as usize * HOUR + minute as usize;
        if m < self.minutes && region < REGIONS && class < 3 {
            let c = &mut self.counts[region * self.minutes + m][class];
            *c = c.saturating_add(1);
        }
    }

    /// (region, minute) of every transition to firing.
    pub fn pages(&self) -> Vec<(usize, i64)> {
        let mut out = Vec::new();
        for rg in 0..REGIONS {
            let series = &self.counts[rg * self.minutes..(rg + 1) * self.minutes];
            let mut hour = [0f64; 3];
            let mut week = [0f64; 3];
            let mut held = 0usize;
            let mut firing = false;
            for t in 0..self.minutes {
                for k in 0..3 {
                    hour[k] += f64::from(series[t][k]);
                    week[k] += f64::from(series[t][k]);
                    if t >= HOUR {
                        hour[k] -= f64::from(series[t - HOUR][k]);
                    }
                    if t >= WEEK {
                        week[k] -= f64::from(series[t - WEEK][k]);
                    }
                }
                if t + 1 < WEEK {
                    continue;
                }
                let cond = condition(&hour, &week);
                held = if cond { held + 1 } else { 0 };
                // Pending at the first true evaluation, firing 30 minutes later.
                let now_firing = held > 30;
                if now_firing && !firing {
                    out.push((rg, t as i64));
                }
                firing = now_firing;
            }
        }
        out
    }
}

fn shares(c: &[f64; 3]) -> Option<(f64, f64, f64)> {
    let n = c[0] + c[1] + c[2];
    (n > 0.0).then(|| (c[0] / n, c[2] / n, n))
}

/// `(nps_7d - nps_1h) > 1.96 * sqrt(var_1h/n_1h + var_7d/n_7d) and n_1h >= 30`.
fn condition(hour: &[f64; 3], week: &[f64; 3]) -> bool {
    let (Some((p1, d1, n1)), Some((p7, d7, n7))) = (shares(hour), shares(week)) else {
        return false;
    };
    if n1 < 30.0 {
        return false;
    }
    let var1 = 10_000.0 * (p1 + d1 - (p1 - d1).powi(2));
    let var7 = 10_000.0 * (p7 + d7 - (p7 - d7).powi(2));
    100.0 * ((p7 - d7) - (p1 - d1)) > 1.96 * (var1 / n1 + var7 / n7).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_passives_in_an_hour_fire_against_a_promoting_week() {
        // The old rule's flaw: the hour's own variance is 0 for 30 passives.
        assert!(condition(&[0.0, 30.0, 0.0], &[3000.0, 2000.0, 1500.0]));
        assert!(!condition(&[0.0, 29.0, 0.0], &[3000.0, 2000.0, 1500.0]));
    }
}
