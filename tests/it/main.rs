//! The integration suite in one binary (one link instead of one per file): every module
//! talks to the real services `scripts/services.sh` starts (Apache Kafka, Apicurio,
//! ClickHouse, Alertmanager), each test on its own topics and database. `layering` holds
//! the crate's house rules (floors, no cycles, file and function sizes).

mod attribution;
mod backtest;
mod cli;
mod common;
mod config_example;
mod counters;
mod crash;
mod deadletters;
mod detector;
mod detector_sim;
mod e2e;
mod escalation;
mod fencing;
mod fuzz_seeds;
mod group;
mod hostile;
mod identity;
mod layering;
mod metrics;
mod misbehave;
mod outage;
mod producers;
mod quiet;
mod registry_faults;
mod secrets;
mod tls;
