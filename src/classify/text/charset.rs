//! Charsets and RFC 2047: body bytes in a named charset (with the fallbacks this mailbox
//! needs), and raw header values with encoded-words decoded together.

use mail_parser::decoders::charsets::map::charset_decoder;

/// Decodes bytes in a named charset; unknown or missing labels fall back to UTF-8, and
/// invalid UTF-8 then to GB18030 (the usual culprit in this mailbox), lossily.
pub fn decode_charset(bytes: &[u8], charset: Option<&str>) -> String {
    if let Some(decoder) = charset
        .map(|c| c.trim().trim_matches('"'))
        .filter(|c| !c.is_empty())
        .and_then(|c| charset_decoder(c.as_bytes()))
    {
        return decoder(bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => match charset_decoder(b"gb18030") {
            Some(d) => d(bytes),
            None => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

/// Decodes a raw (possibly folded) unstructured header value.
///
/// Differs from mail-parser in two ways that matter for subjects: adjacent encoded-words of
/// the same charset are decoded *together* (a client that split one multi-byte character
/// across two words still yields the character), and raw 8-bit bytes that are not UTF-8 are
/// decoded with `fallback_charset` (typically the body's charset), else GB18030.
pub fn decode_header(raw: &[u8], fallback_charset: Option<&str>) -> String {
    // Unfold: CR/LF vanish, the white space after them stays.
    let unfolded: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n' && b != 0)
        .collect();
    let mut out = String::new();
    // Pending run of encoded-words sharing one charset: (charset, decoded bytes per word).
    let mut run: Option<(String, Vec<Vec<u8>>)> = None;
    // White space seen since the last encoded-word (dropped if another word follows).
    let mut gap: Vec<u8> = Vec::new();
    let mut plain: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < unfolded.len() {
        if unfolded.get(i) == Some(&b'=') && unfolded.get(i + 1) == Some(&b'?') {
            if let Some((charset, bytes, len)) =
                parse_encoded_word(unfolded.get(i..).unwrap_or(&[]))
            {
                flush_plain(&mut out, &mut plain, fallback_charset);
                match run.as_mut() {
                    Some((cs, pieces)) if cs.eq_ignore_ascii_case(&charset) => {
                        pieces.push(bytes);
                    }
                    _ => {
                        // White space between adjacent encoded-words is not text (RFC 2047 §6.2).
                        flush_run(&mut out, &mut run);
                        run = Some((charset, vec![bytes]));
                    }
                }
                gap.clear();
                i += len;
                continue;
            }
        }
        let b = unfolded.get(i).copied().unwrap_or(b' ');
        if run.is_some() && (b == b' ' || b == b'\t') {
            gap.push(b);
        } else {
            if run.is_some() {
                flush_run(&mut out, &mut run);
                plain.append(&mut gap);
            } else if !gap.is_empty() {
                plain.append(&mut gap);
            }
            plain.push(b);
        }
        i += 1;
    }
    flush_run(&mut out, &mut run);
    plain.append(&mut gap);
    flush_plain(&mut out, &mut plain, fallback_charset);
    let collapsed = out
        .split(|c: char| c.is_whitespace() && c != '\u{3000}')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    collapsed
        .chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect()
}

fn flush_run(out: &mut String, run: &mut Option<(String, Vec<Vec<u8>>)>) {
    if let Some((charset, pieces)) = run.take() {
        // Joined decoding repairs characters split across words; stateful charsets
        // (ISO-2022-JP) reject back-to-back escape sequences when joined, so keep whichever
        // reading has fewer replacement characters.
        let joined = decode_charset(&pieces.concat(), Some(&charset));
        if pieces.len() > 1 {
            let separate: String = pieces
                .iter()
                .map(|p| decode_charset(p, Some(&charset)))
                .collect();
            let bad = |s: &str| s.chars().filter(|c| *c == '\u{fffd}').count();
            if bad(&separate) < bad(&joined) {
                out.push_str(&separate);
                return;
            }
        }
        out.push_str(&joined);
    }
}

fn flush_plain(out: &mut String, plain: &mut Vec<u8>, fallback: Option<&str>) {
    if plain.is_empty() {
        return;
    }
    match std::str::from_utf8(plain) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&decode_charset(plain, fallback.or(Some("gb18030")))),
    }
    plain.clear();
}

/// Parses `=?charset[*lang]?B|Q?data?=` at the start of `s`: (charset, bytes, length).
fn parse_encoded_word(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let body = s.get(2..)?;
    let q1 = body.iter().take(80).position(|&b| b == b'?')?;
    let charset_raw = body.get(..q1)?;
    let charset = std::str::from_utf8(charset_raw).ok()?;
    let charset = charset.split('*').next().unwrap_or("").trim();
    if charset.is_empty() || charset.contains(char::is_whitespace) {
        return None;
    }
    let enc = *body.get(q1 + 1)?;
    if body.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let data_start = q1 + 3;
    let data = body.get(data_start..)?;
    let end = data.windows(2).position(|w| w == b"?=")?;
    let payload = data.get(..end)?;
    if payload.iter().any(|b| *b == b' ' || *b == b'\t') && !enc.eq_ignore_ascii_case(&b'q') {
        return None;
    }
    let bytes = match enc {
        b'B' | b'b' => base64_lenient(payload),
        b'Q' | b'q' => q_decode(payload),
        _ => return None,
    };
    Some((charset.to_string(), bytes, 2 + data_start + end + 2))
}

/// Base64 that tolerates missing padding and stray characters (broken encoders abound).
pub fn base64_lenient(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

fn q_decode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match data.get(i).copied() {
            Some(b'_') => out.push(b' '),
            Some(b'=') => {
                let h = data
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                if let Some(v) = h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            Some(b) => out.push(b),
            None => break,
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_decoding() {
        for (raw, want) in [
            (&b"=?utf-8?b?6K+V55So57uI5w==?=\r\n =?UTF-8?B?q6/ov73ouKror7fmsYI=?="[..], "试用终端追踪请求"),
            (b"=?utf-8?Q?Re=3A_=E8=AF=95?= =?utf-8?Q?=E7=94=A8?=", "Re: 试用"),
            (b"Re: =?utf-8?B?5Zue?= x", "Re: 回 x"),
            (b"a =?iso-8859-1?q?J=FCrgen?= =?utf-8?b?w7w=?= b", "a Jürgenü b"),
            (b"=?broken", "=?broken"),
            (b"=?utf-8?x?abc?=", "=?utf-8?x?abc?="),
            ("转发: 试用终端追踪请求".as_bytes(), "转发: 试用终端追踪请求"),
            (b"  lots   of\r\n\tspace ", "lots of space"),
            (
                b"=?ISO-2022-JP?B?GyRCJUglaSUkJSIla01RGyhC?=\r\n =?ISO-2022-JP?B?GyRCJSglcyVJGyhC?=",
                "トライアル用エンド",
            ),
        ] {
            assert_eq!(decode_header(raw, None), want, "{raw:?}");
        }
        // Raw GBK bytes: fallback charset.
        let gbk = [0xca, 0xd4, 0xd3, 0xc3];
        assert_eq!(decode_header(&gbk, Some("gbk")), "试用");
        assert_eq!(decode_header(&gbk, None), "试用");
    }

    #[test]
    fn base64_is_lenient() {
        assert_eq!(base64_lenient(b"QUJD"), b"ABC");
        assert_eq!(base64_lenient(b"QUJ"), b"AB");
        assert_eq!(base64_lenient(b"QU\r\nJD=="), b"ABC");
        assert_eq!(base64_lenient(b"!!"), b"");
    }

    #[test]
    fn charset_fallbacks() {
        assert_eq!(decode_charset(&[0xca, 0xd4], Some("gb2312")), "试");
        assert_eq!(decode_charset("ü".as_bytes(), Some("x-unknown")), "ü");
        assert_eq!(decode_charset(&[0xca, 0xd4], None), "试");
    }
}
