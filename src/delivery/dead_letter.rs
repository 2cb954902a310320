//! Dead-letter producer: the original payload and key, with headers naming the reason and
//! where the message came from. Deliveries are confirmed before offsets are committed.
//!
//! A dead letter must never stop the job: a payload bigger than `kafka.dead_letter_max_bytes`
//! (a 1.5 MB garbage message the producer would refuse) is cut to that size, with headers
//! `payload_truncated` and `payload_size`; the source offset in the headers still points at
//! the original. Otherwise the same message would stop every instance that takes the
//! partition over.

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
pub struct DeliveryCounter {
    pub failed: AtomicU64,
}

pub struct Ctx(Arc<DeliveryCounter>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = r {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "dead-letter delivery failed");
        }
    }
}

/// Why dead letters could not be handed over or confirmed; the job stops rather than
/// commit past a rejected message that went nowhere.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("{0} dead letters were not delivered")]
    Undelivered(u64),
}

/// Where a rejected message came from and why.
pub struct DeadLetter<'a> {
    pub reason: &'static str,
    pub detail: String,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

pub struct DeadLetterProducer {
    producer: ThreadedProducer<Ctx>,
    topic: String,
    counter: Arc<DeliveryCounter>,
    max_bytes: usize,
}

/// Room left for key and headers under the producer's `message.max.bytes`.
const KEY_AND_HEADERS: usize = 64 * 1024;

/// Longest `error` header: the reason's detail names the field and the rule, never more.
const MAX_ERROR_HEADER: usize = 512;

/// `detail` cut to [`MAX_ERROR_HEADER`] bytes at a character boundary.
fn bounded(detail: &str) -> &str {
    if detail.len() <= MAX_ERROR_HEADER {
        return detail;
    }
    let mut end = MAX_ERROR_HEADER;
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    &detail[..end]
}

impl DeadLetterProducer {
    pub fn new(client: &ClientConfig, topic: &str, max_bytes: usize) -> Result<Self, KafkaError> {
        let counter = Arc::new(DeliveryCounter::default());
        let mut c = client.clone();
        c.set("enable.idempotence", "true").set("linger.ms", "500");
        // The producer must accept what the cut allows, key and headers included.
        let limit = max_bytes.saturating_add(KEY_AND_HEADERS).max(1_000_000);
        c.set("message.max.bytes", limit.to_string());
        let producer = c.create_with_context(Ctx(counter.clone()))?;
        Ok(DeadLetterProducer {
            producer,
            topic: topic.to_string(),
            counter,
            max_bytes,
        })
    }

    pub fn send(&self, d: &DeadLetter<'_>) -> Result<(), DeadLetterError> {
        let partition = d.partition.to_string();
        let offset = d.offset.to_string();
        let size = d.payload.len().to_string();
        let cut = d.payload.len() > self.max_bytes;
        let payload = &d.payload[..d.payload.len().min(self.max_bytes)];
        // Keys are ids; one bigger than this is garbage too, and is cut the same way.
        let key = d.key.map(|k| &k[..k.len().min(KEY_AND_HEADERS / 2)]);
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(d.reason),
            })
            .insert(Header {
                key: "error",
                value: Some(bounded(&d.detail)),
            })
            .insert(Header {
                key: "source_topic",
                value: Some(d.topic),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(offset.as_str()),
            });
        if cut {
            headers = headers
                .insert(Header {
                    key: "payload_truncated",
                    value: Some("true"),
                })
                .insert(Header {
                    key: "payload_size",
                    value: Some(size.as_str()),
                });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic)
            .payload(payload)
            .headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Dead letters sent but not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        use rdkafka::producer::Producer;
        self.producer.in_flight_count()
    }

    /// Waits for every queued dead letter; fails if any was not delivered, so the caller
    /// does not commit past a message that went nowhere.
    pub fn confirm(&self) -> Result<(), DeadLetterError> {
        use rdkafka::producer::Producer;
        self.producer.flush(Duration::from_secs(30))?;
        let failed = self.counter.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            return Err(DeadLetterError::Undelivered(failed));
        }
        Ok(())
    }
}

#[cfg(test)]
mod bounded_tests {
    #[test]
    fn error_headers_are_cut_at_a_character_boundary() {
        let long = "é".repeat(400); // 800 bytes
        let cut = super::bounded(&long);
        assert!(cut.len() <= super::MAX_ERROR_HEADER && cut.len() >= super::MAX_ERROR_HEADER - 1);
        assert!(long.starts_with(cut));
        assert_eq!(super::bounded("short"), "short");
    }
}
