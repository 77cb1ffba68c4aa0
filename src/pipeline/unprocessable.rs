//! Setting one mail aside: a mail whose processing panicked, or failed for a non-transient
//! reason `mail.max_processing_failures` times, is recorded as it is — raw bytes when they
//! were read whole, the sender and subject when a plain header scan finds them — with a review
//! item `unprocessable`, and acknowledged to its source like any mail sent to review. The rest
//! of the batch flows on; nothing is answered automatically.

use super::{Pipeline, PipelineError};
use crate::inbound::RawMail;
use crate::store::{NewDecision, NewInbound, NewReview, RecordOutcome};

/// The review reason of a mail set aside.
pub const UNPROCESSABLE: &str = "unprocessable";

impl Pipeline {
    /// Records `mail` for review as unprocessable, saying `why`. Returns its inbound id.
    pub async fn set_aside(&self, mail: &RawMail, why: &str) -> Result<i64, PipelineError> {
        let now = self.clock.now().as_millisecond();
        let inbound = NewInbound {
            // The bytes' hash: a redelivery of the same bytes finds this record.
            message_key: if mail.bytes.is_empty() {
                // Nothing could be read: the place it was listed at is all there is.
                format!("unprocessable:{}", mail.origin)
            } else {
                format!(
                    "unprocessable:{}",
                    crate::classify::message::hash_key(&mail.bytes)
                )
            },
            message_id: header(&mail.bytes, "message-id"),
            source: mail.origin.clone(),
            received_at: now,
            sender: header(&mail.bytes, "from"),
            sender_name: None,
            subject: header(&mail.bytes, "subject").unwrap_or_default(),
            size_bytes: mail.size as i64,
            raw: (!mail.bytes.is_empty() && !mail.is_truncated()).then(|| mail.bytes.clone()),
            body_text: String::new(),
        };
        let decision = NewDecision {
            decided_by: "pipeline".into(),
            kind: "other".into(),
            action: "review".into(),
            language: "en".into(),
            partner_id: None,
            loan_numbers: Vec::new(),
            reasons: vec![UNPROCESSABLE.into()],
            review: vec![UNPROCESSABLE.into()],
        };
        let review = NewReview {
            reason: UNPROCESSABLE.into(),
            reasons: vec![UNPROCESSABLE.into()],
            detail: format!("trialdesk could not process this mail: {why}"),
        };
        let outcome = self
            .store
            .record_inbound(&inbound, &decision, &[], Some(&review), now)
            .await?;
        Ok(match outcome {
            RecordOutcome::Recorded { inbound_id, .. }
            | RecordOutcome::Duplicate { inbound_id } => inbound_id,
        })
    }
}

/// The raw value of the first header `name` (lower-case) in the header section, unfolded,
/// at most 998 characters; a plain scan that cannot fail on any bytes.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(256 * 1024)]);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut value: Option<String> = None;
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                value = Some(v.trim().to_string());
            }
        }
    }
    value.map(|v| v.chars().take(998).collect())
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn header_scan() {
        let cases: &[(&[u8], &str, Option<&str>)] = &[
            (
                b"From: a@x\r\nSubject: hi\r\n\r\nbody",
                "subject",
                Some("hi"),
            ),
            (
                b"Subject: one\r\n two\r\nX: y\r\n\r\n",
                "subject",
                Some("one two"),
            ),
            (b"From: a@x\r\n\r\nSubject: in body\r\n", "subject", None),
            (b"Subject: \xff\r\n\r\n", "subject", Some("\u{fffd}")),
            (b"\xff\xfeSubject: x\r\n\r\n", "subject", None),
            (b"", "from", None),
            (b"no colon line\r\nFROM: b@y\r\n", "from", Some("b@y")),
        ];
        for (raw, name, want) in cases {
            assert_eq!(header(raw, name).as_deref(), *want, "{raw:?}");
        }
    }
}
