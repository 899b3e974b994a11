//! Counters and gauges behind `GET /metrics`, in Prometheus' text format.
//!
//! Everything is an atomic updated where it happens (the handlers count
//! requests, the scheduler counts tokens and batch sizes), so reading the
//! metrics never waits for the model.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the time-to-first-token histogram's buckets.
const TTFT_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Requests by endpoint and HTTP status.
    requests: Mutex<Vec<(&'static str, u16, u64)>>,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) cached_prompt_tokens: AtomicU64,
    pub(crate) generated_tokens: AtomicU64,
    pub(crate) queue_depth: AtomicU64,
    pub(crate) running_requests: AtomicU64,
    pub(crate) running_samples: AtomicU64,
    pub(crate) cancelled_requests: AtomicU64,
    /// Tokens per second of the latest decoding step, as `f64` bits.
    decode_tokens_per_second: AtomicU64,
    ttft: Mutex<Histogram>,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; TTFT_BUCKETS.len()],
    n: u64,
    sum: f64,
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn count_request(&self, endpoint: &'static str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        match requests
            .iter_mut()
            .find(|(e, s, _)| *e == endpoint && *s == status)
        {
            Some(entry) => entry.2 += 1,
            None => requests.push((endpoint, status, 1)),
        }
    }

    pub(crate) fn observe_ttft(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut ttft = self.ttft.lock().unwrap_or_else(|e| e.into_inner());
        for (count, &bound) in ttft.counts.iter_mut().zip(&TTFT_BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        ttft.n += 1;
        ttft.sum += seconds;
    }

    pub(crate) fn set_decode_rate(&self, tokens_per_second: f64) {
        self.decode_tokens_per_second
            .store(tokens_per_second.to_bits(), Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP codelm_requests_total HTTP requests answered, by endpoint and status.\n",
        );
        out.push_str("# TYPE codelm_requests_total counter\n");
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        requests.sort();
        for (endpoint, status, n) in requests {
            let _ = writeln!(
                out,
                "codelm_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        let counters = [
            (
                "codelm_prompt_tokens_total",
                "Prompt tokens of admitted requests.",
                &self.prompt_tokens,
            ),
            (
                "codelm_prompt_tokens_cached_total",
                "Prompt tokens reused from the prefix cache.",
                &self.cached_prompt_tokens,
            ),
            (
                "codelm_generated_tokens_total",
                "Tokens generated.",
                &self.generated_tokens,
            ),
            (
                "codelm_cancelled_requests_total",
                "Requests ended early: client gone or timed out.",
                &self.cancelled_requests,
            ),
        ];
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                load(value)
            );
        }
        let gauges = [
            (
                "codelm_queue_depth",
                "Requests waiting for a place in the batch.",
                load(&self.queue_depth) as f64,
            ),
            (
                "codelm_running_requests",
                "Requests in the batch.",
                load(&self.running_requests) as f64,
            ),
            (
                "codelm_running_samples",
                "Samples in the batch.",
                load(&self.running_samples) as f64,
            ),
            (
                "codelm_decode_tokens_per_second",
                "Tokens per second of the latest batched step.",
                f64::from_bits(load(&self.decode_tokens_per_second)),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        }
        let ttft = self.ttft.lock().unwrap_or_else(|e| e.into_inner());
        let name = "codelm_time_to_first_token_seconds";
        let _ = write!(
            out,
            "# HELP {name} Time from a request's arrival to its first token.\n# TYPE {name} histogram\n"
        );
        for (count, bound) in ttft.counts.iter().zip(TTFT_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = write!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {n}\n{name}_sum {sum}\n{name}_count {n}\n",
            n = ttft.n,
            sum = ttft.sum
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.observe_ttft(Duration::from_millis(70));
        metrics.observe_ttft(Duration::from_secs(3));
        metrics.count_request("completions", 200);
        metrics.count_request("completions", 200);
        let text = metrics.render();
        assert!(text.contains("codelm_time_to_first_token_seconds_bucket{le=\"0.05\"} 0\n"));
        assert!(text.contains("codelm_time_to_first_token_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(text.contains("codelm_time_to_first_token_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("codelm_time_to_first_token_seconds_count 2\n"));
        assert!(text.contains("codelm_requests_total{endpoint=\"completions\",status=\"200\"} 2\n"));
    }
}
