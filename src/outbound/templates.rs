//! Reply and reminder templates (minijinja), read from `templates.dir` at run time.
//!
//! The helpdesk edits the files; a changed file is picked up within a few seconds without a
//! restart. A template missing from the folder falls back to the copy built into the binary,
//! so a minimal config still answers. `*.html` templates are auto-escaped: mail content and
//! partner data can never inject markup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::domain::Language;

/// Templates shipped in the binary, by file name.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "tracking_reply.zh.txt",
        include_str!("../../templates/tracking_reply.zh.txt"),
    ),
    (
        "tracking_reply.zh.html",
        include_str!("../../templates/tracking_reply.zh.html"),
    ),
    (
        "tracking_reply.en.txt",
        include_str!("../../templates/tracking_reply.en.txt"),
    ),
    (
        "tracking_reply.en.html",
        include_str!("../../templates/tracking_reply.en.html"),
    ),
    (
        "tracking_reply.ja.txt",
        include_str!("../../templates/tracking_reply.ja.txt"),
    ),
    (
        "tracking_reply.ja.html",
        include_str!("../../templates/tracking_reply.ja.html"),
    ),
    (
        "tracking_reply.de.txt",
        include_str!("../../templates/tracking_reply.de.txt"),
    ),
    (
        "tracking_reply.de.html",
        include_str!("../../templates/tracking_reply.de.html"),
    ),
    ("layout.html", include_str!("../../templates/layout.html")),
    // Staff answers in free text: the text, the signature, the quoted original.
    (
        "staff_reply.zh.txt",
        include_str!("../../templates/staff_reply.zh.txt"),
    ),
    (
        "staff_reply.zh.html",
        include_str!("../../templates/staff_reply.zh.html"),
    ),
    (
        "staff_reply.en.txt",
        include_str!("../../templates/staff_reply.en.txt"),
    ),
    (
        "staff_reply.en.html",
        include_str!("../../templates/staff_reply.en.html"),
    ),
    (
        "staff_reply.ja.txt",
        include_str!("../../templates/staff_reply.ja.txt"),
    ),
    (
        "staff_reply.ja.html",
        include_str!("../../templates/staff_reply.ja.html"),
    ),
    (
        "staff_reply.de.txt",
        include_str!("../../templates/staff_reply.de.txt"),
    ),
    (
        "staff_reply.de.html",
        include_str!("../../templates/staff_reply.de.html"),
    ),
    // Proactive shipment notices and RMA label answers.
    (
        "shipment_notice.zh.txt",
        include_str!("../../templates/shipment_notice.zh.txt"),
    ),
    (
        "shipment_notice.zh.html",
        include_str!("../../templates/shipment_notice.zh.html"),
    ),
    (
        "shipment_notice.en.txt",
        include_str!("../../templates/shipment_notice.en.txt"),
    ),
    (
        "shipment_notice.en.html",
        include_str!("../../templates/shipment_notice.en.html"),
    ),
    (
        "shipment_notice.ja.txt",
        include_str!("../../templates/shipment_notice.ja.txt"),
    ),
    (
        "shipment_notice.ja.html",
        include_str!("../../templates/shipment_notice.ja.html"),
    ),
    (
        "shipment_notice.de.txt",
        include_str!("../../templates/shipment_notice.de.txt"),
    ),
    (
        "shipment_notice.de.html",
        include_str!("../../templates/shipment_notice.de.html"),
    ),
    (
        "rma_label.zh.txt",
        include_str!("../../templates/rma_label.zh.txt"),
    ),
    (
        "rma_label.zh.html",
        include_str!("../../templates/rma_label.zh.html"),
    ),
    (
        "rma_label.en.txt",
        include_str!("../../templates/rma_label.en.txt"),
    ),
    (
        "rma_label.en.html",
        include_str!("../../templates/rma_label.en.html"),
    ),
    (
        "rma_label.ja.txt",
        include_str!("../../templates/rma_label.ja.txt"),
    ),
    (
        "rma_label.ja.html",
        include_str!("../../templates/rma_label.ja.html"),
    ),
    (
        "rma_label.de.txt",
        include_str!("../../templates/rma_label.de.txt"),
    ),
    (
        "rma_label.de.html",
        include_str!("../../templates/rma_label.de.html"),
    ),
    // Trial reminders: one template per audience, the kind is a variable.
    (
        "reminder_customer_admins.zh.txt",
        include_str!("../../templates/reminder_customer_admins.zh.txt"),
    ),
    (
        "reminder_customer_admins.zh.html",
        include_str!("../../templates/reminder_customer_admins.zh.html"),
    ),
    (
        "reminder_customer_admins.en.txt",
        include_str!("../../templates/reminder_customer_admins.en.txt"),
    ),
    (
        "reminder_customer_admins.en.html",
        include_str!("../../templates/reminder_customer_admins.en.html"),
    ),
    (
        "reminder_customer_admins.ja.txt",
        include_str!("../../templates/reminder_customer_admins.ja.txt"),
    ),
    (
        "reminder_customer_admins.ja.html",
        include_str!("../../templates/reminder_customer_admins.ja.html"),
    ),
    (
        "reminder_customer_admins.de.txt",
        include_str!("../../templates/reminder_customer_admins.de.txt"),
    ),
    (
        "reminder_customer_admins.de.html",
        include_str!("../../templates/reminder_customer_admins.de.html"),
    ),
    (
        "reminder_partner_admins.zh.txt",
        include_str!("../../templates/reminder_partner_admins.zh.txt"),
    ),
    (
        "reminder_partner_admins.zh.html",
        include_str!("../../templates/reminder_partner_admins.zh.html"),
    ),
    (
        "reminder_partner_admins.en.txt",
        include_str!("../../templates/reminder_partner_admins.en.txt"),
    ),
    (
        "reminder_partner_admins.en.html",
        include_str!("../../templates/reminder_partner_admins.en.html"),
    ),
    (
        "reminder_partner_admins.ja.txt",
        include_str!("../../templates/reminder_partner_admins.ja.txt"),
    ),
    (
        "reminder_partner_admins.ja.html",
        include_str!("../../templates/reminder_partner_admins.ja.html"),
    ),
    (
        "reminder_partner_admins.de.txt",
        include_str!("../../templates/reminder_partner_admins.de.txt"),
    ),
    (
        "reminder_partner_admins.de.html",
        include_str!("../../templates/reminder_partner_admins.de.html"),
    ),
];

/// How often the folder is checked for edits.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Errors loading or rendering templates; the template and line are named.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: {message}")]
    Render { name: String, message: String },
    #[error("no template {base} in any of the languages {tried}")]
    Missing { base: String, tried: String },
}

/// A rendered text + HTML pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The language actually used (after fallback).
    pub language: Language,
    pub text: String,
    pub html: String,
}

/// The template set. Cheap to share behind an `Arc`.
pub struct Templates {
    dir: PathBuf,
    env: RwLock<Arc<Environment<'static>>>,
    /// (last check, fingerprint of the folder at the last load)
    check: Mutex<(Instant, u64)>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("dir", &self.dir).finish()
    }
}

impl Templates {
    /// Loads and compiles every template (folder and built-in), so a syntax error is reported
    /// at start with its file and line rather than on the first mail.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let env = build_env(dir);
        validate(&env, dir)?;
        Ok(Templates {
            dir: dir.to_path_buf(),
            env: RwLock::new(Arc::new(env)),
            check: Mutex::new((Instant::now(), fingerprint(dir))),
        })
    }

    /// Renders `<base>.<lang>.txt` and `<base>.<lang>.html` in the first language of
    /// `languages` that has both, then English.
    pub fn render<C: Serialize>(
        &self,
        base: &str,
        languages: &[Language],
        context: &C,
    ) -> Result<Rendered, TemplateError> {
        let env = self.current();
        let mut tried: Vec<Language> = Vec::new();
        for &lang in languages.iter().chain(std::iter::once(&Language::En)) {
            if tried.contains(&lang) {
                continue;
            }
            tried.push(lang);
            let txt = format!("{base}.{}.txt", lang.code());
            let html = format!("{base}.{}.html", lang.code());
            let (Ok(t), Ok(h)) = (env.get_template(&txt), env.get_template(&html)) else {
                continue;
            };
            let ctx = minijinja::Value::from_serialize(context);
            let text = t.render(&ctx).map_err(|e| render_error(&txt, &e))?;
            let html_out = h.render(&ctx).map_err(|e| render_error(&html, &e))?;
            return Ok(Rendered {
                language: lang,
                text,
                html: html_out,
            });
        }
        Err(TemplateError::Missing {
            base: base.to_string(),
            tried: tried
                .iter()
                .map(|l| l.code())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The environment, rebuilt when files in the folder changed since the last check.
    fn current(&self) -> Arc<Environment<'static>> {
        let mut reload = false;
        if let Ok(mut check) = self.check.lock() {
            if check.0.elapsed() >= RELOAD_CHECK {
                let fp = fingerprint(&self.dir);
                check.0 = Instant::now();
                if fp != check.1 {
                    check.1 = fp;
                    reload = true;
                }
            }
        }
        if reload {
            let env = build_env(&self.dir);
            match validate(&env, &self.dir) {
                Ok(()) => {
                    tracing::info!(dir = %self.dir.display(), "templates changed: reloaded");
                    if let Ok(mut slot) = self.env.write() {
                        *slot = Arc::new(env);
                    }
                }
                // Keep serving the last good set; the helpdesk sees the error in the log.
                Err(e) => {
                    tracing::error!(error = %e, "edited template does not compile; keeping the previous version")
                }
            }
        }
        match self.env.read() {
            Ok(env) => env.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn build_env(dir: &Path) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    let dir = dir.to_path_buf();
    let built_in: BTreeMap<&'static str, &'static str> = BUILT_IN.iter().copied().collect();
    env.set_loader(move |name| {
        // Names come from our code, but refuse anything that could leave the folder.
        if name.contains("..") || name.contains('/') || name.contains('\\') {
            return Ok(None);
        }
        match std::fs::read_to_string(dir.join(name)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(built_in.get(name).map(|s| s.to_string()))
            }
            Err(e) => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("cannot read template {name}: {e}"),
            )),
        }
    });
    env
}

/// Compiles every built-in name and every template file in the folder.
fn validate(env: &Environment<'static>, dir: &Path) -> Result<(), TemplateError> {
    let mut names: Vec<String> = BUILT_IN.iter().map(|(n, _)| n.to_string()).collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if (name.ends_with(".txt") || name.ends_with(".html")) && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    for name in names {
        env.get_template(&name)
            .map_err(|e| render_error(&name, &e))?;
    }
    Ok(())
}

fn render_error(name: &str, e: &minijinja::Error) -> TemplateError {
    let mut message = e.to_string();
    if let Some(line) = e.line() {
        message = format!("line {line}: {message}");
    }
    TemplateError::Render {
        name: name.to_string(),
        message,
    }
}

/// Changes whenever a file in the folder is added, removed, resized or touched.
fn fingerprint(dir: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut items: Vec<(String, u64, Option<SystemTime>)> = entries
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((
                    e.file_name().to_string_lossy().to_string(),
                    meta.len(),
                    meta.modified().ok(),
                ))
            })
            .collect();
        items.sort();
        items.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Ctx {
        loans: Vec<()>,
        not_found: Vec<String>,
        signature: String,
    }

    #[test]
    fn built_ins_compile_and_missing_language_falls_back() {
        let dir = std::env::temp_dir().join(format!("td-tpl-{}", std::process::id()));
        let t = Templates::load(&dir).unwrap();
        let r = t
            .render(
                "tracking_reply",
                &[Language::Ja],
                &Ctx {
                    loans: vec![],
                    not_found: vec![],
                    signature: "Desk".into(),
                },
            )
            .unwrap();
        assert_eq!(r.language, Language::Ja);
        let err = t.render("no_such", &[Language::Zh], &()).unwrap_err();
        assert!(err.to_string().contains("zh, en"), "{err}");
    }

    #[test]
    fn folder_overrides_and_html_is_escaped() {
        let dir = std::env::temp_dir().join(format!("td-tpl2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("note.en.txt"), "Hi {{ name }}").unwrap();
        std::fs::write(dir.join("note.en.html"), "<p>Hi {{ name }}</p>").unwrap();
        let t = Templates::load(&dir).unwrap();
        #[derive(Serialize)]
        struct N {
            name: String,
        }
        let r = t
            .render(
                "note",
                &[Language::De],
                &N {
                    name: "<script>x</script>".into(),
                },
            )
            .unwrap();
        assert_eq!(r.language, Language::En);
        assert_eq!(r.text, "Hi <script>x</script>");
        assert_eq!(r.html, "<p>Hi &lt;script&gt;x&lt;&#x2f;script&gt;</p>");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("td-tpl3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad.en.txt"), "line one\n{% if %}\n").unwrap();
        let err = Templates::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("bad.en.txt") && err.contains("line 2"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
