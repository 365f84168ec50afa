//! Warming the servers up before anything is measured.
//!
//! Kafka and Cassandra are JVMs: minutes after a start they still interpret or recompile
//! their hot paths. The bench measures orderpipe first and its baselines after it, so on
//! fresh servers orderpipe would meet cold servers and its baselines warm ones (on
//! 2026-12-02 a run minutes after the servers started had POST at 236/s and the Wasm
//! consumer at 113/s; the next run on the same build, 740/s and 172/s). So the bench first
//! runs the baselines' own loops in rounds until their rates stop climbing. That narrows the
//! gap without closing it (the next such run: POST 482/s, where a run on the same servers
//! minutes later had 743/s), so the report says how long the warm-up took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orderpipe::backend::wiring::Backends;
use orderpipe::config::Config;
use orderpipe::plugin::PluginHost;
use serde::Serialize;

use crate::baselines;

/// Each round: raw Kafka production for this long…
const PRODUCE_FOR: Duration = Duration::from_secs(2);
/// …these many orders' rows written to Cassandra…
const WRITE_ORDERS: u64 = 600;
/// …and their SELECTs for this long.
const SELECT_FOR: Duration = Duration::from_secs(1);
/// Rates are compared as means over this many rounds (one round's rates vary by ±20 % here).
const WINDOW: usize = 3;
/// Warm: the last `WINDOW` rounds' mean rates all below this multiple of the `WINDOW` before.
const STILL_CLIMBING: f64 = 1.1;
/// No more rounds start after this long; the bench then goes on and says so.
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);

/// One round's rates: Kafka messages/s, Cassandra orders written/s, Cassandra reads/s.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Round {
    pub produce: f64,
    pub write: f64,
    pub select: f64,
}

impl Round {
    fn mean(rounds: &[Round]) -> Round {
        let n = rounds.len() as f64;
        Round {
            produce: rounds.iter().map(|r| r.produce).sum::<f64>() / n,
            write: rounds.iter().map(|r| r.write).sum::<f64>() / n,
            select: rounds.iter().map(|r| r.select).sum::<f64>() / n,
        }
    }

    fn climbing_from(&self, before: &Round) -> bool {
        self.produce >= before.produce * STILL_CLIMBING
            || self.write >= before.write * STILL_CLIMBING
            || self.select >= before.select * STILL_CLIMBING
    }

    /// Whether the last `WINDOW` rounds are no faster than the `WINDOW` before them.
    fn settled(rounds: &[Round]) -> bool {
        if rounds.len() < 2 * WINDOW {
            return false;
        }
        let (before, last) = rounds[rounds.len() - 2 * WINDOW..].split_at(WINDOW);
        !Round::mean(last).climbing_from(&Round::mean(before))
    }
}

/// What the warm-up did, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct WarmUp {
    pub rounds: Vec<Round>,
    pub seconds: f64,
    /// False when `GIVE_UP_AFTER` passed with the rates still climbing.
    pub settled: bool,
}

impl WarmUp {
    /// One line for the report's header.
    pub fn summary(&self) -> String {
        let (first, last) = (self.rounds[0], self.rounds[self.rounds.len() - 1]);
        format!(
            "servers warmed up first: {} rounds in {:.0} s{} (Kafka {:.0} → {:.0} messages/s, \
             Cassandra {:.0} → {:.0} orders written/s and {:.0} → {:.0} reads/s)",
            self.rounds.len(),
            self.seconds,
            if self.settled {
                ", until their rates stopped climbing"
            } else {
                ", **their rates still climbing** when the warm-up gave up"
            },
            first.produce,
            last.produce,
            first.write,
            last.write,
            first.select,
            last.select
        )
    }
}

/// Runs rounds of raw Kafka production, bare Cassandra writes of the rows an order costs and
/// their SELECTs, until the last three rounds are on average no faster than the three before
/// them (so at least six rounds, 25-45 s on warm servers), or `GIVE_UP_AFTER` has passed.
/// On servers just started here that took 100-125 s: Kafka went from 150-200 to 6,000
/// messages/s, Cassandra from 60 to 330 orders/s.
pub async fn warm_up(config: &Config, clients: u32) -> WarmUp {
    let backends = Backends::connect(config).await.expect("backends");
    let plugin_host = PluginHost {
        store: backends.plugin_store.clone(),
        cache: backends.plugin_cache.clone(),
        hold_store_writes: false,
        record_host_calls: false,
    };
    let writers = config.kafka.partitions.max(1) as u32;
    let started = Instant::now();
    let mut rounds: Vec<Round> = Vec::new();
    loop {
        let produce = baselines::kafka_produce(config, clients, PRODUCE_FOR).await;
        let (write, ids) = baselines::cassandra_write_rows(
            backends.store.clone(),
            plugin_host.clone(),
            WRITE_ORDERS,
            writers,
        )
        .await;
        let select =
            baselines::cassandra_select(backends.store.clone(), Arc::new(ids), clients, SELECT_FOR)
                .await;
        let round = Round {
            produce: produce.rate,
            write,
            select: select.rate,
        };
        crate::step(&format!(
            "servers warm-up, round {}: Kafka {:.0} messages/s, Cassandra {:.0} orders \
             written/s, {:.0} reads/s",
            rounds.len() + 1,
            round.produce,
            round.write,
            round.select
        ));
        rounds.push(round);
        let settled = Round::settled(&rounds);
        if settled || started.elapsed() >= GIVE_UP_AFTER {
            return WarmUp {
                rounds,
                seconds: started.elapsed().as_secs_f64(),
                settled,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Round;

    /// Kafka messages/s, Cassandra orders written/s, reads/s: the warm-up rounds measured on
    /// 2026-12-02 right after the servers started here.
    const AFTER_A_START: [(f64, f64, f64); 18] = [
        (203.0, 61.0, 1374.0),
        (711.0, 107.0, 1561.0),
        (917.0, 148.0, 2815.0),
        (2627.0, 178.0, 2339.0),
        (2286.0, 155.0, 4213.0),
        (3727.0, 167.0, 4116.0),
        (3653.0, 212.0, 3314.0),
        (4227.0, 182.0, 4970.0),
        (3272.0, 248.0, 2997.0),
        (1776.0, 254.0, 5587.0),
        (3952.0, 308.0, 4923.0),
        (3324.0, 213.0, 9001.0),
        (5855.0, 390.0, 8631.0),
        (7747.0, 318.0, 4926.0),
        (4113.0, 344.0, 6026.0),
        (6232.0, 305.0, 8504.0),
        (6270.0, 395.0, 6117.0),
        (6028.0, 301.0, 6241.0),
    ];

    fn rounds(rates: &[(f64, f64, f64)]) -> Vec<Round> {
        rates
            .iter()
            .map(|&(produce, write, select)| Round {
                produce,
                write,
                select,
            })
            .collect()
    }

    #[test]
    fn fresh_servers_are_warm_only_once_every_rate_has_stopped_climbing() {
        let all = rounds(&AFTER_A_START);
        let first_settled = (1..=all.len()).find(|&n| Round::settled(&all[..n]));
        assert_eq!(first_settled, Some(18));
    }

    #[test]
    fn warm_servers_settle_after_six_rounds_despite_noise() {
        let noisy = rounds(&[
            (6200.0, 330.0, 7000.0),
            (5400.0, 390.0, 6100.0),
            (6900.0, 300.0, 8200.0),
            (6000.0, 350.0, 6400.0),
            (6600.0, 310.0, 7900.0),
            (5900.0, 370.0, 6800.0),
        ]);
        assert!(!Round::settled(&noisy[..5]), "fewer than six rounds");
        assert!(Round::settled(&noisy));
    }
}
