//! A librdkafka topic handle, made once, and the raw produce call on it.
//!
//! rust-rdkafka's `send` names the topic on every call; librdkafka then looks the name up under
//! the client's *write* lock, which the ingestor's reader threads and librdkafka's own threads
//! contend on for every record. Producing on a handle skips the lookup.

use std::ffi::{CString, c_void};

use rdkafka::ClientContext;
use rdkafka::bindings as rdsys;
use rdkafka::client::Client;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub struct TopicHandle {
    ptr: *mut rdsys::rd_kafka_topic_t,
}

// SAFETY: librdkafka topic handles are thread-safe (reference-counted, internally locked).
unsafe impl Send for TopicHandle {}
unsafe impl Sync for TopicHandle {}

impl TopicHandle {
    /// A handle on `name` for `client` (which must outlive the handle). A null topic configuration
    /// takes the client's default topic settings (the murmur2 partitioner among them).
    pub fn new<C: ClientContext>(client: &Client<C>, name: &str) -> Result<Self, KafkaError> {
        let c_name = CString::new(name).map_err(|e| KafkaError::ClientCreation(format!("topic name {name:?}: {e}")))?;
        // SAFETY: the client is alive; librdkafka copies the name.
        let ptr = unsafe { rdsys::rd_kafka_topic_new(client.native_ptr(), c_name.as_ptr(), std::ptr::null_mut()) };
        if ptr.is_null() {
            return Err(KafkaError::ClientCreation(format!("cannot make a handle for topic {name:?}")));
        }
        Ok(Self { ptr })
    }

    /// Enqueues one record (partition chosen by the partitioner from `key`), copying key and
    /// payload. On `NoError` librdkafka owns `opaque` and hands it to the delivery report.
    ///
    /// # Safety
    /// `rk` must be the live client this handle was made on, and `opaque` a pointer the client's
    /// delivery report can take (its `DeliveryOpaque`); on an error the caller still owns it.
    pub unsafe fn produce(
        &self,
        rk: *mut rdsys::rd_kafka_t,
        key: &[u8],
        payload: &[u8],
        opaque: *mut c_void,
    ) -> RDKafkaErrorCode {
        use rdsys::rd_kafka_vtype_t::*;
        // SAFETY: per this function's contract; key and payload are copied (F_COPY) before the
        // call returns.
        let err = unsafe {
            rdsys::rd_kafka_producev(
                rk,
                RD_KAFKA_VTYPE_RKT,
                self.ptr,
                RD_KAFKA_VTYPE_PARTITION,
                -1i32, // unassigned: the partitioner picks
                RD_KAFKA_VTYPE_MSGFLAGS,
                rdsys::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                payload.as_ptr() as *mut c_void,
                payload.len(),
                RD_KAFKA_VTYPE_KEY,
                key.as_ptr() as *mut c_void,
                key.len(),
                RD_KAFKA_VTYPE_OPAQUE,
                opaque,
                RD_KAFKA_VTYPE_END,
            )
        };
        RDKafkaErrorCode::from(err)
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: made by rd_kafka_topic_new, destroyed once, before its client (the owner
        // declares it first).
        unsafe { rdsys::rd_kafka_topic_destroy(self.ptr) }
    }
}
