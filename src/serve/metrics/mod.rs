//! `GET /metrics`: what `serve` has done and how it stands, in the
//! Prometheus text exposition format 0.0.4, for a Prometheus scrape on
//! the HTTPS port or on `--metrics-listen` (plain HTTP).
//!
//! Counters and histograms are kept by the `metrics` facade and rendered
//! by its Prometheus exporter; the gauges that describe a state (the CA's
//! expiry, the served CRL, the process) are read when a scrape asks, so
//! they are never stale and cost nothing between scrapes. Everything that
//! is counted is counted here or in the decorators of [`meter`], so the
//! protocol core (`crate::acme`) knows nothing of metrics.

pub mod meter;
mod process;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Histogram, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use time::OffsetDateTime;

use super::crl::CrlSource;
use crate::acme::problem::Kind;
use crate::acme::Route;
use crate::authority::expiry::{self, escape, family, GAUGE};
use crate::depot::Depot;

/// The metric names, Prometheus style: `certforge_` and the thing, base
/// units (seconds, bytes), `_total` on counters.
pub mod name {
    pub const HTTP_REQUESTS: &str = "certforge_http_requests_total";
    pub const HTTP_IN_FLIGHT: &str = "certforge_http_requests_in_flight";
    pub const HTTP_DURATION: &str = "certforge_http_request_duration_seconds";
    pub const ORDERS_CREATED: &str = "certforge_orders_created_total";
    pub const ORDERS_FINALIZED: &str = "certforge_orders_finalized_total";
    pub const ORDERS_FAILED: &str = "certforge_orders_failed_total";
    pub const ISSUANCE_DURATION: &str = "certforge_issuance_duration_seconds";
    pub const VALIDATIONS: &str = "certforge_challenge_validations_total";
    pub const REVOCATIONS: &str = "certforge_revocations_total";
    pub const NONCES_ISSUED: &str = "certforge_nonces_issued_total";
    pub const NONCES_REJECTED: &str = "certforge_nonces_rejected_total";
    pub const STORE_DURATION: &str = "certforge_store_operation_duration_seconds";
    pub const STORE_ERRORS: &str = "certforge_store_errors_total";
    pub const CA_EXPIRY: &str = "certforge_ca_expiry_seconds";
    pub const CRL_NUMBER: &str = "certforge_crl_number";
    pub const CRL_AGE: &str = "certforge_crl_age_seconds";
}

/// Upper bounds of the latency histograms' buckets, in seconds: from a
/// request answered from memory (about a millisecond) to a challenge check
/// that waits for its 10 s timeout.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often the histograms' recent samples are folded into their buckets
/// between scrapes, so that memory stays bounded however rarely Prometheus
/// scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// The exporter behind the `metrics` facade. The facade's recorder is one
/// per process: a second server in the same process (a test) shares it.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder =
            PrometheusBuilder::new().set_buckets(BUCKETS).expect("a non-empty list of buckets").build_recorder();
        let handle = recorder.handle();
        // Err: a recorder was set already (by an embedding program); this
        // handle then renders only the state gauges, which is still right.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use name::*;
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route (the ACME resource, or health, crl, metrics, unknown) and status code."
    );
    describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being answered now.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time from a request's headers to its reply, by route.");
    describe_counter!(ORDERS_CREATED, "ACME orders created (newOrder answered 201).");
    describe_counter!(ORDERS_FINALIZED, "ACME orders finalized with a certificate.");
    describe_counter!(
        ORDERS_FAILED,
        "newOrder and finalize requests refused, by the problem type answered (RFC 8555 section 6.7)."
    );
    describe_histogram!(
        ISSUANCE_DURATION,
        Unit::Seconds,
        "Time to sign and record one certificate (finalize, without the request around it)."
    );
    describe_counter!(VALIDATIONS, "Challenge checks, by challenge type and result (valid, invalid).");
    describe_counter!(REVOCATIONS, "Certificates revoked through this server (revokeCert).");
    describe_counter!(NONCES_ISSUED, "Replay nonces handed out (RFC 8555 section 6.5).");
    describe_counter!(
        NONCES_REJECTED,
        "Requests refused with badNonce: a nonce unknown, forged, too old or used already."
    );
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Time of one call to the ACME store, by store (sqlite, postgresql)."
    );
    describe_counter!(STORE_ERRORS, "Calls to the ACME store that failed, by store.");
}

/// What a request was, for its series and the order counters.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// The ACME resource's name, or one of the server's own paths.
    label: &'static str,
    /// What it may do to an order.
    order: Option<OrderStep>,
}

/// The two requests that make an order or fail it (RFC 8555 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderStep {
    New,
    Finalize,
}

impl Served {
    /// A request for `path`, routed to `route` when it is an ACME resource.
    pub fn of(route: Option<&Route>, path: &str) -> Served {
        let label = match route {
            Some(route) => route.name(),
            None if path == "/health" => "health",
            None if path == "/metrics" => "metrics",
            None if path.starts_with("/crl/") => "crl",
            None => "unknown",
        };
        let order = match route {
            Some(Route::NewOrder) => Some(OrderStep::New),
            Some(Route::Finalize(_)) => Some(OrderStep::Finalize),
            _ => None,
        };
        Served { label, order }
    }
}

/// Counts a request in flight for as long as it lives (a request whose
/// client went away is dropped, and counted out all the same).
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The handles of the series every request touches, looked up once: the
/// facade's lookup by name and labels, at every request, cost about 3 %
/// of the server's CPU per order.
struct Hot {
    in_flight: Gauge,
    orders_created: Counter,
    orders_finalized: Counter,
    by_route: Mutex<RouteSeries>,
}

/// By (route, status): the request counter and the route's latency. A few
/// dozen at most: the routes are named, and few statuses are answered.
type RouteSeries = HashMap<(&'static str, u16), (Counter, Histogram)>;

/// Everything a scrape renders.
pub struct Metrics {
    handle: &'static PrometheusHandle,
    /// When the issuing CA's certificate expires.
    ca_not_after: OffsetDateTime,
    /// The CRLs served (file name, where the bytes are).
    crls: Vec<(String, CrlSource)>,
    /// The depot whose certificates' expiry gauges follow.
    depot: DepotGauges,
    hot: Hot,
}

/// A depot and the last rendering of its expiry gauges, with when it was
/// made.
struct DepotGauges {
    depot: Depot,
    last: Mutex<Option<(Instant, String)>>,
}

/// How long the depot's expiry gauges are reused: reading every
/// certificate of a large depot at each scrape would cost more than the
/// answer is worth, and an expiry alert waits days, not seconds.
const DEPOT_RESCAN: Duration = Duration::from_secs(60);

impl Metrics {
    /// Installs the exporter (once per process) and keeps its histograms
    /// bounded from now on: call within the server's runtime.
    pub fn start(ca_not_after: OffsetDateTime, crls: Vec<(String, CrlSource)>, depot: Depot) -> Arc<Metrics> {
        let handle = handle();
        // Counters are there from the start at 0, so that a rate() or an
        // alert on them has a series before the first event.
        for zero in [
            name::ORDERS_CREATED,
            name::ORDERS_FINALIZED,
            name::REVOCATIONS,
            name::NONCES_ISSUED,
            name::NONCES_REJECTED,
        ] {
            counter!(zero).increment(0);
        }
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(UPKEEP).await;
                handle.run_upkeep();
            }
        });
        let hot = Hot {
            in_flight: gauge!(name::HTTP_IN_FLIGHT),
            orders_created: counter!(name::ORDERS_CREATED),
            orders_finalized: counter!(name::ORDERS_FINALIZED),
            by_route: Mutex::new(HashMap::new()),
        };
        let depot = DepotGauges { depot, last: Mutex::new(None) };
        Arc::new(Metrics { handle, ca_not_after, crls, depot, hot })
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.hot.in_flight.increment(1.0);
        InFlight(self.hot.in_flight.clone())
    }

    /// Counts one answered request, and what it did to an order.
    pub fn answered(&self, served: Served, status: u16, problem: Option<Kind>, took: Duration) {
        let route = served.label;
        let (count, time) = {
            let mut by_route = self.hot.by_route.lock().unwrap_or_else(|p| p.into_inner());
            let handles = by_route.entry((route, status)).or_insert_with(|| {
                let count = counter!(name::HTTP_REQUESTS, "route" => route, "status" => status.to_string());
                (count, histogram!(name::HTTP_DURATION, "route" => route))
            });
            handles.clone()
        };
        count.increment(1);
        time.record(took.as_secs_f64());
        match (served.order, status, problem) {
            (Some(OrderStep::New), 201, _) => self.hot.orders_created.increment(1),
            (Some(OrderStep::Finalize), 200, _) => self.hot.orders_finalized.increment(1),
            (Some(_), _, Some(kind)) => counter!(name::ORDERS_FAILED, "problem" => kind.name()).increment(1),
            _ => {}
        }
    }

    /// The exposition: the counters and histograms, then the gauges read
    /// now.
    pub fn render(&self, now: OffsetDateTime) -> String {
        self.handle.run_upkeep();
        let mut out = self.handle.render();
        let secs = |d: time::Duration| d.as_seconds_f64();
        family(
            &mut out,
            name::CA_EXPIRY,
            GAUGE,
            "Seconds until the issuing CA's certificate expires (negative once it has).",
        );
        let _ = writeln!(out, "{} {}", name::CA_EXPIRY, secs(self.ca_not_after - now));
        let served: Vec<(&str, u64, OffsetDateTime)> = self
            .crls
            .iter()
            .filter_map(|(file, source)| {
                let der = source.current().ok()??;
                let (number, this_update) = crate::pki::crl::number_and_this_update(&der)?;
                Some((file.as_str(), number, this_update))
            })
            .collect();
        if !served.is_empty() {
            family(
                &mut out,
                name::CRL_NUMBER,
                GAUGE,
                "The CRL number (RFC 5280 section 5.2.3) of the CRL served now, by file.",
            );
            for (file, number, _) in &served {
                let _ = writeln!(out, "{}{{crl=\"{}\"}} {number}", name::CRL_NUMBER, escape(file));
            }
            family(&mut out, name::CRL_AGE, GAUGE, "Seconds since the thisUpdate of the CRL served now, by file.");
            for (file, _, this_update) in &served {
                let _ = writeln!(out, "{}{{crl=\"{}\"}} {}", name::CRL_AGE, escape(file), secs(now - *this_update));
            }
        }
        process::render(&mut out);
        let mut last = self.depot.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref().is_none_or(|(at, _)| at.elapsed() >= DEPOT_RESCAN) {
            let entries = crate::authority::listing::scan(&self.depot.depot, now).entries;
            *last = Some((Instant::now(), expiry::prometheus_gauges(&entries)));
        }
        out.push_str(last.as_ref().map_or("", |(_, text)| text));
        out
    }
}
