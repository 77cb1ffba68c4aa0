//! Composing outgoing mail: threading headers, our own markers, both body parts.

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox as LettreMailbox, MultiPart};

use super::headers;
pub use super::headers::is_sane_message_id;
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
        let composer = Composer {
            from: headers::mailbox(Some(from_name), address),
            message_id_domain: message_id_domain.to_string(),
        };
        if !is_sane_message_id(&composer.new_message_id(jiff::Timestamp::UNIX_EPOCH)) {
            return Err(ComposeError::Build(format!(
                "Message-ID domain {message_id_domain:?} cannot be used in a header"
            )));
        }
        Ok(composer)
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
        builder = in_thread(builder, draft.in_reply_to, draft.references);
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
                // The file name is a header value too (Content-Disposition).
                let file_name = headers::cap_chars(headers::header_text(a.file_name), 150);
                mixed = mixed.singlepart(
                    lettre::message::Attachment::new(file_name).body(body, content_type),
                );
            }
            mixed
        };
        Ok(Composed {
            message_id,
            bytes: finish(builder, body)?,
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
        builder = in_thread(builder, in_reply_to, references);
        let body =
            MultiPart::alternative_plain_html(notice.text.to_string(), notice.html.to_string());
        Ok(Composed {
            message_id,
            bytes: finish(builder, body)?,
        })
    }

    /// Composes a [`Notice`] that starts its own thread.
    pub fn compose_notice(&self, notice: &Notice<'_>) -> Result<Composed, ComposeError> {
        self.compose_notice_in_thread(notice, None, &[])
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
            .subject(headers::subject(subject))
            .message_id(Some(format!("<{message_id}>")))
            .date(
                std::time::SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_millis(date.as_millisecond().max(0) as u64),
            )
            .header(OwnMarker(kind.marker().to_string()));
        for mailbox in to {
            let address = headers::header_text(&mailbox.address).parse().map_err(
                |e: lettre::address::AddressError| ComposeError::Address {
                    address: mailbox.address.clone(),
                    message: e.to_string(),
                },
            )?;
            builder = builder.to(headers::mailbox(mailbox.name.as_deref(), address));
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

/// `In-Reply-To: <parent>` and `References` (see [`thread_references`]) when there is a sane
/// parent id; the builder unchanged otherwise.
fn in_thread(
    builder: lettre::message::MessageBuilder,
    in_reply_to: Option<&str>,
    references: &[String],
) -> lettre::message::MessageBuilder {
    let Some(parent) = in_reply_to.filter(|p| is_sane_message_id(p)) else {
        return builder;
    };
    let refs = thread_references(references, parent);
    builder.in_reply_to(format!("<{parent}>")).references(
        refs.iter()
            .map(|r| format!("<{r}>"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The message's bytes. Every header value went through [`headers`] first; should lettre
/// still panic on one, the mail is an error, not a crash.
fn finish(
    builder: lettre::message::MessageBuilder,
    body: MultiPart,
) -> Result<Vec<u8>, ComposeError> {
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        builder.multipart(body).map(|m| m.formatted())
    }));
    match built {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ComposeError::Build(e.to_string())),
        Err(_) => Err(ComposeError::Build(
            "the mail library failed on a header value".into(),
        )),
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
mod tests;
