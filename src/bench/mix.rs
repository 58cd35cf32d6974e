//! Operations of a benchmark workload and the `--mix` parser.
//!
//! A mix is a comma-separated list of `operation=weight` (e.g.
//! `check=70,check_bulk=5,lookup_resources=5,lookup_subjects=5,write=15`); each request picks
//! an operation with probability proportional to its weight. `check` is shorthand for the four
//! check kinds with equal shares of its weight.

use std::fmt;

use super::BenchError;
use super::dataset::CheckKind;

/// One kind of request a workload sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// CheckPermission of one kind of sample.
    Check(CheckKind),
    /// CheckBulkPermissions over several samples of every kind.
    CheckBulk,
    /// LookupResources for a user (all viewable documents, streamed to the end).
    LookupResources,
    /// LookupSubjects of a document's viewers (streamed to the end).
    LookupSubjects,
    /// WriteRelationships: TOUCH a viewer on a scratch document, then DELETE it.
    Write,
    /// The health check: the round-trip floor.
    Noop,
}

impl Operation {
    /// Every operation a mix may name, in report order.
    pub const MIXABLE: [Operation; 8] = [
        Operation::Check(CheckKind::Direct),
        Operation::Check(CheckKind::NestedGroup),
        Operation::Check(CheckKind::FolderParent),
        Operation::Check(CheckKind::Negative),
        Operation::CheckBulk,
        Operation::LookupResources,
        Operation::LookupSubjects,
        Operation::Write,
    ];

    /// The name in reports: `check.direct`, `check_bulk`, `lookup_resources`, …
    pub fn name(self) -> &'static str {
        match self {
            Operation::Check(CheckKind::Direct) => "check.direct",
            Operation::Check(CheckKind::NestedGroup) => "check.nested_group",
            Operation::Check(CheckKind::FolderParent) => "check.folder_parent",
            Operation::Check(CheckKind::Negative) => "check.negative",
            Operation::CheckBulk => "check_bulk",
            Operation::LookupResources => "lookup_resources",
            Operation::LookupSubjects => "lookup_subjects",
            Operation::Write => "write",
            Operation::Noop => "noop",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Operations with integer weights; picks an operation from a random number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Operations with non-zero weight, in [`Operation::MIXABLE`] order.
    entries: Vec<(Operation, u64)>,
    total: u64,
}

impl Mix {
    /// Parses `op=weight,…`. Names: `check` (split over the four kinds), `check_direct`,
    /// `check_nested_group`, `check_folder_parent`, `check_negative` (also with a `.` as in
    /// reports), `check_bulk`, `lookup_resources`, `lookup_subjects`, `write`.
    pub fn parse(text: &str) -> Result<Mix, BenchError> {
        let bad = |reason: String| BenchError::Mix(format!("invalid --mix `{text}`: {reason}"));
        // Weights are scaled by 4 so that `check` splits into four integer shares.
        let mut weights = [0u64; 8];
        let mut named = [false; 8];
        if text.trim().is_empty() {
            return Err(bad("it is empty".into()));
        }
        for part in text.split(',') {
            let part = part.trim();
            let Some((name, weight)) = part.split_once('=') else {
                return Err(bad(format!("`{part}` is not `operation=weight`")));
            };
            let name = name.trim();
            let weight: u64 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| {
                    bad(format!(
                        "the weight of `{name}` must be a whole number from 0 to 1000000"
                    ))
                })?;
            let targets: Vec<usize> = match name.replace('.', "_").as_str() {
                "check" => vec![0, 1, 2, 3],
                "check_direct" => vec![0],
                "check_nested_group" => vec![1],
                "check_folder_parent" => vec![2],
                "check_negative" => vec![3],
                "check_bulk" => vec![4],
                "lookup_resources" => vec![5],
                "lookup_subjects" => vec![6],
                "write" => vec![7],
                _ => {
                    return Err(bad(format!(
                        "unknown operation `{name}` (expected check, check_direct, \
                         check_nested_group, check_folder_parent, check_negative, check_bulk, \
                         lookup_resources, lookup_subjects or write)"
                    )));
                }
            };
            let share = if targets.len() == 4 {
                weight
            } else {
                weight * 4
            };
            for t in targets {
                if named[t] {
                    return Err(bad(format!(
                        "`{}` is given more than once",
                        Operation::MIXABLE[t].name()
                    )));
                }
                named[t] = true;
                weights[t] = share;
            }
        }
        let entries: Vec<(Operation, u64)> = Operation::MIXABLE
            .iter()
            .zip(weights)
            .filter(|(_, w)| *w > 0)
            .map(|(op, w)| (*op, w))
            .collect();
        let total = entries.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err(bad("every weight is zero".into()));
        }
        Ok(Mix { entries, total })
    }

    /// The operation for a uniformly random `r` in `0..total()`.
    pub fn pick(&self, r: u64) -> Operation {
        let mut r = r % self.total;
        for (op, w) in &self.entries {
            if r < *w {
                return *op;
            }
            r -= w;
        }
        // Unreachable: r < total = sum of weights.
        self.entries[self.entries.len() - 1].0
    }

    /// The sum of the weights.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The operations with their share of requests (fractions summing to 1).
    pub fn shares(&self) -> Vec<(Operation, f64)> {
        self.entries
            .iter()
            .map(|(op, w)| (*op, *w as f64 / self.total as f64))
            .collect()
    }

    /// The operations with non-zero weight.
    pub fn operations(&self) -> impl Iterator<Item = Operation> + '_ {
        self.entries.iter().map(|(op, _)| *op)
    }
}

impl fmt::Display for Mix {
    /// The canonical form (`check.direct=…` per kind, weights as percentages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (op, share) in self.shares() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}={:.4}", op.name(), share * 100.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_mix() {
        let mix = Mix::parse("check=70,check_bulk=5,lookup_resources=5,lookup_subjects=5,write=15")
            .unwrap();
        let shares = mix.shares();
        assert_eq!(shares.len(), 8);
        let share = |op| shares.iter().find(|(o, _)| *o == op).unwrap().1;
        assert!((share(Operation::Check(CheckKind::Direct)) - 0.175).abs() < 1e-9);
        assert!((share(Operation::Write) - 0.15).abs() < 1e-9);
        let sum: f64 = shares.iter().map(|(_, s)| s).sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn picks_in_proportion() {
        let mix = Mix::parse("check_direct=1, write=3").unwrap();
        assert_eq!(mix.total(), 16);
        let writes = (0..mix.total())
            .filter(|r| mix.pick(*r) == Operation::Write)
            .count();
        assert_eq!(writes, 12);
        assert_eq!(mix.pick(0), Operation::Check(CheckKind::Direct));
        // Zero weights drop the operation entirely.
        let mix = Mix::parse("check=0,lookup_subjects=2").unwrap();
        assert_eq!(
            mix.operations().collect::<Vec<_>>(),
            [Operation::LookupSubjects]
        );
        // Report names are accepted too.
        let mix = Mix::parse("check.nested_group=1").unwrap();
        assert_eq!(mix.pick(3), Operation::Check(CheckKind::NestedGroup));
    }

    #[test]
    fn refuses_bad_mixes_with_a_reason() {
        for (text, needle) in [
            ("", "empty"),
            ("check", "operation=weight"),
            ("check=x", "whole number"),
            ("check=-1", "whole number"),
            ("read=5", "unknown operation `read`"),
            ("check=1,check_direct=2", "more than once"),
            ("write=1,write=1", "more than once"),
            ("check=0,write=0", "every weight is zero"),
        ] {
            let err = Mix::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
