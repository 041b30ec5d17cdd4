//! The Prometheus endpoint: every path answers the text exposition format, as ZooKeeper's
//! PrometheusMetricsProvider does. Values are read at scrape time from the same facts `mntr`
//! prints: its numbers become gauges under ZooKeeper's names (`znode_count`, ...), its timings
//! summaries with quantiles (`readlatency`, `updatelatency`, `fsynctime`, `snapshottime`,
//! in milliseconds), and each recipe's counters `zkw_recipe_*_total{recipe=...}`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prometheus::proto::{
    Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};
use prometheus::{Encoder, TextEncoder};

use crate::server::facts::{self, MonitorFacts, RecipeFacts, Value};
use crate::server::Context;
use crate::timing::{TimingSnapshot, SUMMARY_QUANTILES};

pub fn router(context: Context) -> Router {
    Router::new().fallback(scrape).with_state(context)
}

async fn scrape(State(context): State<Context>) -> Response {
    let monitor = facts::monitor(&context, context.consensus.mode());
    let families = families(&monitor);
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&families, &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// Every metric family of one scrape, from one gathering of the `mntr` facts.
pub fn families(monitor: &MonitorFacts) -> Vec<MetricFamily> {
    let mut families: Vec<MetricFamily> = monitor
        .rows
        .iter()
        // The tree digest is an identity, not a quantity: a float would garble it.
        .filter(|(name, _)| *name != "digest")
        .filter_map(|(name, value)| {
            let number = match value {
                Value::Int(number) => *number as f64,
                Value::Uint(number) => *number as f64,
                Value::Float(number) => *number,
                Value::Text(_) => return None,
            };
            Some(gauge_family(name, number))
        })
        .collect();
    families.extend(
        monitor
            .timings
            .iter()
            .map(|(name, reading)| summary_family(name, reading)),
    );
    families.extend(recipe_families(&monitor.recipes));
    families
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn gauge_family(name: &str, value: f64) -> MetricFamily {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::default();
    metric.set_gauge(gauge);
    family(name, name, MetricType::GAUGE, vec![metric])
}

fn summary_family(name: &str, reading: &TimingSnapshot) -> MetricFamily {
    let quantiles = SUMMARY_QUANTILES
        .iter()
        .map(|q| {
            let mut quantile = Quantile::default();
            quantile.set_quantile(*q);
            quantile.set_value(reading.quantile_ms(*q) as f64);
            quantile
        })
        .collect();
    let mut summary = Summary::default();
    summary.set_sample_count(reading.count);
    summary.set_sample_sum(reading.sum_ms as f64);
    summary.set_quantile(quantiles);
    let mut metric = Metric::default();
    metric.set_summary(summary);
    family(name, name, MetricType::SUMMARY, vec![metric])
}

/// A recipe counter: its metric name, help text and where its value is read.
type RecipeCounter = (&'static str, &'static str, fn(&RecipeFacts) -> u64);

/// `zkw_recipe_{runs,failures,fuel_used,time_us}_total`, one series per installed recipe.
fn recipe_families(recipes: &[RecipeFacts]) -> Vec<MetricFamily> {
    let counters: [RecipeCounter; 4] = [
        ("zkw_recipe_runs_total", "recipe runs on this server", |r| {
            r.runs
        }),
        (
            "zkw_recipe_failures_total",
            "recipe runs that failed (trap, fuel, bad op)",
            |r| r.failures,
        ),
        (
            "zkw_recipe_fuel_used_total",
            "wasm fuel the recipe's runs used",
            |r| r.fuel_used,
        ),
        (
            "zkw_recipe_time_us_total",
            "microseconds spent in the recipe's runs",
            |r| r.time_us,
        ),
    ];
    if recipes.is_empty() {
        return Vec::new();
    }
    counters
        .into_iter()
        .map(|(name, help, read)| {
            let metrics = recipes
                .iter()
                .map(|recipe| {
                    let mut label = LabelPair::default();
                    label.set_name("recipe".to_owned());
                    label.set_value(recipe.name.clone());
                    let mut counter = Counter::default();
                    counter.set_value(read(recipe) as f64);
                    let mut metric = Metric::default();
                    metric.set_label(vec![label]);
                    metric.set_counter(counter);
                    metric
                })
                .collect();
            family(name, help, MetricType::COUNTER, metrics)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::Timing;

    #[test]
    fn renders_gauges_summaries_and_recipe_counters() {
        let timing = Timing::default();
        timing.record_ms(3);
        let recipe = RecipeFacts {
            name: "lock".into(),
            path: "/locks".into(),
            sha256: String::new(),
            size: 0,
            fuel: 0,
            memory_bytes: 0,
            timer_ms: 0,
            runs: 7,
            failures: 1,
            fuel_used: 100,
            time_us: 5,
        };
        let monitor = MonitorFacts {
            rows: vec![
                ("znode_count", Value::Int(5)),
                ("server_state", Value::Text("standalone".into())),
            ],
            timings: vec![("readlatency", timing.snapshot())],
            recipes: vec![recipe],
        };
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&families(&monitor), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("# TYPE znode_count gauge\nznode_count 5\n"),
            "{text}"
        );
        assert!(!text.contains("server_state"), "{text}");
        assert!(text.contains("readlatency{quantile=\"0.5\"} 3\n"), "{text}");
        assert!(text.contains("readlatency_count 1\n"), "{text}");
        assert!(
            text.contains("zkw_recipe_runs_total{recipe=\"lock\"} 7\n"),
            "{text}"
        );
    }
}
