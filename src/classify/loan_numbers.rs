//! Loan-number extraction (STUB: to be implemented).
use crate::domain::LoanNumber;

#[derive(Debug, Clone)]
pub struct LoanExtractor {
    re: regex::Regex,
    max: usize,
}

/// Numbers found in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    pub numbers: Vec<LoanNumber>,
    pub truncated: bool,
}

impl LoanExtractor {
    pub fn new(pattern: &str, max: usize) -> Result<Self, regex::Error> {
        Ok(LoanExtractor {
            re: regex::Regex::new(pattern)?,
            max,
        })
    }

    pub fn extract(&self, text: &str) -> Extraction {
        let mut numbers: Vec<LoanNumber> = Vec::new();
        for m in self.re.find_iter(text) {
            let n = LoanNumber::from_normalized(m.as_str().to_string());
            if !numbers.contains(&n) {
                numbers.push(n);
            }
        }
        let truncated = numbers.len() > self.max;
        numbers.truncate(self.max);
        Extraction { numbers, truncated }
    }
}
