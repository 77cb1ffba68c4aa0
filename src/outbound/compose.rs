//! Composing outgoing mail: threading headers, our own markers, both body parts.

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox as LettreMailbox, MultiPart};

use crate::classify::OWN_MAIL_HEADER;

/// Errors composing a mail; the address or header at fault is named.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("address {address:?} cannot be used: {message}")]
    Address { address: String, message: String },
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// What kind of mail we send; sets the loop-prevention headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMailKind {
    /// Automatic answer to an inbound mail.
    AutoReply,
    /// Scheduled notification (trial reminders).
    Reminder,
    /// Written by helpdesk staff.
    StaffReply,
    /// Proactive shipment status notice (auto-generated, threaded per loan).
    ShipmentNotice,
}

impl OwnMailKind {
    fn marker(self) -> &'static str {
        match self {
            OwnMailKind::AutoReply => "auto-reply",
            OwnMailKind::Reminder => "reminder",
            OwnMailKind::StaffReply => "staff-reply",
            OwnMailKind::ShipmentNotice => "shipment-notice",
        }
    }
}

/// One outgoing mail's content and threading.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    pub to: &'a crate::classify::Mailbox,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// Message-ID (without brackets) this answers.
    pub in_reply_to: Option<&'a str>,
    /// The thread's References (without brackets), oldest first, not including `in_reply_to`.
    pub references: &'a [String],
    pub kind: OwnMailKind,
    pub date: jiff::Timestamp,
}

/// A mail that starts no thread and answers none (reminders): one or more recipients, all in
/// `To:` (they are colleagues of one organisation, so they may see each other).
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub to: &'a [crate::classify::Mailbox],
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    pub kind: OwnMailKind,
    pub date: jiff::Timestamp,
}

/// A file attached to a mail (after the text and HTML parts).
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    pub file_name: &'a str,
    /// e.g. `application/pdf`.
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// A composed mail.
#[derive(Debug, Clone)]
pub struct Composed {
    /// Our Message-ID, without brackets.
    pub message_id: String,
    pub bytes: Vec<u8>,
}

/// Builds mail from the helpdesk identity.
#[derive(Debug, Clone)]
pub struct Composer {
    from: LettreMailbox,
    message_id_domain: String,
}

/// References are capped (first + latest) so long threads do not grow headers without bound.
const MAX_REFERENCES: usize = 20;

impl Composer {
    pub fn new(
        from_name: &str,
        from_address: &str,
        message_id_domain: &str,
    ) -> Result<Self, ComposeError> {
        let address = from_address
            .parse()
            .map_err(|e: lettre::address::AddressError| ComposeError::Address {
                address: from_address.into(),
                message: e.to_string(),
            })?;
        Ok(Composer {
            from: LettreMailbox::new(
                Some(from_name.to_string()).filter(|n| !n.is_empty()),
                address,
            ),
            message_id_domain: message_id_domain.to_string(),
        })
    }

    pub fn from_address(&self) -> String {
        self.from.email.to_string()
    }

    /// A fresh Message-ID under our domain (time + randomness: unique across instances).
    pub fn new_message_id(&self, now: jiff::Timestamp) -> String {
        let random: u64 = rand::random();
        format!(
            "{}{}.{:016x}@{}",
            crate::classify::OWN_MESSAGE_ID_PREFIX,
            now.as_millisecond(),
            random,
            self.message_id_domain
        )
    }

    pub fn compose(&self, draft: &Draft<'_>) -> Result<Composed, ComposeError> {
        self.compose_with_attachments(draft, &[])
    }

    /// [`Composer::compose`] with files attached (`multipart/mixed`: the text and HTML
    /// alternative first, then each file).
    pub fn compose_with_attachments(
        &self,
        draft: &Draft<'_>,
        attachments: &[Attachment<'_>],
    ) -> Result<Composed, ComposeError> {
        let (message_id, mut builder) = self.builder(
            std::slice::from_ref(draft.to),
            draft.subject,
            draft.kind,
            draft.date,
        )?;
        if let Some(parent) = draft.in_reply_to {
            builder = builder.in_reply_to(format!("<{parent}>"));
            let refs = thread_references(draft.references, parent);
            builder = builder.references(
                refs.iter()
                    .map(|r| format!("<{r}>"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        let body =
            MultiPart::alternative_plain_html(draft.text.to_string(), draft.html.to_string());
        let body = if attachments.is_empty() {
            body
        } else {
            let mut mixed = MultiPart::mixed().multipart(body);
            for a in attachments {
                let content_type = lettre::message::header::ContentType::parse(a.content_type)
                    .map_err(|e| ComposeError::Build(format!("{}: {e}", a.content_type)))?;
                // Always base64: a PDF that happens to be ASCII must not be sent as text
                // (relays rewrite its line endings).
                let body = lettre::message::Body::new_with_encoding(
                    a.bytes.to_vec(),
                    lettre::message::header::ContentTransferEncoding::Base64,
                )
                .map_err(|_| ComposeError::Build(format!("{}: cannot encode", a.file_name)))?;
                mixed = mixed.singlepart(
                    lettre::message::Attachment::new(a.file_name.to_string())
                        .body(body, content_type),
                );
            }
            mixed
        };
        let message = builder
            .multipart(body)
            .map_err(|e| ComposeError::Build(e.to_string()))?;
        Ok(Composed {
            message_id,
            bytes: message.formatted(),
        })
    }

    /// Composes a [`Notice`] that continues a thread of our own earlier notices:
    /// `In-Reply-To: <in_reply_to>` and `References` = `references` then `in_reply_to`.
    pub fn compose_notice_in_thread(
        &self,
        notice: &Notice<'_>,
        in_reply_to: Option<&str>,
        references: &[String],
    ) -> Result<Composed, ComposeError> {
        if notice.to.is_empty() {
            return Err(ComposeError::Build(
                "a mail needs at least one recipient".into(),
            ));
        }
        let (message_id, mut builder) =
            self.builder(notice.to, notice.subject, notice.kind, notice.date)?;
        if let Some(parent) = in_reply_to.filter(|p| is_sane_message_id(p)) {
            builder = builder.in_reply_to(format!("<{parent}>"));
            let refs = thread_references(references, parent);
            builder = builder.references(
                refs.iter()
                    .map(|r| format!("<{r}>"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                notice.text.to_string(),
                notice.html.to_string(),
            ))
            .map_err(|e| ComposeError::Build(e.to_string()))?;
        Ok(Composed {
            message_id,
            bytes: message.formatted(),
        })
    }

    /// Composes a [`Notice`].
    pub fn compose_notice(&self, notice: &Notice<'_>) -> Result<Composed, ComposeError> {
        if notice.to.is_empty() {
            return Err(ComposeError::Build(
                "a mail needs at least one recipient".into(),
            ));
        }
        let (message_id, builder) =
            self.builder(notice.to, notice.subject, notice.kind, notice.date)?;
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                notice.text.to_string(),
                notice.html.to_string(),
            ))
            .map_err(|e| ComposeError::Build(e.to_string()))?;
        Ok(Composed {
            message_id,
            bytes: message.formatted(),
        })
    }

    /// Headers every mail of ours carries: From, To, Subject, Message-ID, Date and the
    /// loop-prevention markers of its kind.
    fn builder(
        &self,
        to: &[crate::classify::Mailbox],
        subject: &str,
        kind: OwnMailKind,
        date: jiff::Timestamp,
    ) -> Result<(String, lettre::message::MessageBuilder), ComposeError> {
        let message_id = self.new_message_id(date);
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(format!("<{message_id}>")))
            .date(
                std::time::SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_millis(date.as_millisecond().max(0) as u64),
            )
            .header(OwnMarker(kind.marker().to_string()));
        for mailbox in to {
            let address = mailbox
                .address
                .parse()
                .map_err(|e: lettre::address::AddressError| ComposeError::Address {
                    address: mailbox.address.clone(),
                    message: e.to_string(),
                })?;
            builder = builder.to(LettreMailbox::new(
                mailbox.name.clone().filter(|n| !n.trim().is_empty()),
                address,
            ));
        }
        match kind {
            OwnMailKind::AutoReply => {
                builder = builder
                    .header(AutoSubmitted("auto-replied".into()))
                    .header(AutoResponseSuppress("All".into()))
                    .header(Precedence("auto_reply".into()));
            }
            OwnMailKind::Reminder | OwnMailKind::ShipmentNotice => {
                builder = builder
                    .header(AutoSubmitted("auto-generated".into()))
                    .header(AutoResponseSuppress("All".into()));
            }
            OwnMailKind::StaffReply => {}
        }
        Ok((message_id, builder))
    }
}

/// References for a reply: the parent's References plus the parent, de-duplicated, capped
/// to the thread root and the most recent ids (RFC 5322 §3.6.4 allows trimming the middle).
pub fn thread_references(parent_references: &[String], parent: &str) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    for r in parent_references
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(parent))
    {
        if is_sane_message_id(r) && !refs.iter().any(|x| x == r) {
            refs.push(r.to_string());
        }
    }
    if refs.len() > MAX_REFERENCES {
        let tail = refs.split_off(refs.len() - (MAX_REFERENCES - 1));
        refs.truncate(1);
        refs.extend(tail);
    }
    refs
}

/// A message id we can safely put between angle brackets in a header.
pub fn is_sane_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 500
        && id.is_ascii()
        && !id
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'<' || b == b'>')
}

macro_rules! text_header {
    ($ty:ident, $name:expr) => {
        #[derive(Debug, Clone)]
        struct $ty(String);

        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($ty(s.to_string()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(AutoSubmitted, "Auto-Submitted");
text_header!(AutoResponseSuppress, "X-Auto-Response-Suppress");
text_header!(Precedence, "Precedence");
text_header!(OwnMarker, OWN_MAIL_HEADER);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Mailbox;

    fn composer() -> Composer {
        Composer::new("Trial Helpdesk", "helpdesk@example.test", "example.test").unwrap()
    }

    fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(bytes).unwrap()
    }

    #[test]
    fn auto_reply_is_threaded_and_marked() {
        let to = Mailbox {
            name: Some("王伟".into()),
            address: "wangwei@huadong.example.cn".into(),
        };
        let refs = vec!["root@x".to_string()];
        let c = composer()
            .compose(&Draft {
                to: &to,
                subject: "Re: 试用终端追踪请求",
                text: "文本 D1234567",
                html: "<p>文本 D1234567</p>",
                in_reply_to: Some("abc@mail.huadong.example.cn"),
                references: &refs,
                kind: OwnMailKind::AutoReply,
                date: "2026-11-26T08:00:00Z".parse().unwrap(),
            })
            .unwrap();
        let m = parse(&c.bytes);
        assert_eq!(m.subject(), Some("Re: 试用终端追踪请求"));
        assert_eq!(m.message_id(), Some(c.message_id.as_str()));
        assert!(c.message_id.ends_with("@example.test"));
        assert_eq!(
            m.in_reply_to().as_text(),
            Some("abc@mail.huadong.example.cn")
        );
        let refs: Vec<&str> = m
            .references()
            .as_text_list()
            .unwrap()
            .iter()
            .map(|s| s.as_ref())
            .collect();
        assert_eq!(refs, vec!["root@x", "abc@mail.huadong.example.cn"]);
        assert_eq!(
            m.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-replied")
        );
        assert_eq!(
            m.header_raw("X-Auto-Response-Suppress").map(str::trim),
            Some("All")
        );
        assert_eq!(
            m.header_raw("Precedence").map(str::trim),
            Some("auto_reply")
        );
        assert_eq!(
            m.header_raw(OWN_MAIL_HEADER).map(str::trim),
            Some("auto-reply")
        );
        assert_eq!(
            m.body_text(0).as_deref().map(str::trim_end),
            Some("文本 D1234567")
        );
        assert!(m.body_html(0).unwrap().contains("<p>文本 D1234567</p>"));
        assert_eq!(
            m.to().unwrap().first().unwrap().address(),
            Some("wangwei@huadong.example.cn")
        );
    }

    #[test]
    fn references_are_deduplicated_and_capped() {
        let many: Vec<String> = (0..40).map(|i| format!("m{i}@x")).collect();
        let refs = thread_references(&many, "parent@x");
        assert_eq!(refs.len(), MAX_REFERENCES);
        assert_eq!(refs[0], "m0@x");
        assert_eq!(refs.last().unwrap(), "parent@x");
        let dup = thread_references(&["a@x".into(), "a@x".into(), "bad id".into()], "a@x");
        assert_eq!(dup, vec!["a@x"]);
    }

    #[test]
    fn attachments_are_base64_and_come_back_byte_for_byte() {
        use mail_parser::MimeHeaders;
        let to = Mailbox {
            name: None,
            address: "lager@nordwind.example.de".into(),
        };
        let pdf = b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n%%EOF\n";
        let c = composer()
            .compose_with_attachments(
                &Draft {
                    to: &to,
                    subject: "Re: RMA-Etikett",
                    text: "anbei",
                    html: "<p>anbei</p>",
                    in_reply_to: Some("req@nordwind.example.de"),
                    references: &[],
                    kind: OwnMailKind::AutoReply,
                    date: "2026-11-26T01:00:00Z".parse().unwrap(),
                },
                &[Attachment {
                    file_name: "D30261002.pdf",
                    content_type: "application/pdf",
                    bytes: pdf,
                }],
            )
            .unwrap();
        let m = parse(&c.bytes);
        let files: Vec<_> = m.attachments().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].attachment_name(), Some("D30261002.pdf"));
        assert!(files[0].is_content_type("application", "pdf"));
        assert_eq!(
            files[0]
                .content_transfer_encoding()
                .map(|e| e.to_ascii_lowercase()),
            Some("base64".into())
        );
        assert_eq!(files[0].contents(), pdf);
        assert_eq!(m.body_text(0).as_deref(), Some("anbei"));
        assert_eq!(m.in_reply_to().as_text(), Some("req@nordwind.example.de"));
    }

    #[test]
    fn a_shipment_notice_continues_its_loans_thread() {
        let to = [Mailbox {
            name: None,
            address: "admin@x.example".into(),
        }];
        let notice = Notice {
            to: &to,
            subject: "Trial endpoint status update: D1",
            text: "t",
            html: "<p>t</p>",
            kind: OwnMailKind::ShipmentNotice,
            date: "2026-11-26T01:00:00Z".parse().unwrap(),
        };
        let first = composer()
            .compose_notice_in_thread(&notice, None, &[])
            .unwrap();
        let m = parse(&first.bytes);
        assert!(m.in_reply_to().is_empty());
        assert_eq!(
            m.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        assert_eq!(
            m.header_raw(OWN_MAIL_HEADER).map(str::trim),
            Some("shipment-notice")
        );
        let older = vec!["n0@example.test".to_string()];
        let next = composer()
            .compose_notice_in_thread(&notice, Some(&first.message_id), &older)
            .unwrap();
        let m = parse(&next.bytes);
        assert_eq!(m.in_reply_to().as_text(), Some(first.message_id.as_str()));
        let refs: Vec<String> = match m.references() {
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|s| s.to_string()).collect(),
            mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
            _ => vec![],
        };
        assert_eq!(refs, vec!["n0@example.test".to_string(), first.message_id]);
    }

    #[test]
    fn notice_goes_to_every_recipient_and_is_marked_as_a_reminder() {
        let to = [
            Mailbox {
                name: None,
                address: "a@x.example".into(),
            },
            Mailbox {
                name: None,
                address: "b@x.example".into(),
            },
        ];
        let c = composer()
            .compose_notice(&Notice {
                to: &to,
                subject: "试用将于 2026-12-03 到期",
                text: "t",
                html: "<p>t</p>",
                kind: OwnMailKind::Reminder,
                date: "2026-11-26T01:00:00Z".parse().unwrap(),
            })
            .unwrap();
        let m = parse(&c.bytes);
        let got: Vec<&str> = m.to().unwrap().iter().filter_map(|a| a.address()).collect();
        assert_eq!(got, vec!["a@x.example", "b@x.example"]);
        assert_eq!(m.subject(), Some("试用将于 2026-12-03 到期"));
        assert_eq!(
            m.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        assert_eq!(
            m.header_raw(OWN_MAIL_HEADER).map(str::trim),
            Some("reminder")
        );
        assert!(m.in_reply_to().is_empty() && m.header_raw("Precedence").is_none());
        let empty = Notice {
            to: &[],
            subject: "s",
            text: "t",
            html: "h",
            kind: OwnMailKind::Reminder,
            date: jiff::Timestamp::UNIX_EPOCH,
        };
        assert!(composer().compose_notice(&empty).is_err());
    }

    #[test]
    fn unusable_recipient_is_an_error_not_a_panic() {
        let to = Mailbox {
            name: None,
            address: "not an address".into(),
        };
        let err = composer()
            .compose(&Draft {
                to: &to,
                subject: "x",
                text: "x",
                html: "x",
                in_reply_to: None,
                references: &[],
                kind: OwnMailKind::Reminder,
                date: jiff::Timestamp::UNIX_EPOCH,
            })
            .unwrap_err();
        assert!(matches!(err, ComposeError::Address { .. }));
    }
}
