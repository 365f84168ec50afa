//! The tests' one reader of a host's Prometheus `/metrics` text: [`fetch`] gets the text, and
//! [`sample_value`], [`total`] and [`histogram_buckets`] read it ([`sample_at`] and
//! [`total_at`] do both). Also the names of the worker's histograms.

use std::time::Duration;

/// The worker's time per step of an event: a histogram labelled `step`.
pub const WORKER_STEP_SECONDS: &str = "orderpipe_worker_event_step_seconds";
/// The worker's steps, in the order it takes them: the `step` labels of
/// [`WORKER_STEP_SECONDS`].
pub const WORKER_STEPS: [&str; 4] = ["read", "decide", "record", "cache"];
/// How old an event is when the worker takes it: a histogram labelled `pipeline`.
pub const WORKER_EVENT_AGE_SECONDS: &str = "orderpipe_worker_event_age_seconds";

/// [`total_at`] gives up on a host that has not answered after this long.
const TOTAL_WITHIN: Duration = Duration::from_secs(2);

/// The `/metrics` text of the host at `base`, or the error when it gave none within `within`
/// (whatever the status).
pub async fn fetch(
    http: &reqwest::Client,
    base: &str,
    within: Duration,
) -> reqwest::Result<String> {
    http.get(format!("{base}/metrics"))
        .timeout(within)
        .send()
        .await?
        .text()
        .await
}

/// The value of `sample`, a metric's name with its exact label set (none for a metric without
/// labels): the first line of `text` that is `sample` followed by a number.
pub fn sample_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(sample)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// The sum of the values of every sample of the metric `name` in `text`, whatever their
/// labels (0 without any).
pub fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The series of the histogram `metric` in `text` that carries `label` (`name="value"`): its
/// cumulative bucket counts by upper bound (`le`, `+Inf` as infinity), in the text's order
/// (ascending).
pub fn histogram_buckets(text: &str, metric: &str, label: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{metric}_bucket{{");
    text.lines()
        .filter_map(|line| {
            let labels = line.strip_prefix(&prefix)?;
            let (labels, value) = labels.split_once("} ")?;
            if !labels.split(',').any(|l| l == label) {
                return None;
            }
            let le = labels
                .split(',')
                .find_map(|l| l.strip_prefix("le=\""))?
                .trim_end_matches('"');
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which a `quantile` of the events between two readings of one
/// histogram's buckets fell (`None` without events in between).
pub fn quantile_bound(before: &[(f64, f64)], after: &[(f64, f64)], quantile: f64) -> Option<f64> {
    let earlier = |le: f64| {
        before
            .iter()
            .find(|(bound, _)| *bound == le)
            .map_or(0.0, |(_, count)| *count)
    };
    let total = after
        .last()
        .map(|(_, count)| count - earlier(f64::INFINITY))?;
    if total <= 0.0 {
        return None;
    }
    after
        .iter()
        .find(|(le, count)| count - earlier(*le) >= quantile * total)
        .map(|(le, _)| *le)
}

/// The value of `sample` (see [`sample_value`]) in the `/metrics` of the host at `base`, 0 when
/// absent. Panics when the host gives no text within `within`.
pub async fn sample_at(http: &reqwest::Client, base: &str, sample: &str, within: Duration) -> f64 {
    let text = fetch(http, base, within).await.expect("metrics");
    sample_value(&text, sample).unwrap_or(0.0)
}

/// The [`total`] of the metric `name` in the `/metrics` of the host at `base`; `None` when the
/// host gives no text within 2 s (it may be down).
pub async fn total_at(http: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = fetch(http, base, TOTAL_WITHIN).await.ok()?;
    Some(total(&text, name))
}
