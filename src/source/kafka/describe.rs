//! What the broker says about the topics before the job starts: topic ids (to recognise a
//! topic deleted and created again under the same name) and the operations this client is
//! authorized for (to find a missing write permission on the dead-letter topic at startup
//! rather than at the first reject). rust-rdkafka has no DescribeTopics yet, so this calls
//! librdkafka's admin API directly; every pointer it returns lives until the event is
//! destroyed, and everything is copied out before that.

use rdkafka::bindings as rd;
use std::ffi::{CStr, CString};
use std::time::Duration;

pub(super) struct TopicInfo {
    pub name: String,
    /// Base64 topic id, `None` when the broker gives none (before Kafka 2.8).
    pub id: Option<String>,
    /// `None` when the broker does not report authorized operations (no authorizer);
    /// otherwise whether this client may write to the topic.
    pub writable: Option<bool>,
    /// A per-topic error code name, e.g. `TOPIC_AUTHORIZATION_FAILED`.
    pub error: Option<String>,
}

struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching librdkafka constructor and is
            // destroyed exactly once, here.
            unsafe { (self.1)(self.0) }
        }
    }
}

fn text(p: *const std::os::raw::c_char) -> Option<String> {
    // SAFETY: librdkafka returns NUL-terminated strings (or NULL) valid for the call.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Describes the topics through the client's connection. Fails as a whole on a request
/// error (timeout, broker without the API); a topic's own error is reported in its entry.
pub(super) fn describe_topics(
    rk: *mut rd::rd_kafka_t,
    names: &[&str],
    timeout: Duration,
) -> Result<Vec<TopicInfo>, String> {
    let cnames: Vec<CString> = names
        .iter()
        .map(|n| CString::new(*n).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const std::os::raw::c_char> = cnames.iter().map(|c| c.as_ptr()).collect();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: every object created here is owned by an `Owned` guard and destroyed once;
    // `ptrs` and `cnames` outlive the calls that read them; result pointers are only read
    // while `event` is alive.
    unsafe {
        let coll = Owned(
            rd::rd_kafka_TopicCollection_of_topic_names(ptrs.as_mut_ptr(), ptrs.len()),
            rd::rd_kafka_TopicCollection_destroy,
        );
        let opts = Owned(
            rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
            ),
            rd::rd_kafka_AdminOptions_destroy,
        );
        let mut errstr = [0 as std::os::raw::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            opts.0,
            ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let err = rd::rd_kafka_AdminOptions_set_include_authorized_operations(opts.0, 1);
        if !err.is_null() {
            rd::rd_kafka_error_destroy(err);
        }
        let queue = Owned(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        rd::rd_kafka_DescribeTopics(rk, coll.0, opts.0, queue.0);
        let event = Owned(
            rd::rd_kafka_queue_poll(queue.0, ms.saturating_add(1000)),
            rd::rd_kafka_event_destroy,
        );
        if event.0.is_null() {
            return Err(format!("no answer within {timeout:?}"));
        }
        if rd::rd_kafka_event_error(event.0) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return Err(text(rd::rd_kafka_event_error_string(event.0)).unwrap_or_default());
        }
        let result = rd::rd_kafka_event_DescribeTopics_result(event.0);
        if result.is_null() {
            return Err("unexpected answer".into());
        }
        let mut n = 0usize;
        let topics = rd::rd_kafka_DescribeTopics_result_topics(result, &mut n);
        let mut out = Vec::new();
        for i in 0..n {
            let t = *topics.add(i);
            let name = text(rd::rd_kafka_TopicDescription_name(t)).unwrap_or_default();
            let error = {
                let e = rd::rd_kafka_TopicDescription_error(t);
                (!e.is_null()
                    && rd::rd_kafka_error_code(e)
                        != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
                    .then(|| format!("{:?}", rd::rd_kafka_error_code(e)))
            };
            let uuid = rd::rd_kafka_TopicDescription_topic_id(t);
            let id = (!uuid.is_null())
                .then(|| text(rd::rd_kafka_Uuid_base64str(uuid)))
                .flatten()
                .filter(|s| s != "AAAAAAAAAAAAAAAAAAAAAA");
            let mut k = 0usize;
            let ops = rd::rd_kafka_TopicDescription_authorized_operations(t, &mut k);
            let writable = (!ops.is_null()).then(|| {
                // Read as plain integers: librdkafka may add operations this enum lacks.
                let ops = ops.cast::<u32>();
                (0..k).any(|j| {
                    let op = *ops.add(j);
                    op == rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE as u32
                        || op == rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ALL as u32
                })
            });
            out.push(TopicInfo {
                name,
                id,
                writable,
                error,
            });
        }
        Ok(out)
    }
}
