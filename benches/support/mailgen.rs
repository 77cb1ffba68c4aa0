//! The benchmark's own mail, made from a fixed seed: the same bytes on every machine and run.
//!
//! A *world* of 200 partners (domains `pNNN.example.com`, four languages) owning 50 loans each,
//! and generators for:
//! - a **backlog**: 85 % tracking requests (1–5 of the sender's own loan numbers; subject in
//!   one of the four aliases, sometimes behind `Re:`/`AW:`/`回复:`; UTF-8, GBK, GB2312, Big5,
//!   ISO-2022-JP or ISO-8859-1; text, HTML or both; base64, quoted-printable, 8bit or 7bit;
//!   some quoting an earlier request with *other* numbers, some with a PDF attachment), 6 %
//!   other questions, 5 % auto-replies and bulk mail, 4 % bounces (RFC 3464 reports);
//! - **sized requests** (≈ 5 KB, ≈ 50 KB) for the in-process pipeline benchmark.
//!
//! Senders are spread so no address gets more than five requests per backlog (the default
//! rate limit allows ten per ten minutes): [`SENDERS`], more for backlogs over 10,000 mails.
//! A `variant` changes every Message-ID and sender,
//! so backlogs fed to one running trialdesk are new mail each time.

#![allow(dead_code)]

use base64::Engine as _;
use jiff::civil::date;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trialdesk::domain::{Language, LoanNumber, Partner, Shipment, ShipmentStatus};

pub const PARTNERS: usize = 200;
pub const LOANS_PER_PARTNER: usize = 50;
/// Distinct request senders per backlog of up to 10,000 mails (requests are dealt
/// round-robin); larger backlogs get one sender per five requests.
pub const SENDERS: usize = 1_700;
pub const HELPDESK: &str = "helpdesk@example.test";

/// What the generator meant a mail to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intent {
    Request,
    Other,
    Automated,
    Bounce,
}

impl Intent {
    pub fn code(self) -> &'static str {
        match self {
            Intent::Request => "request",
            Intent::Other => "other",
            Intent::Automated => "automated",
            Intent::Bounce => "bounce",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenMail {
    pub intent: Intent,
    /// Envelope sender / From address.
    pub from: String,
    pub bytes: Vec<u8>,
}

/// Partners and their shipments.
pub struct World {
    pub partners: Vec<Partner>,
    pub shipments: Vec<Shipment>,
}

pub fn partner_domain(p: usize) -> String {
    format!("p{p:03}.example.com")
}

pub fn loan(p: usize, k: usize) -> String {
    format!("D7{p:03}{k:04}")
}

pub fn world() -> World {
    let partners = (0..PARTNERS)
        .map(|p| Partner {
            partner_id: format!("P{p:03}"),
            name: match p % 4 {
                0 => format!("华东智联科技 {p}"),
                1 => format!("Pacific Rim Systems {p}"),
                2 => format!("東京テクノ販売 {p}"),
                _ => format!("Nordwind Systemhaus {p}"),
            },
            domains: vec![partner_domain(p)],
            admin_emails: vec![format!("admin@{}", partner_domain(p))],
            language: language_of(p),
            notify_shipment_updates: false,
        })
        .collect();
    let carriers = ["EMS", "DHL", "FedEx", "SF Express", "Yamato"];
    let mut shipments = Vec::with_capacity(PARTNERS * LOANS_PER_PARTNER);
    for p in 0..PARTNERS {
        for k in 0..LOANS_PER_PARTNER {
            let status = ShipmentStatus::ALL[(p + k) % ShipmentStatus::ALL.len()];
            let shipped = date(2026, 10, 1 + (k % 28) as i8);
            shipments.push(Shipment {
                loan_number: LoanNumber::from_normalized(loan(p, k)),
                partner_id: format!("P{p:03}"),
                customer: format!("Customer {p}-{k}"),
                status,
                carrier: Some(carriers[k % carriers.len()].to_string()),
                tracking_number: Some(format!("TN{p:03}{k:06}CN")),
                shipped_on: Some(shipped),
                eta: Some(shipped.saturating_add(jiff::Span::new().days(5))),
                delivered_on: (status == ShipmentStatus::Delivered)
                    .then(|| shipped.saturating_add(jiff::Span::new().days(4))),
                items: vec!["Webex Desk Pro".into(), "Webex Room Bar".into()],
                rma_number: None,
            });
        }
    }
    World {
        partners,
        shipments,
    }
}

fn language_of(p: usize) -> Language {
    [Language::Zh, Language::En, Language::Ja, Language::De][p % 4]
}

/// `n` mixed mails, deterministic for (`seed`, `variant`).
pub fn backlog(n: usize, seed: u64, variant: u32) -> Vec<GenMail> {
    let mut g = Gen::new(seed ^ (u64::from(variant) << 32), variant);
    // Exact shares, dealt in a shuffled order: 85 / 6 / 5 / 4 %.
    let mut intents = Vec::with_capacity(n);
    let counts = [
        (Intent::Request, n * 85 / 100),
        (Intent::Other, n * 6 / 100),
        (Intent::Automated, n * 5 / 100),
    ];
    for (intent, c) in counts {
        intents.extend(std::iter::repeat_n(intent, c));
    }
    intents.resize(n, Intent::Bounce);
    for i in (1..intents.len()).rev() {
        let j = g.rng.random_range(0..=i);
        intents.swap(i, j);
    }
    let mut requests = 0;
    let senders = SENDERS.max(n * 85 / 100 / 5);
    intents
        .into_iter()
        .enumerate()
        .map(|(i, intent)| match intent {
            Intent::Request => {
                let s = requests % senders;
                requests += 1;
                g.request(i, s, None)
            }
            Intent::Other => g.other(i),
            Intent::Automated => g.automated(i),
            Intent::Bounce => g.bounce(i),
        })
        .collect()
}

/// Tracking requests of about `target` bytes each (±10 %), varied like the backlog's.
pub fn sized_requests(count: usize, target: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut g = Gen::new(seed, 0);
    (0..count)
        .map(|i| {
            // Padding scaled until the encoded mail is within 5 % of the target (encodings
            // and HTML make the size a few times the padding); same random draws each try.
            let state = g.rng.clone();
            let mut pad = target / 2;
            let mut mail = g.request(i, i, Some(pad)).bytes;
            for _ in 0..6 {
                if mail.len().abs_diff(target) * 20 <= target {
                    break;
                }
                pad = (pad * target / mail.len()).max(1);
                g.rng = state.clone();
                mail = g.request(i, i, Some(pad)).bytes;
            }
            mail
        })
        .collect()
}

/// A tracking request from one sender to `to`, for the latency benchmark.
pub fn single_request(seed: u64, variant: u32, i: usize, to: &str) -> GenMail {
    let mut g = Gen::new(seed.wrapping_add(i as u64), variant);
    g.to = to.to_string();
    g.plain_request = true;
    g.request(i, i, None)
}

/// A reply like trialdesk's (multipart/alternative, ≈ 3 KB), for the bare client.
pub fn prebuilt_reply(to: &str, i: usize) -> Vec<u8> {
    let mut text = String::from("Hello,\r\n\r\nthe loans you asked about:\r\n\r\n");
    let mut html =
        String::from("<html><body><p>Hello,</p><p>the loans you asked about:</p><table>");
    for k in 0..3 {
        text.push_str(&format!(
            "D7000{k:04}  Customer {k}  in transit  EMS TN000{k:06}CN  shipped 2026-10-0{k} eta 2026-10-1{k}\r\n  https://www.ems.example.cn/track?no=TN000{k:06}CN\r\n"
        ));
        html.push_str(&format!(
            "<tr><td>D7000{k:04}</td><td>Customer {k}</td><td>in transit</td><td><a href=\"https://www.ems.example.cn/track?no=TN000{k:06}CN\">EMS TN000{k:06}CN</a></td><td>2026-10-0{k}</td><td>2026-10-1{k}</td></tr>"
        ));
    }
    text.push_str("\r\nKind regards\r\nPartner Trial Helpdesk\r\n");
    html.push_str("</table><p>Kind regards<br>Partner Trial Helpdesk</p></body></html>");
    let b = "=_bench_reply_boundary";
    format!(
        "From: Trial Helpdesk <{HELPDESK}>\r\nTo: <{to}>\r\nSubject: Re: Trial Endpoint Tracking Request\r\n\
         Message-ID: <bench.reply.{i}@example.test>\r\nDate: Mon, 30 Nov 2026 09:00:00 +0000\r\n\
         In-Reply-To: <req.{i}@example.com>\r\nReferences: <req.{i}@example.com>\r\n\
         Auto-Submitted: auto-replied\r\nX-Auto-Response-Suppress: All\r\nPrecedence: auto_reply\r\n\
         X-Trialdesk: auto-reply\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"{b}\"\r\n\r\n\
         --{b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n\
         --{b}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n\
         --{b}--\r\n",
        qp(text.as_bytes()),
        qp(html.as_bytes()),
    )
    .into_bytes()
}

#[derive(Clone, Copy)]
enum Charset {
    Utf8,
    Gbk,
    Gb2312,
    Big5,
    Iso2022Jp,
    Latin1,
}

impl Charset {
    fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf-8",
            Charset::Gbk => "gbk",
            Charset::Gb2312 => "gb2312",
            Charset::Big5 => "big5",
            Charset::Iso2022Jp => "iso-2022-jp",
            Charset::Latin1 => "iso-8859-1",
        }
    }

    fn encode(self, s: &str) -> Vec<u8> {
        let enc = match self {
            Charset::Utf8 => return s.as_bytes().to_vec(),
            Charset::Gbk | Charset::Gb2312 => encoding_rs::GBK,
            Charset::Big5 => encoding_rs::BIG5,
            Charset::Iso2022Jp => encoding_rs::ISO_2022_JP,
            Charset::Latin1 => encoding_rs::WINDOWS_1252,
        };
        let (bytes, _, unmappable) = enc.encode(s);
        debug_assert!(!unmappable, "{s:?} in {}", self.label());
        bytes.into_owned()
    }
}

#[derive(Clone, Copy)]
enum Cte {
    Base64,
    QuotedPrintable,
    EightBit,
    SevenBit,
}

struct Gen {
    rng: StdRng,
    variant: u32,
    to: String,
    /// Latency requests: plain UTF-8 text, small, no attachment.
    plain_request: bool,
}

const ALIASES: [(&str, Language); 4] = [
    ("试用终端追踪请求", Language::Zh),
    ("Trial Endpoint Tracking Request", Language::En),
    (
        "トライアル用エンドポイントのトラッキング リクエスト",
        Language::Ja,
    ),
    (
        "Anfrage zur Nachverfolgung der Endpunkte der Testversion",
        Language::De,
    ),
];

const FILLER_ZH: &str = "我们的客户正在评估会议室设备，希望尽快了解物流进度，以便安排安装和培训。请协助确认以下借用单的发货状态，谢谢配合。";
const FILLER_TW: &str = "我們的客戶正在評估會議室設備，希望盡快了解物流進度，以便安排安裝和培訓。請協助確認以下借用單的發貨狀態，謝謝配合。";
const FILLER_JA: &str = "お客様が会議室用デバイスを評価中のため、配送状況を早めに確認したいと考えております。設置と研修の日程調整のため、下記の貸出番号の出荷状況をご確認ください。";
const FILLER_DE: &str = "Unser Kunde prüft die Konferenzraumgeräte und möchte den Lieferstatus möglichst früh kennen, damit Installation und Schulung geplant werden können. Bitte prüfen Sie die folgenden Leihnummern für uns, vielen Dank für Ihre Mühe.";
const FILLER_EN: &str = "Our customer is evaluating the meeting room devices and would like to know where the shipment is, so that installation and training can be scheduled. Please check the following loan numbers for us, thank you for your help.";

impl Gen {
    fn new(seed: u64, variant: u32) -> Gen {
        Gen {
            rng: StdRng::seed_from_u64(seed),
            variant,
            to: HELPDESK.to_string(),
            plain_request: false,
        }
    }

    fn header_common(&self, i: usize, domain: &str, extra: &str) -> String {
        format!(
            "To: Trial Helpdesk <{to}>\r\nMessage-ID: <bench.v{v}.{i}.{r:08x}@{domain}>\r\n\
             Date: {date}\r\nMIME-Version: 1.0\r\n{extra}",
            to = self.to,
            v = self.variant,
            r = (i as u32).wrapping_mul(2654435761) ^ self.variant,
            date = mail_date(i),
        )
    }

    /// A tracking request from sender `s` (partner `s % 200`). `pad`: about that many bytes of
    /// padding text (and, above 20,000, an attachment on every other mail).
    fn request(&mut self, i: usize, s: usize, pad: Option<usize>) -> GenMail {
        let p = s % PARTNERS;
        let domain = partner_domain(p);
        let from = format!("s{}.v{}@{domain}", s / PARTNERS, self.variant);
        let lang = language_of(p);
        let rng = &mut self.rng;
        // The alias usually matches the partner's language, sometimes English.
        let (alias, alias_lang) = if rng.random_bool(0.8) {
            ALIASES[[Language::Zh, Language::En, Language::Ja, Language::De]
                .iter()
                .position(|l| *l == lang)
                .unwrap()]
        } else {
            ALIASES[1]
        };
        let charset = if self.plain_request {
            Charset::Utf8
        } else {
            match (lang, rng.random_range(0..10)) {
                (Language::Zh, 0..=3) => Charset::Utf8,
                (Language::Zh, 4..=6) => Charset::Gbk,
                (Language::Zh, 7..=8) => Charset::Gb2312,
                (Language::Zh, _) => Charset::Big5,
                (Language::Ja, 0..=5) => Charset::Iso2022Jp,
                (Language::De, 0..=4) | (Language::En, 0..=2) => Charset::Latin1,
                _ => Charset::Utf8,
            }
        };
        // Big5 cannot spell the simplified alias: Taiwanese partners write the English one.
        let alias = match (charset, alias_lang) {
            (Charset::Big5, Language::Zh) | (Charset::Latin1, Language::Zh | Language::Ja) => {
                ALIASES[1].0
            }
            (Charset::Iso2022Jp, Language::Zh) => ALIASES[1].0,
            _ => alias,
        };
        let prefix = match rng.random_range(0..10) {
            0 => "Re: ",
            1 if lang == Language::De => "AW: ",
            1 if lang == Language::Zh && !matches!(charset, Charset::Big5 | Charset::Latin1) => {
                "回复："
            }
            _ => "",
        };
        let subject = format!("{prefix}{alias}");
        let count = rng.random_range(1..=5);
        let mut numbers: Vec<String> = Vec::new();
        while numbers.len() < count {
            let n = loan(p, rng.random_range(0..LOANS_PER_PARTNER));
            if !numbers.contains(&n) {
                numbers.push(n);
            }
        }
        let name = sender_name(lang, charset, s);
        let (greeting, intro, filler, closing) = match (lang, charset) {
            (_, Charset::Latin1) if lang != Language::De => (
                "Hello helpdesk,",
                "please send us the status of these loans:",
                FILLER_EN,
                "Best regards",
            ),
            (Language::Zh, Charset::Big5) => {
                ("您好，", "請幫忙查詢以下借用單號：", FILLER_TW, "謝謝")
            }
            (Language::Zh, _) => ("您好，", "请帮忙查询以下借用单号：", FILLER_ZH, "谢谢"),
            (Language::Ja, _) => (
                "ヘルプデスク御中",
                "下記の貸出番号の状況を教えてください：",
                FILLER_JA,
                "よろしくお願いいたします。",
            ),
            (Language::De, _) => (
                "Guten Tag,",
                "bitte nennen Sie uns den Status dieser Leihen:",
                FILLER_DE,
                "Mit freundlichen Grüßen",
            ),
            (Language::En, _) => (
                "Hello helpdesk,",
                "please send us the status of these loans:",
                FILLER_EN,
                "Best regards",
            ),
        };
        let sep = [", ", "\n", " / ", "、", " "][rng.random_range(0..5)];
        let sep = if sep == "、" && !matches!(lang, Language::Zh | Language::Ja) {
            ", "
        } else {
            sep
        };
        let mut body = format!("{greeting}\n\n{intro}\n{}\n\n", numbers.join(sep));
        // Padding: more paragraphs, then (sometimes) a quoted earlier request with other
        // numbers, which the classifier must not read as asked for.
        let mut paragraphs = rng.random_range(0..3);
        if let Some(t) = pad {
            paragraphs = (t / 3 / filler.len()).max(1);
        }
        for _ in 0..paragraphs {
            body.push_str(filler);
            body.push_str("\n\n");
        }
        body.push_str(&format!("{closing}\n{}\n", display_name(lang, charset, s)));
        let quoted = rng.random_bool(0.3) || pad.is_some_and(|t| t > 3_000);
        if quoted && !self.plain_request {
            let old = loan((p + 1) % PARTNERS, rng.random_range(0..LOANS_PER_PARTNER));
            body.push_str(&format!(
                "\n> On Mon, 2 Nov 2026 the helpdesk wrote:\n> earlier request about {old}\n"
            ));
            let mut lines = rng.random_range(5..40);
            if let Some(t) = pad {
                lines = (t * 2 / 3 / (filler.len() + 2)).max(1);
            }
            for _ in 0..lines {
                body.push_str("> ");
                body.push_str(filler);
                body.push('\n');
            }
        }
        let html = !self.plain_request && rng.random_bool(0.55);
        let html_only = html && rng.random_bool(0.3);
        let attach = !self.plain_request
            && match pad {
                None => rng.random_bool(0.05),
                Some(t) => t > 20_000 && i.is_multiple_of(2),
            };
        let cte = match charset {
            Charset::Iso2022Jp => Cte::SevenBit,
            Charset::Latin1 => Cte::QuotedPrintable,
            _ => [Cte::Base64, Cte::QuotedPrintable, Cte::EightBit][rng.random_range(0..3)],
        };
        let text_part = part("text/plain", charset, cte, &body);
        let html_body = to_html(&body, &numbers);
        let html_part = part("text/html", charset, cte, &html_body);
        let mut content = if html_only {
            html_part
        } else if html {
            multipart(
                "alternative",
                &format!("alt-{}-{i}", self.variant),
                &[text_part, html_part],
            )
        } else {
            text_part
        };
        if attach {
            let size = match pad {
                Some(t) => t / 2,
                None => self.rng.random_range(20_000..150_000),
            };
            let mut pdf = b"%PDF-1.4\n".to_vec();
            pdf.extend((0..size).map(|_| self.rng.random::<u8>()));
            let att = format!(
                "Content-Type: application/pdf; name=\"shipping-notice.pdf\"\r\n\
                 Content-Disposition: attachment; filename=\"shipping-notice.pdf\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}",
                wrap76(&base64::engine::general_purpose::STANDARD.encode(&pdf))
            );
            content = multipart(
                "mixed",
                &format!("mix-{}-{i}", self.variant),
                &[content, att],
            );
        }
        let mut head = format!(
            "From: {name} <{from}>\r\nSubject: {}\r\n",
            encode_words(&subject, charset)
        );
        head.push_str(&self.header_common(i, &domain, ""));
        if prefix.is_empty() {
            head.push_str("X-Mailer: Bench Mailer 1.0\r\n");
        } else {
            head.push_str(&format!(
                "In-Reply-To: <prev.{i}@{domain}>\r\nReferences: <prev.{i}@{domain}>\r\n"
            ));
        }
        GenMail {
            intent: Intent::Request,
            from,
            bytes: format!("{head}{content}").into_bytes(),
        }
    }

    /// A question that is not a tracking request (review).
    fn other(&mut self, i: usize) -> GenMail {
        let p = self.rng.random_range(0..PARTNERS);
        let domain = partner_domain(p);
        let from = format!("buyer{}.v{}@{domain}", i % 97, self.variant);
        let subjects = [
            "Question about our invoice",
            "Webex Room Bar: firmware question",
            "会议室设备的报价",
            "Termin für die Schulung nächste Woche",
        ];
        let subject = subjects[self.rng.random_range(0..subjects.len())];
        let body = format!(
            "Hello,\n\ncould you call me back about the quote for loan {}? We also wonder about the training date.\n\n{}\n\nThanks\n",
            loan(p, self.rng.random_range(0..LOANS_PER_PARTNER)),
            FILLER_EN
        );
        let mut head = format!(
            "From: Buyer <{from}>\r\nSubject: {}\r\n",
            encode_words(subject, Charset::Utf8)
        );
        head.push_str(&self.header_common(i, &domain, ""));
        head.push_str(&part(
            "text/plain",
            Charset::Utf8,
            Cte::QuotedPrintable,
            &body,
        ));
        GenMail {
            intent: Intent::Other,
            from,
            bytes: head.into_bytes(),
        }
    }

    /// An out-of-office answer or bulk mail (ignored).
    fn automated(&mut self, i: usize) -> GenMail {
        let p = self.rng.random_range(0..PARTNERS);
        let domain = partner_domain(p);
        let from = format!("staff{}.v{}@{domain}", i % 89, self.variant);
        let (subject, extra) = if self.rng.random_bool(0.6) {
            (
                format!("Automatic reply: {}", ALIASES[1].0),
                "Auto-Submitted: auto-replied\r\nX-Auto-Response-Suppress: All\r\n".to_string(),
            )
        } else {
            (
                "Partner newsletter: new trial bundles".to_string(),
                format!(
                    "Precedence: bulk\r\nList-Id: <news.{domain}>\r\nList-Unsubscribe: <mailto:leave@{domain}>\r\n"
                ),
            )
        };
        let body = format!(
            "I am out of the office until Monday and have no access to mail.\n\nYour message about {} will be read then.\n\n{}\n",
            loan(p, 1),
            FILLER_EN
        );
        let mut head = format!(
            "From: Staff <{from}>\r\nSubject: {}\r\n{extra}",
            encode_words(&subject, Charset::Utf8)
        );
        head.push_str(&self.header_common(i, &domain, ""));
        head.push_str(&part("text/plain", Charset::Utf8, Cte::EightBit, &body));
        GenMail {
            intent: Intent::Automated,
            from,
            bytes: head.into_bytes(),
        }
    }

    /// A delivery status notification for one of our replies (ignored).
    fn bounce(&mut self, i: usize) -> GenMail {
        let p = self.rng.random_range(0..PARTNERS);
        let domain = partner_domain(p);
        let from = format!("MAILER-DAEMON@mx.{domain}");
        let rcpt = format!("left.v{}@{domain}", self.variant);
        let b = format!("dsn-{}-{i}", self.variant);
        let mut head = format!(
            "From: Mail Delivery System <{from}>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Auto-Submitted: auto-replied\r\n"
        );
        head.push_str(&self.header_common(
            i,
            &domain,
            &format!("Content-Type: multipart/report; report-type=delivery-status; boundary=\"{b}\"\r\n\r\n"),
        ));
        head.push_str(&format!(
            "--{b}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
             This is the mail system at host mx.{domain}.\r\n\r\nI'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients.\r\n\r\n<{rcpt}>: host mx.{domain} said: 550 5.1.1 User unknown\r\n\r\n\
             --{b}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.{domain}\r\n\r\n\
             Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n\
             --{b}\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: Trial Helpdesk <{HELPDESK}>\r\n\
             To: <{rcpt}>\r\nSubject: Re: Trial Endpoint Tracking Request\r\n\
             Message-ID: <td.1700000000000.{i:016x}@example.test>\r\nX-Trialdesk: auto-reply\r\n\r\n--{b}--\r\n"
        ));
        GenMail {
            intent: Intent::Bounce,
            from,
            bytes: head.into_bytes(),
        }
    }
}

fn mail_date(i: usize) -> String {
    let t = jiff::Timestamp::from_second(1_795_000_000 + i as i64 * 7).unwrap();
    jiff::fmt::rfc2822::to_string(&t.to_zoned(jiff::tz::TimeZone::UTC)).unwrap()
}

fn sender_name(lang: Language, charset: Charset, s: usize) -> String {
    encode_words(&display_name(lang, charset, s), charset)
}

fn display_name(lang: Language, charset: Charset, s: usize) -> String {
    let n = s % 7;
    match (lang, charset) {
        (_, Charset::Latin1) if lang != Language::De => format!("Alex Miller {n}"),
        (Language::Zh, Charset::Big5) => ["陳志明", "林美玲", "黃建國"][n % 3].to_string(),
        (Language::Zh, _) => ["王伟", "李娜", "张磊"][n % 3].to_string(),
        (Language::Ja, _) => ["佐藤 花子", "鈴木 一郎", "高橋 健"][n % 3].to_string(),
        (Language::De, _) => ["Jürgen Groß", "Anja Müller", "Jörg Weiß"][n % 3].to_string(),
        (Language::En, _) => format!("Alex Miller {n}"),
    }
}

/// RFC 2047 encoded words (B encoding), each self-contained, folded; ASCII stays as is.
fn encode_words(s: &str, charset: Charset) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let per = match charset {
        Charset::Utf8 => 12,
        _ => 14,
    };
    chars
        .chunks(per)
        .map(|c| {
            let chunk: String = c.iter().collect();
            format!(
                "=?{}?B?{}?=",
                charset.label(),
                base64::engine::general_purpose::STANDARD.encode(charset.encode(&chunk))
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn part(mime: &str, charset: Charset, cte: Cte, body: &str) -> String {
    let crlf = body.replace("\r\n", "\n").replace('\n', "\r\n");
    let bytes = charset.encode(&crlf);
    let (name, encoded) = match cte {
        Cte::Base64 => (
            "base64",
            wrap76(&base64::engine::general_purpose::STANDARD.encode(&bytes)),
        ),
        Cte::QuotedPrintable => ("quoted-printable", qp(&bytes)),
        Cte::EightBit => ("8bit", String::from_utf8_lossy(&bytes).into_owned()),
        Cte::SevenBit => ("7bit", String::from_utf8_lossy(&bytes).into_owned()),
    };
    // 8bit only for UTF-8 (keeps the mail valid UTF-8 on the wire); others fall back to base64.
    let (name, encoded) = match (cte, charset) {
        (Cte::EightBit, Charset::Utf8) | (Cte::SevenBit, _) | (Cte::Base64, _) => (name, encoded),
        (Cte::QuotedPrintable, _) => (name, encoded),
        (Cte::EightBit, _) => (
            "base64",
            wrap76(&base64::engine::general_purpose::STANDARD.encode(&bytes)),
        ),
    };
    format!(
        "Content-Type: {mime}; charset=\"{}\"\r\nContent-Transfer-Encoding: {name}\r\n\r\n{encoded}\r\n",
        charset.label()
    )
}

fn multipart(sub: &str, boundary: &str, parts: &[String]) -> String {
    let mut out = format!("Content-Type: multipart/{sub}; boundary=\"{boundary}\"\r\n\r\n");
    out.push_str("This is a multi-part message in MIME format.\r\n");
    for p in parts {
        out.push_str(&format!("--{boundary}\r\n{p}"));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

fn to_html(body: &str, numbers: &[String]) -> String {
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>p{margin:0 0 1em} \
         blockquote{border-left:2px solid #ccc;padding-left:8px;color:#555}</style></head><body>",
    );
    let mut in_quote = false;
    for line in body.lines() {
        let quoted = line.starts_with('>');
        if quoted && !in_quote {
            html.push_str("<blockquote type=\"cite\">");
            in_quote = true;
        }
        let text = line.trim_start_matches('>').trim();
        let esc = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        if !quoted && numbers.iter().any(|n| text.contains(n.as_str())) {
            html.push_str("<table border=\"1\"><tr><th>Loan</th></tr>");
            for n in numbers {
                html.push_str(&format!("<tr><td><b>{n}</b></td></tr>"));
            }
            html.push_str("</table>");
        } else if !esc.is_empty() {
            html.push_str(&format!("<p style=\"font-family:Arial\">{esc}</p>"));
        }
    }
    if in_quote {
        html.push_str("</blockquote>");
    }
    html.push_str("</body></html>");
    html
}

fn wrap76(s: &str) -> String {
    s.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Quoted-printable with soft line breaks, CRLF line ends kept as hard breaks.
fn qp(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    for (li, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if li > 0 {
            out.push_str("\r\n");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut col = 0;
        for (k, &b) in line.iter().enumerate() {
            let last = k + 1 == line.len();
            let enc = if (b == b' ' || b == b'\t') && last
                || b == b'='
                || !(32..=126).contains(&b) && b != b'\t'
            {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            };
            if col + enc.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += enc.len();
            out.push_str(&enc);
        }
    }
    out
}
