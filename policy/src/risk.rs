//! Risk score 0–100 from what matched and what kind of action it was.
//!
//! Bands: none 0–10, low 11–30, medium 31–55, high 56–80, critical 81–100. A rule's severity
//! sets the band; more matching rules and a blocking verdict push the score up within it.

use crate::envelope::{ActionType, Decision, Severity};
use crate::rules::facts::Facts;

/// (base, ceiling) of the score for a severity; the ceiling is the top of its band.
fn severity_range(severity: Severity) -> (u8, u8) {
    match severity {
        Severity::Info => (2, 10),
        Severity::Low => (18, 30),
        Severity::Medium => (40, 55),
        Severity::High => (66, 80),
        Severity::Critical => (88, 100),
    }
}

/// Scores the matched rules (verdict, severity) of one event.
pub fn score(matched: impl Iterator<Item = (Decision, Severity)>, facts: &Facts) -> u8 {
    let mut top: Option<(Decision, Severity)> = None;
    let mut count = 0u32;
    for (decision, severity) in matched {
        count += 1;
        if top.is_none_or(|(_, s)| severity > s) {
            top = Some((decision, severity));
        }
    }
    let Some((_, severity)) = top else {
        return unmatched_baseline(facts);
    };
    // Each further matching rule adds a quarter of the headroom, up to the band's ceiling.
    let (base, ceiling) = severity_range(severity);
    let extra = count.saturating_sub(1).min(4) as u8 * ((ceiling - base) / 4);
    base + extra
}

/// Nothing matched: shell and writes still carry a little inherent risk, reads carry none.
fn unmatched_baseline(facts: &Facts) -> u8 {
    let has = |action: ActionType| facts.actions & action.bit() != 0;
    if has(ActionType::ProcessExec) || has(ActionType::McpCall) {
        5
    } else if has(ActionType::FileWrite)
        || has(ActionType::FileDelete)
        || has(ActionType::FileRename)
    {
        3
    } else {
        0
    }
}

/// The band name of a score.
pub fn band(score: u8) -> &'static str {
    match score {
        0..=10 => "none",
        11..=30 => "low",
        31..=55 => "medium",
        56..=80 => "high",
        _ => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_land_in_their_bands() {
        let facts = Facts::default();
        for (severity, expected) in [
            (Severity::Info, "none"),
            (Severity::Low, "low"),
            (Severity::Medium, "medium"),
            (Severity::High, "high"),
            (Severity::Critical, "critical"),
        ] {
            let s = score([(Decision::Deny, severity)].into_iter(), &facts);
            assert_eq!(band(s), expected, "{severity} scored {s}");
            let many = score(std::iter::repeat_n((Decision::Deny, severity), 5), &facts);
            assert_eq!(band(many), expected, "{severity} x5 scored {many}");
            assert!(many > s);
        }
        assert_eq!(score(std::iter::empty(), &facts), 0);
    }
}
