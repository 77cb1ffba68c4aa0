//! The pages' languages: message catalogs (`templates/web/i18n/<lang>.toml`, built into the
//! binary), which language and time zone a request is shown in, and the `t(…)` lookup the
//! templates use. No page text lives in Rust: handlers pass codes and numbers, templates
//! turn them into words through the catalog of the viewer's language.
//!
//! Language: the signed-in user's setting, else the browser's `Accept-Language`, else
//! `[web] default_language`. Time zone: the user's setting, else `[web] time_zone`.
//! The choice travels with the request as a task-local [`Viewer`] (set by [`locale`] for
//! every request and narrowed by the session guard once the user is known), so error pages
//! rendered deep inside a handler speak the same language as the page.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

use super::WebState;

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The `lang` attribute of the pages.
    pub fn html_tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// `zh`, `zh-CN`, `zh-Hans-CN`, `en-GB`, … (case-insensitive); None for other languages.
    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    fn catalog(self) -> &'static BTreeMap<String, String> {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

/// The first language of an `Accept-Language` header the pages speak, by quality (ties in
/// the order given). `q=0` means "not this one".
pub fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(f32, usize, Lang)> = None;
    for (pos, part) in header.split(',').enumerate() {
        let mut fields = part.split(';');
        let tag = fields.next().unwrap_or("").trim();
        let q = fields
            .filter_map(|f| f.trim().strip_prefix("q="))
            .filter_map(|v| v.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        let Some(lang) = Lang::parse(tag) else {
            continue;
        };
        if q <= 0.0 || !q.is_finite() {
            continue;
        }
        if best.is_none_or(|(bq, bpos, _)| q > bq || (q == bq && pos < bpos)) {
            best = Some((q, pos, lang));
        }
    }
    best.map(|(_, _, l)| l)
}

/// Language for a request: the user's setting, else `Accept-Language`, else the default.
pub fn negotiate(setting: Option<&str>, accept: Option<&str>, default: Lang) -> Lang {
    setting
        .and_then(Lang::parse)
        .or_else(|| accept.and_then(from_accept_language))
        .unwrap_or(default)
}

/// Who is looking: the language and the time zone (IANA name) a page is shown in.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub lang: Lang,
    pub tz: String,
}

tokio::task_local! {
    static VIEWER: Viewer;
}

/// The viewer of the request being handled (the defaults outside a request).
pub fn viewer() -> Viewer {
    VIEWER.try_with(Clone::clone).unwrap_or(Viewer {
        lang: Lang::Zh,
        tz: "UTC".into(),
    })
}

/// Runs `fut` as seen by `viewer`.
pub async fn scoped<F: std::future::Future>(viewer: Viewer, fut: F) -> F::Output {
    VIEWER.scope(viewer, fut).await
}

/// Middleware for every route: the viewer from `Accept-Language` and the configured defaults
/// (the session guard narrows it to the user's settings).
pub async fn locale(State(state): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let viewer = Viewer {
        lang: negotiate(None, accept, state.default_lang()),
        tz: state.config.time_zone.clone(),
    };
    scoped(viewer, next.run(req)).await
}

/// The viewer for a signed-in user: their settings over what the request and config say.
pub fn for_user(
    state: &WebState,
    accept: Option<&str>,
    language: Option<&str>,
    time_zone: Option<&str>,
) -> Viewer {
    Viewer {
        lang: negotiate(language, accept, state.default_lang()),
        tz: time_zone
            .filter(|tz| jiff::tz::TimeZone::get(tz).is_ok())
            .unwrap_or(&state.config.time_zone)
            .to_string(),
    }
}

fn load(source: &str) -> BTreeMap<String, String> {
    fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            toml::Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    match source.parse::<toml::Value>() {
        Ok(v) => flatten("", &v, &mut out),
        // A broken built-in catalog is a bug the tests catch; pages then show keys.
        Err(e) => tracing::error!(error = %e, "page catalog does not parse"),
    }
    out
}

pub(super) const ZH_SOURCE: &str = include_str!("../../../templates/web/i18n/zh.toml");
pub(super) const EN_SOURCE: &str = include_str!("../../../templates/web/i18n/en.toml");
static ZH: LazyLock<BTreeMap<String, String>> = LazyLock::new(|| load(ZH_SOURCE));
static EN: LazyLock<BTreeMap<String, String>> = LazyLock::new(|| load(EN_SOURCE));

/// The text of `key` in `lang` with `{name}` placeholders filled from `args`; the English
/// text when `lang` lacks it, the key itself when both do (the tests keep both complete).
pub fn text(lang: Lang, key: &str, args: &[(&str, String)]) -> String {
    let template = lang
        .catalog()
        .get(key)
        .or_else(|| Lang::En.catalog().get(key));
    let Some(template) = template else {
        return key.to_string();
    };
    fill(template, args)
}

/// Whether `key` exists in `lang`'s catalog.
pub fn has(lang: Lang, key: &str) -> bool {
    lang.catalog().contains_key(key)
}

/// `{name}` → value; unknown placeholders stay as written.
fn fill(template: &str, args: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match args.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every key of a catalog (for the completeness tests).
pub fn keys(lang: Lang) -> Vec<String> {
    lang.catalog().keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_spoken_language() {
        let cases: &[(&str, Option<Lang>)] = &[
            ("", None),
            ("fr", None),
            ("zh-CN,zh;q=0.9,en;q=0.8", Some(Lang::Zh)),
            ("en-US,en;q=0.9", Some(Lang::En)),
            ("de-DE, en;q=0.5, zh;q=0.7", Some(Lang::Zh)),
            ("en;q=0.5, zh;q=0.5", Some(Lang::En)),
            ("zh;q=0, en", Some(Lang::En)),
            ("zh-Hant-TW", Some(Lang::Zh)),
            ("EN_gb", Some(Lang::En)),
            ("*", None),
            ("en;q=abc", Some(Lang::En)),
            (";;;,,", None),
        ];
        for (header, want) in cases {
            assert_eq!(from_accept_language(header), *want, "{header:?}");
        }
    }

    #[test]
    fn the_setting_beats_the_header_which_beats_the_default() {
        let cases: &[(Option<&str>, Option<&str>, Lang, Lang)] = &[
            (None, None, Lang::Zh, Lang::Zh),
            (None, None, Lang::En, Lang::En),
            (None, Some("en"), Lang::Zh, Lang::En),
            (Some("zh"), Some("en"), Lang::En, Lang::Zh),
            (Some("en"), Some("zh"), Lang::Zh, Lang::En),
            (Some("xx"), Some("en"), Lang::Zh, Lang::En),
            (Some(""), None, Lang::Zh, Lang::Zh),
        ];
        for (setting, accept, default, want) in cases {
            assert_eq!(
                negotiate(*setting, *accept, *default),
                *want,
                "{setting:?} {accept:?} {default:?}"
            );
        }
    }

    #[test]
    fn placeholders_are_filled() {
        let args = [("n", "3".to_string()), ("who", "alice".to_string())];
        assert_eq!(fill("{who} has {n}", &args), "alice has 3");
        assert_eq!(fill("{missing} {n}", &args), "{missing} 3");
        assert_eq!(fill("open { brace", &args), "open { brace");
        assert_eq!(fill("", &args), "");
    }

    #[test]
    fn both_catalogs_parse_and_have_the_same_keys() {
        let zh = load(ZH_SOURCE);
        let en = load(EN_SOURCE);
        assert!(en.len() > 100, "en catalog has {} keys", en.len());
        let only_zh: Vec<_> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
        let only_en: Vec<_> = en.keys().filter(|k| !zh.contains_key(*k)).collect();
        assert!(only_zh.is_empty(), "only in zh: {only_zh:?}");
        assert!(only_en.is_empty(), "only in en: {only_en:?}");
        let placeholder = regex::Regex::new(r"\{([a-z_]+)\}").unwrap();
        for (k, v) in &zh {
            assert!(!v.trim().is_empty(), "zh {k} is empty");
            // The placeholders a text uses are the same in both languages.
            let ph = |s: &str| {
                let mut v: Vec<String> = placeholder
                    .captures_iter(s)
                    .map(|c| c[1].to_string())
                    .collect();
                v.sort();
                v
            };
            assert_eq!(ph(v), ph(&en[k]), "placeholders of {k}");
        }
    }

    #[test]
    fn every_reason_has_words_in_both_languages() {
        for r in crate::classify::ReviewReason::ALL {
            for lang in Lang::ALL {
                let key = format!("reason.{}", r.code());
                assert!(has(lang, &key), "{} lacks {key}", lang.code());
                let short = format!("reason_short.{}", r.code());
                assert!(has(lang, &short), "{} lacks {short}", lang.code());
            }
        }
    }
}
