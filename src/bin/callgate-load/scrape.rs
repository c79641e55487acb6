//! Reading the node's `/metrics` text (Prometheus exposition format): the
//! relay-latency histograms `callgate_relay_latency_seconds{direction}` and
//! plain series such as `callgate_calls_active`.
//!
//! A [`Histogram`] is cumulative since the node started, so a window's
//! figures are the difference of two scrapes ([`Histogram::since`]);
//! quantiles are interpolated linearly inside a bucket, as Prometheus'
//! `histogram_quantile` does, so they are only as fine as the buckets.

const LATENCY: &str = "callgate_relay_latency_seconds";

/// One direction's latency histogram: cumulative bucket counts by upper
/// bound (seconds, ascending, `+Inf` last), plus the sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// The histogram of `direction` (`to_trunk` or `to_browser`).
    pub fn parse(metrics: &str, direction: &str) -> Option<Self> {
        let label = format!("direction=\"{direction}\"");
        let mut histogram = Self::default();
        for line in metrics.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let Some(rest) = series.strip_prefix(LATENCY) else {
                continue;
            };
            if !rest.contains(&label) {
                continue;
            }
            if rest.starts_with("_bucket") {
                histogram.buckets.push((upper_bound(rest)?, value));
            } else if rest.starts_with("_sum") {
                histogram.sum = value;
            } else if rest.starts_with("_count") {
                histogram.count = value;
            }
        }
        histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!histogram.buckets.is_empty()).then_some(histogram)
    }

    /// What was observed after `earlier`, a scrape of the same histogram.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .zip(&earlier.buckets)
            .map(|(now, then)| (now.0, now.1 - then.1))
            .collect();
        Histogram {
            buckets,
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// Adds `other`'s observations (same buckets) to this one.
    pub fn add(&mut self, other: &Histogram) {
        if self.buckets.is_empty() {
            *self = other.clone();
            return;
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.1 += theirs.1;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The `q` quantile (0..1) in seconds, `None` without observations.
    /// Past the last finite bucket it answers that bucket's bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank {
                if bound.is_infinite() {
                    return Some(lower.0);
                }
                let in_bucket = cumulative - lower.1;
                let fraction = match in_bucket > 0.0 {
                    true => (rank - lower.1) / in_bucket,
                    false => 1.0,
                };
                return Some(lower.0 + (bound - lower.0) * fraction);
            }
            lower = (bound, cumulative);
        }
        Some(lower.0)
    }
}

fn upper_bound(labels: &str) -> Option<f64> {
    let (_, rest) = labels.split_once("le=\"")?;
    let (bound, _) = rest.split_once('"')?;
    match bound {
        "+Inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

/// The value of an unlabelled series such as `callgate_calls_active`.
pub fn value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# HELP callgate_relay_latency_seconds Time from a media packet's arrival.
# TYPE callgate_relay_latency_seconds histogram
callgate_relay_latency_seconds_bucket{direction=\"to_browser\",le=\"0.00001\"} 10
callgate_relay_latency_seconds_bucket{direction=\"to_browser\",le=\"0.000025\"} 60
callgate_relay_latency_seconds_bucket{direction=\"to_browser\",le=\"0.00005\"} 100
callgate_relay_latency_seconds_bucket{direction=\"to_browser\",le=\"+Inf\"} 100
callgate_relay_latency_seconds_sum{direction=\"to_browser\"} 0.002
callgate_relay_latency_seconds_count{direction=\"to_browser\"} 100
callgate_relay_latency_seconds_bucket{direction=\"to_trunk\",le=\"0.00001\"} 0
callgate_relay_latency_seconds_bucket{direction=\"to_trunk\",le=\"+Inf\"} 0
callgate_calls_active 3
callgate_calls_active_total 9
";

    #[test]
    fn quantiles_interpolate_inside_a_bucket() {
        let h = Histogram::parse(SCRAPE, "to_browser").unwrap();
        assert_eq!(h.buckets.len(), 4);
        assert_eq!(h.count, 100.0);
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 22e-6).abs() < 1e-9, "{p50}");
        let p99 = h.quantile(0.99).unwrap();
        assert!((p99 - 49.375e-6).abs() < 1e-9, "{p99}");
        let empty = Histogram::parse(SCRAPE, "to_trunk").unwrap();
        assert_eq!(empty.quantile(0.5), None);
        assert_eq!(Histogram::parse(SCRAPE, "sideways"), None);
    }

    #[test]
    fn a_window_is_the_difference_of_two_scrapes() {
        let before = Histogram::parse(SCRAPE, "to_browser").unwrap();
        let after_text = SCRAPE.replace("} 100\n", "} 200\n");
        let after = Histogram::parse(&after_text, "to_browser").unwrap();
        let window = after.since(&before);
        assert_eq!(window.count, 100.0);
        // All 100 new observations fell in the 25-50 µs bucket.
        assert!(window.quantile(0.01).unwrap() >= 25e-6);
        let mut total = before.clone();
        total.add(&window);
        assert_eq!(total.buckets, after.buckets);
    }

    #[test]
    fn plain_values_match_the_whole_name() {
        assert_eq!(value(SCRAPE, "callgate_calls_active"), Some(3.0));
        assert_eq!(value(SCRAPE, "callgate_calls"), None);
    }
}
