//! Registering metrics: [`MetricsError`], and the helpers every part of the
//! registry uses to add a counter or a labelled family and resolve its
//! children once.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metric registration: {0}")]
    Register(#[from] prometheus::Error),
}

pub(super) fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<IntCounter, MetricsError> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

pub(super) fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let v = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(v.clone()))?;
    Ok(v)
}

/// Resolves one child per value of a fixed set, in the set's order.
pub(super) fn children<T: Copy, const N: usize, const L: usize>(
    vec: &IntCounterVec,
    set: [T; N],
    labels: impl Fn(T) -> [&'static str; L],
) -> Result<[IntCounter; N], MetricsError> {
    let resolved = set
        .into_iter()
        .map(|item| vec.get_metric_with_label_values(&labels(item)))
        .collect::<Result<Vec<_>, _>>()?;
    // The vector holds exactly N children: one per item of `set`.
    resolved
        .try_into()
        .map_err(|_| MetricsError::Register(prometheus::Error::Msg("label set size".into())))
}
