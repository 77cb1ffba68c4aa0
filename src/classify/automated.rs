//! Machine-generated mail detection: such mail is never answered (answering a bounce or an
//! out-of-office reply starts a mail loop; answering a list copy leaks partner data).
//!
//! Three tiers, first match wins:
//! 1. **Our own mail** coming back (`X-Trialdesk` header, our address, our Message-ID domain,
//!    our headers quoted inside a bounce).
//! 2. **Unambiguous markers**: RFC 3834 `Auto-Submitted`, `Precedence`, autoresponder and list
//!    headers, `MAILER-DAEMON`/`postmaster`, `Return-Path: <>`, `multipart/report` and
//!    DSN/MDN/ARF parts, Exchange NDR headers, well-known bounce / auto-reply / read-receipt
//!    subjects at the start of the subject.
//! 3. **Circumstantial markers** (two needed): a bounce word somewhere in the subject, bounce
//!    phrases or SMTP status codes in the fresh text, a "Mail Delivery System" display name, an
//!    attached original message. Many MTAs (qmail, Exim, Notes, carriers) send bounces with no
//!    DSN structure at all, so structure alone is not enough.
//!
//! Subject and body heuristics are skipped when the subject starts with a reply or forward
//! prefix: a person forwarding a bounce or a shipping notice is a person.

use std::sync::OnceLock;

use regex::Regex;

use super::sender::address_local;
use super::subject::has_reply_or_forward_prefix;
use super::{Mailbox, Rules, OWN_MAIL_HEADER};

/// What the detector looks at, gathered by `message`.
#[derive(Debug, Default, Clone)]
pub struct Signals<'a> {
    /// Top-level headers: (name, raw unfolded value), in order.
    pub headers: &'a [(String, String)],
    pub subject: &'a str,
    pub from: Option<&'a Mailbox>,
    pub message_id: Option<&'a str>,
    /// Lower-cased `type/subtype` of the root part.
    pub root_type: &'a str,
    /// Lower-cased `report-type` parameter of the root part, when present.
    pub report_type: Option<&'a str>,
    /// Lower-cased `type/subtype` of every part, nested messages included.
    pub part_types: &'a [String],
    /// Fresh part of the main text (see `quotes`).
    pub fresh_text: &'a str,
    /// The whole readable text, nested messages included.
    pub full_text: &'a str,
    /// A nested message carries our `X-Trialdesk` header or Message-ID.
    pub nested_own_mail: bool,
}

impl Signals<'_> {
    fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_header(&self, name: &str) -> bool {
        self.header_values(name).next().is_some()
    }
}

/// Why the mail is machine-generated, or `None` for mail written by a person.
pub fn detect(rules: &Rules, s: &Signals<'_>) -> Option<String> {
    own_mail(rules, s)
        .or_else(|| header_markers(s))
        .or_else(|| structure_markers(s))
        .or_else(|| subject_and_body_markers(s))
}

/// Our own mail coming back (never answer ourselves).
fn own_mail(rules: &Rules, s: &Signals<'_>) -> Option<String> {
    if s.has_header(OWN_MAIL_HEADER) {
        return Some("own_mail_header".into());
    }
    if let Some(from) = s.from {
        if rules
            .own_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&from.address))
        {
            return Some("own_address".into());
        }
    }
    if let Some(id) = s.message_id {
        if is_own_message_id(rules, id) {
            return Some("own_message_id".into());
        }
    }
    let forwarded_by_person = super::subject::has_forward_prefix(s.subject);
    if !forwarded_by_person {
        if s.nested_own_mail {
            return Some("own_mail_returned".into());
        }
        let needle = OWN_MAIL_HEADER.len();
        if s.full_text.lines().any(|l| {
            let l = l.trim_start();
            l.get(..needle)
                .is_some_and(|h| h.eq_ignore_ascii_case(OWN_MAIL_HEADER))
                && l.get(needle..)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
        }) {
            return Some("own_mail_returned".into());
        }
    }
    None
}

/// Is this Message-ID (without brackets) one trialdesk generated?
/// Whether a Message-ID is one trialdesk generated: exactly our domain (a subdomain is
/// somebody else's host) and the shape of `outbound::compose` ids, `td.<millis>.<16 hex>`.
pub fn is_own_message_id(rules: &Rules, id: &str) -> bool {
    let domain = rules.own_message_id_domain.trim();
    if domain.is_empty() {
        return false;
    }
    let Some((left, right)) = id.trim().trim_matches(['<', '>']).rsplit_once('@') else {
        return false;
    };
    if !right.eq_ignore_ascii_case(domain) {
        return false;
    }
    let mut parts = left.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(prefix), Some(millis), Some(random), None)
            if prefix == super::OWN_MESSAGE_ID_PREFIX.trim_end_matches('.')
                && !millis.is_empty()
                && millis.bytes().all(|b| b.is_ascii_digit())
                && random.len() == 16
                && random.bytes().all(|b| b.is_ascii_hexdigit())
    )
}

const AUTORESPONDER_HEADERS: &[&str] = &[
    "x-loop",
    "x-otrs-loop",
    "x-fc-machinegenerated",
    "x-cron-env",
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-auto-reply",
    "x-autoreply-from",
    "x-mail-autoreply",
    "x-autogenerated",
    "x-auto-generated",
    "x-autoresponse",
    "x-auto-response",
    "x-vacation",
];

const LIST_HEADERS: &[&str] = &[
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-owner",
    "list-archive",
    "mailing-list",
    "x-mailing-list",
];

const DAEMON_LOCALS: &[&str] = &[
    "mailer-daemon",
    "mailerdaemon",
    "mailer_daemon",
    "mail-daemon",
    "maildaemon",
    "postmaster",
];

/// Headers that only machines set.
fn header_markers(s: &Signals<'_>) -> Option<String> {
    for v in s.header_values("auto-submitted") {
        let token = first_token(v);
        if !token.is_empty() && token != "no" {
            return Some("auto_submitted".into());
        }
    }
    for name in ["precedence", "x-precedence"] {
        for v in s.header_values(name) {
            let token = first_token(v);
            if matches!(
                token.as_str(),
                "bulk" | "list" | "junk" | "auto_reply" | "auto-reply"
            ) {
                return Some(format!("precedence:{token}"));
            }
        }
    }
    for name in AUTORESPONDER_HEADERS {
        if s.has_header(name) {
            return Some(format!("header:{name}"));
        }
    }
    if s.header_values("x-apple-action")
        .any(|v| v.to_ascii_lowercase().contains("vacation"))
    {
        return Some("header:x-apple-action".into());
    }
    for name in LIST_HEADERS {
        if s.has_header(name) {
            return Some(format!("list:{name}"));
        }
    }
    if s.has_header("x-failed-recipients") {
        return Some("bounce:x-failed-recipients".into());
    }
    if s.has_header("x-ms-exchange-message-is-ndr") {
        return Some("bounce:exchange-ndr".into());
    }
    if let Some(from) = s.from {
        if let Some(local) = address_local(&from.address) {
            let local = local.to_ascii_lowercase();
            if DAEMON_LOCALS.contains(&local.as_str()) {
                return Some(format!("sender:{local}"));
            }
        }
    }
    // `From: MAILER-DAEMON (Mail Delivery System)` has no domain, so no parsed mailbox.
    for v in s.header_values("from") {
        let addr = angle_address(v);
        let first = addr
            .split(|c: char| c.is_whitespace() || c == '(' || c == ',')
            .next()
            .unwrap_or("");
        let local = first.split('@').next().unwrap_or("").trim_matches('"');
        if DAEMON_LOCALS.contains(&local) {
            return Some(format!("sender:{local}"));
        }
    }
    for v in s.header_values("return-path") {
        let addr = angle_address(v);
        if addr.is_empty() || addr == "@" {
            return Some("null_return_path".into());
        }
        if let Some(reason) = daemon_or_list_address(&addr, "return_path") {
            return Some(reason);
        }
    }
    for v in s.header_values("sender") {
        if let Some(reason) = daemon_or_list_address(&angle_address(v), "sender") {
            return Some(reason);
        }
    }
    if s.header_values("x-auto-response-suppress").next().is_some()
        && has_phrase(&clean_subject(s.subject), AUTO_REPLY_WORDS)
    {
        return Some("auto_reply:x-auto-response-suppress".into());
    }
    None
}

fn daemon_or_list_address(addr: &str, what: &str) -> Option<String> {
    let local = address_local(addr)?.to_ascii_lowercase();
    if DAEMON_LOCALS.contains(&local.as_str()) {
        return Some(format!("{what}:{local}"));
    }
    // Mailman (`list-bounces@`) and Majordomo/LISTSERV (`owner-list@`) envelope senders.
    if local.ends_with("-bounces") || local.starts_with("owner-") {
        return Some(format!("{what}:list"));
    }
    None
}

/// The lower-cased first token of a header value (`auto-replied; x` → `auto-replied`).
fn first_token(v: &str) -> String {
    v.trim()
        .split(|c: char| c == ';' || c == '(' || c == ',' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .trim_matches('"')
        .to_ascii_lowercase()
}

/// The address inside `<…>` (or the bare value), lower-cased.
fn angle_address(v: &str) -> String {
    let v = v.trim();
    let inner = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v.get(a + 1..b).unwrap_or(""),
        _ => v,
    };
    inner.trim().to_ascii_lowercase()
}

const REPORT_PARTS: &[&str] = &[
    "message/delivery-status",
    "message/global-delivery-status",
    "message/disposition-notification",
    "message/global-disposition-notification",
    "message/feedback-report",
    "text/rfc822-headers",
    "message/global-headers",
];

/// MIME structure that only reports have.
fn structure_markers(s: &Signals<'_>) -> Option<String> {
    if s.root_type == "multipart/report" {
        return Some(format!("report:{}", s.report_type.unwrap_or("unknown")));
    }
    s.part_types
        .iter()
        .find(|t| REPORT_PARTS.contains(&t.as_str()))
        .map(|t| format!("part:{t}"))
}

/// Read receipts and not-read notices (`Read:`, `已读:`, …), at the start of the subject.
const READ_RECEIPT_PREFIXES: &[&str] = &[
    "read:",
    "not read:",
    "已读:",
    "已讀:",
    "已阅读:",
    "已閱讀:",
    "未读:",
    "未讀:",
    "已读回执",
    "已讀回條",
    "gelesen:",
    "nicht gelesen:",
    "開封済み:",
    "開封確認",
    "未開封:",
    "lu:",
    "lu :",
    "non lu:",
    "non lu :",
    "leído:",
    "no leído:",
    "letto:",
    "gelezen:",
    "lido:",
    "läst:",
    "lest:",
    "luettu:",
    "przeczytano:",
    "прочитано:",
    "읽음:",
    "return receipt",
    "read receipt",
    "read notification",
    "read report",
];

/// Out-of-office and auto-reply subjects.
const AUTO_REPLY_WORDS: &[&str] = &[
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "automated response",
    "automated reply",
    "auto:",
    "out of office",
    "out of the office",
    "abwesenheitsnotiz",
    "abwesenheit",
    "automatische antwort",
    "automatisch antwoord",
    "automatische antwoord",
    "réponse automatique",
    "reponse automatique",
    "absence du bureau",
    "respuesta automática",
    "respuesta automatica",
    "risposta automatica",
    "resposta automática",
    "autosvar",
    "automaattinen vastaus",
    "automatyczna odpowiedź",
    "автоматический ответ",
    "自动回复",
    "自動回覆",
    "自動回复",
    "自动答复",
    "自动应答",
    "自動応答",
    "自動返信",
    "不在通知",
    "자동 회신",
    "자동회신",
    "vacation reply",
    "vacation response",
];

/// Bounce subjects. Matching at the start with a separator after the phrase is decisive;
/// elsewhere the phrase only counts as circumstantial evidence.
const BOUNCE_WORDS: &[&str] = &[
    "undeliverable",
    "undelivered mail",
    "undelivered message",
    "returned mail",
    "mail returned",
    "failure notice",
    "mail delivery failed",
    "mail delivery failure",
    "mail delivery error",
    "delivery status notification",
    "delivery failure",
    "delivery_failure",
    "delivery failed",
    "delivery has failed",
    "delivery notification",
    "delivery report",
    "failed delivery",
    "failure delivery",
    "mail failure",
    "mail system error",
    "could not send message",
    "message not delivered",
    "message delivery failed",
    "message delivery has failed",
    "non-delivery",
    "nondeliverable",
    "non deliverable",
    "mail could not be delivered",
    "there was an error sending your mail",
    "delayed mail",
    "postmaster notify",
    "loop alert",
    "non remis",
    "non recapitabile",
    "unzustellbar",
    "nicht zustellbar",
    "zustellung fehlgeschlagen",
    "onbestelbaar",
    "no se puede entregar",
    "no entregado",
    "não entregue",
    "nao entregue",
    "olevererbart",
    "kézbesíthetetlen",
    "nedoručitelné",
    "nie można dostarczyć",
    "недоставлено",
    "не доставлено",
    "系统退信",
    "退信",
    "邮件退回",
    "投递失败",
    "无法投递",
    "发送失败",
    "無法傳遞",
    "傳送失敗",
    "配信不能",
    "配信エラー",
    "配送エラー",
    "送信エラー",
    "不達",
];

/// CJK bounce words are specific enough to count anywhere in a (non-reply) subject.
const BOUNCE_WORDS_CJK: &[&str] = &[
    "退信",
    "邮件退回",
    "投递失败",
    "无法投递",
    "无法传递",
    "未能送达",
    "无法送达",
    "邮件发送失败",
    "無法傳遞",
    "傳送失敗",
    "退件",
    "配信不能",
    "配信エラー",
    "配送エラー",
    "不達",
    "配信ステータス通知",
    "传送状态通知",
    "傳送狀態通知",
    "배달되지 않음",
];

/// Bounce words a person may well start a subject with: circumstantial only.
const BOUNCE_WORDS_WEAK: &[&str] = &["delivery delayed", "message delayed", "delivery problem"];

/// Phrases that make up a whole machine subject even without a separator after them.
const BOUNCE_SUBJECTS_WHOLE: &[&str] = &[
    "undelivered mail returned to sender",
    "warning: could not send message",
    "returned mail: see transcript",
    "mail delivery failed: returning message",
    "there was an error sending your mail",
    "delivery status notification",
    "mail delivery subsystem",
    "mail system error - returned mail",
    "aws notification message",
    "notice: mail delivery status",
    "benachrichtigung zum übermittlungsstatus",
    "notification d'état de remise",
    "notificación de estado de entrega",
    "não é possível entregar",
    "message you sent blocked",
    "returned mail",
    "undeliverable message",
    "undeliverable mail",
    "系统退信",
    "退信通知",
];

/// Bounce texts written by MTAs, never by people (checked in the fresh text).
const BOUNCE_TEXT_STRONG: &[&str] = &[
    "this is the mail system at host",
    "this is the qmail-send program",
    "this message was created automatically by mail delivery software",
    "this is an automatically generated delivery status notification",
    "delivery to the following recipient failed permanently",
    "delivery to the following recipients failed permanently",
    "the following addresses had permanent fatal errors",
    "the following addresses had delivery errors",
    "----- transcript of session follows -----",
    "delivery has failed to these recipients or",
    "your message did not reach some or all of the intended recipients",
    "i'm afraid i wasn't able to deliver your message",
    "sorry, we were unable to deliver your message",
    "unable to deliver message to the following address",
    "an error occurred while trying to deliver the mail to the following recipients",
    "we had trouble delivering your message",
    "------- failure reasons",
    "final-recipient: rfc822",
    "reporting-mta: dns",
    "diagnostic-code: smtp",
    "message could not be delivered to the following recipients",
    "your message wasn't delivered to",
    "the following message to <",
    "\"notificationtype\":\"",
    "resolver.adr.",
    "this is a delivery status notification",
    "delivery has failed to these recipients",
];

/// Bounce-ish phrases that a person might also write (circumstantial).
const BOUNCE_TEXT_WEAK: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "was not delivered",
    "wasn't delivered",
    "undeliverable",
    "delivery failed",
    "permanent error",
    "permanent failure",
    "user unknown",
    "unknown user",
    "no such user",
    "mailbox unavailable",
    "mailbox not found",
    "mailbox full",
    "over quota",
    "recipient address rejected",
    "address not found",
    "host unknown",
    "remote host said",
    "original message headers",
    "original message follows",
    "returned message",
    "nicht zugestellt",
    "unzustellbar",
    "退信",
    "无法投递",
    "投递失败",
    "无法送达",
    "配信できませんでした",
    "宛先不明",
    "送信できませんでした",
];

const DAEMON_NAMES: &[&str] = &[
    "mail delivery",
    "mailer-daemon",
    "mailer daemon",
    "postmaster",
    "mail administrator",
    "system administrator",
    "mail system",
    "delivery subsystem",
    "邮件系统",
    "系统管理员",
    "メールシステム",
];

/// The subject without leading tags like `[SPAM]`, `***SPAM***`, `{Spam?}`, `【外部】`,
/// lower-cased, full-width colons as ASCII.
fn clean_subject(subject: &str) -> String {
    split_tags(subject).0
}

/// (subject without leading tags, the tags' inner texts), both lower-cased, `：` as `:`.
fn split_tags(subject: &str) -> (String, Vec<String>) {
    static TAGS: OnceLock<Regex> = OnceLock::new();
    let re = TAGS.get_or_init(|| {
        Regex::new(
            r"^[\s\u{3000}]*(?:\[([^\]]{0,40})\]|\*{1,5}([^*]{0,20})\*{1,5}|\{([^}]{0,20})\}|【([^】]{0,20})】)",
        )
        .expect("static regex")
    });
    let mut s = subject.trim();
    let mut tags = Vec::new();
    while let Some(c) = re.captures(s) {
        let Some(m) = c.get(0).filter(|m| m.end() > 0) else {
            break;
        };
        if let Some(inner) = c.iter().skip(1).flatten().next() {
            tags.push(inner.as_str().trim().to_lowercase().replace('：', ":"));
        }
        s = s.get(m.end()..).unwrap_or("").trim_start();
    }
    (s.to_lowercase().replace('：', ":"), tags)
}

fn has_phrase(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| text.contains(p))
}

fn starts_with_any(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| text.starts_with(p))
}

/// The subject starts with `phrase` followed by nothing, a colon, a dash or a parenthesis.
fn starts_with_delimited(text: &str, phrase: &str) -> bool {
    let Some(rest) = text.strip_prefix(phrase) else {
        return false;
    };
    let mut rest = rest.trim_start_matches([' ', '\t', '\u{3000}']);
    // "Undeliverable mail: …", "Nondeliverable message", "Delivery failure notice".
    for noun in ["mail", "message", "notification", "notice", "report"] {
        if let Some(r) = rest.strip_prefix(noun) {
            rest = r.trim_start_matches([' ', '\t']);
            break;
        }
    }
    // CJK phrases need no delimiter: the language writes none.
    !phrase.is_ascii()
        || rest.is_empty()
        || rest.starts_with([':', '-', '–', '—', '(', '[', '!', '_', '/', '|'])
        || phrase.ends_with(':')
}

/// One literal alternation per (lower-case) phrase list: a single pass over the text instead
/// of one substring search per phrase.
fn phrase_regex(phrases: &[&str]) -> Regex {
    let alt: Vec<String> = phrases.iter().map(|p| regex::escape(p)).collect();
    Regex::new(&alt.join("|")).expect("static regex")
}

fn bounce_text_strong() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| phrase_regex(BOUNCE_TEXT_STRONG))
}

fn bounce_text_weak() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| phrase_regex(BOUNCE_TEXT_WEAK))
}

fn smtp_status() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?:^|[^0-9.])(?:[45][0-9]{2}[ -]#?)?[45]\.[0-9]{1,3}\.[0-9]{1,3}(?:[^0-9.]|$)")
            .expect("static regex")
    })
}

fn subject_and_body_markers(s: &Signals<'_>) -> Option<String> {
    let (subject, tags) = split_tags(s.subject);
    if starts_with_any(&subject, READ_RECEIPT_PREFIXES) {
        return Some("read_receipt_subject".into());
    }
    // "[Auto-Reply] …", "【自动回复】…", "[Undeliverable] …"
    for tag in &tags {
        if AUTO_REPLY_WORDS
            .iter()
            .any(|w| tag.starts_with(w.trim_end_matches(':')))
        {
            return Some("auto_reply_subject".into());
        }
        if BOUNCE_WORDS.iter().any(|w| tag.starts_with(w)) {
            return Some("bounce_subject".into());
        }
    }
    if AUTO_REPLY_WORDS.iter().any(|w| {
        starts_with_delimited(&subject, w)
            || subject.strip_prefix(w).is_some_and(|rest| {
                // "Out of Office AutoReply: …"
                let rest = rest.trim_start();
                AUTO_REPLY_WORDS.iter().any(|w2| rest.starts_with(w2))
            })
    }) {
        return Some("auto_reply_subject".into());
    }
    if has_reply_or_forward_prefix(s.subject) {
        return None;
    }
    if starts_with_any(&subject, BOUNCE_SUBJECTS_WHOLE)
        || BOUNCE_WORDS
            .iter()
            .any(|w| starts_with_delimited(&subject, w))
        || has_phrase(&subject, BOUNCE_WORDS_CJK)
    {
        return Some("bounce_subject".into());
    }
    // ASCII lower-casing keeps byte offsets and lets the phrase lists run as plain literal
    // alternations (SIMD prefilter) instead of case-insensitive automata.
    let fresh = s.fresh_text.to_ascii_lowercase();
    if let Some(m) = bounce_text_strong().find(&fresh) {
        return Some(format!(
            "bounce_text:{}",
            m.as_str().trim_matches([' ', '-'])
        ));
    }
    let mut evidence = Vec::new();
    if has_phrase(&subject, BOUNCE_WORDS) || has_phrase(&subject, BOUNCE_WORDS_WEAK) {
        evidence.push("subject");
    }
    if s.from
        .and_then(|f| f.name.as_deref())
        .is_some_and(|n| has_phrase(&n.to_lowercase(), DAEMON_NAMES))
    {
        evidence.push("sender_name");
    }
    if s.part_types
        .iter()
        .any(|t| t == "message/rfc822" || t == "message/global")
    {
        evidence.push("attached_message");
    }
    // The text checks are the expensive ones: the SMTP status scan only runs when it can
    // still decide (exactly one piece of evidence so far).
    if bounce_text_weak().is_match(&fresh) {
        evidence.push("text");
    }
    if evidence.len() == 1 && smtp_status().is_match(&fresh) {
        evidence.push("smtp_status");
    }
    if evidence.len() >= 2 {
        return Some(format!("bounce_markers:{}", evidence.join("+")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{loan_numbers::LoanExtractor, subject::SubjectMatcher};

    fn rules() -> Rules {
        Rules {
            subject: SubjectMatcher::new(&[]),
            rma: SubjectMatcher::new(&[]),
            loans: LoanExtractor::new("D[0-9]{6,10}", 50).unwrap(),
            trusted_authserv_ids: vec![],
            own_addresses: vec!["trial-helpdesk@helpdesk.example.com".into()],
            own_message_id_domain: "helpdesk.example.com".into(),
            max_message_bytes: 1 << 20,
            max_mime_depth: 20,
            max_mime_parts: 500,
            rma_labels_dir: None,
            rma_max_label_bytes: 1 << 20,
            max_listed: 20,
        }
    }

    fn mb(name: Option<&str>, a: &str) -> Mailbox {
        Mailbox {
            name: name.map(String::from),
            address: a.into(),
        }
    }

    fn hdrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn run(headers: &[(&str, &str)], subject: &str, from: &str, text: &str) -> Option<String> {
        let h = hdrs(headers);
        let from = mb(None, from);
        let s = Signals {
            headers: &h,
            subject,
            from: Some(&from),
            root_type: "text/plain",
            fresh_text: text,
            full_text: text,
            ..Default::default()
        };
        detect(&rules(), &s)
    }

    #[test]
    fn header_table() {
        let person = "a@partner.example";
        for (headers, want) in [
            (
                vec![("Auto-Submitted", "auto-replied")],
                Some("auto_submitted"),
            ),
            (
                vec![("Auto-Submitted", "auto-generated (failure)")],
                Some("auto_submitted"),
            ),
            (vec![("Auto-Submitted", "No")], None),
            (vec![("Auto-Submitted", "no (human)")], None),
            (vec![("Precedence", "bulk")], Some("precedence:bulk")),
            (vec![("Precedence", "List")], Some("precedence:list")),
            (vec![("Precedence", "junk")], Some("precedence:junk")),
            (
                vec![("Precedence", "auto_reply")],
                Some("precedence:auto_reply"),
            ),
            (vec![("Precedence", "first-class")], None),
            (vec![("X-Autoreply", "yes")], Some("header:x-autoreply")),
            (vec![("X-Autorespond", "")], Some("header:x-autorespond")),
            (
                vec![("X-AutoResponder", "x")],
                Some("header:x-autoresponder"),
            ),
            (vec![("X-Auto-Reply", "x")], Some("header:x-auto-reply")),
            (vec![("X-Loop", "yes")], Some("header:x-loop")),
            (
                vec![("X-Apple-Action", "Vacation")],
                Some("header:x-apple-action"),
            ),
            (vec![("List-Id", "<a.b>")], Some("list:list-id")),
            (
                vec![("List-Unsubscribe", "<mailto:x>")],
                Some("list:list-unsubscribe"),
            ),
            (
                vec![("X-Failed-Recipients", "x@y")],
                Some("bounce:x-failed-recipients"),
            ),
            (
                vec![("X-MS-Exchange-Message-Is-Ndr", "")],
                Some("bounce:exchange-ndr"),
            ),
            (vec![("Return-Path", "<>")], Some("null_return_path")),
            (vec![("Return-Path", " < > ")], Some("null_return_path")),
            (
                vec![("Return-Path", "<MAILER-DAEMON@x.example>")],
                Some("return_path:mailer-daemon"),
            ),
            (vec![("Return-Path", "<a@partner.example>")], None),
            (
                vec![("Sender", "hd-support-bounces@lists.example")],
                Some("sender:list"),
            ),
            (
                vec![("Sender", "owner-hd@lists.example")],
                Some("sender:list"),
            ),
            (vec![("X-Trialdesk", "reply")], Some("own_mail_header")),
            (vec![("X-Auto-Response-Suppress", "All")], None),
            (vec![("Received", "from x"), ("X-Mailer", "Outlook")], None),
        ] {
            assert_eq!(
                run(&headers, "hello", person, "").as_deref(),
                want,
                "{headers:?}"
            );
        }
        assert_eq!(
            run(
                &[("X-Auto-Response-Suppress", "All")],
                "Out of Office: Re: x",
                person,
                ""
            )
            .as_deref(),
            Some("auto_reply:x-auto-response-suppress")
        );
        assert_eq!(
            run(
                &[("X-Auto-Response-Suppress", "All")],
                "Nordwind: Abwesenheit bis Montag",
                person,
                ""
            )
            .as_deref(),
            Some("auto_reply:x-auto-response-suppress")
        );
    }

    #[test]
    fn sender_table() {
        for (from, want) in [
            ("MAILER-DAEMON@mx1.example.cn", Some("sender:mailer-daemon")),
            ("postmaster@example.org", Some("sender:postmaster")),
            ("PostMaster@example.org", Some("sender:postmaster")),
            ("trial-helpdesk@helpdesk.example.com", Some("own_address")),
            ("TRIAL-HELPDESK@helpdesk.example.com", Some("own_address")),
            ("postmasters-team@example.org", None),
            ("daemon.fan@example.org", None),
        ] {
            assert_eq!(run(&[], "x", from, "").as_deref(), want, "{from}");
        }
        // No parsable mailbox, only the raw header.
        for (raw, want) in [
            (
                "MAILER-DAEMON (Mail Delivery System)",
                Some("sender:mailer-daemon"),
            ),
            (
                "\"Postmaster\" <Postmaster@notes.example.jp>",
                Some("sender:postmaster"),
            ),
            ("\"postmaster\" <john@example.org>", None),
        ] {
            assert_eq!(
                run(&[("From", raw)], "x", "a@partner.example", "").as_deref(),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn subject_table() {
        let p = "a@partner.example";
        for (subject, want) in [
            ("自动回复: 试用终端追踪请求", Some("auto_reply_subject")),
            ("自動回覆：試用", Some("auto_reply_subject")),
            (
                "Automatic reply: Trial Endpoint Tracking Request",
                Some("auto_reply_subject"),
            ),
            ("Auto-Reply: x", Some("auto_reply_subject")),
            ("AutoReply: x", Some("auto_reply_subject")),
            ("Out of Office: x", Some("auto_reply_subject")),
            ("Out of Office AutoReply: x", Some("auto_reply_subject")),
            ("自動応答: トライアル", Some("auto_reply_subject")),
            ("Abwesenheitsnotiz: Anfrage", Some("auto_reply_subject")),
            ("Automatische Antwort: Anfrage", Some("auto_reply_subject")),
            ("[SPAM] Automatic reply: x", Some("auto_reply_subject")),
            ("已读: 试用终端追踪请求", Some("read_receipt_subject")),
            (
                "Read: Trial Endpoint Tracking Request",
                Some("read_receipt_subject"),
            ),
            ("Gelesen: Anfrage", Some("read_receipt_subject")),
            ("開封済み: トライアル", Some("read_receipt_subject")),
            (
                "Undeliverable: Re: 试用终端追踪请求",
                Some("bounce_subject"),
            ),
            (
                "Undelivered Mail Returned to Sender",
                Some("bounce_subject"),
            ),
            (
                "Returned mail: see transcript for details",
                Some("bounce_subject"),
            ),
            ("failure notice", Some("bounce_subject")),
            (
                "Mail delivery failed: returning message to sender",
                Some("bounce_subject"),
            ),
            (
                "Delivery Status Notification (Failure)",
                Some("bounce_subject"),
            ),
            (
                "DELIVERY FAILURE: User x not listed",
                Some("bounce_subject"),
            ),
            ("Mail System Error - Returned Mail", Some("bounce_subject")),
            (
                "Warning: could not send message for past 4 hours",
                Some("bounce_subject"),
            ),
            ("系统退信", Some("bounce_subject")),
            ("退信：试用终端追踪请求", Some("bounce_subject")),
            ("Unzustellbar: Anfrage", Some("bounce_subject")),
            ("配信不能: トライアル", Some("bounce_subject")),
            ("Non remis : x", Some("bounce_subject")),
            (
                "[Auto-Reply] Trial Endpoint Tracking Request",
                Some("auto_reply_subject"),
            ),
            ("【自动回复】试用终端追踪请求", Some("auto_reply_subject")),
            ("[Undeliverable] x", Some("bounce_subject")),
            ("Undeliverable mail: x", Some("bounce_subject")),
            ("Undeliverable message", Some("bounce_subject")),
            ("Nondeliverable mail", Some("bounce_subject")),
            ("Delivery Failure Notice", Some("bounce_subject")),
            ("【系统退信】试用终端追踪请求", Some("bounce_subject")),
            ("无法传递: 试用终端追踪请求", Some("bounce_subject")),
            (
                "Benachrichtigung zum Übermittlungsstatus (Fehler)",
                Some("bounce_subject"),
            ),
            ("NOTICE: mail delivery status.", Some("bounce_subject")),
            ("AWS Notification Message", Some("bounce_subject")),
            ("[hd-support] 试用终端追踪请求", None),
            ("[EXTERNAL] Trial Endpoint Tracking Request", None),
            ("Delivery of D1234567 failed at the customer", None),
            // People.
            ("Fwd: Undeliverable: Trial Endpoint Tracking Request", None),
            ("Re: Out of office next week", None),
            ("Fwd: Shipping notice D1234567", None),
            ("Trial Endpoint Tracking Request - auto parts", None),
            ("Automobile trial D1234567", None),
            ("Autohaus Kessler: Trial Endpoint Tracking Request", None),
            ("Delivery failure of D1234567 at the customer site", None),
            ("Reading list", None),
            ("Ready: x", None),
            ("试用终端追踪请求", None),
            ("", None),
        ] {
            assert_eq!(run(&[], subject, p, "hello").as_deref(), want, "{subject}");
        }
    }

    #[test]
    fn body_markers() {
        let p = "a@partner.example";
        for (subject, text, want) in [
            (
                "Notice",
                "Hi. This is the qmail-send program at mx.example.\nI'm afraid",
                true,
            ),
            (
                "Mail",
                "This message was created automatically by mail delivery software.\n",
                true,
            ),
            (
                "x",
                "Reporting-MTA: dns; mx\nFinal-Recipient: rfc822; a@b",
                true,
            ),
            (
                "Delivery problem",
                "550 5.1.1 <a@b>: Recipient address rejected: User unknown",
                true,
            ),
            (
                "Delivery problem",
                "The truck broke down, D1234567 is late.",
                false,
            ),
            (
                "Problem",
                "Your mail could not be delivered.\n550 5.1.1 user unknown",
                true,
            ),
            ("Problem", "Your mail could not be delivered.", false),
            (
                "Where is D1234567?",
                "The courier said 5.1.1 is the version of the firmware",
                false,
            ),
            ("Fwd: bounce", "This is the mail system at host mx.", false),
        ] {
            assert_eq!(
                run(&[], subject, p, text).is_some(),
                want,
                "{subject} / {text}"
            );
        }
    }

    #[test]
    fn own_mail_returned() {
        let p = "a@partner.example";
        let text = "Original message headers:\nFrom: helpdesk\nX-Trialdesk: reply\n";
        assert_eq!(
            run(&[], "Notice", p, text).as_deref(),
            Some("own_mail_returned")
        );
        assert_eq!(run(&[], "FW: Notice", p, text), None);
        assert!(is_own_message_id(
            &rules(),
            "td.1764118800000.0123456789abcdef@helpdesk.example.com"
        ));
        assert!(is_own_message_id(
            &rules(),
            "<td.1764118800000.0123456789abcdef@HELPDESK.example.com>"
        ));
        // Other shapes, and subdomains (another host), are not ours.
        assert!(!is_own_message_id(&rules(), "reply-1@helpdesk.example.com"));
        assert!(!is_own_message_id(
            &rules(),
            "td.1764118800000.0123456789abcdef@mx.helpdesk.example.com"
        ));
        assert!(!is_own_message_id(
            &rules(),
            "reply-1@evilhelpdesk.example.com"
        ));
        assert!(!is_own_message_id(&rules(), "no-at-sign"));
    }

    #[test]
    fn structure_table() {
        let h = hdrs(&[]);
        let types = vec![
            "text/plain".to_string(),
            "message/delivery-status".to_string(),
        ];
        let s = Signals {
            headers: &h,
            subject: "x",
            root_type: "multipart/mixed",
            part_types: &types,
            ..Default::default()
        };
        assert_eq!(
            detect(&rules(), &s).as_deref(),
            Some("part:message/delivery-status")
        );
        let s = Signals {
            headers: &h,
            subject: "x",
            root_type: "multipart/report",
            report_type: Some("disposition-notification"),
            ..Default::default()
        };
        assert_eq!(
            detect(&rules(), &s).as_deref(),
            Some("report:disposition-notification")
        );
        let types = vec!["text/plain".to_string(), "message/rfc822".to_string()];
        let from = mb(Some("Mail Delivery System"), "mds@x.example");
        let s = Signals {
            headers: &h,
            subject: "Your message",
            from: Some(&from),
            root_type: "multipart/mixed",
            part_types: &types,
            ..Default::default()
        };
        assert!(detect(&rules(), &s).is_some());
        let s = Signals {
            headers: &h,
            subject: "FW: Your message",
            from: Some(&from),
            root_type: "multipart/mixed",
            part_types: &types,
            ..Default::default()
        };
        assert!(detect(&rules(), &s).is_none());
    }
}
