//! Subject rules: is this a tracking request, in which language; reply subjects.
use crate::domain::Language;

/// Matches tracking-request aliases inside a subject (STUB: to be implemented).
#[derive(Debug, Clone)]
pub struct SubjectMatcher {
    aliases: Vec<(Language, String)>,
}

impl SubjectMatcher {
    pub fn new(aliases: &[(Language, String)]) -> Self {
        SubjectMatcher {
            aliases: aliases.to_vec(),
        }
    }

    /// The language of the alias the subject contains, if any.
    pub fn matches(&self, subject: &str) -> Option<Language> {
        self.aliases
            .iter()
            .find(|(_, a)| subject.contains(a.as_str()))
            .map(|(l, _)| *l)
    }
}

/// `Re: <original>` without doubled reply prefixes.
pub fn reply_subject(original: &str) -> String {
    format!("Re: {original}")
}
