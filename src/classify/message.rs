//! mail-parser adapter (STUB: to be implemented).
use super::{Inspection, Rules};

pub fn inspect(rules: &Rules, raw: &[u8]) -> Inspection {
    let _ = rules;
    Inspection {
        message_id: None,
        message_key: String::new(),
        subject: String::new(),
        from: None,
        reply_to: vec![],
        references: vec![],
        date: None,
        automated: None,
        request_language: None,
        loan_numbers: vec![],
        loan_numbers_truncated: false,
        dmarc_fail: false,
        oversize: raw.len() > rules.max_message_bytes,
        text: String::new(),
        notes: vec![],
    }
}
