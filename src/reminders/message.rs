//! What a reminder says: the template context, and rendering it into subject, text and HTML.
//!
//! Templates are `templates/reminder_<audience>.<lang>.{txt,html}` (one per audience, the kind
//! is a variable, so the four stages of a trial read side by side). The first line of the text
//! template is `Subject: …`: the helpdesk edits subjects where it edits the wording.

use jiff::civil::Date;
use serde::Serialize;

use super::schedule::{self, Audience, Kind, GRACE_DAYS, NUMBERS_KEPT_DAYS};
use crate::domain::{Language, Partner, Trial};
use crate::outbound::Templates;

/// Context of the `reminder_*` templates. Dates are `YYYY-MM-DD`.
#[derive(Debug, Clone, Serialize)]
pub struct ReminderContext {
    /// `expires_in_7_days`, `expires_today`, `grace_period_ended`, `calling_numbers_released`.
    pub kind: &'static str,
    /// `customer_admins` or `partner_admins`.
    pub audience: &'static str,
    pub trial_id: String,
    pub customer: String,
    pub partner_name: String,
    /// Service codes (`message`, `meeting`, `calling`, `room_devices`); templates name them.
    pub services: Vec<&'static str>,
    pub has_calling: bool,
    pub extended: bool,
    pub expires_on: String,
    /// Days from the day the mail goes out (local) to the expiry date; negative after it.
    pub days_left: i32,
    pub grace_days: i32,
    /// Last day of the grace period (E + 30).
    pub grace_ends_on: String,
    /// Phone numbers of a calling trial are kept until E + 45.
    pub numbers_kept_until: String,
    pub purchase_url: String,
    pub signature: String,
}

impl ReminderContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Kind,
        audience: Audience,
        trial: &Trial,
        partner: &Partner,
        today: Date,
        purchase_url: &str,
        signature: &str,
    ) -> ReminderContext {
        let e = trial.expires_on;
        ReminderContext {
            kind: kind.code(),
            audience: audience.code(),
            trial_id: trial.trial_id.clone(),
            customer: trial.customer.clone(),
            partner_name: partner.name.clone(),
            services: trial.services.iter().map(|s| s.code()).collect(),
            has_calling: trial.has_calling(),
            extended: trial.extended,
            expires_on: e.to_string(),
            days_left: schedule::days_between(today, e),
            grace_days: GRACE_DAYS,
            grace_ends_on: schedule::add_days(e, GRACE_DAYS).to_string(),
            numbers_kept_until: schedule::add_days(e, GRACE_DAYS + NUMBERS_KEPT_DAYS).to_string(),
            purchase_url: purchase_url.to_string(),
            signature: signature.to_string(),
        }
    }
}

/// A rendered reminder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub language: Language,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The template base name of an audience.
pub fn template_base(audience: Audience) -> &'static str {
    match audience {
        Audience::CustomerAdmins => "reminder_customer_admins",
        Audience::PartnerAdmins => "reminder_partner_admins",
    }
}

/// Renders a reminder in `language` (English when that language has no template). Err
/// describes the problem for the review queue.
pub fn render(
    templates: &Templates,
    audience: Audience,
    language: Language,
    context: &ReminderContext,
) -> Result<Rendered, String> {
    let base = template_base(audience);
    let r = templates
        .render(base, &[language], context)
        .map_err(|e| format!("reminder could not be rendered: {e}"))?;
    let (subject, text) = split_subject(&r.text).ok_or_else(|| {
        format!(
            "template {base}.{}.txt must start with a `Subject: …` line",
            r.language.code()
        )
    })?;
    Ok(Rendered {
        language: r.language,
        subject,
        text,
        html: r.html,
    })
}

/// Takes the `Subject:` first line off a rendered text (and the blank line after it).
fn split_subject(text: &str) -> Option<(String, String)> {
    let text = text.trim_start_matches(['\u{feff}', '\n', '\r']);
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let subject = first.trim().strip_prefix("Subject:")?.trim();
    if subject.is_empty() {
        return None;
    }
    // A header line: no control characters may survive into it.
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    let body = rest.trim_start_matches(['\r', '\n']).to_string();
    Some((subject, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Service;
    use jiff::civil::date;

    fn trial(language: Language, services: Vec<Service>) -> Trial {
        Trial {
            trial_id: "T-9".into(),
            partner_id: "P9".into(),
            customer: "Kessler <Brau> & Co".into(),
            customer_admin_emails: vec!["it@kessler.example".into()],
            services,
            starts_on: date(2026, 11, 1),
            expires_on: date(2026, 12, 31),
            extended: false,
            converted: false,
            timezone: "Europe/Berlin".into(),
            language,
        }
    }

    fn partner(language: Language) -> Partner {
        Partner {
            partner_id: "P9".into(),
            name: "Nordwind".into(),
            domains: vec!["nordwind.example".into()],
            admin_emails: vec!["admin@nordwind.example".into()],
            language,
            notify_shipment_updates: false,
        }
    }

    fn templates() -> Templates {
        // Built-ins only: a folder that does not exist.
        Templates::load(std::path::Path::new("/nonexistent/trialdesk-templates")).unwrap()
    }

    #[test]
    fn subject_line_is_split_off() {
        assert_eq!(
            split_subject("Subject: Hi there\n\nBody\n"),
            Some(("Hi there".into(), "Body\n".into()))
        );
        assert_eq!(split_subject("No subject\nBody"), None);
        assert_eq!(split_subject("Subject:   \nBody"), None);
    }

    #[test]
    fn every_kind_audience_and_language_renders_with_its_facts() {
        let t = templates();
        let calling = trial(Language::En, vec![Service::Meeting, Service::Calling]);
        for lang in Language::ALL {
            let mut tr = calling.clone();
            tr.language = lang;
            let p = partner(lang);
            for kind in Kind::ALL {
                for audience in super::super::Audience::ALL {
                    let today = schedule::due_on(tr.expires_on, kind);
                    let ctx = ReminderContext::new(
                        kind,
                        audience,
                        &tr,
                        &p,
                        today,
                        "https://buy.example/x?a=1&b=2",
                        "Desk",
                    );
                    let r = render(&t, audience, lang, &ctx).unwrap();
                    let what = format!("{lang} {kind} {audience}");
                    assert_eq!(r.language, lang, "{what}");
                    assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{what}");
                    assert!(r.text.contains("2026-12-31"), "{what}: {}", r.text);
                    assert!(r.text.contains("Desk") && r.html.contains("Desk"), "{what}");
                    // HTML is escaped; text is not.
                    assert!(
                        r.html.contains("Kessler &lt;Brau&gt; &amp; Co"),
                        "{what}: {}",
                        r.html
                    );
                    assert!(!r.html.contains("<Brau>"), "{what}");
                    match audience {
                        Audience::CustomerAdmins
                            if kind != Kind::CallingNumbersReleased
                                && kind != Kind::GracePeriodEnded =>
                        {
                            assert!(
                                r.text.contains("https://buy.example/x?a=1&b=2"),
                                "{what}: {}",
                                r.text
                            );
                        }
                        Audience::PartnerAdmins => {
                            assert!(r.text.contains("Kessler <Brau> & Co"), "{what}");
                            assert!(r.text.contains("T-9"), "{what}");
                        }
                        _ => {}
                    }
                    match kind {
                        Kind::ExpiresIn7Days => {
                            assert_eq!(ctx.days_left, 7);
                            assert!(r.text.contains(" 7 "), "{what}: {}", r.text);
                        }
                        Kind::ExpiresToday => {
                            assert!(r.text.contains("2027-01-30"), "{what}: {}", r.text);
                        }
                        Kind::GracePeriodEnded | Kind::CallingNumbersReleased => {
                            assert!(r.text.contains("2027-02-14"), "{what}: {}", r.text);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn without_calling_no_phone_numbers_are_mentioned() {
        let t = templates();
        let tr = trial(Language::En, vec![Service::Meeting]);
        let ctx = ReminderContext::new(
            Kind::GracePeriodEnded,
            Audience::CustomerAdmins,
            &tr,
            &partner(Language::En),
            date(2027, 1, 30),
            "https://buy.example",
            "Desk",
        );
        let r = render(&t, Audience::CustomerAdmins, Language::En, &ctx).unwrap();
        assert!(
            !r.text.to_lowercase().contains("phone number"),
            "{}",
            r.text
        );
        assert!(!r.text.contains("2027-02-14"), "{}", r.text);
    }
}
