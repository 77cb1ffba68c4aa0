//! What an SMTP failure means for the outbox: a pure rule over the phase it happened in and
//! what was seen (a reply code with its enhanced status code, or a connection-level event).
//!
//! | verdict | examples | what the sender does |
//! |---|---|---|
//! | [`Verdict::Relay`] | connection refused, TLS or login failure, `421`, a timeout or dropped connection before `DATA`, `4.3.x` | the relay is down: the whole sender backs off; no attempt is counted |
//! | [`Verdict::MessagePermanent`] | `5xx` to `MAIL`/`RCPT`/`DATA` or to the final dot | review (dead letter) |
//! | [`Verdict::MessageTransient`] | other `4xx` for this message or recipient | retried with backoff, until `outbox.give_up_after` |
//! | [`Verdict::OutcomeUnknown`] | a timeout or dropped connection after the message was handed over (waiting for the reply to the final dot) | not resent at once; retried after `outbox.unknown_outcome_delay` |

/// Where in the SMTP conversation a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect (and implicit TLS).
    Connect,
    /// STARTTLS or the TLS handshake.
    Tls,
    /// The server's greeting and EHLO.
    Greeting,
    /// AUTH, or fetching our login secret.
    Auth,
    /// `MAIL FROM`, `RCPT TO`, `DATA` (before the message is sent).
    Envelope,
    /// Sending the message and waiting for the reply to the final dot.
    Body,
}

/// An enhanced status code (RFC 3463): class, subject, detail.
pub type Enhanced = (u8, u16, u16);

/// What was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A negative reply: the basic code and, when the text starts with one, the enhanced status
    /// code (RFC 3463) as (class, subject, detail).
    Reply {
        code: u16,
        enhanced: Option<Enhanced>,
    },
    /// The relay did not answer in time.
    Timeout,
    /// The connection broke (reset, closed, an I/O error) or could not be opened.
    Network,
    /// A refusal decided on our side about this message (e.g. non-ASCII body and no 8BITMIME).
    ClientRefusal,
    /// A problem on our side that is about the relay set-up, not the message (a login secret
    /// that cannot be fetched, an unsupported AUTH mechanism, bad TLS parameters).
    Setup,
}

/// What the failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The relay cannot take any mail right now (or our connection to it is misconfigured).
    Relay,
    /// The relay refused this message (or recipient) for good.
    MessagePermanent,
    /// The relay refused this message for now.
    MessageTransient,
    /// The message may or may not have been accepted.
    OutcomeUnknown,
}

/// Replies about our login rather than about the message (RFC 4954).
fn is_auth_code(code: u16) -> bool {
    matches!(code, 454 | 530 | 534 | 535 | 538)
}

/// The rule. Pure: see the table test below.
pub fn classify(phase: Phase, seen: Seen) -> Verdict {
    match (phase, seen) {
        // Nothing about a message has been said yet: everything here is the relay.
        (Phase::Connect | Phase::Tls | Phase::Greeting | Phase::Auth, _) => Verdict::Relay,
        (_, Seen::Setup) => Verdict::Relay,
        (_, Seen::ClientRefusal) => Verdict::MessagePermanent,
        // The relay closes the session (RFC 5321 §3.8): it took nothing.
        (_, Seen::Reply { code: 421, .. }) => Verdict::Relay,
        (_, Seen::Reply { code, .. }) if is_auth_code(code) => Verdict::Relay,
        // "Mail system status" (RFC 3463 X.3.x: system full, not accepting messages) is about
        // the relay, whatever the message.
        (
            _,
            Seen::Reply {
                code: 400..=499,
                enhanced: Some((4, 3, _)),
            },
        ) => Verdict::Relay,
        (
            _,
            Seen::Reply {
                code: 500..=599, ..
            },
        ) => Verdict::MessagePermanent,
        (_, Seen::Reply { .. }) => Verdict::MessageTransient,
        // Before the message was handed over, a silent or broken relay took nothing.
        (Phase::Envelope, Seen::Timeout | Seen::Network) => Verdict::Relay,
        // After it: the relay may have queued it and we did not hear the 250.
        (Phase::Body, Seen::Timeout | Seen::Network) => Verdict::OutcomeUnknown,
    }
}

/// The enhanced status code at the start of a reply text (`5.1.1 user unknown`), if any.
pub fn enhanced_code(text: &str) -> Option<Enhanced> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
        return None;
    }
    Some((class, subject, detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;
    use Verdict::*;

    fn reply(code: u16, text: &str) -> Seen {
        Seen::Reply {
            code,
            enhanced: enhanced_code(text),
        }
    }

    #[test]
    fn table() {
        let cases: &[(Phase, Seen, Verdict, &str)] = &[
            (Connect, Seen::Network, Relay, "connection refused"),
            (Connect, Seen::Timeout, Relay, "connect timeout"),
            (Tls, Seen::Network, Relay, "TLS handshake failed"),
            (Tls, Seen::Setup, Relay, "no TLS parameters"),
            (
                Greeting,
                reply(554, "5.3.2 no service"),
                Relay,
                "554 greeting",
            ),
            (Greeting, reply(421, "4.3.2 busy"), Relay, "421 greeting"),
            (Greeting, Seen::Timeout, Relay, "no greeting"),
            (Auth, reply(535, "5.7.8 bad credentials"), Relay, "535 auth"),
            (
                Auth,
                reply(454, "4.7.0 temporary auth failure"),
                Relay,
                "454 auth",
            ),
            (Auth, Seen::Setup, Relay, "token command failed"),
            (Envelope, reply(421, "4.4.2 timeout"), Relay, "421 at MAIL"),
            (
                Envelope,
                reply(530, "5.7.0 auth required"),
                Relay,
                "530 at MAIL",
            ),
            (
                Envelope,
                reply(452, "4.3.1 insufficient storage"),
                Relay,
                "system full",
            ),
            (
                Envelope,
                reply(451, "4.3.0 local error"),
                Relay,
                "mail system",
            ),
            (Envelope, Seen::Timeout, Relay, "timeout before DATA"),
            (Envelope, Seen::Network, Relay, "dropped before DATA"),
            (
                Envelope,
                reply(550, "5.1.1 user unknown"),
                MessagePermanent,
                "550 RCPT",
            ),
            (
                Envelope,
                reply(553, "5.1.3 bad address"),
                MessagePermanent,
                "553",
            ),
            (
                Envelope,
                reply(552, "5.3.4 too big"),
                MessagePermanent,
                "552 size",
            ),
            (Envelope, reply(554, ""), MessagePermanent, "554 no text"),
            (
                Envelope,
                reply(450, "4.2.0 greylisted"),
                MessageTransient,
                "greylist",
            ),
            (
                Envelope,
                reply(451, "4.7.1 try later"),
                MessageTransient,
                "451 policy",
            ),
            (
                Envelope,
                reply(452, "4.5.3 too many recipients"),
                MessageTransient,
                "452",
            ),
            (
                Envelope,
                reply(450, "no enhanced code"),
                MessageTransient,
                "450 bare",
            ),
            (
                Envelope,
                Seen::ClientRefusal,
                MessagePermanent,
                "needs 8BITMIME",
            ),
            (
                Body,
                reply(554, "5.6.0 content rejected"),
                MessagePermanent,
                "554 after dot",
            ),
            (
                Body,
                reply(451, "4.7.1 scanning failed"),
                MessageTransient,
                "451 after dot",
            ),
            (Body, reply(421, "4.4.2 closing"), Relay, "421 after dot"),
            (Body, Seen::Timeout, OutcomeUnknown, "timeout after dot"),
            (Body, Seen::Network, OutcomeUnknown, "dropped after dot"),
        ];
        for (phase, seen, want, what) in cases {
            assert_eq!(classify(*phase, *seen), *want, "{what}: {phase:?} {seen:?}");
        }
    }

    #[test]
    fn enhanced_codes() {
        let cases: &[(&str, Option<Enhanced>)] = &[
            ("5.1.1 user unknown", Some((5, 1, 1))),
            ("4.3.2 try later", Some((4, 3, 2))),
            ("2.0.0 Ok: queued", Some((2, 0, 0))),
            ("  4.7.0\tx", Some((4, 7, 0))),
            ("user unknown", None),
            ("5.1 short", None),
            ("5.1.1.1 long", None),
            ("3.1.1 bad class", None),
            ("5.a.1 letters", None),
            ("", None),
            ("5.1.99999 huge", None),
        ];
        for (text, want) in cases {
            assert_eq!(enhanced_code(text), *want, "{text:?}");
        }
    }
}
