//! Quoted history detection: which part of a reply did the sender just write?
//!
//! Numbers in the fresh part win over numbers in the quoted history, because a reply usually
//! quotes older requests (and our own answers). Detection is line based: `>` lines are
//! dropped, and the text stops at the first reply header — a separator line
//! (`-----Original Message-----`, `-----原始邮件-----`, forward markers), an attribution line
//! (`On … wrote:`, `在 … 写道：`, `Am … schrieb …:`), or a mail-header block (`From:` followed
//! within a few lines by `Sent:`/`Date:`/`发送时间:` …). A lone `From:` in prose does not cut.
//!
//! An attribution line directly followed by `>` lines only introduces that quote: text after
//! the quote is still fresh (bottom-posting, inline answers).

/// The fresh part of a reply: text before quoted history, without `>` lines.
pub fn fresh_part(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&line) = lines.get(i) {
        if is_quoted_line(line) {
            i += 1;
            continue;
        }
        if might_start_quote(line) {
            let t = norm(line);
            if is_separator(&t) || is_header_block(&lines, i, &t) {
                break;
            }
            if let Some(span) = attribution_span(&lines, i, &t) {
                let next = lines.iter().skip(i + span).find(|l| !l.trim().is_empty());
                if next.is_some_and(|l| is_quoted_line(l)) {
                    i += span;
                    continue;
                }
                break;
            }
        }
        out.push_str(line);
        out.push('\n');
        i += 1;
    }
    out
}

/// Cheap pre-filter (no allocation): every reply header starts with a dash-like character,
/// ends with a colon, has a `Label:` near its start, or starts with an attribution word.
fn might_start_quote(line: &str) -> bool {
    let t = line.trim_matches(|c: char| c.is_whitespace() || super::text::is_invisible(c));
    let Some(first) = t.chars().next() else {
        return false;
    };
    matches!(
        first,
        '-' | '—' | '–' | '─' | '=' | '_' | '*' | '~' | '在' | '於' | '于'
    ) || t.ends_with([':', '：'])
        || t.chars().take(26).any(|c| c == ':' || c == '：')
        || INTRO_WORDS.iter().any(|w| {
            t.get(..w.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(w))
        })
}

fn is_quoted_line(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('>') || t.starts_with('＞')
}

/// Trimmed line with full-width colons as ASCII, for comparisons.
fn norm(line: &str) -> String {
    line.trim_matches(|c: char| c.is_whitespace() || super::text::is_invisible(c))
        .replace('：', ":")
}

const SEPARATOR_WORDS: &[&str] = &[
    "original message",
    "original-nachricht",
    "ursprüngliche nachricht",
    "ursprungliche nachricht",
    "forwarded message",
    "weitergeleitete nachricht",
    "message d'origine",
    "message transféré",
    "mensaje original",
    "mensaje reenviado",
    "messaggio originale",
    "messaggio inoltrato",
    "oorspronkelijk bericht",
    "doorgestuurd bericht",
    "mensagem original",
    "mensagem encaminhada",
    "oprindelig meddelelse",
    "ursprungligt meddelande",
    "alkuperäinen viesti",
    "wiadomość oryginalna",
    "исходное сообщение",
    "пересланное сообщение",
    "reply message",
    "reply separator",
    "forwarded by",
    "原始邮件",
    "原始郵件",
    "原邮件",
    "邮件原件",
    "转发邮件",
    "转发的邮件",
    "轉寄郵件",
    "转发消息",
    "元のメッセージ",
    "転送メッセージ",
    "転送されたメッセージ",
    "원본 메시지",
    "전달된 메시지",
];

const FORWARD_INTROS: &[&str] = &[
    "begin forwarded message:",
    "anfang der weitergeleiteten nachricht:",
    "転送されたメッセージ:",
    "début du message réexpédié :",
    "début du message réexpédié:",
    "inicio del mensaje reenviado:",
    "下面是被转发的邮件:",
    "以下是转发的邮件:",
    "以下为转发的邮件:",
    "转发的邮件:",
];

/// `-----Original Message-----`, `------------------ 原始邮件 ------------------`,
/// `---------- Forwarded message ---------`, `Begin forwarded message:` …
fn is_separator(t: &str) -> bool {
    let lower = t.to_lowercase();
    if FORWARD_INTROS.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    let dash =
        |c: char| matches!(c, '-' | '—' | '–' | '─' | '=' | '_' | '*' | '~') || c.is_whitespace();
    let leading = lower
        .chars()
        .take_while(|&c| dash(c) && !c.is_whitespace())
        .count();
    if leading < 2 {
        return false;
    }
    let inner = lower.trim_matches(dash);
    // "------------------ Original ------------------" (QQ / Tencent mail, English UI).
    inner == "original"
        || (!inner.is_empty()
            && inner.len() < 80
            && SEPARATOR_WORDS.iter().any(|w| inner.contains(w)))
}

const WROTE_SUFFIXES: &[&str] = &[
    "wrote:",
    "writes:",
    "schrieb:",
    "a écrit :",
    "a écrit:",
    "escribió:",
    "ha scritto:",
    "schreef:",
    "skrev:",
    "napisał:",
    "escreveu:",
    "написал:",
    "写道:",
    "寫道:",
    "書きました:",
    "のメール:",
];

const INTRO_WORDS: &[&str] = &[
    "on ", "am ", "le ", "el ", "il ", "op ", "em ", "den ", "på ", "dnia ", "在", "於", "于",
];

/// How many lines the attribution starting at line `i` spans, if it is one: `On … wrote:`
/// (possibly wrapped over up to three lines), `在 … 写道：`, `Am … schrieb …:`, Gmail-ja
/// `2026年11月20日(金) 10:00 Name <a@b>:`.
fn attribution_span(lines: &[&str], i: usize, t: &str) -> Option<usize> {
    let lower = t.to_lowercase();
    let starts_intro = INTRO_WORDS.iter().any(|w| lower.starts_with(w));
    let qualifies =
        |s: &str| starts_intro || s.contains('@') || s.chars().any(|c| c.is_ascii_digit());
    if WROTE_SUFFIXES.iter().any(|s| lower.ends_with(s)) && lower.chars().count() < 400 {
        return qualifies(&lower).then_some(1);
    }
    if lower.starts_with("am ") && lower.contains(" schrieb") && lower.ends_with(':') {
        return Some(1);
    }
    if is_dated_attribution(&lower) {
        return Some(1);
    }
    if starts_intro {
        // Gmail and others wrap a long attribution line.
        let mut joined = lower.clone();
        for (k, next) in lines.iter().skip(i + 1).take(2).enumerate() {
            let n = norm(next).to_lowercase();
            if n.is_empty() {
                break;
            }
            joined.push(' ');
            joined.push_str(&n);
            if joined.chars().count() > 400 {
                break;
            }
            if WROTE_SUFFIXES.iter().any(|s| joined.ends_with(s))
                || (joined.starts_with("am ")
                    && joined.contains(" schrieb")
                    && joined.ends_with(':'))
            {
                return Some(k + 2);
            }
        }
    }
    None
}

/// `2026年11月20日(金) 10:00 Trial Helpdesk <x@y>:` or `2026/11/20 10:00、Name <x@y>:`.
fn is_dated_attribution(lower: &str) -> bool {
    if !lower.ends_with(':') || !lower.contains('@') || lower.chars().count() > 300 {
        return false;
    }
    let digits: String = lower.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.len() != 4 {
        return false;
    }
    let rest = lower.get(4..).unwrap_or("");
    rest.starts_with('年') || rest.starts_with('/') || rest.starts_with('-')
}

const FROM_LABELS: &[&str] = &[
    "from",
    "发件人",
    "發件人",
    "寄件者",
    "寄件人",
    "发信人",
    "差出人",
    "送信者",
    "von",
    "de",
    "van",
    "da",
    "od",
    "от",
    "fra",
    "från",
    "lähettäjä",
    "보낸 사람",
    "보낸사람",
    "afzender",
    "absender",
];

const DATE_LABELS: &[&str] = &[
    "sent",
    "date",
    "发送时间",
    "發送時間",
    "时间",
    "日期",
    "发送日期",
    "寄件日期",
    "傳送時間",
    "传送时间",
    "送信日時",
    "日付",
    "日時",
    "gesendet",
    "datum",
    "envoyé",
    "enviado",
    "enviada",
    "inviato",
    "verzonden",
    "data",
    "wysłano",
    "отправлено",
    "дата",
    "sendt",
    "skickat",
    "lähetetty",
    "보낸 날짜",
    "날짜",
];

/// The label of a `Label: value` line (lower case, `*`/bold markers stripped), if any.
fn label(t: &str) -> Option<String> {
    let t = t.trim_start_matches(['*', '_']);
    let colon = t.find(':')?;
    let l = t.get(..colon)?.trim().trim_end_matches(['*', '_']).trim();
    if l.is_empty() || l.chars().count() > 24 {
        return None;
    }
    Some(l.to_lowercase())
}

/// An Outlook-style header block: a From label, then within a few lines a Sent/Date label.
fn is_header_block(lines: &[&str], i: usize, t: &str) -> bool {
    let Some(l) = label(t) else { return false };
    if !FROM_LABELS.contains(&l.as_str()) {
        return false;
    }
    lines
        .iter()
        .skip(i + 1)
        .take(6)
        .any(|next| label(&norm(next)).is_some_and(|l| DATE_LABELS.contains(&l.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_parts() {
        for (text, want) in [
            (
                "new D1\n\n-----Original Message-----\nFrom: x\nold D2",
                "new D1\n\n",
            ),
            ("new\n-----原始邮件-----\n发件人: x\nold", "new\n"),
            (
                "new\n------------------ 原始邮件 ------------------\nold",
                "new\n",
            ),
            (
                "new\n---------- Forwarded message ---------\nFrom: a",
                "new\n",
            ),
            ("new\n-------- Forwarded Message --------\nold", "new\n"),
            ("new\n-------- 转发的邮件 --------\nold", "new\n"),
            ("new\nBegin forwarded message:\n\nold", "new\n"),
            (
                "new\nOn 20. Nov 2026, at 09:14, Helpdesk <h@x> wrote:\n\n> old",
                "new\n\n",
            ),
            (
                "new\nOn Fri, Nov 20, 2026 at 9:14 AM Trial Helpdesk <\nh@x> wrote:\n> old",
                "new\n",
            ),
            (
                "new\n在 2026年11月20日 10:00，张三 <z@x> 写道：\n> old",
                "new\n",
            ),
            (
                "new\nAm 20.11.2026 um 10:00 schrieb Helpdesk <h@x>:\n> old",
                "new\n",
            ),
            ("new\nHelpdesk <h@x> さんは書きました:\nold", "new\n"),
            (
                "new\n2026年11月20日(金) 10:00 Trial Helpdesk <h@x>:\nold",
                "new\n",
            ),
            (
                "new\n________________________________\nFrom: A <a@x>\nSent: Monday\nTo: b\nold",
                "new\n________________________________\n",
            ),
            ("new\n发件人： A\n发送时间： 2026年\nold", "new\n"),
            ("new\n*From:* A\n*Sent:* Monday\nold", "new\n"),
            ("new\n寄件者: A\n傳送時間: 2026\nold", "new\n"),
            ("new\n差出人: A\n送信日時: 2026\nold", "new\n"),
            ("new\nVon: A\nGesendet: Montag\nold", "new\n"),
            ("a\n> q1\nb\n>> q2\n＞ q3\nc", "a\nb\nc\n"),
            // Bottom-posting: the attribution only introduces the `>` block.
            (
                "On Fri, Nov 20, 2026 Helpdesk <h@x> wrote:\n> old D1\n\nnew D2\n",
                "\nnew D2\n",
            ),
            (
                "On Fri, Nov 20, 2026 Helpdesk <\nh@x> wrote:\n> old\nnew\n",
                "new\n",
            ),
            (
                "new\n------------------ Original ------------------\nFrom: x\nold",
                "new\n",
            ),
        ] {
            assert_eq!(fresh_part(text), want, "{text:?}");
        }
    }

    #[test]
    fn prose_is_not_cut() {
        for text in [
            "From: our warehouse team we heard D1234567 is late.\nThanks",
            "Here is what I wrote:\nD1234567",
            "The customer wrote: where is it\nD1234567",
            "--- Details ---\nD1234567",
            "From: me\nTo: you\nSubject: x\nD1",
            "Date: tomorrow\nFrom: me",
        ] {
            assert_eq!(fresh_part(text).trim_end(), text.trim_end(), "{text:?}");
        }
    }
}
